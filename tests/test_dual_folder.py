"""``bigsmall dual FOLDER``: a model folder as a ``.bsd`` folder, and everything that reads one.

Round trips byte for byte (all-MiniLM-L6-v2's sentence-transformers folder; a generated BERT
folder in two shards with its index, a layer split across them), ``load`` exact and fast,
``info``/``plan``/``verify``, and ``run``: ``--mode perfect`` gives the ``.bs``'s bits, ``--mode
fast`` is announced before a weight chunk is read and stays close to the exact run (cosine of
the outputs), ``auto`` goes fast (announced) only where the full load does not fit; refusals.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.container import dual_manifest as mf
from bigsmall.errors import FormatError, UnannouncedDowngradeError
from bigsmall.io import dual_folder, profile
from bigsmall.plan import autopilot as ap
from bigsmall.testing import corpus

MB = 1_000_000
TOKENIZER = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def minilm_bsd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bsd") / "minilm.bsd"
    dual_folder.create_folder(corpus.minilm_dir(), out)
    return out


@pytest.fixture(scope="session")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT model (random init, seeded) whose 12 layers dominate its bytes (hidden 128,
    intermediate 8192: 120 MB fp32), in two shards with a ``model.safetensors.index.json``
    (layer 6 split across them), its config and MiniLM's tokenizer: the fast mode needs less
    memory than a full load here, which the corpus models are too small to show."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("sharded") / "bert"
    folder.mkdir()
    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=128, num_hidden_layers=12, num_attention_heads=2,
                                  intermediate_size=8192)
    sd = {k: v.contiguous() for k, v in transformers.BertModel(cfg).state_dict().items()}
    names = sorted(sd)
    first = [n for n in names if not n.startswith("encoder.layer.")
             or int(n.split(".")[2]) < 6 or (n.startswith("encoder.layer.6.") and ".attention." in n)]
    shards = {"model-00001-of-00002.safetensors": first,
              "model-00002-of-00002.safetensors": [n for n in names if n not in first]}
    for fname, keys in shards.items():
        save_file({k: sd[k] for k in keys}, str(folder / fname), {"format": "pt"})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
             "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    cfg.to_json_file(str(folder / "config.json"))
    for name in TOKENIZER:
        shutil.copy(corpus.minilm_dir() / name, folder / name)
    return folder


def test_minilm_folder_round_trip(minilm_bsd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    src = corpus.minilm_dir()
    # the layout: the .bsd beside copies of every other file, and the manifest
    stored = _tree(minilm_bsd)
    assert "model.bsd" in stored and "model.safetensors" not in stored and mf.NAME in stored
    assert {k: v for k, v in stored.items() if k not in ("model.bsd", mf.NAME)} == \
        {k: v for k, v in _tree(src).items() if k != "model.safetensors"}
    # decompress: the original folder, byte for byte (files and names)
    assert main(["decompress", str(minilm_bsd), "-o", str(tmp_path / "back"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["files"] == len(_tree(src)) and r["bytes_written"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert _tree(tmp_path / "back") == _tree(src)
    # info: the members' bytes, summed over the folder's .bsd files
    assert main(["info", str(minilm_bsd), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    from bigsmall.io.dual import DualFile

    with DualFile(minilm_bsd / "model.bsd") as d:
        assert info["fast_member_bytes"] == d.fast_member_bytes and info["exact_member_bytes"] == d.exact_member_bytes
    assert info["format"] == "bsd-folder" and info["bsd_files"] == 1 and info["quantized"] == 38
    assert info["file_bytes"] == sum((minilm_bsd / k).stat().st_size for k in stored)
    # load: exact tensors; fast reads the fast member alone
    ref = load_file(str(src / "model.safetensors"))
    rep: dict[str, Any] = {}
    exact = bigsmall.load(minilm_bsd, report=rep)
    assert set(exact) == set(ref) and rep["bytes_read"] == info["fast_member_bytes"] + info["exact_member_bytes"]
    for k, t in ref.items():
        assert t.dtype == exact[k].dtype and torch.equal(t.view(-1).view(torch.uint8), exact[k].view(-1).view(torch.uint8)), k
    rep = {}
    fast = bigsmall.load(minilm_bsd, mode="fast", report=rep)
    assert rep["bytes_read"] == info["fast_member_bytes"]
    lossy = [k for k in ref if not torch.equal(fast[k], ref[k])]
    assert len(lossy) == info["quantized"] and all(fast[k].dtype == ref[k].dtype for k in ref)
    # plan: the fast mode costs the stored member; verify decodes both members
    assert main(["plan", str(minilm_bsd), "--mode", "fast", "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["lossy"] and "stored fast member" in p["announcement"]
    assert (p["fast_member_bytes"], p["exact_member_bytes"]) == (info["fast_member_bytes"], info["exact_member_bytes"])
    assert main(["verify", str(minilm_bsd)]) == 0
    capsys.readouterr()


def test_sharded_folder_round_trip(sharded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    out = tmp_path / "bert.bsd"
    assert main(["dual", str(sharded), "-o", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["folder"] and r["bsd_files"] == 2 and r["copied_files"] == 2 + len(TOKENIZER)
    assert (out / "model-00001-of-00002.bsd").is_file() and (out / "model-00002-of-00002.bsd").is_file()
    assert (out / "model.safetensors.index.json").read_bytes() == (sharded / "model.safetensors.index.json").read_bytes()
    assert bigsmall.decompress(out, tmp_path / "back").files == len(_tree(sharded))
    assert _tree(tmp_path / "back") == _tree(sharded)
    r2 = bigsmall.decompress(out, tmp_path / "back2", check="receipts")  # the shards by receipts
    assert r2.check == "receipts" and _tree(tmp_path / "back2") == _tree(sharded)
    # tensors of both shards; the planner sees layer 6 whole although it spans the shards
    ref = {**load_file(str(sharded / "model-00001-of-00002.safetensors")),
           **load_file(str(sharded / "model-00002-of-00002.safetensors"))}
    got = bigsmall.load(out)
    assert set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    s = dual_folder.DualFolder(out).summary()
    assert s.kind == "bsd" and s.tensors == len(ref) and s.layers == 12
    layer6 = sum(v.numel() * v.element_size() for k, v in ref.items() if k.startswith("encoder.layer.6."))
    assert s.largest_layer_bytes == layer6
    # a damaged copy, a manifest that lies: refused with a typed error, nothing written
    victim = out / "config.json"
    victim.write_text(victim.read_text().replace("128", "129", 1))
    assert main(["decompress", str(out), "-o", str(tmp_path / "bad")]) == 1
    assert "does not match its sha256" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["verify", str(out)]) != 0
    capsys.readouterr()
    (out / mf.NAME).write_text((out / mf.NAME).read_text().replace('"config.json"', '"../config.json"'))
    with pytest.raises(FormatError):
        dual_folder.DualFolder(out)


def test_refusals(minilm_bsd: Path, small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    folder = work / "m"
    folder.mkdir(parents=True)
    shutil.copy(small_model, folder / "model.safetensors")
    (folder / "config.json").write_text("{}")
    out = work / "m.bsd"
    assert main(["dual", str(folder)]) == 0 and out.is_dir()  # default output: FOLDER.bsd/
    capsys.readouterr()
    before = _tree(out)
    assert main(["dual", str(folder), "-o", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err and _tree(out) == before
    assert main(["dual", str(folder), "-o", str(out), "--force"]) == 0
    # a failing source leaves neither the output nor a temporary behind
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    assert main(["dual", str(folder), "-o", str(work / "n.bsd")]) == 1
    assert "broken.safetensors" in capsys.readouterr().err
    assert sorted(p.name for p in work.iterdir()) == ["m", "m.bsd"]
    (folder / "broken.safetensors").unlink()
    (folder / mf.NAME).write_text("{}")  # the manifest's name is taken
    assert main(["dual", str(folder), "-o", str(work / "n.bsd")]) == 1
    assert mf.NAME in capsys.readouterr().err
    # run: a lone .bsd file has no config (one line); a .bsd is never streamed
    assert main(["run", str(minilm_bsd / "model.bsd")]) == 1
    err = capsys.readouterr().err
    assert "is a .bsd file" in err and err.count("\n") == 1
    for extra in (["--stream"], ["--mode", "stream"]):
        assert main(["run", str(minilm_bsd), *extra]) == 1
        assert "a .bsd is not streamed" in capsys.readouterr().err


def _runs(capsys: pytest.CaptureFixture[str], src: Path, mode: str, prompt: str,
          events: list[tuple[str, str]] | None = None) -> tuple[dict[str, Any], Any]:
    """``bigsmall run SRC --mode MODE --json`` in this process: its JSON and the output tensor
    whose sha256 it reports (captured at ``runner.digest``), optionally recording the order of
    the lines said and the weight chunks read. Patched by hand and restored, so that the
    caller's own monkeypatches (pretended free memory) stay."""
    from bigsmall.cli import run_command
    from bigsmall.io.dual import DualFile
    from bigsmall.torch import runner

    seen: list[Any] = []
    real_digest, real_say, real_chunk = runner.digest, run_command._say, DualFile._chunk
    runner.digest = lambda t: (seen.append(t.detach().clone()), real_digest(t))[1]
    if events is not None:
        def say(args: Any) -> Any:
            inner = real_say(args)
            return lambda line: (events.append(("say", line)), inner(line))[1]

        run_command._say = say
        DualFile._chunk = lambda self, c, what: (events.append(("weight", what)), real_chunk(self, c, what))[1]
    try:
        code = main(["run", str(src), "--mode", mode, "--json", "--prompt", prompt])
    finally:
        runner.digest, run_command._say, DualFile._chunk = real_digest, real_say, real_chunk
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return json.loads(cap.out), seen[-1]


def _cos(a: Any, b: Any) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


PROMPTS = ("bigsmall runs this model one layer at a time.", "A cat sat on the warm windowsill.",
           "Quarterly revenue grew by eight percent.")


def test_run_minilm_bsd_folder(minilm_bsd: Path, minilm_folder_bs: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    cos = []
    for i, prompt in enumerate(PROMPTS):
        events: list[tuple[str, str]] = []
        jf, fast = _runs(capsys, minilm_bsd, "fast", prompt, events if i == 0 else None)
        jp, exact = _runs(capsys, minilm_bsd, "perfect", prompt)
        assert jf["mode"] == "fast" and jf["plan"]["lossy"] and jp["mode"] == "load" and not jp["plan"]["lossy"]
        assert jf["output"]["output"] == "sentence_embedding"  # the modules.json pipeline ran
        cos.append(_cos(fast, exact))
        if i == 0:
            # the announcement was said before a single weight chunk was read
            kinds = [k for k, _ in events]
            assert events[0] == ("say", jf["plan"]["announcement"]) and "weight" in kinds
            assert kinds.index("weight") > kinds.index("say")
            # fast read the fast member alone; perfect is the .bs's model to the bit, and
            # fast is the .bs's fast mode to the bit (the stored code is the computed one)
            assert jf["fast"]["bytes_read"] == jf["fast"]["fast_member_bytes"] < jf["fast"]["exact_member_bytes"]
            assert jf["fast"]["weight_error"] is None and jf["fast"]["quantized"] == 38
            jbp, _ = _runs(capsys, minilm_folder_bs, "perfect", prompt)
            jbf, _ = _runs(capsys, minilm_folder_bs, "fast", prompt)
            assert jp["output"]["sha256"] == jbp["output"]["sha256"] != jf["output"]["sha256"]
            assert jf["output"]["sha256"] == jbf["output"]["sha256"]
    assert all(0.85 < c < 1 - 1e-6 for c in cos), cos  # close, and not the exact model's bits


def test_auto_goes_fast_only_where_the_full_load_does_not_fit(
        sharded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    out = tmp_path / "bert.bsd"
    dual_folder.create_folder(sharded, out)
    s = dual_folder.DualFolder(out).summary()
    roomy = ap.costs(s, ap.Profile(2, 1 << 40, 1 << 40))
    by = {c.mode: c.host_bytes for c in roomy}
    assert by["fast"] < by["perfect"], by  # the generated model's point
    free = {"ram": (by["fast"] + by["perfect"]) // 2}
    monkeypatch.setattr(profile, "refresh_free",
                        lambda p, device="cpu": attrs.evolve(p, ram_available_bytes=free["ram"]))
    j, fast = _runs(capsys, out, "auto", PROMPTS[1])
    assert j["mode"] == "fast" and j["plan"]["requested"] == "auto" and j["plan"]["lossy"]
    assert "a .bsd is not streamed" in j["plan"]["sentence"]
    assert main(["run", str(out), "--mode", "perfect"]) == 1  # never lossy: a clear error instead
    assert "never chosen for you" in capsys.readouterr().err
    free["ram"] = by["perfect"] + MB
    j2, exact = _runs(capsys, out, "auto", PROMPTS[1])
    assert j2["mode"] == "load" and not j2["plan"]["lossy"] and j2["output"]["output"] == "last_hidden_state"
    assert 0.9 < _cos(fast, exact) < 1 - 1e-6


def test_run_dual_refuses_an_unannounced_lossy_plan_before_reading(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from bigsmall.torch.dual_run import run_dual

    s = ap.FileSummary("x.bsd", "bsd", 2, 4 << 20, 0, 2 << 20, 2, 2 << 20, 1 << 20, "member")
    lossy = ap.plan(s, ap.Profile(2, 1 << 34, 1 << 34), "fast")
    missing = tmp_path / "missing.bsd"
    with pytest.raises(UnannouncedDowngradeError, match="not emitted"):
        run_dual(missing, lossy, None)  # refused before the (missing) folder is even looked at
    with pytest.raises(OSError):  # announced: it gets to reading the folder
        run_dual(missing, lossy, ap.announce(lossy, lambda _line: None))


def _manifest(**change: Any) -> dict[str, Any]:
    doc = json.loads(mf.encode([mf.Member("model.safetensors", "model.bsd", "bsd", 10, "a" * 64),
                                mf.Member("config.json", "config.json", "copy", 2, "b" * 64)]))
    doc["files"][0].update(change)
    return doc


@pytest.mark.parametrize("doc, match", [
    ({"format": "bigsmall-dual-folder", "version": [2, 0], "files": []}, "not supported"),
    ({"format": "something-else", "version": [1, 0], "files": []}, "format"),
    (_manifest(path="../model.safetensors", stored="../model.bsd"), "path"),
    (_manifest(path="/abs/model.safetensors", stored="/abs/model.bsd"), "path"),
    (_manifest(stored="other.bsd"), "stored name"),
    (_manifest(stored=mf.NAME), "stored name"),
    (_manifest(kind="link"), "kind"),
    (_manifest(sha256="A" * 64), "sha256"),
    (_manifest(size=-1), "negative"),
    (_manifest(size=True), "integer"),
    (_manifest(size=1.5), "integer"),
    (_manifest(path="config.json", kind="copy", stored="config.json"), "twice"),
    (_manifest(path="config.json/x.safetensors", stored="config.json/x.bsd"), "both a file and"),
    (_manifest(kind="copy", stored="model.safetensors"), "no .bsd member"),
])
def test_crafted_manifests_are_refused(doc: dict[str, Any], match: str) -> None:
    from bigsmall.errors import UnsupportedVersionError

    with pytest.raises(FormatError, match=match) as info:
        mf.parse(json.dumps(doc).encode())
    assert isinstance(info.value, UnsupportedVersionError) == (match == "not supported")


@pytest.mark.parametrize("raw", [b"", b"{not json", b'{"format": NaN}', b"[1, 2]",
                                 b'{"format": "bigsmall-dual-folder", "format": "x"}', b"\xff\xfe",
                                 b" " * (mf.MAX_BYTES + 1)])
def test_malformed_manifest_bytes_are_refused(raw: bytes, tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        mf.parse(raw)
    (tmp_path / mf.NAME).write_bytes(raw)
    with pytest.raises(FormatError, match=str(tmp_path)):  # the folder's reader names the folder
        dual_folder.DualFolder(tmp_path)


def test_a_member_swapped_for_another_bsd_is_refused(minilm_bsd: Path, small_model: Path, tmp_path: Path) -> None:
    from bigsmall.errors import IntegrityError

    copy = tmp_path / "swapped.bsd"
    shutil.copytree(minilm_bsd, copy)
    from bigsmall.io.dual import create

    create(small_model, copy / "model.bsd", force=True)
    with pytest.raises(IntegrityError, match="not the file the manifest names"):
        bigsmall.load(copy)
    assert main(["decompress", str(copy), "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_run_whisper_bsd_folder(whisper_folder_bs: Path, corpus_cache: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An encoder-decoder whose INT4 token embedding is also its (tied) output head: the fast
    members transcribe, announced first, reading the fast members only, and are not the exact
    model's bits. (``--mode perfect`` of a ``.bsd`` folder against the ``.bs``: MiniLM above;
    Whisper's in ``benchmarks/bench_dual_run.py``, whose exact decode is too slow for here.)"""
    pytest.importorskip("transformers")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    out = tmp_path / "whisper.bsd"
    dual_folder.create_folder(corpus.whisper_tiny_hf_dir(corpus_cache), out)
    events: list[tuple[str, str]] = []
    jf, _ = _runs(capsys, out, "fast", "", events)
    assert jf["output"]["kind"] == "transcription" and jf["output"]["tokens"] and jf["mode"] == "fast"
    assert events[0] == ("say", jf["plan"]["announcement"])
    assert jf["fast"]["bytes_read"] == jf["fast"]["fast_member_bytes"]
    jb, _ = _runs(capsys, whisper_folder_bs, "perfect", "")
    assert jb["output"]["shape"][-1] == jf["output"]["shape"][-1] and jb["output"]["sha256"] != jf["output"]["sha256"]
