"""Entry points of the fuzzer and the classifier of their outcomes (runs inside a worker).

Why every entry point for every mutant: the same corrupt file goes through different code in
``BsFile.read`` (whole tensors, strided groups), ``decompress`` (pieces in order, a file
rebuilt and renamed), ``verify`` (which catches and reports), ``load`` / ``StreamingLoader``
(torch storages, a prefetch thread) and the CLI (which must turn every error into an exit
code). A bug in one is not caught by testing another.

Classes (``docs/fuzzing.md``):

- ``typed``: a ``BigsmallError`` was raised (or verify reported a problem, or the CLI exited
  non-zero): the corruption was detected.
- ``identical``: no error, and every decoded byte is a byte of the original input.
- ``wrong``: no error, but some decoded tensor or restored file is not any original's bytes
  (or verify called a file good whose decoding is wrong).
- ``untyped``: an exception that is not a ``BigsmallError`` (``MemoryError`` included), or
  the CLI raised instead of returning an exit code.
- ``escape``: something outside the named output was created, changed or deleted, a
  temporary file was left, or a failed run left an output behind.
- ``crash`` / ``hang`` are decided by the parent (``benchmarks/fuzz.py``): the worker died,
  or ran past its time limit.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import shutil
import stat
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

CONTAINER_ENTRIES = ("read", "verify-fast", "verify-sample", "verify-full", "decompress", "load",
                     "stream", "cli-info", "cli-verify", "cli-decompress")
ST_ENTRIES = ("compress",)
ENTRIES = CONTAINER_ENTRIES + ST_ENTRIES
SELFTEST_ENTRIES = ("selftest-crash", "selftest-hang")
"""Entries that crash or hang on purpose: the tests prove with them that the pool survives a
worker's death and names the mutant (never in the default list)."""
ALL_ENTRIES = ENTRIES + SELFTEST_ENTRIES
CLASSES = ("typed", "identical", "wrong", "crash", "hang", "untyped", "escape")
BAD = frozenset({"wrong", "crash", "hang", "untyped", "escape"})


@attrs.frozen
class Outcome:
    entry: str
    cls: str
    message: str = ""
    seconds: float = 0.0


class Wrong(Exception):
    """Raised inside an entry when decoded bytes are not the original's."""


# ---------------------------------------------------------------- the sandbox

class Sandbox:
    """Where a mutant is decoded: ``top/`` holds a sentinel, ``top/sb/`` another, and
    ``top/sb/box/`` the mutant file, a sentinel file and a sentinel folder. ``decompress``
    writes its default output into ``box``. Two levels of sentinels above it catch an output
    name of ``.`` or ``..`` (which would make the output ``box`` itself or its parent)."""

    def __init__(self, top: Path):
        self.top = top
        self.box = top / "sb" / "box"
        self.reset()
        self.baseline = self.snapshot()

    def reset(self) -> None:
        """Rebuild the sandbox from nothing (after an escape, or at start)."""
        if self.top.exists():
            _rmtree(self.top)
        (self.box / "sentdir").mkdir(parents=True)
        (self.top / "top-sentinel.txt").write_bytes(b"top sentinel\n")
        (self.top / "sb" / "sb-sentinel.txt").write_bytes(b"sb sentinel\n")
        (self.box / "sentinel.txt").write_bytes(b"box sentinel\n")
        (self.box / "sentdir" / "inner.txt").write_bytes(b"inner sentinel\n")
        self._watch = [str(self.top)] + [os.path.join(d, n) for d, ds, fs in os.walk(self.top) for n in ds + fs]

    def snapshot(self) -> dict[str, tuple[str, int, str]]:
        """Every entry under ``top``: (type, size, sha256 of a file's bytes)."""
        out: dict[str, tuple[str, int, str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.top):
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                rel = p.relative_to(self.top).as_posix()
                st = p.lstat()
                if stat.S_ISREG(st.st_mode):
                    out[rel] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()[:16])
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = ("dir", 0, "")
                else:
                    out[rel] = ("other", st.st_size, "")
        return out

    def stat_snapshot(self) -> tuple[tuple[int, int, int], ...]:
        """(mode, size, mtime in ns) of ``top`` and of every entry the sandbox is built with,
        no file read: the fast mode's check that a read-only entry point wrote nothing. Any
        file written moves its mtime; anything created, renamed or deleted moves its folder's
        (every folder is watched, the mutant's own included)."""
        out = []
        for p in self._watch:
            try:
                st = os.lstat(p)
            except OSError:
                out.append((-1, -1, -1))
            else:
                out.append((st.st_mode, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def rel(self, p: Path) -> str:
        return p.relative_to(self.top).as_posix()


def _exists(p: Path) -> bool:
    """``p.exists()`` for any name a mutant may give: one the OS cannot take (too long, a lone
    surrogate, a NUL byte) does not exist."""
    try:
        return os.path.lexists(p)
    except (OSError, ValueError):
        return False


def _rmtree(p: Path) -> None:
    def onerror(func: Callable[..., Any], path: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
            func(path)
    shutil.rmtree(p, onerror=onerror)


def allowed_output(data: bytes, box: Path, bs_name: str) -> Path | None:
    """The output ``decompress`` may write for this mutant (its *named output*), worked out
    from the mutant's own index without bigsmall's checks; None when it names nothing inside
    ``box`` (".", "..", "", "a/..", ...: any write then is an escape)."""
    try:
        import fuzz_mutate

        doc = fuzz_mutate.index_doc(data)
        meta = doc.get("meta") or {}
        if meta.get("root") == "folder":
            name = bs_name[:-3] if bs_name.endswith(".bs") else bs_name + ".out"
        else:
            name = str(meta.get("name") or doc["files"][0]["path"])
        leaf = Path(name).name
    except Exception:  # noqa: BLE001 - an unreadable index names no output
        return None
    if leaf in ("", ".", "..") or "\x00" in leaf:
        return None
    return box / leaf


# ---------------------------------------------------------------- entry points

class Judge:
    """Runs the entry points on one mutant file and classifies each outcome."""

    def __init__(self, sandbox: Sandbox, files: dict[str, bytes], tensors: dict[str, bytes]):
        self.sb = sandbox
        self.file_set = {hashlib.sha256(v).digest() for v in files.values()}
        self.tensor_set = {hashlib.sha256(v).digest() for v in tensors.values()}

    # ---- checks on decoded bytes
    def tensor_ok(self, name: str, data: bytes | memoryview) -> None:
        if hashlib.sha256(data).digest() not in self.tensor_set:
            raise Wrong(f"tensor {name!r} decoded to bytes that are no original tensor's")

    def output_ok(self, out: Path) -> None:
        if out.is_dir():
            for p in sorted(out.rglob("*")):
                if p.is_file() and hashlib.sha256(p.read_bytes()).digest() not in self.file_set:
                    raise Wrong(f"restored member {p.relative_to(out).as_posix()!r} differs from every original file")
        elif out.is_file():
            if hashlib.sha256(out.read_bytes()).digest() not in self.file_set:
                raise Wrong(f"restored file {out.name!r} differs from the original")
        else:
            raise Wrong("decompress reported success but its output does not exist")

    # ---- the entries
    def run(self, entry: str, path: Path, data: bytes, light: bool = False) -> Outcome:
        """One entry point on the mutant at ``path`` (``data`` its bytes). ``light`` (fast
        mode, read-only entry points): the sandbox is compared by a stat snapshot, and hashed
        only when that differs."""
        from bigsmall.errors import BigsmallError

        t0 = time.perf_counter()
        before = self.sb.stat_snapshot() if light else None
        out = allowed_output(data, self.sb.box, path.name) if entry.endswith("decompress") else None
        if out is not None and _exists(out) and out.resolve() == path.resolve():
            out = path  # the container names itself: overwriting it is its named output
        try:
            cls, msg = getattr(self, "_" + entry.replace("-", "_"))(path, out)
        except Wrong as exc:
            cls, msg = "wrong", str(exc)
        except BigsmallError as exc:
            cls, msg = "typed", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: BLE001 - MemoryError, RecursionError, SystemExit: all findings
            if isinstance(exc, KeyboardInterrupt):
                raise
            cls, msg = "untyped", _describe(exc)
        finally:
            gc.enable()  # the CLI turns the collector off for its commands (and freezes what
            # is alive on success: fine here, the worker froze its imports at start anyway)
        if before is not None and out is None and self.sb.stat_snapshot() == before:
            esc = ""
        else:
            esc = self.escaped(out, path, data, cls)
        if esc:
            cls, msg = "escape", esc + (f" (entry outcome: {cls}: {msg})" if msg else "")
        return Outcome(entry, cls, msg[:2000], time.perf_counter() - t0)

    def escaped(self, out: Path | None, path: Path, data: bytes, cls: str) -> str:
        """What changed outside the named output (or a leftover output after a failure);
        puts the sandbox back the way it was."""
        snap = self.sb.snapshot()
        base = dict(self.sb.baseline)
        base[self.sb.rel(path)] = snap.get(self.sb.rel(path), ("file", len(data), ""))
        allowed = self.sb.rel(out) if out is not None else None
        problems = []
        for rel in sorted(set(snap) | set(base)):
            if allowed is not None and (rel == allowed or rel.startswith(allowed + "/")):
                continue
            if rel == self.sb.rel(path) and path.exists():
                continue
            if rel not in snap:
                problems.append(f"deleted {rel}")
            elif rel not in base:
                problems.append(f"created {rel}")
            elif snap[rel] != base[rel]:
                problems.append(f"changed {rel}")
        if out is not None and _exists(out) and out != path:
            for p in [out, *(out.rglob("*") if out.is_dir() else [])]:
                if ".tmp" in p.name or ".old-" in p.name:
                    problems.append(f"temporary file left {self.sb.rel(p)}")
            if cls not in ("identical", "wrong"):
                problems.append(f"failed run left its output {self.sb.rel(out)}")
        if problems:
            self.sb.reset()
        elif out is not None and _exists(out) and out != path:
            if out.is_dir():
                _rmtree(out)
            else:
                out.unlink()
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)  # the container named itself as output: put it back
        return "; ".join(problems[:6])

    def _read(self, path: Path, _out: Path | None) -> tuple[str, str]:
        import bigsmall

        with bigsmall.open(path, threads=1) as f:
            for name in f.names():
                self.tensor_ok(name, f.read_bytes(name).data)
                f.read(name)  # the typed view (dtype, shape) too
        return "identical", ""

    def _verify(self, path: Path, mode: str) -> tuple[str, str]:
        import bigsmall

        with bigsmall.open(path, threads=2) as f:
            rep = f.verify(mode, fraction=0.5)
        if rep.problems:
            return "typed", f"verify {mode}: {rep.problems[0]}"
        return "identical", ""

    def _verify_fast(self, path: Path, out: Path | None) -> tuple[str, str]:
        return self._verify(path, "fast")

    def _verify_sample(self, path: Path, out: Path | None) -> tuple[str, str]:
        return self._verify(path, "sample")

    def _verify_full(self, path: Path, out: Path | None) -> tuple[str, str]:
        return self._verify(path, "full")

    def _decompress(self, path: Path, out: Path | None) -> tuple[str, str]:
        import bigsmall

        res = bigsmall.decompress(path, force=True, threads=2, durable=False)
        self.output_ok(Path(res.dst))
        return "identical", ""

    def _load(self, path: Path, _out: Path | None) -> tuple[str, str]:
        import bigsmall

        for name, t in bigsmall.load(path, threads=1).items():
            self.tensor_ok(name, _storage_bytes(t))
        return "identical", ""

    def _stream(self, path: Path, _out: Path | None) -> tuple[str, str]:
        import bigsmall

        with bigsmall.StreamingLoader(path, threads=1) as sl:
            for name, t in sl.load_non_layer_tensors().items():
                self.tensor_ok(name, _storage_bytes(t))
            layers = sl.iter_layers()
            try:  # closed here, not when the traceback lets go of it: its prefetch stops now
                for _i, ts in layers:
                    for name, t in ts.items():
                        self.tensor_ok(name, _storage_bytes(t))
                    del ts
            finally:
                layers.close()
        return "identical", ""

    def _selftest_crash(self, path: Path, _out: Path | None) -> tuple[str, str]:
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
        return "identical", ""

    def _selftest_hang(self, path: Path, _out: Path | None) -> tuple[str, str]:
        time.sleep(3600)
        return "identical", ""

    def _cli(self, argv: list[str]) -> tuple[int, str, str]:
        from bigsmall.cli import main

        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            try:
                rc = main(argv)
            except BaseException as exc:
                raise CliRaised(f"bigsmall {argv[0]} raised instead of exiting: {_describe(exc)}") from exc
        return rc, so.getvalue(), se.getvalue()

    def _cli_info(self, path: Path, _out: Path | None) -> tuple[str, str]:
        rc, so, se = self._cli(["info", str(path), "--json"])
        if rc != 0:
            return "typed", f"exit {rc}: {se.strip()[-300:]}"
        json.loads(so)  # --json must print one JSON object
        return "identical", ""

    def _cli_verify(self, path: Path, _out: Path | None) -> tuple[str, str]:
        rc, so, se = self._cli(["verify", str(path), "--json"])
        if rc != 0:
            return "typed", f"exit {rc}: {se.strip()[-300:]}"
        return "identical", ""

    def _cli_decompress(self, path: Path, out: Path | None) -> tuple[str, str]:
        rc, so, se = self._cli(["decompress", str(path), "-f", "--json", "--no-fsync"])
        if rc != 0:
            return "typed", f"exit {rc}: {se.strip()[-300:]}"
        self.output_ok(Path(json.loads(so)["dst"]))
        return "identical", ""

    def compress(self, path: Path, data: bytes) -> Outcome:
        """``compress`` of a malformed safetensors file: typed, or restored byte for byte."""
        import bigsmall
        from bigsmall.errors import BigsmallError

        t0 = time.perf_counter()
        dst = self.sb.box / "in.bs"
        back = self.sb.box / "back.safetensors"
        try:
            bigsmall.compress(path, dst, force=True, threads=1)
            bigsmall.decompress(dst, back, force=True, threads=1, durable=False)
            cls, msg = ("identical", "") if back.read_bytes() == data else (
                "wrong", "compress + decompress did not restore the input byte for byte")
        except BigsmallError as exc:
            cls, msg = "typed", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            cls, msg = "untyped", _describe(exc)
        problems = []
        if cls == "typed" and dst.exists():
            problems.append("failed compress left its output in.bs")
        for p in (dst, back):
            if p.exists():
                p.unlink()
        snap = self.sb.snapshot()
        base = dict(self.sb.baseline)
        base[self.sb.rel(path)] = ("file", len(data), hashlib.sha256(data).hexdigest()[:16])
        for rel in sorted(set(snap) | set(base)):
            if snap.get(rel) != base.get(rel):
                problems.append(f"{'created' if rel not in base else 'deleted' if rel not in snap else 'changed'} {rel}")
        if problems:
            self.sb.reset()
            return Outcome("compress", "escape", "; ".join(problems[:6]) + f" (entry outcome: {cls}: {msg})")
        return Outcome("compress", cls, msg[:2000], time.perf_counter() - t0)


def _storage_bytes(t: Any) -> memoryview:
    """All the bytes of a torch tensor's storage (what bigsmall decoded into), through numpy:
    ``bytes(storage)`` goes element by element (~3 us a byte)."""
    import torch

    s = t.untyped_storage()
    u = torch.empty(0, dtype=torch.uint8)
    u.set_(s, 0, (s.nbytes(),))
    return u.numpy().data


class CliRaised(Exception):
    """The CLI raised (it must return an exit code): always ``untyped``."""


def _describe(exc: BaseException) -> str:
    """Type, message and the last frames: enough to find the line at fault."""
    tb = traceback.extract_tb(exc.__traceback__)
    cause = exc.__cause__ if isinstance(exc, CliRaised) and exc.__cause__ is not None else None
    if cause is not None:
        tb = traceback.extract_tb(cause.__traceback__)
    frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(tb[-4:]))
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]} [at {frames}]"
