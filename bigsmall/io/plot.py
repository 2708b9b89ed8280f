"""PNG charts of benchmark results, for people who would rather look than read a table.

Two charts: ``bigsmall benchmark SRC --plot out.png`` (one model: speeds, decode speed against
threads, ratio per tensor class) and ``benchmarks/peers.py --plot`` / ``benchmarks/plots.py``
(several tools on several models: ratio against restore speed). matplotlib is an optional extra
(``pip install "bigsmall[plot]"``): nothing else in bigsmall needs it, so it is imported only
here, only when a chart is drawn, and its absence is a :class:`MissingDependencyError` that says
what to install rather than an ``ImportError`` from deep inside a command.

:func:`tensor_class` is pure and has no matplotlib dependency: ``bigsmall benchmark`` uses it to
sum stored bytes per class whether or not a chart is asked for.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError

#: Order in which tensor classes are shown (most bytes in a transformer first).
CLASSES = ("embedding", "attention", "mlp", "norm", "bias", "other")

_ATTENTION = re.compile(r"attn|attention|q_proj|k_proj|v_proj|o_proj|query|key|value")
_MLP = re.compile(r"mlp|ffn|fc\d|intermediate|up_proj|down_proj|gate_proj|w[123]\b|output\.dense")
_NORM = re.compile(r"norm|\bln|layernorm|layer_norm")


def tensor_class(name: str, ndim: int) -> str:
    """A coarse role from the tensor's name: its bit statistics (and so its ratio) depend on
    the role more than on the layer, which is what a chart of ratio per class shows. Names
    follow the common Hugging Face conventions; anything unrecognised is "other"."""
    n = name.lower()
    if "embed" in n or n.endswith("wte.weight") or n.endswith("wpe.weight"):
        return "embedding"
    if _NORM.search(n):
        return "norm"
    if n.endswith(".bias") or ndim <= 1:
        return "bias"
    if _ATTENTION.search(n):
        return "attention"
    if _MLP.search(n):
        return "mlp"
    return "other"


def require_matplotlib() -> None:
    """Raise :class:`MissingDependencyError` now if charts cannot be drawn: a command checks
    this before its measurements, so a missing extra costs a second, not the whole run."""
    _pyplot()


def _pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed), or a
    :class:`MissingDependencyError` that names the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            "charts need matplotlib: pip install 'bigsmall[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def _save(fig: Any, out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def plot_benchmark(result: Mapping[str, Any], out: str | os.PathLike[str]) -> Path:
    """The chart of one ``bigsmall benchmark`` result (the dict of
    :func:`bigsmall.io.bench.run_benchmark`): MB/s per operation, decode into memory against
    threads, and stored size per tensor class when the result carries it."""
    plt = _pyplot()
    by_class: Mapping[str, Mapping[str, int]] = result.get("bytes_by_class") or {}
    panels = 3 if by_class else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    n = int(result["threads"])
    name = Path(str(result["src"])).name
    fig.suptitle(f"bigsmall benchmark {name}: {result['ratio'] * 100:.2f} % of the original "
                 f"(order-0 floor {result['order0_floor_ratio'] * 100:.2f} %)", fontsize=11)

    ops = [("compress", result["compress_MBps"]), ("decompress\n(file->file)",
                                                  result["decompress_MBps"]),
           ("decode into\nmemory", result[f"decode_memory_MBps_{n}_threads"]),
           ("verify", result["verify_MBps"])]
    ax = axes[0]
    bars = ax.bar([o for o, _ in ops], [v for _, v in ops], color="#4C72B0")
    ax.bar_label(bars, fmt="%.0f")
    ax.margins(y=0.12)
    ax.set_ylabel("MB/s of the original (higher is better)")
    ax.set_title(f"speed, {n} thread(s), medians of {result['repeat']}", fontsize=10)

    ax = axes[1]
    threads = [1, n] if n > 1 else [1]
    speeds = [result["decode_memory_MBps_1_thread"], result[f"decode_memory_MBps_{n}_threads"]]
    ax.plot(threads, speeds[: len(threads)], marker="o", color="#4C72B0", label="measured")
    ax.plot(threads, [speeds[0] * t for t in threads], ls="--", color="grey",
            label="linear scaling")
    ax.set_xticks(threads)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("threads")
    ax.set_ylabel("decode into memory, MB/s")
    ax.set_title(f"decode speed vs threads (x{result['thread_speedup']:.2f})", fontsize=10)
    ax.legend(fontsize=8)

    if by_class:
        ax = axes[2]
        names = [c for c in CLASSES if c in by_class] + sorted(set(by_class) - set(CLASSES))
        ratios = [by_class[c]["stored"] / max(1, by_class[c]["original"]) * 100 for c in names]
        share = [by_class[c]["original"] / max(1, result["original_bytes"]) * 100 for c in names]
        bars = ax.barh(names, ratios, color="#55A868")
        ax.bar_label(bars, labels=[f"{r:.1f} % ({s:.0f} % of bytes)" for r, s in
                                   zip(ratios, share, strict=True)], fontsize=8, padding=2)
        ax.set_xlim(0, 125)
        ax.invert_yaxis()
        ax.set_xlabel("stored / original, % (lower is better)")
        ax.set_title("ratio per tensor class", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


#: Tools drawn by :func:`plot_peers`, with their labels (rows of ``benchmarks/peers.py --json``).
PEER_TOOLS = {
    "bigsmall": "bigsmall (default)",
    "bigsmall_rans": "bigsmall --coder rans",
    "bigsmall_fast_prefix": "bigsmall --level fast --coder prefix",
    "zipnn": "ZipNN",
    "zstd3": "zstd -3",
    "bigsmall_4.0": "bigsmall 4.0 (PyPI)",
}
_COLORS = {"bigsmall": "#C44E52", "bigsmall_rans": "#DD8452", "bigsmall_fast_prefix": "#8172B3",
           "zipnn": "#4C72B0", "zstd3": "#55A868", "bigsmall_4.0": "#937860"}


#: Where each tool's ratio label sits (points of offset): the bigsmall settings and ZipNN
#: cluster within a point of ratio, so their labels go different ways.
_LABEL_AT = {"bigsmall": (-8, -12), "bigsmall_rans": (-8, 4), "zipnn": (6, 6),
             "bigsmall_fast_prefix": (6, -9)}
_LEFT = {"bigsmall", "bigsmall_rans"}


def _restore_speed(r: Mapping[str, Any]) -> float | None:
    """Restore MB/s without fsync for every tool (ZipNN's and zstd's own convention; bigsmall's
    ``--no-fsync`` figure), so the points compare the same work."""
    v = r.get("decompress_nofsync_MBps", r.get("decompress_MBps"))
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def plot_peers(rows: Sequence[Mapping[str, Any]], out: str | os.PathLike[str],
               title: str | None = None) -> Path:
    """One panel per model: each tool's ratio against its restore speed (bottom right is
    better). ``rows`` is what ``benchmarks/peers.py --json`` prints."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(5.0 * len(rows), 4.4), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        for tool, label in PEER_TOOLS.items():
            r = row.get(tool)
            if not isinstance(r, Mapping):
                continue
            speed = _restore_speed(r)
            if speed is None:
                continue
            star = tool == "bigsmall"
            ax.scatter([speed], [r["ratio"] * 100], s=160 if star else 60, color=_COLORS[tool],
                       label=label, zorder=3, marker="*" if star else "o")
            ax.annotate(f"{r['ratio'] * 100:.2f} %", (speed, r["ratio"] * 100), fontsize=7,
                        xytext=_LABEL_AT.get(tool, (6, 4)), ha="right" if tool in _LEFT else "left",
                        textcoords="offset points", color=_COLORS[tool])
        ax.set_title(f"{row['model']} ({row['MB']:.1f} MB)", fontsize=10)
        ax.set_ylabel("compressed size, % of original")
        ax.set_xlim(left=0)
        ax.margins(y=0.1)
        ax.grid(alpha=0.3)
        ax.set_xlim(right=ax.get_xlim()[1] * 1.12)  # room for the labels
        ax.set_xlabel("restore MB/s, file -> file, no fsync\n(better: lower and to the right)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, -0.06))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, out)
