"""``compress --ecc``, ``repair`` and ``verify``'s repairability report (bigsmall/io/ecc.py,
bigsmall/container/parity.py, spec §20).

The promise under test: with ``--ecc 2``, one contiguous damaged run of 1 % of the file,
anywhere (blobs, index, header, parity, metadata, trailer), is rebuilt byte for byte; more
damage than the parity covers is a typed error and ``verify`` says so; crafted metadata is a
typed error, never a crash."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

import bigsmall
from bigsmall.container import format as fmt
from bigsmall.container import parity
from bigsmall.errors import BigsmallError, FormatError, InvalidOptionError, NotRepairableError
from bigsmall.io import ecc
from bigsmall.io.reader import BsFile
from bigsmall.testing.synthetic import write_safetensors


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("eccmodel") / "m"
    d.mkdir()
    t = {}
    for i in range(8):
        w = rng.normal(0, 0.02, (256, 512)).astype(np.float32)
        t[f"model.layers.{i}.mlp.weight"] = ("F32", w.shape, w.tobytes())
        b = (w.view(np.uint32) >> 16).astype(np.uint16)[:64]
        t[f"model.layers.{i}.attn.weight"] = ("BF16", b.shape, b.tobytes())
    t["model.norm.weight"] = ("F32", (512,), np.ones(512, np.float32).tobytes())
    write_safetensors(d / "model.safetensors", t, {"format": "pt"})
    (d / "config.json").write_text('{"hidden_size": 512}')
    return d


@pytest.fixture(scope="module")
def pair(model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the model compressed with --ecc 2, the same without)."""
    out = tmp_path_factory.mktemp("eccbs")
    protected = out / "ecc.bs"
    plain = out / "plain.bs"
    r = bigsmall.compress(model, protected, level="fast", ecc=2)
    bigsmall.compress(model, plain, level="fast")
    assert r.ecc is not None and r.ecc["m"] >= 1
    return protected, plain


def _damage(src: Path, dst: Path, off: int, length: int, seed: int = 0) -> None:
    data = bytearray(src.read_bytes())
    rnd = random.Random(seed)
    data[off:off + length] = bytes(rnd.randrange(256) for _ in range(length))
    dst.write_bytes(bytes(data))


def _restored_equal(bs: Path, model: Path, tmp: Path) -> None:
    out = tmp / "restored"
    bigsmall.decompress(bs, out)
    for p in model.iterdir():
        assert (out / p.name).read_bytes() == p.read_bytes()


def test_section_appended_to_an_unchanged_container(pair: tuple[Path, Path], model: Path,
                                                   tmp_path: Path) -> None:
    protected, plain = pair
    core = plain.read_bytes()
    data = protected.read_bytes()
    assert data[:len(core)] == core  # old readers see the same container
    extra = (len(data) - len(core)) / len(core)
    assert 0 < extra <= 0.025, extra
    st = ecc.check(protected)
    assert st.found and not st.damaged and st.repairable and st.meta_copies_ok == 2
    assert st.geometry is not None and st.geometry.guaranteed_burst >= len(data) // 100
    assert ecc.check(plain).found is False
    with BsFile(protected) as bs:
        assert bs.verify("full").ok
    _restored_equal(protected, model, tmp_path)


@pytest.mark.parametrize("where", ["start", "index", "blobs", "core_end", "parity", "end", "random1",
                                   "random2", "random3"])
def test_one_percent_run_is_repaired(pair: tuple[Path, Path], model: Path, tmp_path: Path,
                                     where: str) -> None:
    protected, plain = pair
    size = protected.stat().st_size
    core = plain.stat().st_size
    run = size // 100
    hdr = fmt.parse_header(plain.read_bytes()[:64], core)
    rnd = random.Random(where)
    off = {"start": 0, "index": int(hdr["index_offset"]), "blobs": core // 3,
           "core_end": core - run // 2, "parity": core + (size - core) // 3,
           "end": size - run}.get(where, rnd.randrange(size - run))
    bad = tmp_path / "bad.bs"
    _damage(protected, bad, off, run, seed=len(where))
    st = ecc.check(bad)
    assert st.found and st.damaged and st.repairable, st.summary()
    fixed = tmp_path / "fixed.bs"
    r = ecc.repair(bad, fixed)
    assert r.repaired
    assert fixed.read_bytes() == protected.read_bytes()
    _restored_equal(fixed, model, tmp_path)


def test_damaged_header_verify_and_in_place_repair(pair: tuple[Path, Path], tmp_path: Path) -> None:
    protected, _ = pair
    bad = tmp_path / "hdr.bs"
    _damage(protected, bad, 0, 64)
    with pytest.raises(BigsmallError):
        BsFile(bad)
    p = subprocess.run([sys.executable, "-m", "bigsmall", "verify", str(bad), "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is False and out["ecc"]["repairable"] is True and out["ecc"]["bad_stripes"] >= 1
    with pytest.raises(InvalidOptionError):  # in place only when asked
        ecc.repair(bad)
    ecc.repair(bad, force=True)
    assert bad.read_bytes() == protected.read_bytes()
    assert not [n for n in tmp_path.iterdir() if n.name.startswith(".")]


def test_verify_of_intact_and_damaged_blobs(pair: tuple[Path, Path], tmp_path: Path) -> None:
    protected, plain = pair
    p = subprocess.run([sys.executable, "-m", "bigsmall", "verify", str(protected), "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout)["ecc"]["damaged"] is False
    p = subprocess.run([sys.executable, "-m", "bigsmall", "verify", str(plain), "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "ecc" not in json.loads(p.stdout)
    bad = tmp_path / "blob.bs"
    _damage(protected, bad, 5000, 3000)
    p = subprocess.run([sys.executable, "-m", "bigsmall", "verify", str(bad)], capture_output=True,
                       text=True)
    assert p.returncode == 3 and "repairable" in p.stdout and "NOT" not in p.stdout


def test_too_much_damage_is_a_typed_error(pair: tuple[Path, Path], tmp_path: Path) -> None:
    protected, _ = pair
    size = protected.stat().st_size
    bad = tmp_path / "much.bs"
    _damage(protected, bad, size // 4, size // 20)  # 5 %: more than the 2 % of parity
    st = ecc.check(bad)
    assert st.found and st.damaged and not st.repairable
    assert "NOT repairable" in st.summary()
    with pytest.raises(NotRepairableError):
        ecc.repair(bad, tmp_path / "out.bs")
    assert not (tmp_path / "out.bs").exists()
    p = subprocess.run([sys.executable, "-m", "bigsmall", "repair", str(bad), "-o",
                        str(tmp_path / "out.bs"), "--json"], capture_output=True, text=True)
    assert p.returncode == 1 and json.loads(p.stdout)["type"] == "NotRepairableError"


def test_no_ecc_section_is_not_repairable(pair: tuple[Path, Path], tmp_path: Path) -> None:
    _, plain = pair
    with pytest.raises(NotRepairableError):
        ecc.repair(plain, tmp_path / "x.bs")


def test_truncated_tail_is_repaired(pair: tuple[Path, Path], tmp_path: Path) -> None:
    protected, _ = pair
    data = protected.read_bytes()
    cut = tmp_path / "cut.bs"
    cut.write_bytes(data[:len(data) - len(data) // 200])
    ecc.repair(cut, tmp_path / "whole.bs")
    assert (tmp_path / "whole.bs").read_bytes() == data


def _geo(path: Path) -> parity.Geometry:
    st = ecc.check(path)
    assert st.geometry is not None
    return st.geometry


def _recheck(meta: bytes) -> bytes:
    return meta[:-8] + struct.pack("<Q", xxhash.xxh3_64_intdigest(meta[:-8]))


@pytest.mark.parametrize("field,offset,fmt_,value", [
    ("version", 8, "<H", 2), ("flags", 10, "<H", 1), ("core_length", 12, "<Q", 1 << 61),
    ("core_length0", 12, "<Q", 10), ("block", 20, "<I", 3000), ("block0", 20, "<I", 0),
    ("k", 24, "<H", 0), ("k_big", 24, "<H", 300), ("m", 26, "<H", 0), ("stripes", 28, "<I", 1 << 30),
    ("stripes0", 28, "<I", 0),
])
def test_crafted_metadata_is_refused(pair: tuple[Path, Path], tmp_path: Path, field: str,
                                     offset: int, fmt_: str, value: int) -> None:
    """Both copies replaced by a crafted one with a valid checksum: the parser refuses it with
    a FormatError; check finds no usable section; repair is a typed error; nothing crashes."""
    protected, _ = pair
    geo = _geo(protected)
    data = bytearray(protected.read_bytes())
    meta = bytearray(data[geo.core_length:geo.core_length + geo.meta_length])
    struct.pack_into(fmt_, meta, offset, value)
    crafted = _recheck(bytes(meta))
    with pytest.raises(FormatError):
        parity.parse_meta(crafted, len(data))
    for off in (geo.core_length, geo.meta_b_offset):
        data[off:off + geo.meta_length] = crafted
    bad = tmp_path / f"{field}.bs"
    bad.write_bytes(bytes(data))
    assert ecc.check(bad).found is False
    with pytest.raises(NotRepairableError):
        ecc.repair(bad, tmp_path / "o.bs")


def test_crafted_trailer_and_random_mutations_never_crash(pair: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    protected, _ = pair
    geo = _geo(protected)
    data = protected.read_bytes()
    rnd = random.Random(3)
    bad = tmp_path / "mut.bs"
    for trial in range(40):
        buf = bytearray(data)
        lo = geo.core_length if trial % 2 else len(data) - parity.TRAILER_SIZE - geo.meta_length
        for _ in range(rnd.randrange(1, 6)):
            buf[rnd.randrange(lo, len(buf))] ^= 1 << rnd.randrange(8)
        if trial % 5 == 0:  # a trailer crafted with a valid checksum that points anywhere
            body = struct.pack("<8sHHIQQQ", parity.TRAILER_MAGIC, 1, 0, rnd.randrange(1 << 32),
                               rnd.randrange(1 << 40), rnd.randrange(1 << 40), 0)
            buf[-parity.TRAILER_SIZE:] = body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))
        bad.write_bytes(bytes(buf))
        try:
            st = ecc.check(bad)
            if st.found and st.repairable:
                ecc.repair(bad, tmp_path / "o.bs", force=True)
                assert (tmp_path / "o.bs").read_bytes() == data
        except BigsmallError:
            pass


def test_geometry_meets_the_promise_on_large_files() -> None:
    """For cores of 2 MB and more, --ecc 2 costs at most 2.5 % and repairs any run of 1 % of
    the whole file (the geometry alone decides both)."""
    for n in (2_000_000, 3_333_333, 25_000_000, 90_000_000, 700_000_000, 5_000_000_000, 70_000_000_000):
        g = parity.choose_geometry(n, 2)
        assert g.k + g.m <= 256
        assert (g.total_length - n) / n <= 0.025, (n, g)
        assert g.guaranteed_burst >= g.total_length // 100, (n, g)


def test_bad_percentages_are_refused(model: Path, tmp_path: Path) -> None:
    for p in (0, -1, 101, float("nan")):
        with pytest.raises(InvalidOptionError):
            bigsmall.compress(model, tmp_path / "x.bs", ecc=p)
    assert not list(tmp_path.iterdir())
    r = subprocess.run([sys.executable, "-m", "bigsmall", "compress", str(model), "-o",
                        str(tmp_path / "x.bs"), "--ecc", "0"], capture_output=True, text=True)
    assert r.returncode == 2


def test_parity_bytes_are_pinned(tmp_path: Path) -> None:
    """The parity of a fixed input is part of the format (spec §20: zfec's code): a change in
    the coded bytes for the same input must be a decision, not an accident."""
    core = bytes(range(256)) * 1000 + b"tail"
    f = tmp_path / "core.bin"
    f.write_bytes(core)
    with open(f, "r+b") as fh:
        info = ecc.protect(fh, len(core), 10)
    data = f.read_bytes()
    assert data[:len(core)] == core and info.ecc_bytes == len(data) - len(core)
    assert (info.block, info.k, info.m, info.stripes) == (4096, 63, 6, 1)
    assert xxhash.xxh3_64_hexdigest(data[len(core):]) == PINNED


PINNED = "443e886cdd0f58f7"


def test_compress_cli_ecc_roundtrip(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.bs"
    p = subprocess.run([sys.executable, "-m", "bigsmall", "compress", str(model), "-o", str(out),
                        "--ecc", "2", "--level", "fast", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ecc"]["extra_percent"] <= 2.5
    bad = tmp_path / "bad.bs"
    shutil.copy(out, bad)
    _damage(out, bad, out.stat().st_size // 2, out.stat().st_size // 100)
    p = subprocess.run([sys.executable, "-m", "bigsmall", "repair", str(bad), "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "--force" in p.stderr  # in place only when asked
    p = subprocess.run([sys.executable, "-m", "bigsmall", "repair", str(bad), "--force", "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["repaired"] is True
    assert bad.read_bytes() == out.read_bytes()


def _spec_parity(data: list[bytes], m: int) -> list[bytes]:
    """Spec §20.4 from its text alone: GF(2^8) modulo x^8+x^4+x^3+x^2+1, alpha = 2; V is the
    (k+m) x k matrix with row 0 = (1, 0, ..., 0) and row r >= 1 = (alpha^((r-1)c)); the code's
    matrix is V times the inverse of V's top k x k; parity j = row k+j applied to the slots."""
    exp, log = [0] * 512, [0] * 256
    x = 1
    for i in range(255):
        exp[i], log[x] = x, i
        x = (x << 1) ^ (0x11D if x & 0x80 else 0)
    exp[255:510] = exp[:255]

    def mul(a: int, b: int) -> int:
        return 0 if a == 0 or b == 0 else exp[log[a] + log[b]]

    k = len(data)
    v = [[int(c == 0) for c in range(k)]] + [[exp[(r * c) % 255] for c in range(k)]
                                               for r in range(k + m - 1)]
    a = [row[:] + [int(i == j) for j in range(k)] for i, row in enumerate(v[:k])]
    for c in range(k):  # Gauss-Jordan inverse of the top k x k
        p = next(r for r in range(c, k) if a[r][c])
        a[c], a[p] = a[p], a[c]
        iv = exp[255 - log[a[c][c]]]
        a[c] = [mul(iv, e) for e in a[c]]
        for r in range(k):
            if r != c and a[r][c]:
                f = a[r][c]
                a[r] = [e ^ mul(f, w) for e, w in zip(a[r], a[c], strict=True)]
    inv = [row[k:] for row in a]
    out = []
    for r in range(k, k + m):
        coef = [0] * k
        for c in range(k):
            for t in range(k):
                coef[c] ^= mul(v[r][t], inv[t][c])
        blk = bytearray(len(data[0]))
        for i in range(k):
            for pos, byte in enumerate(data[i]):
                blk[pos] ^= mul(coef[i], byte)
        out.append(bytes(blk))
    return out


def test_parity_is_the_code_the_spec_describes() -> None:
    import zfec

    rnd = random.Random(5)
    for k, m in ((1, 1), (5, 3), (12, 4)):
        data = [rnd.randbytes(24) for _ in range(k)]
        assert list(zfec.Encoder(k, k + m).encode(data, list(range(k, k + m)))) == _spec_parity(data, m)


def test_stray_bytes_and_lost_locators(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """Bytes appended after the section are cut; with both the header and the trailer
    destroyed (two runs), the metadata is found by its magic and everything is rebuilt."""
    protected, _ = pair
    data = protected.read_bytes()
    bad = tmp_path / "stray.bs"
    bad.write_bytes(data + b"\x00junk" * 100)
    st = ecc.check(bad)
    assert st.damaged and st.repairable and st.extra_bytes == 500 and "stray" in st.summary()
    ecc.repair(bad, tmp_path / "a.bs")
    assert (tmp_path / "a.bs").read_bytes() == data
    buf = bytearray(data)
    buf[:4096] = bytes(4096)
    buf[-parity.TRAILER_SIZE - 100:] = bytes(parity.TRAILER_SIZE + 100)
    bad.write_bytes(bytes(buf))
    st = ecc.check(bad)
    assert st.found and not st.trailer_ok and st.meta_copies_ok == 1 and st.repairable
    ecc.repair(bad, tmp_path / "b.bs")
    assert (tmp_path / "b.bs").read_bytes() == data


def test_random_crafted_geometries_are_typed(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """300 metadata copies with random field values and valid checksums (both copies, the
    trailer pointing at them): check and repair finish with a result or a BigsmallError."""
    protected, _ = pair
    geo = _geo(protected)
    data = protected.read_bytes()
    rnd = random.Random(11)
    fields = [(12, "<Q", 64), (20, "<I", 32), (24, "<H", 16), (26, "<H", 16), (28, "<I", 32)]
    bad = tmp_path / "geo.bs"
    for _ in range(300):
        meta = bytearray(data[geo.core_length:geo.core_length + geo.meta_length])
        for off, f, bits in rnd.sample(fields, rnd.randrange(1, 4)):
            v = rnd.choice([0, 1, 2, 255, 256, 4096, (1 << bits) - 1, rnd.randrange(1 << bits)])
            struct.pack_into(f, meta, off, v & ((1 << bits) - 1))
        crafted = _recheck(bytes(meta))
        buf = bytearray(data)
        for off in (geo.core_length, geo.meta_b_offset):
            buf[off:off + geo.meta_length] = crafted
        bad.write_bytes(bytes(buf))
        try:
            st = ecc.check(bad)
            if st.found:
                ecc.repair(bad, tmp_path / "o.bs", force=True)
        except BigsmallError:
            pass
