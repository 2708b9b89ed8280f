"""The documentation a newcomer reads stays true: docs/cli.md is what ``bigsmall --help``
prints, ``dir(bigsmall)`` shows the public API, and the chart code works where matplotlib is
installed (the ``test`` extra has it) and says what to install where it is not."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import bigsmall
from bigsmall.errors import MissingDependencyError

ROOT = Path(__file__).resolve().parent.parent


def _gen_cli_docs():  # scripts/ is not a package: load the generator by path
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_current() -> None:
    gen = _gen_cli_docs()
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == gen.render(), (
        "docs/cli.md differs from the argparse definitions in bigsmall/cli: "
        "run `.venv/bin/python scripts/gen_cli_docs.py` and commit docs/cli.md")


def test_cli_reference_lists_every_command() -> None:
    gen = _gen_cli_docs()
    from bigsmall.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    for name in gen._subcommands(build_parser()):
        assert f"## `bigsmall {name}`" in text


def test_dir_shows_the_lazy_api() -> None:
    names = dir(bigsmall)
    for name in bigsmall.__all__:
        assert name in names, name
    assert "errors" in names and "open" in names
    assert names == sorted(names)


def test_tensor_class() -> None:
    from bigsmall.io.plot import tensor_class

    assert tensor_class("embeddings.word_embeddings.weight", 2) == "embedding"
    assert tensor_class("encoder.layer.0.attention.self.query.weight", 2) == "attention"
    assert tensor_class("encoder.layer.0.attention.output.dense.weight", 2) == "attention"
    assert tensor_class("encoder.layer.0.intermediate.dense.weight", 2) == "mlp"
    assert tensor_class("encoder.layer.0.output.LayerNorm.weight", 1) == "norm"
    assert tensor_class("encoder.layer.0.attention.self.query.bias", 1) == "bias"
    assert tensor_class("pooler.dense.weight", 2) == "other"


def _benchmark_result() -> dict[str, object]:
    """The shape of ``run_benchmark``'s result (figures made up: only the drawing is tested)."""
    return {"src": "model.safetensors", "original_bytes": 1000, "compressed_bytes": 700,
            "ratio": 0.7, "order0_floor_ratio": 0.69, "compress_MBps": 40.0,
            "decompress_MBps": 200.0, "decode_memory_MBps_1_thread": 150.0,
            "decode_memory_MBps_2_threads": 280.0, "thread_speedup": 1.87, "threads": 2,
            "verify_ok": True, "verify_MBps": 250.0, "peak_rss_MB": 100.0, "repeat": 3,
            "level": "default", "coder": "auto",
            "bytes_by_class": {"attention": {"original": 600, "stored": 400},
                               "norm": {"original": 400, "stored": 300}}}


def test_benchmark_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from bigsmall.io.plot import plot_benchmark

    out = plot_benchmark(_benchmark_result(), tmp_path / "sub" / "b.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_peers_chart_from_the_committed_data(tmp_path: Path) -> None:
    """The README's chart redraws from the data committed beside it."""
    pytest.importorskip("matplotlib")
    from bigsmall.io.plot import plot_peers

    data = json.loads((ROOT / "docs" / "img" / "peers-2026-11-30.json").read_text())
    assert "benchmarks/peers.py" in data["source"]
    out = plot_peers(data["rows"], tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from bigsmall.io import plot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError, match=r"bigsmall\[plot\]"):
        plot.require_matplotlib()


def test_cli_benchmark_plot_fails_fast_without_matplotlib(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--plot without matplotlib is refused before any measuring (the source does not even
    need to exist), with a one-line error naming the extra."""
    from bigsmall.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = main(["benchmark", str(tmp_path / "absent.safetensors"), "--plot", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 1 and "bigsmall[plot]" in err and len(err.strip().splitlines()) == 1
