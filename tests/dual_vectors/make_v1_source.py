"""The source of tests/dual_vectors/v1.bsd, a golden ``.bsd`` 1.0 file (written by the v1 encoder,
before 2.0): every later bigsmall must restore it to these bytes. Not rerun by the tests (the v1
encoder is gone from ``io/dual.py``); ``source()`` regenerates the original to compare against."""
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


if __name__ == "__main__":
    print(hashlib.sha256(source(Path(sys.argv[1])).read_bytes()).hexdigest())
