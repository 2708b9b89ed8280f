"""Streaming a model from a URL or hf:// path: ``StreamingModel``, ``bigsmall run --stream``,
``bigsmall.aload`` and ``StreamingLoader.aiter_layers`` against a server on 127.0.0.1 (never the
internet) with a bandwidth cap, so the file takes a while to arrive.

The proof that the first layer computes before the file has arrived is a byte count: the body
bytes the client had received when block 0's forward hook ran, below the file's size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bigsmall
from bigsmall.testing.http_server import TestServer

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
anyio = pytest.importorskip("anyio")

BANDWIDTH = 40e6  # bytes/s: MiniLM bf16 (~30 MB compressed) takes ~0.7 s to arrive


@pytest.fixture(scope="module")
def served(minilm_bf16_folder_bs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """The container as a plain file (``/files/minilm.bs``) and in a Hub repository
    (``hf://org/minilm/model.bs`` through ``HF_ENDPOINT``), capped at ``BANDWIDTH``."""
    root = tmp_path_factory.mktemp("www-stream")
    (root / "minilm.bs").symlink_to(minilm_bf16_folder_bs)
    repo = root / "hub" / "org" / "minilm"
    repo.mkdir(parents=True)
    (repo / "model.bs").symlink_to(minilm_bf16_folder_bs)
    with TestServer(root) as srv:
        yield srv


@pytest.fixture
def server(served: TestServer) -> Iterator[TestServer]:
    served.reset_log()
    served.faults.__init__()  # type: ignore[misc]
    served.faults.bandwidth = BANDWIDTH
    yield served
    served.faults.__init__()  # type: ignore[misc]


def _ids() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (2, 32), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_streaming_model_from_url_computes_before_the_file_arrived(
        server: TestServer, minilm_bf16_folder_bs: Path) -> None:
    from bigsmall.torch.runner import digest

    size = minilm_bf16_folder_bs.stat().st_size
    inputs = _ids()
    with torch.no_grad():
        want = bigsmall.from_pretrained(minilm_bf16_folder_bs)(**inputs).last_hidden_state
    seen: dict[int, int] = {}
    holder: list[bigsmall.StreamingModel] = []

    def on_layer(i: int) -> None:  # after block i's forward: what had arrived by then
        seen.setdefault(i, holder[0].loader._bs.source.stats.bytes)

    with bigsmall.StreamingModel(server.file_url("minilm.bs"), on_layer=on_layer) as sm:
        holder.append(sm)
        got = sm(**inputs).last_hidden_state
        total = sm.loader._bs.source.stats.bytes
        rep = sm.report()
    assert digest(got) == digest(want)  # the same bits as a local full load
    assert sorted(seen) == list(range(6))
    # block 0 ran with the non-layer tensors and at most two layers fetched: well short of the
    # file (the embedding is ~2/3 of MiniLM's bytes, each of the 6 layers ~1/18)
    assert seen[0] < size - 3 * rep.largest_layer_bytes // 2, (seen, size)
    # the whole file came in the end, no byte twice (a blob's part that came with the first
    # round trip, the prefix or the tail, is not fetched again)
    assert seen[0] < seen[5] <= total <= size
    print(f"first layer computed with {seen[0]} of {size} bytes fetched; {total} in all")
    assert rep.peak_weight_bytes <= rep.promise_weight_bytes


def _cli(*args: str, env: dict[str, str] | None = None) -> dict:
    r = subprocess.run([sys.executable, "-m", "bigsmall", *args, "--json", "--no-progress"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_cli_run_stream_from_hf_keeps_promise_and_matches_local(
        server: TestServer, minilm_bf16_folder_bs: Path, tmp_path: Path) -> None:
    from bigsmall.torch.runner import run

    local = run(minilm_bf16_folder_bs, prompt="a sentence to embed")  # full local load
    env = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
           "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_HUB_OFFLINE": "0"}
    env.pop("HF_TOKEN", None)
    b = _cli("run", "hf://org/minilm/model.bs", "--prompt", "a sentence to embed", "--stream", env=env)
    assert b["mode"] == "stream"
    assert b["output"]["sha256"] == local.output["sha256"]
    assert b["stream"]["peak_weight_bytes"] <= b["promise"]["weight_bytes"]
    assert b["peak_rss"] <= b["promise"]["process_bytes"], (b["peak_rss"], b["promise"])
    # read by range requests, never downloaded into the cache
    assert server.requests("/lfs/org/minilm/model.bs")
    assert not list((tmp_path / "hf-cache").rglob("*.bs"))


def test_cli_run_full_load_from_url(server: TestServer, minilm_bf16_folder_bs: Path) -> None:
    from bigsmall.torch.runner import run

    local = run(minilm_bf16_folder_bs, prompt="one more")
    a = _cli("run", server.file_url("minilm.bs"), "--prompt", "one more", "--mode", "perfect")
    assert a["mode"] == "load" and a["output"]["sha256"] == local.output["sha256"]


def test_cli_run_fast_from_url_matches_local_fast(server: TestServer, minilm_bf16_folder_bs: Path,
                                                  tmp_path: Path) -> None:
    # the lossy INT4 mode reads the container by range requests too: the same INT4 model (the
    # same output bits) as from the local file
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    server.faults.bandwidth = 0.0
    local = _cli("run", str(minilm_bf16_folder_bs), "--prompt", "one more", "--mode", "fast", env=env)
    remote = _cli("run", server.file_url("minilm.bs"), "--prompt", "one more", "--mode", "fast", env=env)
    assert remote["mode"] == "fast" and remote["plan"]["lossy"]
    assert remote["output"]["sha256"] == local["output"]["sha256"]
    assert remote["fast"] == local["fast"]
    assert server.requests("/files/minilm.bs")


def test_run_stream_bar_shows_bytes_fetched(server: TestServer, capsys: pytest.CaptureFixture[str]) -> None:
    from bigsmall.io import progress as prog
    from bigsmall.torch.runner import run

    r = run(server.file_url("minilm.bs"), stream=True, prompt="one more",
            progress=lambda total, unit: prog.bar(total, "stream", True, unit=unit))
    assert r.mode == "stream"
    err = capsys.readouterr().err
    assert "layer" in err and "fetched" in err and "MB" in err  # layers computed, bytes fetched


def test_aload_matches_load(server: TestServer, minilm_bf16_folder_bs: Path) -> None:
    want = bigsmall.load(minilm_bf16_folder_bs)
    got = anyio.run(bigsmall.aload, server.file_url("minilm.bs"))
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k].view(torch.uint8), want[k].view(torch.uint8)) for k in want)


def test_aiter_layers_from_url_matches_local_and_keeps_the_loop_free(
        server: TestServer, minilm_bf16_folder_bs: Path) -> None:
    with bigsmall.StreamingLoader(minilm_bf16_folder_bs) as sl:
        want = {i: {k: v.clone() for k, v in t.items()} for i, t in sl.iter_layers()}

    async def main() -> tuple[dict[int, dict[str, torch.Tensor]], int]:
        ticks = 0
        got: dict[int, dict[str, torch.Tensor]] = {}

        async def ticker() -> None:  # runs while the layers decode: the loop never blocks
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            with bigsmall.StreamingLoader(server.file_url("minilm.bs")) as sl:
                async for i, tensors in sl.aiter_layers():
                    got[i] = {k: v.clone() for k, v in tensors.items()}
                    del tensors
            tg.cancel_scope.cancel()
        return got, ticks

    got, ticks = anyio.run(main)
    assert got.keys() == want.keys() and len(got) == 6
    for i in want:
        assert got[i].keys() == want[i].keys()
        assert all(torch.equal(got[i][k].view(torch.uint8), want[i][k].view(torch.uint8)) for k in want[i])
    assert ticks >= 10  # ~0.2 s of layers at the bandwidth cap: the ticker kept running


def test_remote_decompress_bar_shows_bytes_fetched(server: TestServer, minilm_bf16_folder_bs: Path,
                                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server.faults.bandwidth = 0.0
    r = bigsmall.decompress(server.file_url("minilm.bs"), tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert r.remote is not None and r.remote["bytes"] > 0
    assert "fetched" in err and "MB" in err  # the bar's postfix: bytes fetched beside decoded
    bigsmall.decompress(minilm_bf16_folder_bs, tmp_path / "local", progress=True)
    assert "fetched" not in capsys.readouterr().err  # a local file: the plain bar
