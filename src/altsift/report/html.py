"""``altsift report``: one self-contained HTML page showing what a run holds and what a selection kept.

The page opens offline: CSS is inline, plots are SVG data URIs drawn by matplotlib
(:mod:`altsift.report.plots`), thumbnails are small JPEG data URIs read from the original shards
(:mod:`altsift.report.thumbs`), and a Content-Security-Policy forbids every network request. No
JavaScript. Sections: overview and statuses; the selection funnel of each subset; per-signal
histograms of kept vs dropped with the thresholds drawn (from the structured steps, see
:mod:`altsift.report.steps`); a scatter of two signals (bounded sample); thumbnail grids of top,
bottom and borderline samples per signal and of what each step removed; Parrot statistics and
examples with the OCR polygons drawn; a cluster overview; the side-by-side comparison of two subsets;
and per subset the caption statistics of :mod:`altsift.report.stats`.

Memory: the pool frame holds only ``uid, status, shard, key`` and the columns the steps use; signal
columns are read one at a time; scatter plots draw at most ``SCATTER_POINTS`` rows; thumbnails are
capped per grid and in total, and only the shards holding them are read.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from altsift.errors import AltsiftError, ConfigError
from altsift.report import plots
from altsift.report.stats import TEXT_SAMPLE, parrot_stats, raw_score_column, sample_positions
from altsift.report.steps import Cut, StepInfo, replay_step, step_columns
from altsift.report.subsets import CLUSTER_COLUMNS, PoolView, Subset, caption_stats
from altsift.report.summary import IDENTITY_COLUMNS, PoolTables, _shards, _statuses
from altsift.report.thumbs import THUMB_SIDE, Thumb, read_thumbnails, shard_sources

log = logging.getLogger(__name__)

PER_GRID = 12
MAX_THUMBS = 600
MAX_SIGNAL_GRIDS = 8
SCATTER_POINTS = 3000
PARROT_SIDE = 224
CLUSTERS_SHOWN = 12
CLUSTER_THUMBS = 4
CAPTION_CHARS = 160
SYNTHETIC_COLUMNS = ("synthetic_caption",)


# ============================================================================ data
@dataclass
class Card:
    row: int
    badge: str | None = None  # "kept" | "dropped" | "A only" ...
    badge_class: str = ""


@dataclass
class Grid:
    gid: str
    title: str
    note: str = ""
    cards: list[Card] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    parrot: bool = False
    group: str = ""


@dataclass
class SignalView:
    column: str
    summary: dict[str, Any]
    plot: str
    compare_plot: str | None = None
    cuts: list[Cut] = field(default_factory=list)


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` entries spread evenly over ``idx`` (deterministic, order kept)."""
    if idx.size <= k:
        return idx
    return idx[np.unique(np.linspace(0, idx.size - 1, k).round().astype(int))]


def _k_smallest(key: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest ``key`` values, ascending, ties in position order; O(n)."""
    if key.size <= k:
        return np.lexsort((np.arange(key.size), key))
    kth = np.partition(key, k - 1)[k - 1]
    less = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[: k - less.size]
    pos = np.concatenate([less, ties])
    return pos[np.lexsort((pos, key[pos]))]


def _describe(v: np.ndarray) -> dict[str, Any]:
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return {"non_null": 0}
    p10, p50, p90 = (float(x) for x in np.quantile(fin, [0.1, 0.5, 0.9]))
    return {
        "non_null": int(fin.size),
        "mean": float(fin.mean()),
        "min": float(fin.min()),
        "p10": p10,
        "p50": p50,
        "p90": p90,
        "max": float(fin.max()),
    }


def _numeric_columns(tab: PoolTables) -> list[tuple[str, str]]:
    """``(column, kind)`` for signal columns: kind ``numeric`` or ``boolean``, in schema order."""
    out: dict[str, str] = {}
    for s in tab.schemas:
        for f in s:
            if f.name in IDENTITY_COLUMNS or f.name in out or f.name in CLUSTER_COLUMNS:
                continue
            t = f.type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if pa.types.is_boolean(t):
                out[f.name] = "boolean"
            elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
                out[f.name] = "numeric"
    return list(out.items())


class ReportOptions(BaseModel):
    """Options of the HTML report (``altsift report`` flags, :func:`write_html` keywords)."""

    model_config = ConfigDict(extra="forbid")
    per_grid: int = Field(PER_GRID, ge=1, le=100, description="thumbnails per grid")
    max_thumbs: int = Field(MAX_THUMBS, ge=0, description="thumbnails in the whole page")
    max_signal_grids: int = Field(
        MAX_SIGNAL_GRIDS, ge=0, description="signals with top/bottom/borderline grids"
    )
    scatter: tuple[str, str] | None = Field(None, description="the two columns of the scatter plot")
    images: bool = Field(True, description="read thumbnails from the shards")
    progress: bool = Field(True, description="progress bars")
    text_sample: int = Field(TEXT_SAMPLE, ge=1, description="captions counted per row of the caption table")


class ReportData:
    """Everything the page shows, computed from the tables, the subsets and (for thumbnails) the shards."""

    def __init__(self, run_dir: Path, subsets: Sequence[Path] = (), **options: Any) -> None:
        try:
            o = ReportOptions(**options)
        except ValidationError as e:
            raise ConfigError(f"report options: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
        per_grid, max_thumbs, progress = o.per_grid, o.max_thumbs, o.progress
        max_signal_grids, scatter, text_sample = o.max_signal_grids, o.scatter, o.text_sample
        from tqdm.auto import tqdm

        self.run_dir, self.per_grid, self.progress = Path(run_dir), per_grid, progress
        self.pool = pool = PoolView(self.run_dir, [Path(p) for p in subsets])
        self.tab = tab = pool.tab
        self.df = df = pool.df
        self.n, self.first, self.eligible = pool.n, pool.first, pool.eligible
        self.subsets, self.cluster_col = pool.subsets, pool.cluster_col
        self.shards = _shards(tab, self.run_dir)
        self.statuses = _statuses(df)
        self.sections_grids: dict[str, list[Grid]] = {}
        self.step_notes: dict[str, list[tuple[StepInfo, str | None, Grid | None]]] = {}
        # --- signals: one column at a time
        cols = _numeric_columns(tab)
        self.booleans: list[dict[str, Any]] = []
        self.signals: list[SignalView] = []
        all_cuts = [c for s in self.subsets for c in s.cuts]
        cut_cols = list(dict.fromkeys(c.column for c in all_cuts))
        numeric = [c for c, k in cols if k == "numeric"]
        for c in scatter or ():
            if c not in tab.columns:
                raise ConfigError(
                    f"--scatter: column '{c}' is not in the tables. Numeric columns: {', '.join(numeric)}"
                )
        self.scatter_cols = scatter or self._pick_scatter(cut_cols, numeric)
        grid_cols = [
            c for c in dict.fromkeys([*cut_cols, *(self.scatter_cols or ()), *numeric]) if c in numeric
        ]
        grid_cols = grid_cols[:max_signal_grids]
        a = self.subsets[0] if self.subsets else None
        b = self.subsets[1] if len(self.subsets) > 1 else None
        for col, kind in tqdm(cols, desc="report: signals", unit="column", disable=not progress):
            v = tab.floats(col)
            if kind == "boolean":
                rec = {"column": col, "pool": _share(v, self.eligible)}
                for s in self.subsets:
                    rec[s.label] = _share(v, s.kept)
                self.booleans.append(rec)
                continue
            self.signals.append(self._signal_view(col, v, a, b, all_cuts))
            if col in grid_cols:
                self.sections_grids.setdefault("signals", []).extend(self._signal_grids(col, v, a))
        # --- scatter
        self.scatter_plot = self._scatter(a) if self.scatter_cols else None
        # --- selection steps
        for s in self.subsets:
            self.step_notes[s.label] = self._step_grids(s)
        # --- parrot, clusters, comparison, captions
        self.parrot = parrot_stats(self.run_dir) if "has_text" in tab.columns else None
        self.parrot_plot = self._parrot_plot() if self.parrot else None
        if self.parrot and "cotr" in tab.columns:
            self.sections_grids["parrot"] = self._parrot_grids()
        self.clusters = self._clusters() if self.cluster_col else None
        self.compare = self._compare(a, b) if a is not None and b is not None else None
        self.captions = caption_stats(pool, text_sample)
        # --- thumbnails
        self.thumbs: dict[tuple[str, str], Thumb] = {}
        self.big_thumbs: dict[tuple[str, str], Thumb] = {}
        self.values: dict[str, dict[int, Any]] = {}
        self.thumb_note = None
        self._collect(o.images, max_thumbs)

    # ------------------------------------------------------------------ signals
    @staticmethod
    def _pick_scatter(cut_cols: list[str], numeric: list[str]) -> tuple[str, str] | None:
        prefer = [c for c in cut_cols if c in numeric]
        prefer += [
            c for c in ("clip_score", "clip_l14_similarity_score", "sieve_mean", "cotr") if c in numeric
        ]
        prefer += numeric
        pick = list(dict.fromkeys(prefer))
        return (pick[0], pick[1]) if len(pick) >= 2 else None

    def _signal_view(
        self, col: str, v: np.ndarray, a: Subset | None, b: Subset | None, all_cuts: list[Cut]
    ) -> SignalView:
        edges = plots.bin_edges(v)
        col_cuts = [c for c in all_cuts if c.column == col]
        if a is not None:
            groups = [("kept", v[a.kept], plots.KEPT), ("dropped", v[~a.kept], plots.DROPPED)]
            a_cuts = [c for c in a.cuts if c.column == col]
        else:
            groups = [("pool", v, plots.KEPT)]
            a_cuts = []
        plot = plots.histogram(groups, edges, a_cuts, xlabel=col)
        cmp_plot = None
        if b is not None:
            a_only, b_only = a.kept & ~b.kept, b.kept & ~a.kept
            cmp_plot = plots.histogram(
                [
                    (f"only {a.short}", v[a_only], plots.A_ONLY),
                    (f"only {b.short}", v[b_only], plots.B_ONLY),
                    ("both", v[a.kept & b.kept], plots.BOTH),
                ],
                edges,
                col_cuts,
                xlabel=col,
            )
        return SignalView(col, _describe(v), plot, cmp_plot, a_cuts)

    def _signal_grids(self, col: str, v: np.ndarray, a: Subset | None) -> list[Grid]:
        k = self.per_grid
        idx = np.flatnonzero(self.eligible & np.isfinite(v))
        if idx.size == 0:
            return []
        vals = v[idx]
        cut = next((c for c in (a.cuts if a else []) if c.column == col), None)
        grids = [
            Grid(f"sig-{col}-top", f"{col}: highest", "", self._cards(idx[_k_smallest(-vals, k)], a), [col], group=col),
            Grid(f"sig-{col}-bottom", f"{col}: lowest", "", self._cards(idx[_k_smallest(vals, k)], a), [col], group=col),
        ]  # fmt: skip
        if cut is not None:
            centre, what = cut.value, f"nearest the threshold {cut.op} {cut.value:.4g}"
        else:
            centre = float(np.median(vals))
            what = f"nearest the median {centre:.4g}"
        up = np.flatnonzero(vals >= centre)
        down = np.flatnonzero(vals < centre)
        above = idx[up[_k_smallest(vals[up] - centre, (k + 1) // 2)]]
        below = idx[down[_k_smallest(centre - vals[down], k // 2)]]
        border = np.concatenate([above[::-1], below])
        grids.append(
            Grid(f"sig-{col}-border", f"{col}: borderline", what, self._cards(border, a), [col], group=col)
        )
        return grids

    def _cards(self, rows: Iterable[int], sub: Subset | None) -> list[Card]:
        out = []
        for r in rows:
            r = int(r)
            if sub is None:
                out.append(Card(r))
            elif sub.kept[r]:
                out.append(Card(r, "kept", "kept"))
            else:
                out.append(Card(r, "dropped", "dropped"))
        return out

    def _scatter(self, a: Subset | None) -> str | None:
        xc, yc = self.scatter_cols  # type: ignore[misc]
        x, y = self.tab.floats(xc), self.tab.floats(yc)
        idx = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        if idx.size == 0:
            return None
        idx = idx[sample_positions(idx.size, SCATTER_POINTS, seed=0)]
        kept = a.kept[idx] if a is not None else None
        return plots.scatter(x[idx], y[idx], kept, xc, yc, a.cuts if a else [])

    # ------------------------------------------------------------------ steps
    def _step_grids(self, sub: Subset) -> list[tuple[StepInfo, str | None, Grid | None]]:
        out: list[tuple[StepInfo, str | None, Grid | None]] = []
        js = sub.summary or {}
        if js.get("pool_rows") is not None and js.get("pool_rows") != self.n:
            return [
                (s, "the pool changed since this selection was made (other row count): no examples", None)
                for s in sub.steps
            ]
        mask = np.ones(self.n, dtype=bool)
        for i, step in enumerate(sub.steps):
            try:
                new, alone = replay_step(step, self.df, mask, i == len(sub.steps) - 1, sub.npy)
            except (AltsiftError, KeyError, ValueError) as e:
                out.append((step, f"cannot re-evaluate this step on the tables: {e}", None))
                out += [(s, None, None) for s in sub.steps[i + 1 :]]
                break
            if (
                new is None
                or int(new.sum()) != step.kept_cumulative
                or (alone is not None and step.kept_alone is not None and alone != step.kept_alone)
            ):
                note = (
                    "this step cannot be re-evaluated from the tables"
                    if new is None
                    else f"re-evaluating this step keeps {int(new.sum()):,}, the selection recorded "
                    f"{step.kept_cumulative:,}"
                )
                out.append((step, note + "; no examples", None))
                out += [(s, None, None) for s in sub.steps[i + 1 :]]
                break
            removed = np.flatnonzero(mask & ~new)
            grid = None
            if removed.size:
                cols = [c for c in step_columns(step, self.tab.columns, IDENTITY_COLUMNS) if c != "uid"]
                if step.kind == "status":
                    cols = ["status", "error"]
                if step.column and step.column in self.df.columns:
                    vals = pd.to_numeric(self.df[step.column], errors="coerce").to_numpy(np.float64)[removed]
                    if step.threshold is not None:  # nearest the threshold first (missing values last)
                        key = np.nan_to_num(np.abs(vals - step.threshold), nan=np.inf)
                        note = f"{removed.size:,} removed here, nearest the threshold first"
                    else:
                        key = -np.nan_to_num(vals, nan=-np.inf)
                        note = f"{removed.size:,} removed here, highest {step.column} first"
                    removed = removed[np.argsort(key, kind="stable")]
                else:
                    note = f"{removed.size:,} removed here, spread over the pool"
                grid = Grid(
                    f"step-{sub.short}-{i}",
                    f"{i + 1}. {step.name}",
                    note,
                    [Card(int(r), "removed", "dropped") for r in _spread(removed, self.per_grid)],
                    cols,
                )
            out.append((step, None, grid))
            mask = new
        return out

    # ------------------------------------------------------------------ parrot
    def _parrot_plot(self) -> str | None:
        st = self.parrot
        series = []
        for key, label, color in (("exact", "CoTR", plots.KEPT), ("fuzzy", "fuzzy CoTR", plots.DROPPED)):
            r = st.get(key) if st else None
            if r and r["images_with_text"]:
                series.append(
                    (f"{label}, images with text", [c / r["images_with_text"] for c in r["hist_text"]], color)
                )
        if not series:
            return None
        return plots.bars(st["bins"], series, "share of images with text")

    def _parrot_grids(self) -> list[Grid]:
        cotr = self.tab.floats("cotr")
        ht = self.tab.floats("has_text")
        k = self.per_grid
        parrot = np.flatnonzero(self.eligible & (cotr > 0))
        parrot = parrot[np.argsort(-cotr[parrot], kind="stable")]
        plain = np.flatnonzero(self.eligible & (ht == 1) & (cotr == 0))
        cols = [c for c in ("cotr", "cotr_fuzzy", "rsa", "rsc") if c in self.tab.columns]
        return [
            Grid("parrot-top", "Parrot captions (highest CoTR)", "red boxes: co-embedded text; amber: other text",
                 [Card(int(r)) for r in _spread(parrot, k)], cols, parrot=True),
            Grid("parrot-text", "Embedded text the caption does not repeat (CoTR = 0)", "",
                 [Card(int(r)) for r in _spread(plain, k // 2)], cols, parrot=True),
        ]  # fmt: skip

    # ------------------------------------------------------------------ clusters
    def _clusters(self) -> dict[str, Any]:
        cl = pd.to_numeric(self.df[self.cluster_col], errors="coerce").to_numpy(np.float64)
        valid = self.eligible & np.isfinite(cl) & (cl >= 0)
        ids, counts = np.unique(cl[valid], return_counts=True)
        order = np.argsort(-counts, kind="stable")[:CLUSTERS_SHOWN]
        clip_col = raw_score_column(self.tab.columns)
        clip = self.tab.floats(clip_col) if clip_col else None
        has_text = self.tab.floats("has_text") if "has_text" in self.tab.columns else None
        rows = []
        for j in order:
            cid = ids[j]
            members = np.flatnonzero(valid & (cl == cid))
            rec: dict[str, Any] = {"cluster": int(cid), "size": int(counts[j])}
            for s in self.subsets:
                rec[s.label] = float(s.kept[members].mean())
            if clip is not None:
                rec["mean clip"] = (
                    float(np.nanmean(clip[members])) if np.isfinite(clip[members]).any() else None
                )
            if has_text is not None:
                rec["with text"] = (
                    float(np.nanmean(has_text[members])) if np.isfinite(has_text[members]).any() else None
                )
            rec["grid"] = Grid(
                f"cluster-{int(cid)}", f"cluster {int(cid)}", "",
                self._cards(_spread(members, CLUSTER_THUMBS), self.subsets[0] if self.subsets else None),
                [c for c in [clip_col] if c],
            )  # fmt: skip
            rows.append(rec)
        return {"column": self.cluster_col, "k": int(ids.size), "rows": rows, "clip_column": clip_col}

    # ------------------------------------------------------------------ comparison
    def _compare(self, a: Subset, b: Subset) -> dict[str, Any]:
        a_only, b_only, both = a.kept & ~b.kept, b.kept & ~a.kept, a.kept & b.kept
        union = int((a.kept | b.kept).sum())
        la, lb = a.short, b.short
        k = self.per_grid
        pa_ = np.flatnonzero(a_only)
        pb_ = np.flatnonzero(b_only)
        cols = list(dict.fromkeys(c.column for c in [*a.cuts, *b.cuts]))
        cols = [c for c in cols if c in self.tab.columns] or (list(self.scatter_cols or ()))
        return {
            "a": a,
            "b": b,
            "sizes": {la: int(a.kept.sum()), lb: int(b.kept.sum())},
            "both": int(both.sum()),
            "a_only": int(a_only.sum()),
            "b_only": int(b_only.sum()),
            "jaccard": int(both.sum()) / union if union else None,
            "grids": [
                Grid(
                    "cmp-a-only",
                    f"{la} keeps, {lb} drops",
                    f"{pa_.size:,} rows; a random sample",
                    [Card(int(r), f"only {la}", "aonly") for r in pa_[sample_positions(pa_.size, k, 1)]],
                    cols,
                ),
                Grid(
                    "cmp-b-only",
                    f"{lb} keeps, {la} drops",
                    f"{pb_.size:,} rows; a random sample",
                    [Card(int(r), f"only {lb}", "bonly") for r in pb_[sample_positions(pb_.size, k, 2)]],
                    cols,
                ),
            ],  # fmt: skip
        }

    # ------------------------------------------------------------------ thumbnails
    def all_grids(self) -> list[Grid]:
        out: list[Grid] = []
        out += self.sections_grids.get("parrot", [])
        for s in self.subsets:
            out += [g for _, _, g in self.step_notes[s.label] if g is not None]
        if self.compare:
            out += self.compare["grids"]
        out += self.sections_grids.get("signals", [])
        if self.clusters:
            out += [r["grid"] for r in self.clusters["rows"]]
        return out

    def _collect(self, images: bool, max_thumbs: int) -> None:
        grids = self.all_grids()
        rows = sorted({c.row for g in grids for c in g.cards})
        arr = np.asarray(rows, dtype=np.int64)
        value_cols = {"text", *SYNTHETIC_COLUMNS, *(c for g in grids for c in g.columns)}
        parrot_rows = np.asarray(sorted({c.row for g in grids if g.parrot for c in g.cards}), dtype=np.int64)
        for col in sorted(value_cols):
            if col in self.df.columns:
                self.values[col] = {r: _py(self.df[col].iat[r]) for r in rows}
            elif col in self.tab.columns and arr.size:
                self.values[col] = self.tab.values_at(col, arr)
        if parrot_rows.size:
            for col in ("ocr_polygons", "ocr_strings", "ocr_text", "co_emb_text"):
                if col in self.tab.columns:
                    self.values[col] = self.tab.values_at(col, parrot_rows)
        if not images:
            self.thumb_note = "thumbnails were not requested (--no-images)"
            return
        budget, wanted, big = max_thumbs, [], []
        seen: set[tuple[int, bool]] = set()
        for g in grids:
            for c in g.cards:
                if (c.row, g.parrot) in seen:
                    continue
                if budget <= 0:
                    self.thumb_note = (
                        f"the thumbnail cap ({max_thumbs}) was reached: later cards have no image"
                    )
                    break
                seen.add((c.row, g.parrot))
                budget -= 1
                (big if g.parrot else wanted).append(self._where(c.row))
        src = shard_sources(self.tab.files)
        self.thumbs = read_thumbnails(wanted, src, THUMB_SIDE, progress=self.progress)
        if big:
            self.big_thumbs = read_thumbnails(big, src, PARROT_SIDE, progress=False)

    def _where(self, row: int) -> tuple[str, str]:
        key = str(self.df["key"].iat[row]) if "key" in self.df.columns else ""
        return str(self.df["shard"].iat[row]), key

    def thumb(self, row: int, big: bool = False) -> Thumb | None:
        if "key" not in self.df.columns:
            return None
        return (self.big_thumbs if big else self.thumbs).get(self._where(row))


def _py(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return x


def _share(v: np.ndarray, mask: np.ndarray) -> float | None:
    x = v[mask]
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


# ============================================================================ rendering
CSS = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1d2430;--muted:#5f6b7a;--line:#e2e6eb;--kept:#2f6fb0;--drop:#e07b39;
--aonly:#7b3fb0;--bonly:#2a9d6f;--cut:#c62828;--head:#17202c}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
header{background:var(--head);color:#fff;padding:18px 28px 14px}
header h1{margin:0;font-size:20px;font-weight:600;letter-spacing:.2px}
header .meta{color:#b8c2cf;font-size:12.5px;margin-top:4px;word-break:break-all}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:6px 28px;
display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px}
nav a{color:var(--kept);text-decoration:none;padding:3px 0}
nav a:hover{text-decoration:underline}
main{max-width:1320px;margin:0 auto;padding:8px 24px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px 18px;
margin:18px 0;box-shadow:0 1px 2px rgba(20,30,40,.04)}
h2{font-size:17px;margin:0 0 10px;font-weight:600}
h3{font-size:14.5px;margin:18px 0 8px;font-weight:600}
h4{font-size:13px;margin:12px 0 6px;font-weight:600;color:#333}
p.note,.note{color:var(--muted);font-size:12.5px;margin:4px 0 10px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:4px 0 8px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:130px;background:#fafbfc}
.kpi b{display:block;font-size:20px;font-weight:600}
.kpi span{color:var(--muted);font-size:12px}
table.data{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px}
table.data th,table.data td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
table.data th{background:#f7f8fa;font-weight:600;color:#333}
table.data td.n,table.data th.n{text-align:right;font-variant-numeric:tabular-nums}
.funnel{display:grid;grid-template-columns:minmax(220px,2.3fr) minmax(160px,3fr) 90px 90px;gap:4px 12px;
align-items:center;font-size:12.5px;margin:6px 0}
.funnel .hd{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.4px}
.funnel .name{overflow-wrap:anywhere}
.funnel .sub{padding-left:18px;color:var(--muted)}
.bar{height:14px;background:#edf0f3;border-radius:3px;position:relative;overflow:hidden}
.bar i{position:absolute;left:0;top:0;bottom:0;background:var(--kept);border-radius:3px}
.bar.sub i{background:#9bb8d6}
.kind{display:inline-block;font-size:10.5px;border:1px solid var(--line);border-radius:9px;padding:0 6px;
margin-right:6px;color:var(--muted);background:#fafbfc}
.cut{color:var(--cut);font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11.5px;white-space:nowrap}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:#fff}
figure img{display:block;width:100%;height:auto}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
figcaption b{color:var(--ink);font-weight:600}
figure.scatter{max-width:620px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(152px,1fr));gap:10px;margin:4px 0 10px}
.grid.big{grid-template-columns:repeat(auto-fill,minmax(240px,1fr))}
.card{border:1px solid var(--line);border-radius:7px;overflow:hidden;background:#fff;font-size:11.5px;
display:flex;flex-direction:column}
.thumb{height:136px;background:#eceff3;display:flex;align-items:center;justify-content:center;position:relative}
.big .thumb{height:232px}
.thumb img{max-width:100%;max-height:100%;display:block}
.ov{position:relative;display:block}
.ov img{width:100%;height:100%}
.ov svg{position:absolute;left:0;top:0;width:100%;height:100%}
.ph{color:#7d8794;font-size:11px;padding:8px;text-align:center;overflow-wrap:anywhere}
.badge{position:absolute;left:5px;top:5px;font-size:10px;font-weight:600;color:#fff;border-radius:8px;
padding:1px 7px;background:#6b7785}
.badge.kept{background:var(--kept)}.badge.dropped{background:var(--drop)}
.badge.aonly{background:var(--aonly)}.badge.bonly{background:var(--bonly)}
.body{padding:6px 8px 7px;display:flex;flex-direction:column;gap:3px}
.cap{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden;overflow-wrap:anywhere}
.syn{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden;color:#4a5563;
font-style:italic;overflow-wrap:anywhere}
.syn:before{content:"syn: ";font-style:normal;color:var(--muted)}
.ocr{color:#8a4b00;overflow-wrap:anywhere;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;
overflow:hidden}
.ocr:before{content:"ocr: ";color:var(--muted)}
.vals{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10.5px;color:#2b3440;display:grid;
grid-template-columns:minmax(0,auto) minmax(40px,1fr);gap:0 6px}
.err{color:#a33a16;font-size:10.5px;display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden;overflow-wrap:anywhere}
.vals dt{color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.vals dd{margin:0;text-align:right;overflow-wrap:anywhere}
.where{color:#98a1ac;font-size:10px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
details{margin:6px 0}
details>summary{cursor:pointer;font-weight:600;font-size:13.5px;padding:4px 0}
.warn{background:#fff6e5;border:1px solid #f3d08a;border-radius:6px;padding:6px 10px;font-size:12.5px;margin:6px 0}
.two{display:grid;grid-template-columns:1fr 1fr;gap:18px}
@media(max-width:900px){.two{grid-template-columns:1fr}.plots{grid-template-columns:1fr}}
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _id(s: str) -> str:
    """An HTML id from any text (column names may hold spaces or quotes)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", s)


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool | np.bool_):
        return "true" if x else "false"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        x = float(x)
        if not np.isfinite(x):
            return "–"
        if x == int(x) and abs(x) < 1e9:
            return f"{int(x):,}"
        return f"{x:.4g}"
    s = str(x)
    return s if len(s) <= 60 else s[:59] + "…"


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _clip_text(s: Any, n: int = CAPTION_CHARS) -> str:
    t = " ".join(str(s).split()) if s is not None else ""
    return t if len(t) <= n else t[: n - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] = ()) -> str:
    numeric = list(numeric) or [False] * len(header)
    th = "".join(
        f'<th class="{"n" if n else ""}">{esc(h)}</th>' for h, n in zip(header, numeric, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"n" if n else ""}">{c if isinstance(c, _Raw) else esc(c)}</td>'
            for c, n in zip(r, numeric, strict=True)
        ) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f'<table class="data"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """Already-escaped HTML inside a table cell."""


def _kpi(value: str, label: str) -> str:
    return f'<div class="kpi"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def _img(uri: str, alt: str, cls: str = "") -> str:
    return f'<img src="{uri}" alt="{esc(alt)}"{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>'


class Page:
    """Renders a :class:`ReportData` as one HTML document."""

    def __init__(self, d: ReportData) -> None:
        self.d = d

    # ---------------------------------------------------------------- cards
    def card(self, c: Card, g: Grid) -> str:
        d = self.d
        v = d.values
        thumb = d.thumb(c.row, big=g.parrot)
        badge = f'<span class="badge {c.badge_class}">{esc(c.badge)}</span>' if c.badge else ""
        if thumb is not None and thumb.data_uri:
            img = _img(thumb.data_uri, f"sample {c.row}")
            if g.parrot:
                img = self._overlay(c.row, thumb, img)
            pic = f'<div class="thumb">{img}{badge}</div>'
        else:
            why = (
                thumb.error if thumb is not None else (d.thumb_note or "no image: the table has no shard key")
            )
            pic = f'<div class="thumb"><div class="ph">{esc(why)}</div>{badge}</div>'
        text = v.get("text", {}).get(c.row)
        parts = [
            f'<div class="cap" title="{esc(text)}">{esc(_clip_text(text)) or "<i>(no caption)</i>"}</div>'
        ]
        for sc in SYNTHETIC_COLUMNS:
            syn = v.get(sc, {}).get(c.row)
            if syn:
                parts.append(f'<div class="syn" title="{esc(syn)}">{esc(_clip_text(syn))}</div>')
        if g.parrot:
            ocr = v.get("ocr_text", {}).get(c.row)
            if ocr:
                parts.append(f'<div class="ocr" title="{esc(ocr)}">{esc(_clip_text(ocr, 120))}</div>')
        vals = []
        for col in g.columns:
            if col in v and c.row in v[col]:
                if col == "error":
                    if v[col][c.row]:
                        parts.append(
                            f'<div class="err" title="{esc(v[col][c.row])}">{esc(v[col][c.row])}</div>'
                        )
                    continue
                vals.append(f"<dt>{esc(col)}</dt><dd>{esc(fmt(v[col][c.row]))}</dd>")
        if vals:
            parts.append(f'<dl class="vals">{"".join(vals)}</dl>')
        shard, key = d._where(c.row)
        where = f"{shard}/{key}" if key else f"uid {d.df['uid'].iat[c.row]}"
        parts.append(f'<div class="where" title="{esc(where)}">{esc(where)}</div>')
        return f'<div class="card">{pic}<div class="body">{"".join(parts)}</div></div>'

    def _overlay(self, row: int, thumb: Thumb, img: str) -> str:
        """The image with its OCR polygons drawn on top (SVG in the frame the OCR saw)."""
        from altsift.signals.parrot import co_emb_boxes

        polys = self.d.values.get("ocr_polygons", {}).get(row) or []
        strings = self.d.values.get("ocr_strings", {}).get(row) or []
        caption = self.d.values.get("text", {}).get(row)
        fw, fh = thumb.frame or (thumb.width, thumb.height)
        co = co_emb_boxes(list(strings), caption) if len(strings) == len(polys) else [False] * len(polys)
        shapes = []
        for p, is_co in zip(polys, co, strict=True):
            pts = " ".join(f"{float(x):.1f},{float(y):.1f}" for x, y in p)
            color = "#e53935" if is_co else "#ffb300"
            shapes.append(
                f'<polygon class="ocr-poly{" co" if is_co else ""}" points="{pts}" fill="{color}" '
                f'fill-opacity="0.18" stroke="{color}" stroke-width="{max(fw, fh) / 160:.2f}"/>'
            )
        svg = (
            f'<svg viewBox="0 0 {fw} {fh}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg" '
            f'aria-hidden="true">{"".join(shapes)}</svg>'
        )
        return f'<div class="ov" style="width:{thumb.width}px;height:{thumb.height}px">{img}{svg}</div>'

    def grid(self, g: Grid, heading: str = "h4") -> str:
        if not g.cards:
            return ""
        note = f' <span class="note">{esc(g.note)}</span>' if g.note else ""
        cards = "".join(self.card(c, g) for c in g.cards)
        cls = "grid big" if g.parrot else "grid"
        return (
            f'<{heading}>{esc(g.title)}{note}</{heading}><div class="{cls}" id="{_id(g.gid)}">{cards}</div>'
        )

    # ---------------------------------------------------------------- sections
    def overview(self) -> str:
        d = self.d
        sh = d.shards
        ok = int((d.df["status"] == "ok").sum())
        k = [_kpi(fmt(d.n), "rows in the pool"), _kpi(fmt(ok), "status ok"), _kpi(fmt(sh["count"]), "shards")]
        if sh["read_errors"]:
            k.append(_kpi(fmt(len(sh["read_errors"])), "shards with read errors"))
        for s in d.subsets:
            n = int(s.kept.sum())
            k.append(_kpi(f"{n:,}", f"kept by {s.label} ({pct(n / d.n if d.n else None)})"))
        rows = [
            [s["status"], fmt(s["count"]), pct(s["share"]), _clip_text(s["example_error"] or "", 140)]
            for s in d.statuses
        ]
        out = [f'<section id="overview"><h2>Overview</h2><div class="kpis">{"".join(k)}</div>']
        out.append(
            "<h3>Statuses</h3>" + _table(["status", "rows", "share", "first error"], rows, [0, 1, 1, 0])
        )
        if sh["read_errors"]:
            er = [[e["shard"], fmt(e["rows"]), _clip_text(e["error"], 160)] for e in sh["read_errors"]]
            out.append("<h3>Shard read errors</h3>" + _table(["shard", "rows kept", "error"], er, [0, 1, 0]))
        if d.booleans:
            hdr = ["flag", "pool (status ok)", *[s.label for s in d.subsets]]
            br = [
                [b["column"], pct(b["pool"]), *[pct(b.get(s.label)) for s in d.subsets]] for b in d.booleans
            ]
            out.append(
                "<h3>True/false signals: share true</h3>" + _table(hdr, br, [0] + [1] * (len(hdr) - 1))
            )
        out.append("</section>")
        return "".join(out)

    def funnel(self) -> str:
        d = self.d
        if not d.subsets:
            return ""
        out = ['<section id="funnel"><h2>Selection funnel</h2>']
        for s in d.subsets:
            js = s.summary or {}
            pool = js.get("pool_rows") or d.n
            out.append(f"<h3>{esc(s.label)}</h3>")
            if not s.steps:
                out.append(
                    f'<p class="note">No selection summary (.json) beside {esc(s.npy.name)}: '
                    f"{int(s.kept.sum()):,} rows of the pool are in it.</p>"
                )
                continue
            cells = [
                '<div class="hd">step</div><div class="hd">kept so far</div>'
                '<div class="hd" style="text-align:right">kept</div><div class="hd" style="text-align:right">removed</div>'
            ]
            prev = pool
            for st in s.steps:
                cells.append(self._funnel_row(st, pool, prev, sub=False))
                prev = st.kept_cumulative if st.kept_cumulative is not None else prev
                for sub in st.substeps:
                    cells.append(self._funnel_row(sub, pool, None, sub=True))
            out.append(f'<div class="funnel" id="funnel-{_id(s.short)}">{"".join(cells)}</div>')
            nested = (
                " Indented rows are a preset's own steps (kept so far within the preset)."
                if any(st.substeps for st in s.steps)
                else ""
            )
            out.append(
                f'<p class="note">{fmt(js.get("selected"))} of {fmt(pool)} rows selected '
                f"({pct(js.get('fraction_selected'), 2)}). Bars: rows left after this step and all earlier "
                f"ones.{nested}</p>"
            )
        out.append("</section>")
        return "".join(out)

    @staticmethod
    def _funnel_row(st: StepInfo, pool: int, prev: int | None, sub: bool) -> str:
        kc = st.kept_cumulative
        w = 100 * (kc or 0) / pool if pool else 0
        cut = ""
        name = st.name
        if st.kind == "where" and st.expr:  # the expression says it all
            name = st.expr
        elif st.column and st.threshold is not None:
            cut = f' <span class="cut">{esc(st.column)} {esc(st.op or ">=")} {st.threshold:.4g}</span>'
        elif st.fraction is not None:
            cut = f' <span class="cut">top {st.fraction:g}</span>'
        kind = f'<span class="kind">{esc(st.kind)}</span>' if st.kind else ""
        removed = fmt(prev - kc) if prev is not None and kc is not None else ""
        return (
            f'<div class="name{" sub" if sub else ""}">{kind}{esc(name)}{cut}</div>'
            f'<div class="bar{" sub" if sub else ""}" title="{pct(w / 100)}"><i style="width:{w:.2f}%"></i></div>'
            f'<div class="n" style="text-align:right">{fmt(kc)}</div>'
            f'<div class="n" style="text-align:right">{removed}</div>'
        )

    def signals(self) -> str:
        d = self.d
        if not d.signals:
            return ""
        a = d.subsets[0] if d.subsets else None
        what = f"kept vs dropped by {esc(a.label)}" if a else "over the pool"
        figs = []
        for sv in d.signals:
            s = sv.summary
            stats = (
                f"mean {fmt(s.get('mean'))} · p10 {fmt(s.get('p10'))} · median {fmt(s.get('p50'))} · "
                f"p90 {fmt(s.get('p90'))} · {fmt(s.get('non_null'))} values"
                if s.get("non_null")
                else "no values"
            )
            figs.append(
                f'<figure class="hist" id="hist-{_id(sv.column)}">{_img(sv.plot, f"histogram of {sv.column}")}'
                f"<figcaption><b>{esc(sv.column)}</b> · {stats}</figcaption></figure>"
            )
        return (
            f'<section id="signals"><h2>Signals</h2><p class="note">Histograms {what}; dashed red lines are '
            "the thresholds of the selection steps (values beyond the 0.1 / 99.9 percentiles are counted in "
            f'the edge bins).</p><div class="plots">{"".join(figs)}</div></section>'
        )

    def scatter(self) -> str:
        d = self.d
        if not d.scatter_plot or not d.scatter_cols:
            return ""
        x, y = d.scatter_cols
        return (
            f'<section id="scatter"><h2>Two signals</h2><p class="note">{esc(x)} against {esc(y)}, a random '
            f"sample of at most {SCATTER_POINTS:,} rows with both values; choose the pair with "
            f'<code>--scatter X,Y</code>.</p><figure class="scatter">{_img(d.scatter_plot, "scatter")}'
            "</figure></section>"
        )

    def examples(self) -> str:
        d = self.d
        out = []
        for s in d.subsets:
            parts = []
            for st, note, g in d.step_notes.get(s.label, []):
                if g is not None:
                    parts.append(self.grid(g))
                elif note:
                    parts.append(f"<h4>{esc(st.name)}</h4><p class='note'>{esc(note)}</p>")
            if parts:
                out.append(
                    f"<h3>What each step of {esc(s.label)} removed</h3><p class='note'>Samples this step "
                    f"removed while every earlier step kept them (at most {d.per_grid} per step).</p>"
                    + "".join(parts)
                )
        sig = d.sections_grids.get("signals", [])
        if sig:
            by_col: dict[str, list[Grid]] = {}
            for g in sig:
                by_col.setdefault(g.group, []).append(g)
            blocks = []
            for i, (col, gs) in enumerate(by_col.items()):
                blocks.append(
                    f"<details{' open' if i < 2 else ''}><summary>{esc(col)}</summary>"
                    + "".join(self.grid(g) for g in gs)
                    + "</details>"
                )
            out.append(
                "<h3>Per signal: highest, lowest, borderline</h3><p class='note'>Among rows with status ok; "
                "badges say whether the first subset kept the sample.</p>" + "".join(blocks)
            )
        if not out:
            return ""
        warn = f'<div class="warn">{esc(d.thumb_note)}</div>' if d.thumb_note else ""
        return f'<section id="examples"><h2>Examples</h2>{warn}{"".join(out)}</section>'

    def parrot(self) -> str:
        st = self.d.parrot
        if not st:
            return ""
        rows = [["images scored by ocr", fmt(st["images"]), ""],
                ["images with embedded text", fmt(st["with_text"]), pct(st["share_with_text"], 2)]]  # fmt: skip
        for label, r in (("CoTR", st["exact"]), ("fuzzy CoTR", st["fuzzy"])):
            if r is None:
                continue
            rows += [
                [f"{label}, mean over all images", "", pct(r["mean_all"], 2)],
                [f"{label}, mean over images with text", "", pct(r["mean_text"], 2)],
                [f"images with co-emb. text ({label} > 0)", fmt(r["co_emb"]),
                 f"{pct(r['share_co_emb_text'], 2)} of images with text"],
                [f"fully spotted captions ({label} = 1)", fmt(r["fully_spotted"]),
                 f"{pct(r['share_fully_text'], 2)} of images with text"],
                [f"partly spotted captions (0 < {label} < 1)", fmt(r["partly_spotted"]),
                 f"{pct(r['share_partly_text'], 2)} of images with text"],
            ]  # fmt: skip
        dist = []
        for key, label in (("exact", "CoTR"), ("fuzzy", "fuzzy CoTR")):
            r = st[key]
            if r is None:
                continue
            dist.append(
                f"<h4>{label} distribution</h4>"
                + _table(
                    ["CoTR", "all images", "images with text"],
                    [
                        [b, fmt(x), fmt(y)]
                        for b, x, y in zip(st["bins"], r["hist_all"], r["hist_text"], strict=True)
                    ],
                    [0, 1, 1],
                )
            )
        plot = (
            f'<figure id="cotr-plot">{_img(self.d.parrot_plot, "CoTR distribution")}</figure>'
            if self.d.parrot_plot
            else ""
        )
        grids = "".join(self.grid(g, "h3") for g in self.d.sections_grids.get("parrot", []))
        return (
            '<section id="parrot"><h2>Parrot captions</h2><p class="note">Statistics of Lin et al.\'s Table 1 '
            "(CoTR = share of a caption's distinct words that the OCR spotted in the image; "
            "<code>altsift stats RUN_DIR</code> prints the same).</p>"
            f'<div class="two"><div>{_table(["statistic", "images", "share"], rows, [0, 1, 1])}</div>'
            f"<div>{plot}</div></div>{''.join(dist)}{grids}</section>"
        )

    def clusters(self) -> str:
        c = self.d.clusters
        if not c:
            return ""
        keys = [k for k in c["rows"][0] if k not in ("grid",)] if c["rows"] else []
        body = []
        for r in c["rows"]:
            cells = [
                fmt(r[k]) if k in ("cluster", "size") else (fmt(r[k]) if k == "mean clip" else pct(r[k]))
                for k in keys
            ]
            cards = "".join(self.card(x, r["grid"]) for x in r["grid"].cards)
            body.append(
                f"<h4>cluster {r['cluster']} · {r['size']:,} rows</h4>"
                + _table(keys, [cells], [1] * len(keys))
                + f'<div class="grid" id="{_id(r["grid"].gid)}">{cards}</div>'
            )
        return (
            f'<section id="clusters"><h2>Clusters</h2><p class="note">The {len(c["rows"])} largest of '
            f"{c['k']:,} clusters in <code>{esc(c['column'])}</code> (rows with status ok); subset columns give "
            f"the share of the cluster each subset keeps.</p>{''.join(body)}</section>"
        )

    def compare(self) -> str:
        c = self.d.compare
        if not c:
            return ""
        a, b = c["a"], c["b"]
        la, lb = a.short, b.short
        kp = [
            _kpi(fmt(c["sizes"][la]), f"in {a.label}"),
            _kpi(fmt(c["sizes"][lb]), f"in {b.label}"),
            _kpi(fmt(c["both"]), "in both"),
            _kpi(fmt(c["a_only"]), f"only in {la}"),
            _kpi(fmt(c["b_only"]), f"only in {lb}"),
            _kpi(pct(c["jaccard"]), "overlap (Jaccard)"),
        ]

        def fig(sv: SignalView) -> str:
            return (
                f'<figure class="hist cmp">{_img(sv.compare_plot, f"{sv.column}: {la} only vs {lb} only")}'
                f"<figcaption><b>{esc(sv.column)}</b></figcaption></figure>"
            )

        used = {x.column for x in [*a.cuts, *b.cuts]} or set(self.d.scatter_cols or ())
        main = [sv for sv in self.d.signals if sv.compare_plot and sv.column in used]
        rest = [sv for sv in self.d.signals if sv.compare_plot and sv.column not in used]
        plots_html = f'<div class="plots">{"".join(fig(sv) for sv in main)}</div>' if main else ""
        if rest:
            plots_html += (
                f"<details{'' if main else ' open'}><summary>{len(rest)} other signals</summary>"
                f'<div class="plots">{"".join(fig(sv) for sv in rest)}</div></details>'
            )
        grids = "".join(self.grid(g, "h3") for g in c["grids"])
        return (
            f'<section id="compare"><h2>{esc(la)} vs {esc(lb)}</h2><div class="kpis">{"".join(kp)}</div>'
            f"{grids}<h3>Signals of what only one subset keeps</h3>{plots_html}</section>"
        )

    def captions(self) -> str:
        c = self.d.captions
        if not c:
            return ""
        rows = [
            [r["label"], fmt(r["rows"]), fmt(r["captions"]), fmt(r["unique_trigrams"]), fmt(r["unique_nouns"]),
             fmt(r["mean_clip"]), pct(r["synthetic_share"])]
            for r in c["rows"]
        ]  # fmt: skip
        cols = {r["clip_column"] for r in c["rows"] if r["clip_column"]}
        return (
            '<section id="captions"><h2>Captions used</h2>'
            + _table(
                [
                    "",
                    "rows",
                    "captions counted",
                    "distinct trigrams",
                    "distinct nouns",
                    "mean CLIP score",
                    "synthetic share",
                ],
                rows,
                [0, 1, 1, 1, 1, 1, 1],
            )  # fmt: skip
            + f'<p class="note">{esc(c["note"])} CLIP score column: {esc(", ".join(sorted(cols)) or "none")}. '
            "Statistics of Nguyen et al. (2023), who relate caption diversity and alignment to what CLIP "
            "learns.</p></section>"
        )

    def render(self) -> str:
        d = self.d
        body = [
            self.overview(),
            self.funnel(),
            self.compare(),
            self.signals(),
            self.scatter(),
            self.examples(),
            self.parrot(),
            self.clusters(),
            self.captions(),
        ]
        names = [
            ("overview", "Overview"), ("funnel", "Funnel"), ("compare", "Compare"), ("signals", "Signals"),
            ("scatter", "Scatter"), ("examples", "Examples"), ("parrot", "Parrot"), ("clusters", "Clusters"),
            ("captions", "Captions"),
        ]  # fmt: skip
        nav = "".join(
            f'<a href="#{sid}">{label}</a>' for (sid, label), part in zip(names, body, strict=True) if part
        )
        subsets = ", ".join(f"{s.label} ({s.npy})" for s in d.subsets) or "none"
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>altsift report: {esc(d.run_dir.name)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>altsift report · {esc(d.run_dir.name)}</h1><div class="meta">{esc(d.run_dir)} · '
            f"{d.n:,} rows · subsets: {esc(subsets)}</div></header><nav>{nav}</nav><main>"
            + "".join(body)
            + "</main></body></html>\n"
        )


def write_html(
    run_dir: str | Path,
    subsets: Sequence[Path] = (),
    out: Path | None = None,
    **options: Any,
) -> Path:
    """Write the HTML report (default ``RUN_DIR/report.html``); returns its path.

    Without ``subsets``, ``RUN_DIR/subset.npy`` is used when it exists. ``options`` go to
    :class:`ReportData` (``per_grid``, ``max_thumbs``, ``scatter``, ``images``, ``progress``, ...).
    """
    run_dir = Path(run_dir)
    subsets = [Path(s) for s in subsets]
    if not subsets and (run_dir / "subset.npy").is_file():
        subsets = [run_dir / "subset.npy"]
    out = Path(out) if out else (run_dir if run_dir.is_dir() else run_dir.parent) / "report.html"
    data = ReportData(run_dir, subsets, **options)
    page = Page(data).render()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
