"""ECC parity (``compress --ecc``) and ``repair`` on the reference models: parity encode MB/s,
check MB/s, repair MB/s (one 1 % damaged run, and a run that hits every stripe), extra size.

Each model is compressed once (``--level fast``: the parity does not depend on how the blobs
were coded); then, ``--repeat`` rounds, each measuring in turn: ``protect`` on a copy of the
container (MB/s of container bytes, the file in the page cache), ``check`` of the protected
file, and ``repair`` of a copy with a 1 % run damaged at a seeded random offset into a new file
(durable: fsync before the rename, as the command does; MB/s of the file's bytes). Medians.
Each rate is given twice: wall clock, and per CPU second of the process (all its threads):
on a shared machine (``load`` is printed) the wall clock mostly measures the neighbours.

    python benchmarks/bench_ecc.py [--repeat 5] [--percent 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bigsmall
from bigsmall.io import ecc
from bigsmall.testing import corpus


def _damage(src: Path, dst: Path, off: int, length: int) -> None:
    data = bytearray(src.read_bytes())
    data[off:off + length] = random.Random(off).randbytes(length)
    dst.write_bytes(bytes(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--percent", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-ecc-") as d:
        work = Path(d)
        for name, src in corpus.reference_models().items():
            plain = work / f"{name}.bs"
            bigsmall.compress(src, plain, level="fast")
            core = plain.stat().st_size
            enc, chk, rep, rep_all, enc_cpu, rep_cpu = [], [], [], [], [], []
            info = None
            rnd = random.Random(0)
            for _ in range(args.repeat):
                prot = work / f"{name}.ecc.bs"
                shutil.copy(plain, prot)
                with open(prot, "r+b") as fh:
                    t, c = time.perf_counter(), time.process_time()
                    info = ecc.protect(fh, core, args.percent)
                    enc.append(time.perf_counter() - t)
                    enc_cpu.append(time.process_time() - c)
                size = prot.stat().st_size
                t = time.perf_counter()
                st = ecc.check(prot)
                chk.append(time.perf_counter() - t)
                assert st.found and not st.damaged
                bad = work / "bad.bs"
                run = size // 100
                _damage(prot, bad, rnd.randrange(size - run), run)
                fixed = work / "fixed.bs"
                t, c = time.perf_counter(), time.process_time()
                r = ecc.repair(bad, fixed, force=True)
                rep.append(time.perf_counter() - t)
                rep_cpu.append(time.process_time() - c)
                assert r.repaired and fixed.read_bytes() == prot.read_bytes()
                rep_all.append(r.stripes == st.geometry.stripes if st.geometry else False)
            assert info is not None
            mb = 1e6
            rows.append({
                "model": name, "container_bytes": core, "ecc_bytes": info.ecc_bytes,
                "extra_percent": 100 * info.ecc_bytes / core, "block": info.block, "k": info.k,
                "m": info.m, "stripes": info.stripes,
                "guaranteed_burst_percent": 100 * info.guaranteed_burst / (core + info.ecc_bytes),
                "encode_MBps": core / mb / statistics.median(enc),
                "check_MBps": (core + info.ecc_bytes) / mb / statistics.median(chk),
                "repair_MBps": (core + info.ecc_bytes) / mb / statistics.median(rep),
                "encode_MB_per_cpu_s": core / mb / statistics.median(enc_cpu),
                "repair_MB_per_cpu_s": (core + info.ecc_bytes) / mb / statistics.median(rep_cpu),
                "load": os.getloadavg()[0], "cpus": os.cpu_count(),
                "repairs_hitting_every_stripe": sum(rep_all), "repeat": args.repeat,
            })
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"--ecc {args.percent:g}: parity encode / check / repair of one 1 % damaged run "
          f"(medians of {args.repeat})")
    print("MB/s: wall clock (per CPU second of the process); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':<18}{'container':>11}{'extra':>8}{'burst ok':>10}{'encode':>16}{'check':>10}"
          f"{'repair':>16}  geometry")
    for r in rows:
        print(f"{r['model']:<18}{r['container_bytes'] / 1e6:>9.1f}MB{r['extra_percent']:>7.2f}%"
              f"{r['guaranteed_burst_percent']:>9.2f}%{r['encode_MBps']:>7.0f} ({r['encode_MB_per_cpu_s']:>5.0f})"
              f"{r['check_MBps']:>10.0f}{r['repair_MBps']:>7.0f} ({r['repair_MB_per_cpu_s']:>5.0f})  "
              f"{r['stripes']} x ({r['k']}+{r['m']}) x {r['block']} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
