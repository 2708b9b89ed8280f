"""``bigsmall benchmark``: the figures a user pastes into a bug report, measured in one run.

compress (file -> .bs), decompress (.bs -> file), decode into memory (open + decode every tensor)
with 1 thread and with all threads, full verify, peak RSS, next to the order-0 floor of the
source. Outputs go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.floor import floor_bits
from .compress import compress
from .decompress import decompress
from .memory import peak_rss
from .plot import tensor_class
from .reader import BsFile, default_threads
from .source import FileSource


def order0_floor_bytes(bs: BsFile, src: Path) -> float:
    """Σ over tensors of the order-0 floor, plus the headers and other files counted raw."""
    total = 0.0
    c = bs.container
    root = src if src.is_dir() else src.parent
    for fi, f in enumerate(c.files):
        if f.kind != "safetensors":
            total += f.size
            continue
        total += len(f.header)
        path = root / f.path if src.is_dir() else src
        with FileSource(path) as s:
            for t in bs.file_tensors(fi):
                data = np.frombuffer(s.read(len(f.header) + t.spec.begin, t.spec.nbytes), np.uint8)
                total += floor_bits(t.spec.dtype, data) / 8
    return total


def _decode_all(path: Path, threads: int) -> float:
    """Open and decode every tensor into memory, receipts checked: the pipelined path that
    ``load`` and ``decompress`` use (tensors decode ahead on the pool, so small ones keep every
    thread busy too; tensor-by-tensor ``read_bytes`` leaves threads idle between tensors)."""
    t = time.perf_counter()
    with BsFile(path, threads=threads) as bs:
        for _ in bs.iter_decoded(list(bs.container.tensors)):
            pass
    return time.perf_counter() - t


def run_benchmark(src: str | os.PathLike[str], repeat: int = 3, threads: int | None = None,
                  level: str = "default", coder: str = "auto") -> dict[str, Any]:
    src = Path(src)
    threads = threads or default_threads()
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) if src.is_dir() else src.stat().st_size
    with tempfile.TemporaryDirectory(prefix="bigsmall-benchmark-") as d:
        bs_path = Path(d) / "model.bs"
        out = Path(d) / "restored"
        c_t, d_t = [], []
        for _ in range(repeat):
            r = compress(src, bs_path, force=True, threads=threads, level=level, coder=coder)
            c_t.append(r.seconds)
        for _ in range(repeat):
            t = time.perf_counter()
            decompress(bs_path, out, force=True, threads=threads)
            d_t.append(time.perf_counter() - t)
        mem_1 = [_decode_all(bs_path, 1) for _ in range(repeat)]
        mem_n = [_decode_all(bs_path, threads) for _ in range(repeat)]
        with BsFile(bs_path, threads=threads) as bs:
            t = time.perf_counter()
            ok = bs.verify("full").ok
            v_t = time.perf_counter() - t
            floor = order0_floor_bytes(bs, src)
            by_codec: dict[str, int] = {}
            by_class: dict[str, dict[str, int]] = {}  # the --plot chart's ratio per class
            for e in bs.container.tensors:  # which entropy stage ``auto`` chose, by bytes
                by_codec[e.codec] = by_codec.get(e.codec, 0) + e.spec.nbytes
                cls = by_class.setdefault(tensor_class(e.name, len(e.spec.shape)),
                                          {"original": 0, "stored": 0})
                cls["original"] += e.spec.nbytes
                cls["stored"] += e.length
        coded = bs_path.stat().st_size
    med = statistics.median
    return {
        "src": str(src), "original_bytes": size, "compressed_bytes": coded,
        "ratio": coded / size, "order0_floor_ratio": floor / size,
        "compress_MBps": size / 1e6 / med(c_t), "decompress_MBps": size / 1e6 / med(d_t),
        "decode_memory_MBps_1_thread": size / 1e6 / med(mem_1),
        f"decode_memory_MBps_{threads}_threads": size / 1e6 / med(mem_n),
        "thread_speedup": med(mem_1) / med(mem_n), "threads": threads,
        "verify_ok": ok, "verify_MBps": size / 1e6 / v_t, "peak_rss_MB": peak_rss() / 1e6,
        "repeat": repeat, "level": level, "coder": coder,
        "tensor_bytes_by_codec": dict(sorted(by_codec.items(), key=lambda kv: -kv[1])),
        "bytes_by_class": by_class,
    }
