"""The dual-fidelity ``.bsd``: bit-exact restore of every pattern, the fast member read alone,
hostile files refused with typed errors (``codecs/dual.py``, ``io/dual.py``, docs/dual.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import bigsmall
from bigsmall.cli import main
from bigsmall.codecs import dual as code
from bigsmall.codecs import dual_keyrun as keyrun
from bigsmall.container import dual_format as fmt
from bigsmall.errors import (
    BigsmallError,
    FormatError,
    IntegrityError,
    InvalidOptionError,
    OutputExistsError,
)
from bigsmall.io import dual
from bigsmall.testing.raw_safetensors import ITEM, write_safetensors


def _special16(rng: np.random.Generator, n: int, dt: str) -> np.ndarray:
    """Weights with every awkward pattern mixed in: ±0, subnormals, values at the edges."""
    w = (rng.standard_normal(n) * 0.03).astype(np.float32)
    w[rng.integers(0, n, n // 50)] = 0.0
    w[rng.integers(0, n, n // 50)] = -0.0
    w[rng.integers(0, n, n // 100)] *= 1e-36  # subnormal in bf16/f32, 0 in f16
    w[rng.integers(0, n, 20)] = rng.choice([5e4, -5e4, 3.0, -7.5], 20)  # outliers widen groups
    if dt == "F16":
        bits = w.astype(np.float16).view(np.uint16)
        bits[rng.integers(0, n, n // 100)] = rng.integers(0, 0x400, n // 100).astype(np.uint16)  # subnormals
        return bits
    if dt == "BF16":
        return (w.view(np.uint32) >> 16).astype(np.uint16)
    return w.view(np.uint32)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("dual")
    t: dict[str, tuple[str, tuple[int, ...], bytes]] = {}
    for dt in ("BF16", "F16", "F32"):
        t[f"{dt}.q.weight"] = (dt, (131, 259), _special16(rng, 131 * 259, dt).tobytes())  # odd: padded groups
        flat = rng.integers(0, 1 << (8 * ITEM[dt]), 200 * 128, dtype=np.uint64)  # every pattern: NaN, inf
        t[f"{dt}.anybits.weight"] = (dt, (200, 128), flat.astype(f"<u{ITEM[dt]}").tobytes())
        nan = _special16(rng, 160 * 128, dt)
        nan[5] = 0x7FC1 if ITEM[dt] == 2 else 0x7FC00001  # one NaN payload: the tensor stays exact
        t[f"{dt}.nan.weight"] = (dt, (160, 128), nan.tobytes())
        inf = _special16(rng, 160 * 128, dt)
        inf[7] = {"BF16": 0xFF80, "F16": 0xFC00, "F32": 0xFF800000}[dt]
        t[f"{dt}.inf.weight"] = (dt, (128, 160), inf.tobytes())
        t[f"{dt}.bias"] = (dt, (37,), _special16(rng, 37, dt).tobytes())
        t[f"{dt}.scalar"] = (dt, (), _special16(rng, 1, dt).tobytes())
        t[f"{dt}.empty"] = (dt, (0, 128), b"")
    t["const.weight"] = ("BF16", (128, 256), np.full(128 * 256, 0x3F80, np.uint16).tobytes())  # flat groups
    t["F64.weight"] = ("F64", (130, 130), rng.standard_normal(130 * 130).tobytes())
    for dt in ("I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3"):
        n = 1001
        raw = rng.integers(0, 2 if dt == "BOOL" else 256, n * ITEM[dt], dtype=np.uint8).tobytes()
        t[f"{dt}.t"] = (dt, (7, 11, 13), raw)
    return write_safetensors(d / "synthetic.safetensors", t)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_round_trip_every_pattern(synthetic: Path, tmp_path: Path) -> None:
    r = dual.create(synthetic, tmp_path / "s.bsd")
    assert r.quantized == 4  # BF16/F16/F32 .q.weight + const; any-bits, NaN, inf: kept exact
    out = bigsmall.decompress(tmp_path / "s.bsd", tmp_path / "back.safetensors")
    assert out.bytes_written == synthetic.stat().st_size
    assert _sha(tmp_path / "back.safetensors") == _sha(synthetic)
    with dual.DualFile(tmp_path / "s.bsd") as d:
        kinds = {s.name: t["kind"] for s, t in zip(d.specs, d.doc["tensors"], strict=True)}
        assert d.verify()["ok"]
    assert kinds["BF16.q.weight"] == kinds["F16.q.weight"] == kinds["F32.q.weight"] == "q"
    assert kinds["BF16.nan.weight"] == kinds["F32.inf.weight"] == kinds["F16.bias"] == "z"


@pytest.mark.parametrize("check", ["sha256", "receipts"])
def test_restore_names_a_wrong_tensor(synthetic: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, check: str) -> None:
    """A restore checks the file's sha256 (not each tensor's receipt on the way); a wrong tensor
    still fails it with the tensor named (a second pass checks each receipt), and nothing is left
    at the output path. ``check="receipts"``: each receipt on the way, the same error."""
    dual.create(synthetic, tmp_path / "s.bsd")
    real = dual.DualFile._finish

    def flip(self, spec, t, out, jobs, check=True):  # type: ignore[no-untyped-def]
        for j in jobs:
            j.result()
        if spec.name == "F16.q.weight":
            out[3] ^= 1
        return real(self, spec, t, out, [], check)

    monkeypatch.setattr(dual.DualFile, "_finish", flip)
    with pytest.raises(IntegrityError, match="F16.q.weight"):
        bigsmall.decompress(tmp_path / "s.bsd", tmp_path / "back.safetensors", check=check)
    assert not (tmp_path / "back.safetensors").exists()


def _raw(t) -> bytes:  # type: ignore[no-untyped-def]
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def test_load_exact_and_fast(synthetic: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    dual.create(synthetic, tmp_path / "s.bsd")
    ref = load_file(str(synthetic))
    rep: dict[str, int] = {}
    exact = bigsmall.load(tmp_path / "s.bsd", report=rep)
    assert rep["bytes_read"] == rep["fast_member_bytes"] + rep["exact_member_bytes"]
    for k, v in ref.items():
        assert exact[k].dtype == v.dtype and exact[k].shape == v.shape
        assert _raw(exact[k]) == _raw(v), k
    rep = {}
    fast = bigsmall.load(tmp_path / "s.bsd", mode="fast", report=rep)
    assert rep["bytes_read"] <= 1.05 * rep["fast_member_bytes"]
    assert rep["bytes_read"] < rep["fast_member_bytes"] + rep["exact_member_bytes"]
    q = fast["BF16.q.weight"]
    assert q.dtype == torch.bfloat16 and q.shape == (131, 259)
    assert not torch.equal(q, ref["BF16.q.weight"])  # lossy, and says so by differing
    err = (q.float() - ref["BF16.q.weight"].float()).abs()
    assert float(err.max()) <= 5e4 / 15  # within half a bin of the widest group, at most
    assert torch.equal(fast["F16.bias"], ref["F16.bias"])  # the rest exact
    from bigsmall.torch.fast import dequantize, quantize

    for k in ("BF16.q.weight", "F16.q.weight", "F32.q.weight"):  # = the on-the-fly fast mode's
        on_the_fly = dequantize(quantize(ref[k]))
        assert _raw(fast[k]) == _raw(on_the_fly), k
    with pytest.raises(InvalidOptionError):
        bigsmall.load(tmp_path / "s.bsd", mode="int2")


def test_minilm_bf16(tmp_path: Path) -> None:
    from bigsmall.testing import corpus

    src = corpus.minilm_bf16(corpus.default_cache_dir())
    r = dual.create(src, tmp_path / "m.bsd")
    assert r.quantized == 38
    assert r.fast_member_bytes < 0.25 * r.original_bytes
    assert r.fast_member_bytes + r.exact_member_bytes < 0.70 * r.original_bytes
    rc = main(["decompress", str(tmp_path / "m.bsd"), "-o", str(tmp_path / "m.safetensors"), "--json"])
    assert rc == 0 and _sha(tmp_path / "m.safetensors") == _sha(src)


def test_cli(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.bsd"
    assert main(["dual", str(synthetic), "-o", str(out), "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fast_member_bytes"] == created["fast_member_bytes"]
    assert info["fast_member_bytes"] + info["exact_member_bytes"] == out.stat().st_size
    assert main(["verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["dual", str(synthetic), "-o", str(out)]) == 1  # exists: no --force
    capsys.readouterr()
    with pytest.raises(OutputExistsError):
        dual.create(synthetic, out)
    assert main(["dual", str(synthetic), "-o", str(out), "--force", "--json"]) == 0


def test_hostile_files(synthetic: Path, tmp_path: Path) -> None:
    good = tmp_path / "s.bsd"
    dual.create(synthetic, good)
    data = good.read_bytes()
    with dual.DualFile(good) as d:
        head, fast_end = d.head, d.fast_end
        first = d.doc["tensors"][0]["chunks"][0]
    cases = {
        "truncated": data[: len(data) // 2],
        "header-only": data[:40],
        "bad-magic": b"X" + data[1:],
        "header-flip": data[:20] + bytes([data[20] ^ 1]) + data[21:],
        "fast-index-flip": data[: head["fast_off"] + 5] + bytes([data[head["fast_off"] + 5] ^ 4])
        + data[head["fast_off"] + 6:],
        "exact-index-flip": data[: head["exact_off"] + 3] + bytes([data[head["exact_off"] + 3] ^ 4])
        + data[head["exact_off"] + 4:],
        "fast-chunk-flip": data[: first[0] + 9] + bytes([data[first[0] + 9] ^ 16]) + data[first[0] + 10:],
        "exact-chunk-flip": data[: fast_end + 50] + bytes([data[fast_end + 50] ^ 16]) + data[fast_end + 51:],
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.bsd"
        p.write_bytes(blob)
        with pytest.raises(BigsmallError):
            with dual.DualFile(p) as d:
                d.verify()
        with pytest.raises(BigsmallError):
            bigsmall.decompress(p, tmp_path / f"{name}.safetensors")
        assert not (tmp_path / f"{name}.safetensors").exists()
        assert main(["verify", str(p)]) in (1, 3), name


def _rewrite_fast_index(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """A crafted file: its fast index edited and re-checksummed (valid digests, lying content)."""
    with dual.DualFile(src) as d:
        doc, head = json.loads(json.dumps(d.doc)), d.head
    edit(doc)
    data = src.read_bytes()
    stored, dig = fmt.encode_index(doc)
    assert len(stored) <= head["fast_len"] + 64
    body = data[: head["fast_off"]] + stored
    pad = head["fast_len"] - len(stored)
    body += b"\0" * max(pad, 0)
    tail = data[head["fast_off"] + head["fast_len"]:]
    shift = len(body) - (head["fast_off"] + head["fast_len"])
    out = body + tail
    hdr = fmt.pack_header((head["fast_off"], len(stored)), (head["exact_off"] + shift, head["exact_len"]),
                          head["file_len"] + shift, dig, head["exact_digest"])
    dst.write_bytes(hdr + out[fmt.HEADER_SIZE:])
    return dst


@pytest.mark.parametrize("edit", [
    lambda d: d["tensors"][0].update(kind="x"),
    lambda d: d["tensors"][0]["chunks"][0].__setitem__(1, 1 << 40),
    lambda d: d["tensors"][0]["chunks"][0].__setitem__(2, 0),
    lambda d: d["tensors"].pop(),
    lambda d: d.update(header="not base64!"),
    lambda d: d.update(size="12"),
    lambda d: d["tensors"][-1].update(kind="q"),
])
def test_crafted_index_is_a_typed_error(synthetic: Path, tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "s.bsd"
    dual.create(synthetic, good)
    bad = _rewrite_fast_index(good, tmp_path / "bad.bsd", edit)
    with pytest.raises((FormatError, IntegrityError)):
        with dual.DualFile(bad) as d:
            d.verify()


def test_codec_corrupt_streams_are_typed() -> None:
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((64, 300)) * 0.02).astype(np.float32)
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)
    fast, q, s16, lo16 = code.encode_fast(code.as_float32(bits, "BF16").reshape(bits.shape))
    ex = keyrun.encode_exact(bits, q, s16, lo16, "BF16")
    assert np.array_equal(keyrun.decode_exact(ex, q, s16, lo16, "BF16"), bits.ravel())
    for blob in (ex[:10], ex[: len(ex) // 2], ex[:-3], bytes(len(ex))):
        with pytest.raises(IntegrityError):
            keyrun.decode_exact(blob, q, s16, lo16, "BF16")
    for blob in (fast[:7], fast[: len(fast) - 5]):
        with pytest.raises(IntegrityError):
            code.decode_fast(blob, 64, 300)


def test_fast_code_matches_fast_mode() -> None:
    """The stored fast member is the autopilot's on-the-fly INT4 code, bit for bit."""
    torch = pytest.importorskip("torch")
    from bigsmall.torch.fast import quantize

    rng = np.random.default_rng(3)
    w = (rng.standard_normal((70, 333)) * 0.05).astype(np.float32)
    c = quantize(torch.from_numpy(w))
    assert c is not None
    q, s16, lo16 = code.quantize_block(w)
    assert np.array_equal(c.scale.numpy().view(np.uint16), s16.view(np.uint16))
    assert np.array_equal(c.minimum.numpy().view(np.uint16), lo16.view(np.uint16))
    qq = np.empty((70, c.packed.shape[1], 128), np.uint8)
    p = c.packed.numpy()
    qq[..., 0::2], qq[..., 1::2] = p & 15, p >> 4
    assert np.array_equal(qq.reshape(70, -1)[:, :333], q)


V1_GOLDEN = Path(__file__).parent / "dual_vectors" / "v1.bsd"
V1_SHA256 = "7869b94d93e44422ea5b27edc84663e78229f8769b98be1be576ebb9b305cddd"


V2_MODES_SHA256 = "d15662928151bb9ed7893564e375d17362ceb9265f8038978824391a87e2a6b2"


@pytest.mark.parametrize("name,version,maker,sha", [
    ("v1.bsd", [1, 0], "source", V1_SHA256),
    ("v2.bsd", [2, 0], "source", V1_SHA256),
    ("v2_modes.bsd", [2, 0], "source_v2", V2_MODES_SHA256),  # fast modes 2, 1, 0; F32 row shifts
    ("v3.bsd", [3, 0], "source", V1_SHA256),  # the table look-up exact member (codecs/dual_lookup.py)
    ("v3_modes.bsd", [3, 0], "source_v2", V2_MODES_SHA256),
    ("v4.bsd", [4, 0], "source", V1_SHA256),  # fast chunks on interleaved rANS states (dual_fast.LANES)
    ("v4_modes.bsd", [4, 0], "source_v2", V2_MODES_SHA256),
    ("v5.bsd", [5, 0], "source", V1_SHA256),  # the exact chunk's value cells (codecs/dual_cells.py)
    ("v5_modes.bsd", [5, 0], "source_v2", V2_MODES_SHA256),
])
@pytest.mark.parametrize("native", [True, False], ids=["c", "numba"])
def test_golden_files_still_restore(name: str, version: list[int], maker: str, sha: str, native: bool,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``.bsd`` files written by earlier encoders (1.0: key-run exact member; 2.0: the first
    truncated-model encoder; 3.0: the first table look-up encoder; 4.0: the first with
    interleaved fast-chunk states; 5.0: the first with value cells) restore byte for byte, their fast members load, they verify;
    with the C kernels and with the numba reference (as ``BIGSMALL_NATIVE=0``)."""
    import importlib.util

    from bigsmall import native as nat

    if not native:
        monkeypatch.setattr(nat, "dual", lambda: None)
        monkeypatch.setattr(nat, "cells", lambda: None)

    golden = V1_GOLDEN.parent / name
    with dual.DualFile(golden) as d:
        assert d.info()["version"] == version and d.info()["quantized"] == 3
        assert d.verify()["ok"]
    out = bigsmall.decompress(golden, tmp_path / "back.safetensors")
    assert _sha(tmp_path / "back.safetensors") == sha
    spec = importlib.util.spec_from_file_location("mk", V1_GOLDEN.parent / "make_v1_source.py")
    assert spec is not None and spec.loader is not None
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    src = getattr(mk, maker)(tmp_path / "src.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == src.read_bytes()
    assert out.bytes_written == src.stat().st_size


def test_writes_v5_and_refuses_unknown_major(synthetic: Path, tmp_path: Path) -> None:
    p = tmp_path / "s.bsd"
    dual.create(synthetic, p)
    with dual.DualFile(p) as d:
        assert d.info()["version"] == list(fmt.VERSION) == [5, 0]
    data = bytearray(p.read_bytes())
    data[8:10] = (6).to_bytes(2, "little")
    body = bytes(data[:72])
    import xxhash

    data[72:80] = xxhash.xxh3_64_intdigest(body).to_bytes(8, "little")
    (tmp_path / "v6.bsd").write_bytes(bytes(data))
    from bigsmall.errors import UnsupportedVersionError

    with pytest.raises(UnsupportedVersionError):
        dual.DualFile(tmp_path / "v6.bsd")


@pytest.mark.parametrize("module", ["dual_trunc", "dual_lookup", "dual_cells"])
def test_v2_v3_codec_corrupt_streams_are_typed(module: str) -> None:
    import importlib

    trunc = importlib.import_module(f"bigsmall.codecs.{module}")

    rng = np.random.default_rng(2)
    for dt in ("BF16", "F16", "F32"):
        w = (rng.standard_normal((40, 300)) * 0.02).astype(np.float32)
        w[3, 5] = 0.0
        if dt == "BF16":
            bits = (w.view(np.uint32) >> 16).astype(np.uint16)
        else:
            bits = w.astype(np.float16).view(np.uint16) if dt == "F16" else w.view(np.uint32)
        _fast, q, s16, lo16 = code.encode_fast(code.as_float32(bits, dt).reshape(bits.shape))
        ex = trunc.encode_exact(bits, q, s16, lo16, dt)
        assert np.array_equal(trunc.decode_exact(ex, q, s16, lo16, dt), bits.ravel())
        flipped = bytearray(ex)
        flipped[-9] ^= 0x40  # a word of the rANS stream
        for blob in (ex[:10], ex[: len(ex) // 2], ex[:-3], bytes(len(ex)), ex + b"\0", bytes(flipped)):
            with pytest.raises(IntegrityError):
                trunc.decode_exact(blob, q, s16, lo16, dt)
        wrong = q.copy()
        wrong[0, :8] ^= 1  # decoding against other codes: an error or other bits, never a crash
        try:
            back = trunc.decode_exact(ex, wrong, s16, lo16, dt)
        except IntegrityError:
            pass
        else:
            assert not np.array_equal(back, bits.ravel())


@pytest.mark.parametrize("lanes", [1, 8])
@pytest.mark.parametrize("native", [True, False], ids=["c", "numba"])
def test_v2_fast_chunk_modes(lanes: int, native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every context mode of the fast chunk (2.0/3.0: one rANS state, 4.0: interleaved states)
    decodes to the same code, with the C kernel and the numba reference; damage is typed."""
    from bigsmall import native as nat
    from bigsmall.codecs import dual_fast as fastc

    if not native:
        monkeypatch.setattr(nat, "dual", lambda: None)

    rng = np.random.default_rng(4)
    col = np.exp(rng.standard_normal(512) * 1.5)  # columns of very different magnitude
    w = (rng.standard_normal((256, 512)) * col).astype(np.float32) * 0.01
    plain = (rng.standard_normal((256, 512)) * 0.01).astype(np.float32)
    offset = (rng.standard_normal((256, 512)) * 0.01 + rng.standard_normal(512) * 0.03).astype(np.float32)
    modes = set()
    for x in (w, plain, offset):  # columns with offsets: mode 2 (column clusters)
        fast, q, s16, lo16 = fastc.encode_fast(x, lanes)
        modes.add(fast[0])
        q2, s2, lo2 = fastc.decode_fast(fast, *x.shape, lanes)
        assert np.array_equal(q2, q) and np.array_equal(s2.view(np.uint16), s16.view(np.uint16))
        flipped = bytearray(fast)
        flipped[-7] ^= 0x10  # a word of the codes' stream
        other = fastc.encode_fast(x, 9 - lanes)[0]  # the other lane count: not this stream
        for blob in (fast[:1], fast[:20], fast[:-5], bytes([3]) + fast[1:], fast[:-2], bytes(flipped),
                     other, fast + b"\0\0"):
            try:
                q3, _, _ = fastc.decode_fast(blob, *x.shape, lanes)
            except IntegrityError:
                continue
            assert blob == fast + b"\0\0" or not np.array_equal(q3, q)  # trailing bytes are ignored
    assert modes == {0, 1, 2}


def test_plan_reads_a_bsd_and_run_refuses_it(synthetic: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``plan`` builds its summary from the .bsd's fast index (fast mode: the stored member);
    ``run`` refuses a .bsd with a clear error instead of misreading it as a .bs."""
    p = tmp_path / "s.bsd"
    dual.create(synthetic, p)
    with dual.DualFile(p) as d:
        s = d.summary()
        assert s.kind == "bsd" and s.fast_source == "member" and s.tensors == len(d.specs)
        assert s.exact_bytes == sum(x.nbytes for x in d.specs)
        assert s.fast_bytes is not None and s.fast_bytes < s.exact_bytes
    assert main(["plan", str(p), "--mode", "fast", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "fast" and out["fidelity"] == "lossy" and "LOSSY" in out["sentence"]
    assert main(["plan", str(p), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fidelity"] == "exact"
    assert main(["run", str(p)]) == 1
    assert "is a .bsd" in capsys.readouterr().err
