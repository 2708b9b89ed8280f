"""compress, decompress, verify, info, stat, benchmark, warmup."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import BigsmallError
from . import dual_commands, integrity_commands, options

Emit = Callable[[argparse.Namespace, dict[str, Any], str], None]


def _progress(args: argparse.Namespace) -> bool | None:
    return False if (args.no_progress or args.json) else None


def _mb(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)


def _rate(nbytes: int, seconds: float) -> str:
    """MB/s for a person: whole numbers, one decimal below 10 (a first run that compiles the
    kernels for two minutes is ~0.4 MB/s, which ``:.0f`` printed as "0 MB/s")."""
    r = nbytes / 1e6 / max(seconds, 1e-9)
    return f"{r:.1f} MB/s" if r < 10 else f"{r:.0f} MB/s"


def cmd_compress(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.compress import compress

    r = compress(args.src, args.output, force=args.force, threads=args.threads,
                 verify=not args.no_verify, progress=_progress(args), level=args.level,
                 format_version=args.format_version, coder=args.coder, ecc=args.ecc,
                 resume=args.resume, delta_from=args.delta_from, durable=not args.no_fsync)
    extra = (f", {r.ecc['extra_percent']:.2f} % ECC parity" if r.ecc else "") + (
        f", {r.resumed_tensors} tensors kept from an interrupted run" if r.resumed_tensors else "")
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}: {_mb(r.original_bytes)} -> {_mb(r.compressed_bytes)} "
         f"({r.ratio * 100:.2f} %), {r.tensors} tensors, {r.seconds:.2f} s "
         f"({_rate(r.original_bytes, r.seconds)}){extra}"
         + ("" if r.durable else ", not fsynced")
         + (f", a patch against {r.delta_from}" if r.delta_from else ""))
    return 0


def cmd_decompress(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.decompress import decompress

    r = decompress(args.src, args.output, force=args.force, threads=args.threads,
                   progress=_progress(args), durable=not args.no_fsync, base=args.base,
                   check=args.check)
    net = r.remote  # a URL / hf:// source: what the download cost
    fetched = ""
    if net:
        retried = f", {net['retries']} retried" if net["retries"] else ""
        fetched = f", {_mb(net['bytes'])} fetched in {net['requests']} requests{retried}"
    emit(args, r.to_json(),
         f"{r.src} -> {r.dst}: {_mb(r.bytes_written)} restored, "
         f"{'sha256' if r.check == 'sha256' else 'tensor receipts'} verified"
         f"{'' if r.durable else ', not fsynced'}{fetched}, "
         f"{r.seconds:.2f} s ({_rate(r.bytes_written, r.seconds)})")
    return 0


def cmd_verify(args: argparse.Namespace, emit: Emit) -> int:
    from ..io import progress as prog
    from ..io.reader import BsFile
    from .verify_text import detail, render

    if dual_commands.is_bsd(args.src):  # a dual-fidelity .bsd (cli/dual_commands.py)
        return dual_commands.verify_bsd(args, emit)
    mode = "fast" if args.fast else "sample" if args.sample is not None else "full"
    ecc = integrity_commands.ecc_status(args.src)  # None: no local file; .found: has parity
    try:
        bs = BsFile(args.src, base=args.base)
    except BigsmallError as exc:  # a damaged header or index: can its parity rebuild it?
        if ecc is None or not ecc.found:
            raise
        return integrity_commands.verify_unreadable(args, emit, exc, ecc)
    with bs, prog.bar(bs.original_size, f"verify {args.src}", _progress(args)) as bar:
        rep = bs.verify(mode, fraction=args.sample or 0.1, progress=bar)
        d = detail(bs, rep)  # what was checked, each bad tensor named (verify_text.py)
    payload = {"src": args.src, "mode": rep.mode, "ok": rep.ok, "tensors_checked": d.intact,
               "tensors_failed": d.examined - d.intact, "tensors_examined": d.examined,
               "tensors_total": d.total, "files_checked": d.files,
               "bytes_decoded": rep.bytes_decoded, "problems": list(d.problems)}
    text = render(args.src, rep.mode, d)
    ok = rep.ok
    if ecc is not None and ecc.found:  # its block checksums see damage a fast check does not
        ok = ok and ecc.core_ok
        payload.update(ok=ok, ecc=ecc.to_json())
        text = text.rstrip("\n") + "\n" + integrity_commands.ecc_line(ecc)
    emit(args, payload, text)
    return 0 if ok else 3


def cmd_info(args: argparse.Namespace, emit: Emit) -> int:
    if dual_commands.is_bsd(args.src):  # a dual-fidelity .bsd (cli/dual_commands.py)
        return dual_commands.info_bsd(args, emit)
    # the index alone (no numpy, no numba): describing a container must start instantly
    from ..io.shards import open_source  # a path, a folder of shards, a URL or hf://
    from ..io.source import read_container

    with open_source(args.src) as source:
        _, c = read_container(source)
        original = sum(f.size for f in c.files)
        layers = c.meta.get("layers", [])
        codecs: dict[str, int] = {}
        dtypes: dict[str, int] = {}
        for t in c.tensors:
            codecs[t.codec] = codecs.get(t.codec, 0) + 1
            dtypes[t.spec.dtype] = dtypes.get(t.spec.dtype, 0) + 1
        payload = {
            "path": args.src, "format_version": list(c.version), "writer": c.meta.get("writer"),
            "root": c.meta.get("root"), "original_bytes": original,
            "compressed_bytes": source.size,
            "ratio": source.size / original if original else 1.0,
            "tensors": len(c.tensors), "layers": len(layers), "dtypes": dtypes, "codecs": codecs,
            "files": [{"path": f.path, "kind": f.kind, "size": f.size, "sha256": f.receipt.digest}
                      for f in c.files],
        }
    lines = [
        f"{args.src}: bigsmall container format {c.version[0]}.{c.version[1]} ({payload['writer']})",
        f"  {_mb(payload['original_bytes'])} -> {_mb(payload['compressed_bytes'])} "
        f"({payload['ratio'] * 100:.2f} %)",
        f"  {len(c.tensors)} tensors in {len(layers)} layers; dtypes "
        + ", ".join(f"{k}x{v}" for k, v in sorted(dtypes.items()))
        + "; codecs " + ", ".join(f"{k}x{v}" for k, v in sorted(codecs.items())),
    ]
    lines += [f"  {f['kind']:11s} {f['path']} ({_mb(f['size'])}) sha256 {f['sha256'][:16]}..." for f in payload["files"]]
    if "base" in c.meta:  # a patch (compress --delta-from): what it needs to decode
        from .delta_commands import base_lines

        payload["base"] = c.meta["base"]
        lines += base_lines(c.meta["base"])
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_stat(args: argparse.Namespace, emit: Emit) -> int:
    from ..core.types import qualified_key
    from ..io.shards import open_source
    from ..io.source import read_container

    rows = []
    with open_source(args.src) as source:
        c = read_container(source)[1]
        shared = c.ambiguous_names()  # such a name is shown (and matched) as "file::name"
        for t in c.tensors:
            key = qualified_key(c.files[t.spec.file].path, t.name) if t.name in shared else t.name
            if args.tensor and args.tensor not in key:
                continue
            stored = t.length
            rows.append({
                "name": key, "file": c.files[t.spec.file].path if c.files else None,
                "dtype": t.spec.dtype, "shape": list(t.spec.shape),
                "layer": t.layer, "codec": t.codec, "original_bytes": t.spec.nbytes,
                "stored_bytes": stored,
                "ratio": stored / t.spec.nbytes if t.spec.nbytes else 1.0,
                "grid": t.params.get("grid"), "layout": t.params.get("layout"),
            })
    key = {"ratio": lambda r: r["ratio"], "size": lambda r: -r["original_bytes"],
           "name": lambda r: r["name"]}[args.sort]
    rows.sort(key=key)
    tot_o = sum(r["original_bytes"] for r in rows)
    tot_s = sum(r["stored_bytes"] for r in rows)
    lines = [f"{'ratio':>8s} {'stored':>10s} {'original':>10s} {'codec':6s} {'dtype':6s} name"]
    for r in rows:
        lines.append(f"{r['ratio'] * 100:7.2f}% {_mb(r['stored_bytes']):>10s} {_mb(r['original_bytes']):>10s} "
                     f"{r['codec']:6s} {r['dtype']:6s} {r['name']}")
    lines.append(f"{(tot_s / tot_o * 100) if tot_o else 100:7.2f}% {_mb(tot_s):>10s} {_mb(tot_o):>10s} "
                 f"total ({len(rows)} tensors)")
    emit(args, {"tensors": rows, "original_bytes": tot_o, "stored_bytes": tot_s}, "\n".join(lines))
    return 0


def cmd_benchmark(args: argparse.Namespace, emit: Emit) -> int:
    from ..io.bench import run_benchmark

    if getattr(args, "plot", None):  # fail before minutes of measuring, not after
        from ..io.plot import require_matplotlib

        require_matplotlib()
    r = run_benchmark(args.src, repeat=args.repeat, threads=args.threads, level=args.level,
                      coder=args.coder)
    n = r["threads"]
    by = r["tensor_bytes_by_codec"]
    total = max(1, sum(by.values()))
    mix = ", ".join(f"{c} {b / total * 100:.0f} %" for c, b in by.items() if b / total >= 0.005)
    text = "\n".join([
        f"{r['src']}: {_mb(r['original_bytes'])} -> {_mb(r['compressed_bytes'])} "
        f"({r['ratio'] * 100:.2f} %, order-0 floor {r['order0_floor_ratio'] * 100:.2f} %)",
        f"  compress            {r['compress_MBps']:8.1f} MB/s (level {r['level']}, coder "
        f"{r['coder']}, with verify; tensor bytes by codec: {mix})",
        f"  decompress          {r['decompress_MBps']:8.1f} MB/s (file -> file)",
        f"  decode into memory  {r['decode_memory_MBps_1_thread']:8.1f} MB/s (1 thread), "
        f"{r[f'decode_memory_MBps_{n}_threads']:.1f} MB/s ({n} threads, x{r['thread_speedup']:.2f})",
        f"  verify              {r['verify_MBps']:8.1f} MB/s ({'OK' if r['verify_ok'] else 'FAILED'})",
        f"  peak RSS            {r['peak_rss_MB']:8.0f} MB   (medians of {r['repeat']} runs)",
    ])
    if getattr(args, "plot", None):
        from ..io.plot import plot_benchmark

        r["plot"] = str(plot_benchmark(r, args.plot))
        text += f"\n  chart               {r['plot']}"
    emit(args, r, text)
    return 0 if r["verify_ok"] else 3


def cmd_warmup(args: argparse.Namespace, emit: Emit) -> int:
    from ..io import progress as prog
    from ..io.warmup import load_manifest, needed, warmup

    kernels = needed(load_manifest())  # only what this process's path (C kernels or not) uses
    with prog.bar(len(kernels), "compiling", _progress(args), unit="kernel") as bar:
        r = warmup(args.processes, kernels, progress=lambda _k, _s: bar.update(1))
    emit(args, {"kernels": r.kernels, "processes": r.processes, "seconds": round(r.seconds, 2),
                "compile_seconds": round(r.compile_seconds, 2)},
         f"{r.kernels} kernels compiled or found cached in {r.seconds:.1f} s on {r.processes} "
         f"processes ({r.compile_seconds:.1f} s of work); later commands load them from the cache")
    return 0


_SRC_HELP = "a .bs container: a path, an http(s):// URL or hf://org/repo[@revision]/file.bs"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compress", parents=[common], help="safetensors file or model folder -> .bs",
                       description="Compress a .safetensors file or a model folder (sharded or not, "
                       "with config and tokenizer files) into one .bs container, losslessly.")
    p.add_argument("src", help="a .safetensors file or a model folder")
    p.add_argument("-o", "--output", help="output path (default: model.safetensors -> model.bs, folder -> folder.bs)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="worker threads (default: all cores)")
    p.add_argument("--no-verify", action="store_true", help="skip decoding each coded tensor again before writing it")
    p.add_argument("-l", "--level", choices=("fast", "default", "max"), default="default",
                   help="encoder effort: 'fast' skips the context search (~2-2.5x faster, files a "
                   "little larger); 'max' keeps rANS for every tensor where the prefix code costs "
                   "> 0.25 %% (smallest auto files, slower to decode); same format either way "
                   "(default: default)")
    p.add_argument("--coder", choices=("auto", "rans", "prefix"), default="auto",
                   help="entropy stage: 'rans' gives the smallest files; 'prefix' decodes ~1.6x "
                   "faster for ~0.1-0.2 points of size (format 1.2, codec fieldp); 'auto' picks "
                   "prefix per tensor where it costs <= 1 %% of its size (0.25 %% at --level "
                   "max), else rans "
                   "(format 1.2) (default: auto)")
    p.add_argument("--format-version", choices=("1.2", "1.1", "1.0"), default=None,
                   help="container format to write: 1.1 decodes ~1.8x faster than 1.0 (field8 "
                   "codec); 1.0 is read by every bigsmall; 1.2 is needed by --coder prefix/auto "
                   "(default: 1.2; 1.1 with --coder rans)")
    p.add_argument("--ecc", type=options.percent, default=None, metavar="P",
                   help="append P %% of erasure-code parity, from which `bigsmall repair` rebuilds "
                   "damaged bytes (with 2: any damaged run of about 1.5-2 %% of the file)")
    p.add_argument("--resume", action="store_true",
                   help="journal the run beside its temporary output, and continue an interrupted "
                   "--resume run of the same inputs and options (byte-identical result)")
    p.add_argument("--delta-from", metavar="BASE", default=None,
                   help="write a patch against BASE (a safetensors file or folder, or a .bs): "
                   "tensors equal to BASE's cost nothing, changed ones are coded as their change; "
                   "decode it with `bigsmall apply BASE PATCH` (see docs/delta.md)")
    p.add_argument("--no-fsync", action="store_true",
                   help="do not fsync the output before renaming it into place: faster where the "
                   "disk is slower than coding, but a crash or power loss soon after may lose or "
                   "truncate it (still written to a temporary file, then renamed)")
    p.set_defaults(handler=cmd_compress)

    p = sub.add_parser("decompress", parents=[common], help=".bs -> the original file or folder, byte for byte",
                       description="Restore the original .safetensors file (or model folder) exactly; "
                       "the sha256 of every restored file is checked against its receipt.")
    p.add_argument("src", help=_SRC_HELP)
    p.add_argument("-o", "--output", help="output path (default: the stored file or folder name next to SRC; "
                   "for a URL, in the current folder)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="worker threads (default: all cores)")
    p.add_argument("--no-fsync", action="store_true",
                   help="do not fsync the output before renaming it into place: faster where the "
                   "disk is slower than decoding, but a crash or power loss soon after may lose "
                   "or truncate it (still written to a temporary file, checked, then renamed)")
    p.add_argument("--base", metavar="BASE", default=None,
                   help="the base model of a patch (compress --delta-from): checked against the "
                   "patch's receipts before anything is written")
    p.add_argument("--check", choices=("sha256", "receipts"), default="sha256",
                   help="what checks the restored bytes: 'sha256' rebuilds every file's sha256 "
                   "(the original's, as the Hub lists it) and compares it with its receipt; "
                   "'receipts' checks every tensor against its own xxh3-128 receipt instead "
                   "(every byte still checked, ~1/14 of the hashing CPU; no sha256) "
                   "(default: sha256)")
    p.set_defaults(handler=cmd_decompress)

    p = sub.add_parser("verify", parents=[common], help="check a container against its receipts",
                       description="Check a .bs container. Exit code 0: intact, 3: corrupt, 1: unreadable.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fast", action="store_true", help="structure and side information only (no decoding)")
    g.add_argument("--sample", type=options.fraction, metavar="FRACTION", help="decode a random fraction of the tensors")
    g.add_argument("--full", action="store_true", help="decode everything and rebuild file sha256s (default)")
    p.add_argument("src", help=_SRC_HELP)
    p.add_argument("--base", metavar="BASE", default=None,
                   help="the base model of a patch (compress --delta-from); without it a patch's "
                   "changed tensors cannot be decoded (exit 1)")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("info", parents=[common], help="what a container holds",
                       description="Summarise a .bs container: version, sizes, tensors, layers, files.")
    p.add_argument("src", help=_SRC_HELP)
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("stat", parents=[common], help="per-tensor codecs and ratios",
                       description="Per-tensor table: codec, stored and original bytes, ratio.")
    p.add_argument("src", help="a .bs container")
    p.add_argument("--sort", choices=("ratio", "size", "name"), default="size", help="row order (default: size)")
    p.add_argument("--tensor", metavar="SUBSTR", help="only tensors whose name contains SUBSTR")
    p.set_defaults(handler=cmd_stat)

    p = sub.add_parser("benchmark", parents=[common], help="measure ratio, speed and memory on a model",
                       description="Compress, decompress, decode into memory (1 and N threads) and "
                       "verify SRC in a temporary folder; print ratio, order-0 floor, MB/s, thread "
                       "scaling and peak RSS.")
    p.add_argument("src", help="a .safetensors file or a model folder")
    p.add_argument("--repeat", type=options.positive_int, default=3, help="runs per measurement; medians are reported")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="worker threads (default: all cores)")
    p.add_argument("-l", "--level", choices=("fast", "default", "max"), default="default",
                   help="compression level to measure (see `bigsmall compress --help`)")
    p.add_argument("--coder", choices=("auto", "rans", "prefix"), default="auto",
                   help="entropy stage to measure (see `bigsmall compress --help`)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw the results as a PNG chart (needs matplotlib: pip install "
                   "'bigsmall[plot]')")
    p.set_defaults(handler=cmd_benchmark)

    p = sub.add_parser("warmup", parents=[common], help="compile the kernels now, on every core",
                       description="Compile the numba kernels of the common commands ahead of "
                       "use, in several processes at once, into numba's on-disk cache. Only the "
                       "kernels that this process's path uses: with the C kernels built (the "
                       "default), the few without a C port; with BIGSMALL_NATIVE=0 (or no "
                       "compiler at install), every one: the first compress otherwise compiles "
                       "them one at a time (~2 minutes on a 2-core machine). Safe to rerun: "
                       "cached kernels just load.")
    p.add_argument("-j", "--processes", type=options.workers, default=None,
                   help="worker processes (default: the cores available)")
    p.set_defaults(handler=cmd_warmup)
