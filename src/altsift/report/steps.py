"""Selection steps as the report reads them: structured fields, with a fallback for older summaries.

``altsift select`` records each step in the subset ``.json`` with ``name``, ``kind`` (``status``,
``dedup``, ``where``, ``top_fraction``, ``threshold``, ``fuse``, ``preset``, ``subset``), ``column``,
``op``, ``threshold``, ``fraction``, ``kept_alone``, ``kept_cumulative`` and ``detail`` (a preset's
own steps under ``detail.steps``, same fields). Summaries written before those fields existed carry
only ``name``, ``kept_alone``, ``kept_cumulative`` and ``detail``; for them :func:`parse_step` infers
the fields from the step names ``altsift select`` used to write (the only place names are parsed).

:func:`replay_step` re-evaluates one step on the pool frame so the report can show what each step
removed; thresholds come from ``column`` + ``op`` + ``threshold``, never from the name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from altsift.io.uids import contains, load_subset
from altsift.select.base import fuse, require_column, top_fraction_mask
from altsift.select.core import eval_where

KINDS = ("status", "dedup", "where", "top_fraction", "threshold", "fuse", "preset", "subset")
OPS = (">=", ">", "<=", "<", "==", "!=")

# Legacy step names (summaries written before structured steps): used by parse_step only.
_LEGACY_TOP = re.compile(r"top (\S+) of (\S+?)(?: \(pool-wide\))?(?::.*)?")
_LEGACY_CMP = re.compile(r"(\w+) (>=|>|<=|<|==|!=) (\S+?)(?::.*)?")


@dataclass
class StepInfo:
    """One selection step with the fields the report uses (see the module docstring)."""

    name: str
    kind: str | None = None
    column: str | None = None
    op: str | None = None
    threshold: float | None = None
    fraction: float | None = None
    kept_alone: int | None = None
    kept_cumulative: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    substeps: list[StepInfo] = field(default_factory=list)
    structured: bool = False  # True when the json carried ``kind`` (not inferred from the name)

    @property
    def expr(self) -> str | None:
        """The ``--where`` expression of a ``where`` step."""
        if self.kind != "where":
            return None
        for k in ("expr", "where", "expression"):
            if isinstance(self.detail.get(k), str):
                return self.detail[k]
        return self.name[len("where ") :] if self.name.startswith("where ") else None


def _float(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def parse_step(raw: dict[str, Any]) -> StepInfo:
    """A step of a subset ``.json`` (structured, or the older name-only form) as a :class:`StepInfo`."""
    detail = raw.get("detail") or {}
    detail = detail if isinstance(detail, dict) else {}
    name = str(raw.get("name", ""))
    subs = detail.get("steps") if isinstance(detail.get("steps"), list) else []
    s = StepInfo(
        name=name,
        kind=raw.get("kind"),
        column=raw.get("column"),
        op=raw.get("op"),
        threshold=_float(raw.get("threshold")),
        fraction=_float(raw.get("fraction")),
        kept_alone=raw.get("kept_alone"),
        kept_cumulative=raw.get("kept_cumulative"),
        detail=detail,
        substeps=[parse_step(x) for x in subs if isinstance(x, dict)],
        structured="kind" in raw,
    )
    if not s.structured:
        _infer_legacy(s)
    elif s.kind == "where" and s.column is None and s.expr:  # a simple "column op number" draws its cut
        m = _LEGACY_CMP.fullmatch(s.expr.strip())
        if m and _float(m.group(3)) is not None:
            s.column, s.op, s.threshold = m.group(1), m.group(2), _float(m.group(3))
    return s


def _infer_legacy(s: StepInfo) -> None:
    """Fill kind/column/op/threshold/fraction from a name written by older ``altsift select``."""
    name, d = s.name, s.detail
    s.threshold = s.threshold if s.threshold is not None else _float(d.get("threshold"))
    s.fraction = s.fraction if s.fraction is not None else _float(d.get("fraction"))
    if name == "status == 'ok'":
        s.kind = "status"
    elif name == "first occurrence of uid":
        s.kind = "dedup"
    elif name.startswith("where "):
        s.kind = "where"
        m = _LEGACY_CMP.fullmatch(name[len("where ") :].strip())
        if m and _float(m.group(3)) is not None:
            s.column, s.op, s.threshold = m.group(1), m.group(2), _float(m.group(3))
    elif name.startswith("fuse ") and " -> " in name:
        s.kind, s.column = "fuse", name.rsplit(" -> ", 1)[1].strip()
    elif name.startswith("preset "):
        s.kind = "preset"
    elif (m := _LEGACY_TOP.fullmatch(name)) is not None:
        s.kind, s.column, s.op = "top_fraction", m.group(2), ">="
        s.fraction = s.fraction if s.fraction is not None else _float(m.group(1))
    elif (m := _LEGACY_CMP.fullmatch(name)) is not None and (
        s.threshold is not None or _float(m.group(3)) is not None
    ):
        s.kind, s.column, s.op = "threshold", m.group(1), m.group(2)
        s.threshold = s.threshold if s.threshold is not None else _float(m.group(3))
    elif isinstance(d.get("column"), str) and s.threshold is not None:  # e.g. DataComp's clip_score step
        s.kind, s.column, s.op = "threshold", d["column"], ">="


def parse_steps(selection: dict[str, Any]) -> list[StepInfo]:
    """All top-level steps of a subset ``.json``."""
    return [parse_step(x) for x in selection.get("steps", []) if isinstance(x, dict)]


def walk(steps: list[StepInfo]) -> list[StepInfo]:
    """Steps and their nested preset steps, depth first."""
    out: list[StepInfo] = []
    for s in steps:
        out.append(s)
        out.extend(walk(s.substeps))
    return out


@dataclass(frozen=True)
class Cut:
    """A threshold to draw on a signal's histogram."""

    column: str
    op: str
    value: float
    step: str


def cuts(steps: list[StepInfo]) -> list[Cut]:
    """Every (column, op, threshold) of the steps and nested steps, in order, without repeats."""
    out: list[Cut] = []
    for s in walk(steps):
        if s.column and s.threshold is not None:
            c = Cut(s.column, s.op or ">=", s.threshold, s.name)
            if not any((o.column, o.op, o.value) == (c.column, c.op, c.value) for o in out):
                out.append(c)
    return out


def step_columns(step: StepInfo, available: list[str], identity: frozenset[str]) -> list[str]:
    """Table columns a step needs to be replayed (and shown): its column, fusion weights, or the names
    a ``where`` expression mentions (substring match: over-inclusion only reads a column more)."""
    cols: list[str] = []
    if step.kind == "fuse":
        cols += [c for c in (step.detail.get("weights") or {}) if c in available]
    elif step.column and step.column in available:
        cols.append(step.column)
    if step.kind == "where" and step.expr:
        cols += [c for c in available if re.search(rf"\b{re.escape(c)}\b", step.expr)]
    elif not step.structured and step.kind in (None, "preset", "subset"):
        text = step.name + " " + json.dumps(step.detail, default=str)
        cols += [c for c in available if c in text and c not in identity]
    return list(dict.fromkeys(cols))


def compare(values: np.ndarray, op: str, t: float) -> np.ndarray:
    """``values op t`` as a bool mask; a missing value (NaN) never passes."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        res = {
            ">=": v >= t,
            ">": v > t,
            "<=": v <= t,
            "<": v < t,
            "==": v == t,
            "!=": v != t,
        }.get(op)
    if res is None:
        raise ValueError(f"unknown comparison '{op}'")
    return res & ~np.isnan(v)


def replay_step(
    step: StepInfo, df: pd.DataFrame, mask: np.ndarray, is_last: bool, subset_npy: Path | None
) -> tuple[np.ndarray | None, int | None]:
    """Cumulative mask after ``step`` and how many rows it keeps alone (None when not known).

    Returns ``(None, None)`` when the step cannot be re-evaluated from the tables. A preset (or any
    step that is last and cannot be replayed otherwise) is explained with the subset ``.npy``.
    """
    kind = step.kind
    m: np.ndarray | None = None
    if kind == "status":
        m = (df["status"] == "ok").to_numpy()
    elif kind == "dedup":
        m = ~df["uid"].duplicated(keep="first").to_numpy()
    elif kind == "fuse" and step.column and step.detail.get("weights"):
        df[step.column] = fuse(df, step.detail["weights"])
        return mask.copy(), None
    elif kind == "where" and step.expr:
        m = eval_where(df, step.expr)
    elif kind in ("top_fraction", "threshold") and step.column in df.columns:
        values = require_column(df, step.column)
        if step.threshold is not None:
            m = compare(values, step.op or ">=", step.threshold)
        elif kind == "top_fraction" and step.fraction is not None:
            m, _ = top_fraction_mask(values, step.fraction)
    if m is None:
        if is_last and subset_npy is not None and subset_npy.is_file():
            return mask & contains(load_subset(subset_npy), df["uid"].tolist()), None
        return None, None
    m = np.asarray(m, dtype=bool)
    return mask & m, int(m.sum())
