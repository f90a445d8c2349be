"""``altsift select``: conditions from the command line / config, AND-ed, pool-wide.

Every condition is evaluated on the whole pool independently (thresholds and fractions are never
computed per shard, nor after other conditions), then the masks are AND-ed. Rows whose status is not
``ok`` are never selected, and of several rows sharing a uid only the first is eligible.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from altsift.errors import ConfigError
from altsift.io.tables import load_pool, load_pool_array, pool_files
from altsift.io.uids import save_subset
from altsift.select.base import Pool, Selection, Step, fuse, get_preset, top_fraction_mask

log = logging.getLogger("altsift.select")


@dataclass
class SelectRequest:
    where: list[str] = field(default_factory=list)
    top_fraction: dict[str, float] = field(default_factory=dict)
    fuse: dict[str, float] = field(default_factory=dict)
    fused_column: str = "fused"
    preset: str | None = None
    preset_options: dict[str, Any] = field(default_factory=dict)


def parse_pairs(items: list[str] | None, what: str) -> dict[str, float]:
    """Parse ``A=0.5,B=0.5`` / repeated ``A=0.5`` options into a dict."""
    out: dict[str, float] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"{what} expects COLUMN=VALUE, got '{part}'")
            k, v = part.split("=", 1)
            try:
                out[k.strip()] = float(v)
            except ValueError:
                raise ConfigError(f"{what}: '{v}' is not a number (in '{part}')") from None
    return out


def eval_where(df: pd.DataFrame, expr: str) -> np.ndarray:
    """Evaluate a pandas expression (e.g. ``clip_score >= 0.28 and lang == 'en'``) to a bool mask."""
    try:
        res = df.eval(expr, engine="python")
    except Exception as e:
        raise ConfigError(f"cannot evaluate --where '{expr}': {e}. Columns: {', '.join(map(str, df.columns))}") from None
    if isinstance(res, pd.Series):
        if res.dtype == object:
            res = res.map(lambda v: bool(v) if v is not None and v == v else False)
        return res.fillna(False).to_numpy(dtype=bool)
    raise ConfigError(f"--where '{expr}' does not give one true/false value per row")


def run_selection(source: str | Path, req: SelectRequest) -> tuple[pd.DataFrame, Selection]:
    """Load the pool (all columns) and apply the request. Returns the pool and the selection."""
    pool_files(source)  # clear error early
    df = load_pool(source)
    pool = Pool(df=df, source=Path(source), array_loader=lambda name: load_pool_array(source, name))
    n = len(df)
    mask = np.ones(n, dtype=bool)
    steps: list[Step] = []

    def add(name: str, m: np.ndarray, detail: dict[str, Any] | None = None) -> None:
        nonlocal mask
        mask &= m
        steps.append(Step(name, int(m.sum()), int(mask.sum()), detail or {}))

    ok = (df["status"] == "ok").to_numpy()
    add("status == 'ok'", ok)
    dup = df["uid"].duplicated(keep="first").to_numpy()
    if dup.any():
        log.warning("%d rows repeat a uid seen earlier in the pool; only the first is eligible", int(dup.sum()))
    add("first occurrence of uid", ~dup)
    if req.fuse:
        df[req.fused_column] = fuse(df, req.fuse)
        steps.append(Step(f"fuse {req.fuse} -> {req.fused_column}", n, int(mask.sum()), {"weights": req.fuse}))
    for expr in req.where:
        add(f"where {expr}", eval_where(df, expr))
    for col, frac in req.top_fraction.items():
        if col not in df.columns:
            raise ConfigError(f"--top-fraction: column '{col}' not found. Columns: {', '.join(map(str, df.columns))}")
        scores = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        m, t = top_fraction_mask(scores, frac)
        add(f"top {frac:g} of {col} (pool-wide)", m, {"threshold": t, "fraction": frac})
    columns: dict[str, np.ndarray] = {}
    if req.preset:
        preset = get_preset(req.preset)(req.preset_options)
        sel = preset.apply(pool)
        add(f"preset {req.preset}", sel.mask, {"steps": [asdict(s) for s in sel.steps],
                                               "options": preset.options.model_dump(mode="json")})
        columns = sel.columns
    return df, Selection(mask=mask, steps=steps, columns=columns)


def write_selection(df: pd.DataFrame, sel: Selection, out: str | Path, source: str | Path) -> dict[str, Any]:
    """Write the uid ``.npy`` (DataComp format), a JSON summary and, if any, the extra columns."""
    out = Path(out)
    if out.suffix != ".npy":
        raise ConfigError(f"--out must end with .npy (DataComp subset format), got {out}")
    uids = df.loc[sel.mask, "uid"].tolist()
    save_subset(out, uids)
    summary = {
        "source": str(source),
        "pool_rows": int(len(df)),
        "selected": int(sel.mask.sum()),
        "fraction_selected": float(sel.mask.mean()) if len(df) else 0.0,
        "steps": [asdict(s) for s in sel.steps],
        "subset": str(out),
    }
    if sel.columns:
        extra = pd.DataFrame({"uid": df["uid"].to_numpy()[sel.mask]})
        for c, v in sel.columns.items():
            extra[c] = np.asarray(v, dtype=object)[sel.mask]
        cpath = out.with_suffix(".parquet")
        extra.to_parquet(cpath, index=False)
        summary["columns_file"] = str(cpath)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
