"""The source of tests/dual_vectors/v1.bsd .. v5.bsd, golden ``.bsd`` 1.0 to 5.0 files (written by
the 1.0 encoder before 2.0, by the first 2.0 encoder, by the first 3.0, 4.0 and 5.0 encoders);
``source_v2()`` is the source of v2_modes.bsd .. v5_modes.bsd. Every later bigsmall must restore them to these bytes. The tests
do not rewrite them; ``source()`` regenerates the original to compare against. The 3.0 files
were written by (the 4.0 and 5.0 files: the same with v4.bsd, v4_modes.bsd / v5.bsd, v5_modes.bsd;
the 5.0 files rewritten, ``force=True``, when 5.0's fast chunk went to 16 states)::

    python -c "import importlib.util as u; from pathlib import Path; from bigsmall.io import dual
    s = u.spec_from_file_location('mk', 'tests/dual_vectors/make_v1_source.py')
    mk = u.module_from_spec(s); s.loader.exec_module(mk)
    for f, n in (('source', 'v3.bsd'), ('source_v2', 'v3_modes.bsd')):
        dual.create(getattr(mk, f)(Path('/tmp') / (f + '.safetensors')), Path('tests/dual_vectors') / n)"
"""
import hashlib
import sys
from pathlib import Path

import numpy as np

from bigsmall.testing.raw_safetensors import write_safetensors


def source(path: Path) -> Path:
    rng = np.random.default_rng(20)
    w = (rng.standard_normal(64 * 256) * 0.02).astype(np.float32)
    w[::97] = 0.0
    t = {"a.weight": ("BF16", (64, 256), (w.view(np.uint32) >> 16).astype("<u2").tobytes()),
         "b.weight": ("F16", (64, 256), w[::-1].astype("<f2").tobytes()),
         "c.weight": ("F32", (128, 128), (rng.standard_normal(128 * 128) * 0.05).astype("<f4").tobytes()),
         "c.bias": ("F32", (128,), rng.standard_normal(128).astype("<f4").tobytes())}
    return write_safetensors(path, t)


def source_v2(path: Path) -> Path:
    """The source of v2_modes.bsd: tensors that take 2.0's other paths (fast chunk modes 1 and 2,
    F32 row shifts)."""
    rng = np.random.default_rng(21)
    off = (rng.standard_normal((96, 256)) * 0.01 + rng.standard_normal(256) * 0.05).astype(np.float32)
    col = (rng.standard_normal((160, 256)) * np.exp(rng.standard_normal(256) * 2.5) * 0.01).astype(np.float32)
    narrow = (rng.standard_normal((64, 256)) * 0.02).astype(np.float16).astype("<f4")  # low bits 0
    t = {"offsets.weight": ("F16", (96, 256), off.astype("<f2").tobytes()),
         "columns.weight": ("BF16", (160, 256), (col.view(np.uint32) >> 16).astype("<u2").tobytes()),
         "narrow.weight": ("F32", (64, 256), narrow.tobytes())}
    return write_safetensors(path, t)


if __name__ == "__main__":
    print(hashlib.sha256(source(Path(sys.argv[1])).read_bytes()).hexdigest())
