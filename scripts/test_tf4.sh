#!/usr/bin/env bash
# The transformers 4.x slice: the torch-layer integration tests on the newest transformers 4.x.
#
# Why a second environment: the main .venv has transformers 5 (what `pip install bigsmall[test]`
# resolves to), and bigsmall supports transformers >= 4.46 too. Building a whole second venv
# would download torch again, so .venv-tf4 is a thin overlay: its own site-packages holds only
# transformers 4.57.6 and the releases that go with it (huggingface-hub 0.36.2, tokenizers 0.22.2,
# sentence-transformers 5.1.2), installed with --no-deps, and a .pth file appends the main venv's
# site-packages (torch, numpy, bigsmall itself) after them, so the 4.x packages win every import.
# About 160 MB (transformers 4.57 itself is most of it) and 5-9 minutes of tests on a busy 2-core
# machine. Run by scripts/test.sh; skip with BIGSMALL_SKIP_TF4=1.
set -euo pipefail
cd "$(dirname "$0")/.."
TF4=.venv-tf4
if [ ! -x "$TF4/bin/python" ]; then
  "$(.venv/bin/python -c 'import sys; print(sys._base_executable)')" -m venv "$TF4"
fi
BASE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
OWN=$("$TF4/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$BASE')" > "$OWN/zz-bigsmall-main-venv.pth"
"$TF4/bin/python" -m pip install -q --no-deps "transformers==4.57.6" "huggingface-hub==0.36.2" \
  "tokenizers==0.22.2" "sentence-transformers==5.1.2"
# huggingface-hub 0.x imports requests (1.x moved to httpx, so the main venv may lack it): install
# it with its dependencies, which pip resolves against the main venv's packages on sys.path
"$TF4/bin/python" -m pip install -q "requests>=2.32"
"$TF4/bin/python" -c 'import transformers, sys; sys.exit(transformers.__version__[0] != "4")'
"$TF4/bin/python" -m pytest -q -p no:cacheprovider tests/test_pretrained.py tests/test_hook.py \
  tests/test_executor.py tests/test_sentence_transformers.py tests/test_transformers5.py "$@"
