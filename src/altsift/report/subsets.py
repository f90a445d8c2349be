"""The pool as a report sees it: a narrow frame, which rows are eligible, and each subset's kept rows.

A subset is given as its uid ``.npy`` (DataComp format) or the ``.json`` summary ``altsift select``
writes beside it; the summary (steps, preset options) and the preset's side ``.parquet`` (``caption``,
``caption_source``) are used when present. A row is *kept* by a subset when its uid is in the file
and it is the first row with that uid (as ``altsift select`` and DataComp's resharder count it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from altsift.errors import ConfigError
from altsift.io.tables import load_pool
from altsift.io.uids import load_subset, uids_to_array
from altsift.report.stats import (
    TEXT_SAMPLE,
    caption_rows_note,
    raw_score_column,
    sample_positions,
    text_diversity,
)
from altsift.report.steps import Cut, StepInfo, cuts, parse_steps, step_columns
from altsift.report.summary import IDENTITY_COLUMNS, PoolTables

CLUSTER_COLUMNS = ("cluster_id", "cluster")


@dataclass
class Subset:
    """One selection: its uid file, summary json (when present) and pool-length kept mask."""

    short: str  # "A", "B", ...
    label: str  # "A: stem"
    npy: Path
    summary: dict[str, Any] | None
    steps: list[StepInfo]
    kept: np.ndarray
    side: Path | None  # the preset's extra columns (caption, caption_source) beside the .npy

    @property
    def cuts(self) -> list[Cut]:
        return cuts(self.steps)

    @property
    def preset_options(self) -> dict[str, Any]:
        return next((s.detail.get("options") for s in self.steps if s.kind == "preset"), None) or {}


def subset_paths(p: str | Path) -> tuple[Path, Path | None]:
    """``(npy, json or None)`` for a subset given as its .npy or its .json."""
    p = Path(p)
    if p.suffix == ".json":
        if not p.is_file():
            raise ConfigError(f"selection summary {p} not found")
        js = json.loads(p.read_text())
        npy = Path(js.get("subset") or p.with_suffix(".npy"))
        return (npy if npy.is_file() else p.with_suffix(".npy")), p
    if p.suffix != ".npy":
        raise ConfigError(f"--subset expects a uid .npy or its .json summary, got {p}")
    js_path = p.with_suffix(".json")
    return p, js_path if js_path.is_file() else None


def _short(i: int) -> str:
    return chr(65 + i) if i < 26 else str(i + 1)


def member(subset: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``query`` rows (``u8,u8`` uids) present in the sorted ``subset``; the same answer as
    :func:`altsift.io.uids.contains`, but searching the high 64 bits as plain uint64 (a structured-dtype
    ``searchsorted`` is ~20x slower) and comparing the low bits only where the high bits match."""
    hi_name, lo_name = subset.dtype.names
    hi, lo = np.asarray(subset[hi_name]), np.asarray(subset[lo_name])
    qh, ql = query[query.dtype.names[0]], query[query.dtype.names[1]]
    out = np.zeros(len(query), dtype=bool)
    if hi.size == 0:
        return out
    left = np.searchsorted(hi, qh, side="left")
    right = np.searchsorted(hi, qh, side="right")
    one = right - left == 1
    out[one] = lo[left[one]] == ql[one]
    many = right - left > 1  # several subset uids share these high bits (rare for hashed uids)
    if many.any():
        q = np.ascontiguousarray(query[many]).astype(subset.dtype)
        out[many] = np.searchsorted(subset, q, side="right") > np.searchsorted(subset, q, side="left")
    return out


def load_subset_view(path: str | Path, i: int, query: np.ndarray, first: np.ndarray) -> Subset:
    """A subset's view of the pool; ``query`` is the pool's uids as a ``u8,u8`` array (pool order)."""
    npy, js_path = subset_paths(path)
    if not npy.is_file():
        raise ConfigError(f"subset file {npy} not found (a uid .npy written by 'altsift select')")
    summary = json.loads(js_path.read_text()) if js_path else None
    kept = member(load_subset(npy), query) & first
    side = None
    if summary and summary.get("columns_file") and Path(summary["columns_file"]).is_file():
        side = Path(summary["columns_file"])
    elif npy.with_suffix(".parquet").is_file():
        side = npy.with_suffix(".parquet")
    steps = parse_steps(summary) if summary else []
    short = _short(i)
    return Subset(short, f"{short}: {npy.stem}", npy, summary, steps, kept, side)


class PoolView:
    """Score tables + a frame of ``uid, status, shard, key, error``, the columns the subsets' steps use
    and ``extra`` columns; ``eligible`` = status ok and first row of its uid."""

    def __init__(
        self, run_dir: str | Path, subsets: Sequence[str | Path] = (), extra: Sequence[str] = ()
    ) -> None:
        self.run_dir = Path(run_dir)
        self.tab = tab = PoolTables(self.run_dir)
        summaries = []
        for p in subsets:
            _, jp = subset_paths(p)
            summaries.append(json.loads(jp.read_text()) if jp else {})
        step_cols = {
            c
            for js in summaries
            for s in parse_steps(js)
            for c in step_columns(s, tab.columns, IDENTITY_COLUMNS)
        }
        self.cluster_col = next((c for c in CLUSTER_COLUMNS if c in tab.columns), None)
        want = {"key", "error", *step_cols, *extra} | ({self.cluster_col} if self.cluster_col else set())
        self.df = df = load_pool(self.run_dir, columns=sorted(want & set(tab.columns)))
        self.n = len(df)
        self.first = ~df["uid"].duplicated(keep="first").to_numpy()
        self.eligible = (df["status"] == "ok").to_numpy() & self.first
        query = uids_to_array(df["uid"].tolist(), sort=False) if subsets else None
        self.subsets = [load_subset_view(p, i, query, self.first) for i, p in enumerate(subsets)]


def mixed_captions(sub: Subset, df: pd.DataFrame, rows_idx: np.ndarray) -> dict[str, np.ndarray] | None:
    """The caption actually used per kept row (``caption`` of the subset's side parquet) and whether it is
    synthetic (``caption_source``), aligned with ``rows_idx``; None when the subset has no such file."""
    if sub.side is None:
        return None
    names = pq.read_schema(sub.side).names
    if "caption" not in names or "uid" not in names:
        return None
    t = pq.read_table(sub.side, columns=[c for c in ("uid", "caption", "caption_source") if c in names])
    side_uid = t.column("uid").to_pylist()
    kept_uid = df["uid"].to_numpy()[rows_idx]
    if len(side_uid) == rows_idx.size and all(a == b for a, b in zip(side_uid, kept_uid, strict=True)):
        order = np.arange(rows_idx.size)
    else:  # align by uid (the side file lists the kept uids; a uid it lacks has no caption)
        order = pd.Index(side_uid).get_indexer(kept_uid)
    caption = np.asarray(t.column("caption").to_pylist(), dtype=object)
    if "caption_source" in names:
        eq = pc.fill_null(pc.equal(t.column("caption_source"), "synthetic"), False)
        syn = np.asarray(eq.to_numpy(zero_copy_only=False), dtype=bool)
    else:
        syn = np.zeros(len(side_uid), dtype=bool)
    ok = order >= 0
    cap = np.full(rows_idx.size, None, dtype=object)
    cap[ok] = caption[order[ok]]
    s = np.zeros(rows_idx.size, dtype=bool)
    s[ok] = syn[order[ok]]
    return {"caption": cap, "synthetic": s}


def _nanmean(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def caption_stats(pool: PoolView, text_sample: int = TEXT_SAMPLE) -> dict[str, Any] | None:
    """Nguyen et al.'s caption statistics for the pool's eligible rows and each subset (see
    :mod:`altsift.report.stats`): distinct trigrams and nouns on ``min(text_sample, sizes)`` captions
    per group, the mean CLIP score of the captions used and the synthetic share over all rows."""
    tab = pool.tab
    if "text" not in tab.columns:
        return None
    groups: list[tuple[str, np.ndarray, Subset | None]] = [
        ("pool (status ok, first uid)", pool.eligible, None)
    ]
    groups += [(s.label, s.kept, s) for s in pool.subsets]
    sizes = [int(m.sum()) for _, m, _ in groups]
    n_common = min([text_sample, *sizes])
    raw_col = raw_score_column(tab.columns)
    raw = tab.floats(raw_col) if raw_col else None
    rows = []
    for i, ((label, mask, sub), size) in enumerate(zip(groups, sizes, strict=True)):
        rows_idx = np.flatnonzero(mask)
        mixed = mixed_captions(sub, pool.df, rows_idx) if sub is not None else None
        pos = sample_positions(rows_idx.size, n_common, seed=i)
        if mixed is not None:
            captions = [mixed["caption"][p] for p in pos]
        else:
            texts = tab.values_at("text", rows_idx[pos])
            captions = [texts.get(int(r)) for r in rows_idx[pos]]
        rec: dict[str, Any] = {"label": label, "rows": size, **text_diversity(captions)}
        rec.update(mean_clip=None, synthetic_share=0.0, clip_column=raw_col, caption_column="text")
        if mixed is not None:
            syn = mixed["synthetic"]
            rec["synthetic_share"] = float(syn.mean()) if syn.size else None
            rec["caption_column"] = "caption"
            opts = sub.preset_options if sub else {}
            rc = raw_score_column(tab.columns, opts.get("raw_score"))
            sc = opts.get("synthetic_score", "clip_score_synthetic")
            if rc and sc in tab.columns:
                score = np.where(syn, tab.floats(sc)[rows_idx], tab.floats(rc)[rows_idx])
                rec["mean_clip"], rec["clip_column"] = _nanmean(score), f"{rc} / {sc}"
            elif rc and not syn.any():
                rec["mean_clip"], rec["clip_column"] = _nanmean(tab.floats(rc)[rows_idx]), rc
        elif raw is not None:
            rec["mean_clip"] = _nanmean(raw[rows_idx])
        rows.append(rec)
    return {"sample": n_common, "rows": rows, "note": caption_rows_note()}
