"""Generate the written-out lane steps of the two chunk encoders: ``encode8.encode_values``
(rANS, 8 lanes) and ``encodep.encode_chunk`` (prefix code, 4 lanes).

Why generated: each lane's state is a scalar of its own (an array of states goes through
memory on every unit: measured 11-23 % slower for rANS, 10-20 % for the prefix coder), so a
group's steps are the same lines once per lane; writing them by hand invites a typo in one
copy. The generated lines sit between ``# >>> gen_encode: NAME`` and ``# <<< NAME`` in the
two modules. Run ``python -m bigsmall.codecs._generated.gen_encode`` after editing; ``tests/
test_generated.py`` checks the committed files match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent


def rans8_steps() -> list[str]:
    """``encode_values``' group body: lanes 7 .. 0 (units last to first), each guarded (only
    the first group handled, the chunk's last, can be partial)."""
    out: list[str] = []
    for ln in range(7, -1, -1):
        out += [f"if base + {ln} < n:",
                f"    v = ld(values, base + {ln})",
                "    ex = (v >> sh_e) & emask",
                "    es = rb + ld(cbase, j) + ex",
                "    ei = ld(efreq, es)",
                "    ms = 0",
                "    mi = 1",
                "    if hasm:",
                "        ms = ld(mbase, ex) + ((v >> p) & mmask)",
                "        mi = ld(mfreq, ms)",
                f"    x = x{ln}",
                "    if (x >> s32) >= ((np.uint64(ei) * np.uint64(mi)) << kshift):",
                "        words[nw] = np.uint32(x & m32)",
                "        nw += 1",
                "        x = x >> s32",
                "    if hasm:",
                "        q = _umulhi(x << one, np.uint64(ld(magic, mi))) >> np.uint64(ld(shift, mi))",
                "        x = (q << pm) + (x - q * np.uint64(mi)) + np.uint64(ld(mcum, ms))",
                "    q = _umulhi(x << one, np.uint64(ld(magic, ei))) >> np.uint64(ld(shift, ei))",
                f"    x{ln} = (q << pe) + (x - q * np.uint64(ei)) + np.uint64(ld(ecum, es))",
                "    j -= 1",
                f"    if j < 0 and base + {ln} > 0:",
                "        j = ncols - 1",
                "        i -= 1",
                "        rb = rowctx[i] * alpha"]
    return out


def prefix4_steps() -> list[str]:
    """``encode_chunk``'s group body: lanes 0 .. 3 (units ``t .. t + 3``), lanes 1-3 guarded
    (the chunk's last group can be partial)."""
    out: list[str] = []
    for ln in range(4):
        step = ["ctx = rc + colctx[j]",
                f"v = np.int64(values[t + {ln}])",
                "e = tab[ctx * nsym + ((v >> p) & smask)]",
                "if e < 0:",
                "    return np.zeros(0, np.uint8)",
                "raw = ((v & lowmask) | ((v >> hishift) << p)) >> h",
                f"a{ln} |= (e & 0xFFFFFFFF) << b{ln}",
                f"b{ln} += e >> 32",
                f"a{ln} |= raw << b{ln}",
                f"b{ln} += bw",
                f"st64(tmp, q{ln}, a{ln})",
                f"q{ln} += b{ln} >> 3",
                f"a{ln} >>= b{ln} & ~7",
                f"b{ln} &= 7",
                "j += 1",
                f"if j == ncols and t + {ln + 1} < n:",
                "    j = 0",
                "    i += 1",
                "    rc = rowctx[i]",
                "    h = rshift[i]",
                "    bw = rbits - h"]
        out += ([f"if t + {ln} < n:", *("    " + s for s in step)] if ln else step)
    return out


TARGETS: dict[str, list[tuple[str, Callable[[], list[str]]]]] = {
    "encode8.py": [("rans8_steps", rans8_steps)],
    "encodep.py": [("prefix4_steps", prefix4_steps)],
}


def render(text: str, name: str, lines: list[str]) -> str:
    """``text`` with the block ``name`` replaced by ``lines``, indented as its start marker."""
    pat = re.compile(rf"^( *)# >>> gen_encode: {name}\n.*?^ *# <<< {name}\n", re.M | re.S)
    m = pat.search(text)
    if m is None:
        raise ValueError(f"no generated block {name!r}")
    ind = m.group(1)
    block = (f"{ind}# >>> gen_encode: {name}\n" + "".join(f"{ind}{s}\n" for s in lines)
             + f"{ind}# <<< {name}\n")
    return text[: m.start()] + block + text[m.end():]


def generate(filename: str) -> str:
    """The module ``filename`` as it should be committed."""
    text = (HERE / filename).read_text()
    for name, fn in TARGETS[filename]:
        text = render(text, name, fn())
    return text


if __name__ == "__main__":
    for fname in TARGETS:
        (HERE / fname).write_text(generate(fname))
