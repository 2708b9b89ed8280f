"""``bigsmall pull org/repo``: a compressed repository from the Hub (or ``HF_ENDPOINT``).

Without ``-o``: every file goes into the Hub cache (``hf_hub_download``), so later
``hf://org/repo/...`` loads make no request and work offline. With ``-o DIR``: the files also
land in ``DIR``, built in a temporary folder and renamed into place only when all are there
(never a partial folder). ``--restore``: each ``.bs`` is streamed with range requests and
restored (``decompress``: the sha256 of every restored file checked) into ``DIR``; the ``.bs``
itself is never written to disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from . import options


def _place(cached: str, dst: Path) -> None:
    """``dst`` gets a copy of the cached file (not a hard link: editing the copy in place
    would change the cache's blob, which every later load trusts)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.path.realpath(cached), dst)


def pull(repo: str, output: str | None = None, *, revision: str | None = None,
         restore: bool = False, force: bool = False, threads: int | None = None,
         durable: bool = True, progress: bool | None = False) -> dict[str, Any]:
    """Download (or with ``restore``, restore) the files of ``repo`` (module docstring).
    ``progress``: a restore's bar (bytes decoded, and fetched); None: only on a TTY."""
    from ..errors import InvalidOptionError
    from ..io import hub
    from ..io.atomic import atomic_dir, check_target

    if restore and output is None:
        raise InvalidOptionError("--restore needs -o DIR (restored files never go into the Hub cache)")
    t0 = time.perf_counter()
    commit, files = hub.list_files(repo, revision)
    from ..container.schema import member_parts

    member_parts(files, "repository files")  # a listing from a server: no ../, no absolute path
    # files are asked for by the revision given (default main), so that the cache records the
    # ref -> commit link that lets a later ``hf://org/repo/file`` open them with no request
    rev = revision or "main"
    done: list[dict[str, Any]] = []
    if output is None:
        for f in files:
            path = hub.download(repo, rev, f)
            done.append({"file": f, "path": path, "bytes": os.path.getsize(path)})
        where = str(Path(done[0]["path"]).parents[len(Path(files[0]).parts) - 1]) if done else ""
        return {"repo": repo, "revision": rev, "commit": commit, "dst": where, "files": done,
                "restored": 0, "seconds": time.perf_counter() - t0}
    out = Path(output)
    check_target(out, force, folder=True)
    restored = 0
    with atomic_dir(out, force, durable) as tmp:
        for f in files:
            if restore and f.endswith(".bs"):
                from ..io.decompress import decompress, default_output
                from ..io.reader import BsFile

                src = f"hf://{repo}@{rev}/{f}"
                with BsFile(src) as bs:
                    name = default_output(Path(f), bs)  # model.bs -> model.safetensors
                dst = tmp / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                r = decompress(src, dst, threads=threads, durable=durable, progress=progress)
                done.append({"file": f, "path": str(out / name), "bytes": r.bytes_written,
                             "restored": True, "remote": r.remote})
                restored += 1
            else:
                cached = hub.download(repo, rev, f)
                _place(cached, tmp / f)
                done.append({"file": f, "path": str(out / f), "bytes": os.path.getsize(cached)})
    return {"repo": repo, "revision": rev, "commit": commit, "dst": str(out), "files": done,
            "restored": restored, "seconds": time.perf_counter() - t0}


def cmd_pull(args: argparse.Namespace, emit: Any) -> int:
    r = pull(args.repo, args.output, revision=args.revision, restore=args.restore,
             force=args.force, threads=args.threads, durable=not args.no_fsync,
             progress=False if (args.no_progress or args.json) else None)
    total = sum(f["bytes"] for f in r["files"])
    restored = f", {r['restored']} restored" if r["restored"] else ""
    text = (f"{r['repo']}@{r['revision']} -> {r['dst']}: {len(r['files'])} files, "
            f"{total / 1e6:.1f} MB{restored}, {r['seconds']:.2f} s")
    emit(args, r, text)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pull", parents=[common], help="download a compressed repository from the Hub",
                       description="Download the files of a Hub repository (HF_ENDPOINT, HF_TOKEN and "
                       "HF_HUB_OFFLINE apply) into the Hub cache, and with -o into a folder, "
                       "atomically. --restore writes each .bs's restored safetensors instead of "
                       "the .bs (streamed, never stored).")
    p.add_argument("repo", help="org/repo")
    p.add_argument("-o", "--output", help="folder to create (default: only the Hub cache)")
    p.add_argument("-r", "--revision", default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--restore", action="store_true",
                   help="restore each .bs into the original files (needs -o)")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing output folder")
    p.add_argument("-T", "--threads", type=options.workers, default=None, help="worker threads (default: all cores)")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync the outputs (see decompress --help)")
    p.set_defaults(handler=cmd_pull)
