"""hf:// paths and ``bigsmall pull`` through huggingface_hub, against a Hub-shaped server on
127.0.0.1 (``HF_ENDPOINT``): resolution, redirects, tokens, cache, offline, typed errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.errors import (
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteOfflineError,
)
from bigsmall.io.hub import parse_hf
from bigsmall.io.reader import BsFile
from bigsmall.io.remote import RemoteSource
from bigsmall.testing.http_server import TestServer
from bigsmall.testing.synthetic import write_safetensors

pytest.importorskip("huggingface_hub")


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hub/org/model`` (a .bs, a config) and ``hub/org/private`` (the same, token-only)."""
    root = tmp_path_factory.mktemp("hubroot")
    work = tmp_path_factory.mktemp("hubsrc")
    rng = np.random.default_rng(3)
    t = {f"model.layers.{i}.w": ("F16", (128, 200), rng.normal(0, 0.05, (128, 200)).astype(np.float16).tobytes())
         for i in range(3)}
    t["embed"] = ("F32", (50, 40), rng.normal(0, 1, (50, 40)).astype(np.float32).tobytes())
    write_safetensors(work / "model.safetensors", t, {"format": "pt"})
    bigsmall.compress(work / "model.safetensors", work / "model.bs")
    for repo in ("model", "private"):
        d = root / "hub" / "org" / repo
        d.mkdir(parents=True)
        shutil.copy(work / "model.bs", d / "model.bs")
        (d / "config.json").write_text('{"model_type": "test"}')
    shutil.copy(work / "model.safetensors", root / "original.safetensors")
    return root


@pytest.fixture
def hub(hub_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestServer]:
    with TestServer(hub_root, private={"org/private": "secret-token"}) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        yield srv


def _local(root: Path) -> dict[str, bytes]:
    with BsFile(root / "hub/org/model/model.bs") as bs:
        return {n: bs.read_bytes(n).tobytes() for n in bs.names()}


def _read_all(path: str) -> dict[str, bytes]:
    with BsFile(path) as bs:
        return {e.name: o.tobytes() for e, o in bs.iter_decoded(list(bs.container.tensors))}


def test_parse_hf() -> None:
    assert parse_hf("hf://org/repo/model.bs") == ("org/repo", None, "model.bs")
    assert parse_hf("hf://org/repo@v1.0/sub/model.bs") == ("org/repo", "v1.0", "sub/model.bs")
    with pytest.raises(ValueError):
        parse_hf("hf://repo-without-org.bs")


def test_hf_path_streams_with_range_requests(hub: TestServer, hub_root: Path) -> None:
    with BsFile("hf://org/model/model.bs") as bs:
        assert isinstance(bs.source, RemoteSource)  # not cached: read remotely, not downloaded
        assert bs.path == "hf://org/model@main/model.bs"
        got = {e.name: o.tobytes() for e, o in bs.iter_decoded(list(bs.container.tensors))}
    assert got == _local(hub_root)
    heads = hub.requests("/resolve/", "HEAD")
    gets = hub.requests("/lfs/org/model/model.bs")
    assert len(heads) == 1 and heads[0].status == 302  # the Hub's redirect, followed once
    assert gets and all(e.range for e in gets)  # only range requests on the CDN location
    assert not list((Path(hub.root).parent).glob("hf-cache/**/model.bs"))


def test_hf_commit_revision_and_errors_name_repo_revision_file(hub: TestServer) -> None:
    assert _read_all(f"hf://org/model@{hub.commit}/model.bs")
    with pytest.raises(RemoteNotFoundError, match=r"org/model.*'v9'.*'model\.bs'"):
        bigsmall.open("hf://org/model@v9/model.bs")
    with pytest.raises(RemoteNotFoundError, match=r"'org/model'.*'main'.*'missing\.bs'"):
        bigsmall.open("hf://org/model/missing.bs")


def test_private_repo_needs_the_token(hub: TestServer, hub_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RemoteAuthError, match="org/private"):
        bigsmall.open("hf://org/private/model.bs")
    monkeypatch.setenv("HF_TOKEN", "secret-token")
    assert _read_all("hf://org/private/model.bs") == _local(hub_root)


def test_pull_to_cache_then_loads_make_no_request_and_work_offline(
        hub: TestServer, hub_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bigsmall.cli.remote_commands import pull

    r = pull("org/model")
    assert sorted(f["file"] for f in r["files"]) == ["config.json", "model.bs"]
    hub.reset_log()
    assert _read_all("hf://org/model/model.bs") == _local(hub_root)
    assert hub.log == []  # the second load: from the cache, no request at all
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _read_all("hf://org/model/model.bs") == _local(hub_root)
    with pytest.raises(RemoteOfflineError, match="HF_HUB_OFFLINE"):
        bigsmall.open("hf://org/private/model.bs")
    out = Path(r["dst"]).parents[2] / "offline-copy"  # inside the test's cache folder
    pull("org/model", str(out))  # offline: listed and copied from the cached snapshot
    assert (out / "model.bs").read_bytes() == (hub_root / "hub/org/model/model.bs").read_bytes()
    assert hub.log == []


def test_pull_restore_writes_safetensors_never_the_bs(
        hub: TestServer, hub_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bigsmall.cli import main

    out = tmp_path / "restored"
    assert main(["pull", "org/model", "-o", str(out), "--restore", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["restored"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    sha = hashlib.sha256((hub_root / "original.safetensors").read_bytes()).hexdigest()
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == sha
    assert not list((tmp_path / "hf-cache").rglob("*.bs"))  # streamed, never stored
    assert main(["pull", "org/model", "-o", str(out)]) == 1  # exists: refused without --force
    assert "exists" in capsys.readouterr().err
    assert main(["pull", "org/model", "-o", str(out), "--force"]) == 0
    assert (out / "model.bs").read_bytes() == (hub_root / "hub/org/model/model.bs").read_bytes()


def test_failed_pull_leaves_no_partial_file(hub: TestServer, tmp_path: Path) -> None:
    from bigsmall.cli.remote_commands import pull

    hub.faults.cut_fraction = 1.0  # every body cut in half: the download cannot finish
    out = tmp_path / "out"
    with pytest.raises(RemoteError) as info:
        pull("org/model", str(out))
    assert "org/model" in str(info.value)
    assert not out.exists()
    cache = tmp_path / "hf-cache"
    complete = [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith((".incomplete", ".lock"))
                and p.stat().st_size > 100]
    assert complete == [] or all(p.read_bytes() == (hub.root / "hub/org/model" / p.name).read_bytes()
                                 for p in complete if p.name in ("model.bs", "config.json"))
    assert not list(cache.rglob("snapshots/*/model.bs"))


def test_cli_info_and_verify_on_hf_path(hub: TestServer, capsys: pytest.CaptureFixture[str]) -> None:
    from bigsmall.cli import main

    assert main(["info", "hf://org/model/model.bs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensors"] == 4
    assert main(["verify", "hf://org/model/model.bs"]) == 0
    assert main(["info", "hf://org/model/nope.bs"]) == 1
    err = capsys.readouterr().err
    assert "'org/model'" in err and "'nope.bs'" in err and "404" in err


def test_errors_are_typed() -> None:
    assert issubclass(RemoteNotFoundError, FileNotFoundError)
    assert issubclass(RemoteAuthError, PermissionError)
    assert issubclass(RemoteOfflineError, RemoteError)


def test_plain_url_401_names_the_url(hub: TestServer) -> None:
    url = f"{hub.url}/lfs/org/private/model.bs"  # the CDN path of a private repo, no token
    with pytest.raises(RemoteAuthError, match=url):
        RemoteSource(url)
    assert hub.requests("/lfs/org/private/")[0].status == 401


def test_pull_refuses_a_listing_that_leaves_the_folder(hub: TestServer, tmp_path: Path) -> None:
    from bigsmall.cli.remote_commands import pull
    from bigsmall.errors import FormatError

    hub.extra_siblings = ["../escape.txt"]
    with pytest.raises(FormatError, match=r"\.\."):
        pull("org/model", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()
