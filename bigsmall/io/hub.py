"""``hf://org/repo[@revision]/path.bs``: the Hugging Face Hub through ``huggingface_hub``.

Resolution, token, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the cache layout are the Hub
library's (``hf_hub_url``, ``get_hf_file_metadata``, ``try_to_load_from_cache``,
``hf_hub_download``, ``HfApi.model_info``: public calls present in 0.2x/0.3x and 1.x), so ``hf
cache`` tools see what bigsmall downloads. The environment is read at each call (the library
reads some of it once, at import), so a process may change ``HF_ENDPOINT`` or go offline.

Policy: a file already in the Hub cache is opened from there with no request (a second load is
free, and ``HF_HUB_OFFLINE=1`` works); otherwise it is read with range requests
(``remote.RemoteSource``) from the URL the Hub redirects to, pinned by its ETag, without
writing it to disk. ``download`` (``bigsmall pull``) puts files into the cache; the library
writes ``*.incomplete`` and renames, so a partial download never lands in the cache.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from ..errors import (
    InvalidOptionError,
    MissingDependencyError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteOfflineError,
)
from .remote import RemoteOptions, RemoteSource


def _hf() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError("hf:// paths need huggingface_hub: pip install 'bigsmall[hf]'") from None
    return huggingface_hub


def parse_hf(path: str) -> tuple[str, str | None, str]:
    """``hf://org/repo[@revision]/file`` -> (repo id, revision or None, file in the repo)."""
    rest = path[len("hf://"):] if path.startswith("hf://") else path
    parts = rest.split("/")
    if len(parts) < 3 or not parts[0] or not parts[1] or not all(parts[2:]):
        raise InvalidOptionError(f"{path!r}: an hf:// path is hf://org/repo[@revision]/file")
    repo, rev = parts[1].split("@", 1) if "@" in parts[1] else (parts[1], None)
    if not repo or rev == "":
        raise InvalidOptionError(f"{path!r}: an hf:// path is hf://org/repo[@revision]/file")
    return f"{parts[0]}/{repo}", rev, "/".join(parts[2:])


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def offline() -> bool:
    flag = os.environ.get("HF_HUB_OFFLINE", "")
    if flag:  # the variable as it is now; the library's constant holds it as it was at import
        return flag.upper() in ("1", "ON", "YES", "TRUE")
    _hf()
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def cache_dir() -> str | None:
    """``HF_HUB_CACHE`` (or ``HF_HOME/hub``) as set now; None: the library's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def describe(repo: str, rev: str | None, filename: str) -> str:
    return f"hf://{repo}@{rev or 'main'}/{filename} (repository {repo!r}, revision {rev or 'main'!r}, file {filename!r})"


def hub_error(exc: BaseException, what: str) -> BaseException:
    """A ``huggingface_hub`` / HTTP library error as ours (by status: the class names differ
    between library versions), naming ``what``."""
    if isinstance(exc, RemoteError):
        return exc
    resp = getattr(exc, "response", None)
    status = getattr(resp, "status_code", None)
    name = type(exc).__name__
    if status in (401, 403) or name in ("GatedRepoError",):
        return RemoteAuthError(f"{what}: HTTP {status}: not found, or a token is missing or lacks "
                               "access (HF_TOKEN / `hf auth login`)")
    if status in (404, 410) or "NotFound" in name:
        return RemoteNotFoundError(f"{what}: HTTP {status or 404}: not found")
    if "Offline" in name or isinstance(exc, FileNotFoundError) and offline():
        return RemoteOfflineError(f"{what}: offline (HF_HUB_OFFLINE) and not in the Hub cache")
    return RemoteError(f"{what}: {name}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _same_host(a: str, b: str) -> bool:
    return urlsplit(a).netloc == urlsplit(b).netloc


def open_hf(path: str, options: RemoteOptions | None = None) -> Any:
    """The byte source of an ``hf://`` file: the cached copy if there is one, else a
    ``RemoteSource`` on the URL the Hub resolves it to (module docstring)."""
    hf = _hf()
    repo, rev, filename = parse_hf(path)
    what = describe(repo, rev, filename)
    cached = hf.try_to_load_from_cache(repo, filename, cache_dir=cache_dir(), revision=rev)
    if isinstance(cached, str):  # no request: a second load, or offline
        from .source import FileSource

        return FileSource(cached)
    if offline():
        raise RemoteOfflineError(f"{what}: HF_HUB_OFFLINE is set and the file is not in the Hub cache")
    url = hf.hf_hub_url(repo, filename, revision=rev, endpoint=endpoint())
    try:
        meta = hf.get_hf_file_metadata(url, token=_token())
    except Exception as exc:  # noqa: BLE001 - mapped to a typed error
        raise hub_error(exc, what) from None
    location = str(meta.location or url)
    # the token goes to the Hub's own host only, never to the CDN a file redirects to
    headers = _auth_headers() if _same_host(location, endpoint()) else {}
    return RemoteSource(location, options=options, headers=headers,
                        display=f"hf://{repo}@{rev or 'main'}/{filename}", where=what)


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None  # None: the library's stored token, if any


def _auth_headers() -> dict[str, str]:
    _hf()
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=_token())
    return {k: v for k, v in headers.items() if k.lower() == "authorization"}


def list_files(repo: str, rev: str | None) -> tuple[str, list[str]]:
    """(commit, files) of a repository at ``rev``: ``model_info`` online, the cached snapshot
    offline."""
    hf = _hf()
    what = f"repository {repo!r} revision {rev or 'main'!r}"
    if offline():
        try:
            snap = hf.snapshot_download(repo, revision=rev, cache_dir=cache_dir(), local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise RemoteOfflineError(f"{what}: offline (HF_HUB_OFFLINE) and not in the Hub cache "
                                     f"({type(exc).__name__})") from None
        files = sorted(os.path.relpath(os.path.join(d, f), snap)
                       for d, _, fs in os.walk(snap) for f in fs)
        return os.path.basename(snap), files
    try:
        info = hf.HfApi(endpoint=endpoint()).model_info(repo, revision=rev, token=_token())
    except Exception as exc:  # noqa: BLE001
        raise hub_error(exc, what) from None
    return str(info.sha), sorted(s.rfilename for s in (info.siblings or []))


def download(repo: str, rev: str | None, filename: str) -> str:
    """One file into the Hub cache (``hf_hub_download``); its cached path."""
    hf = _hf()
    try:
        return str(hf.hf_hub_download(repo, filename, revision=rev, cache_dir=cache_dir(),
                                      endpoint=endpoint(), token=_token(), local_files_only=offline()))
    except Exception as exc:  # noqa: BLE001
        raise hub_error(exc, describe(repo, rev, filename)) from None
