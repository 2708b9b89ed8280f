"""Random access: reading one tensor costs time proportional to that tensor, not to the file.

Builds files of 1, 3 and 9 copies of the bf16 MiniLM (45 MB each; every copy's low mantissa bits
are XOR-ed with a random pattern so that no tensor is stored as a duplicate of another), compresses
each, then times, in this process with the container in page cache:

* ``open + read``: ``bigsmall.open(path)`` and ``read()`` of one 1.2 MB tensor of the last copy
  (index parse, one blob read, its chunks decoded, its receipt checked), median of --repeat;
* ``open``: ``bigsmall.open`` alone (the index: grows with the number of tensors, not bytes);
* ``decode all``: every tensor of the file decoded into memory (``iter_decoded``), median.

If random access works, the first column stays flat while the file grows 9x.

    python benchmarks/bench_random_access.py [--copies 1,3,9] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timing import median_time  # benchmarks/timing.py (the script's folder is on sys.path)

import bigsmall
from bigsmall.testing import corpus

TENSOR = "encoder.layer.3.intermediate.dense.weight"  # 1536 x 384 bf16: 1.2 MB


def build(copies: int, dst: Path) -> str:
    """A safetensors file of ``copies`` perturbed copies; returns the name of the probed tensor."""
    src = load_file(str(corpus.reference_models()["minilm-bf16"]))
    gen = torch.Generator().manual_seed(copies)
    tensors: dict[str, torch.Tensor] = {}
    for c in range(copies):
        for name, t in src.items():
            a = t.clone()
            if a.dtype == torch.bfloat16:
                bits = a.view(torch.int16)  # flip the last mantissa bit at random: no duplicates
                bits ^= torch.randint(0, 2, bits.shape, generator=gen, dtype=torch.int16)
            tensors[f"copy{c}.{name}"] = a
    save_file(tensors, str(dst))
    return f"copy{copies - 1}.{TENSOR}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", default="1,3,9")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigsmall-bench-ra-") as d:
        for copies in (int(c) for c in args.copies.split(",")):
            st = Path(d) / f"x{copies}.safetensors"
            probe = build(copies, st)
            bs = Path(d) / f"x{copies}.bs"
            bigsmall.compress(st, bs, verify=False)
            st.unlink()

            def one(bs: Path = bs, probe: str = probe) -> None:
                with bigsmall.open(bs) as f:
                    f.read(probe)

            def opened(bs: Path = bs) -> None:
                with bigsmall.open(bs):
                    pass

            def every(bs: Path = bs) -> None:
                with bigsmall.open(bs) as f:
                    for _ in f.iter_decoded(list(f.container.tensors)):
                        pass

            with bigsmall.open(bs) as f:
                size, tensors = f.original_size, len(f.container.tensors)
                probe_bytes = f.entry(probe).spec.nbytes
            rows.append({"copies": copies, "file_MB": round(size / 1e6, 1), "tensors": tensors,
                         "tensor_MB": round(probe_bytes / 1e6, 2),
                         "one_tensor_s": median_time(one, args.repeat, warm=True),
                         "open_s": median_time(opened, args.repeat, warm=True),
                         "decode_all_s": median_time(every, max(1, args.repeat // 2), warm=True)})
            bs.unlink()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("open + read one tensor vs decode the whole file (medians, page cache warm)\n")
    print(f"{'file':>9} {'tensors':>8} {'open+read 1 tensor':>19} {'(open)':>9} {'decode all':>11} {'share':>7}")
    for r in rows:
        print(f"{r['file_MB']:>6.0f} MB {r['tensors']:>8} {r['one_tensor_s'] * 1e3:>16.1f} ms "
              f"{r['open_s'] * 1e3:>6.1f} ms "
              f"{r['decode_all_s']:>9.2f} s {r['one_tensor_s'] / r['decode_all_s'] * 100:>6.2f}%")
    first, last = rows[0], rows[-1]
    print(f"\nfile x{last['file_MB'] / first['file_MB']:.1f}: one-tensor time "
          f"x{last['one_tensor_s'] / first['one_tensor_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
