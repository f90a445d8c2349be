"""Static plots for the HTML report, drawn with matplotlib and inlined as SVG data URIs.

Why matplotlib: it is the most widely installed, long-maintained Python plotting library; it draws
offline with no JavaScript, and an SVG with text kept as text (``svg.fonttype = none``) is a few kB per
histogram, so the report stays one small self-contained file. A JavaScript plotting library would
have to be inlined (plotly.js alone is ~3.5 MB) and would add console-error surface for no gain on
histograms. Scatter points are rasterised inside the SVG (bounded size whatever the sample).

Figures are built with ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot global state, no GUI
backend), so this module is safe in threads and on headless machines. Import it only from the report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

from altsift.report.steps import Cut

KEPT, DROPPED = "#2f6fb0", "#e07b39"
A_ONLY, B_ONLY, BOTH = "#7b3fb0", "#2a9d6f", "#9aa3ad"
CUT = "#c62828"
N_BINS = 40

_STYLE = {
    "svg.fonttype": "none",  # text stays text: small files, crisp at any zoom
    "svg.hashsalt": "altsift",  # deterministic ids
    "font.size": 10,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8a939c",
    "axes.labelcolor": "#333",
    "xtick.color": "#555",
    "ytick.color": "#555",
    "axes.titlesize": 11,
    "legend.frameon": False,
    "legend.fontsize": 9,
}


def _svg_uri(fig: Figure, tight: bool = True) -> str:
    """SVG data URI; ``tight=False`` keeps the figure's own margins (one draw instead of two: faster)."""
    buf = io.BytesIO()
    fig.savefig(
        buf, format="svg", bbox_inches="tight" if tight else None, metadata={"Date": None, "Creator": None}
    )
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bin_edges(values: np.ndarray, bins: int = N_BINS) -> np.ndarray:
    """Shared edges for all groups: from the 0.1th to the 99.9th percentile of the finite values
    (integer-aligned for integer-valued columns); values outside land in the edge bins."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = (float(x) for x in np.quantile(v, [0.001, 0.999]))
    if np.all(v == np.round(v)) and hi - lo <= bins:  # small integer range: one bin per integer
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.5)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram(
    groups: Sequence[tuple[str, np.ndarray, str]],
    edges: np.ndarray,
    cuts: Sequence[Cut] = (),
    xlabel: str = "",
) -> str:
    """Overlaid step-filled histograms of ``(label, values, colour)`` groups with threshold lines."""
    with rc_context(_STYLE):
        fig = Figure(figsize=(4.4, 2.7))
        ax = fig.add_subplot()
        for label, vals, color in groups:
            v = vals[np.isfinite(vals)]
            if v.size == 0:
                continue
            counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
            ax.stairs(counts, edges, fill=True, alpha=0.35, color=color)
            ax.stairs(counts, edges, color=color, linewidth=1.2, label=f"{label} ({v.size:,})")
        for c in cuts:
            ax.axvline(c.value, color=CUT, linestyle="--", linewidth=1.2)
            ax.annotate(
                f"{c.op} {c.value:.4g}",
                xy=(c.value, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -2),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=CUT,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("rows")
        ax.set_xlim(edges[0], edges[-1])
        ax.margins(y=0.05)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=3, borderaxespad=0.0)
        fig.subplots_adjust(left=0.15, right=0.97, top=0.86, bottom=0.19)
        return _svg_uri(fig, tight=False)


def scatter(
    x: np.ndarray,
    y: np.ndarray,
    kept: np.ndarray | None,
    xlabel: str,
    ylabel: str,
    cuts: Sequence[Cut] = (),
) -> str:
    """Scatter of a (bounded) sample; kept / dropped coloured when ``kept`` is given."""
    with rc_context(_STYLE):
        fig = Figure(figsize=(5.2, 4.2))
        ax = fig.add_subplot()
        size = 18 if len(x) < 500 else 6
        if kept is None:
            ax.scatter(x, y, s=size, alpha=0.5, color=KEPT, linewidths=0, rasterized=True)
        else:
            for m, label, color in ((~kept, "dropped", DROPPED), (kept, "kept", KEPT)):
                ax.scatter(
                    x[m], y[m], s=size, alpha=0.5, color=color, linewidths=0, rasterized=True,
                    label=f"{label} ({int(m.sum()):,})",
                )  # fmt: skip
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncols=2, markerscale=2.5)
        for c in cuts:
            if c.column == xlabel:
                ax.axvline(c.value, color=CUT, linestyle="--", linewidth=1.1)
            if c.column == ylabel:
                ax.axhline(c.value, color=CUT, linestyle="--", linewidth=1.1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return _svg_uri(fig)


def bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], ylabel: str) -> str:
    """Grouped bars (e.g. the CoTR distribution over all images and over images with text)."""
    with rc_context(_STYLE):
        fig = Figure(figsize=(4.8, 2.5))
        ax = fig.add_subplot()
        n = max(len(series), 1)
        w = 0.8 / n
        xs = np.arange(len(labels))
        for i, (label, vals, color) in enumerate(series):
            ax.bar(xs + (i - (n - 1) / 2) * w, vals, width=w, color=color, label=label)
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper center")
        return _svg_uri(fig)
