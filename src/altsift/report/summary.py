"""What a pool looks like and what a selection kept, and why: ``altsift report``.

Reads only the score tables and the selection JSON (no images, no models). Modelled on Data-Juicer's
analyzer (per-stat describe + histogram) and tracer (samples removed by each op), as plain text:

- pool size, shards, shard read errors, status counts with one example error per status;
- one compact summary per signal column (numeric: count, mean, min, p10/p50/p90, max, a 10-bin
  unicode histogram; boolean: share true; string: top values; list: mean length);
- the selection funnel from ``subset.json`` and, per step, a few samples that this step removed while
  every earlier step kept them (steps are re-evaluated on the tables; a step that cannot be reproduced
  exactly gets a note instead of examples).

Memory: signal columns are summarised one at a time; the pool frame holds only ``uid, status, shard,
error, key`` and the columns the selection steps use; captions are read only for the example rows.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from altsift.errors import AltsiftError, ConfigError
from altsift.io.pool import checked_pool_files as pool_files
from altsift.io.tables import SHARD_META_KEY, load_pool, table_signals
from altsift.report.stats import parrot_stats
from altsift.report.steps import StepInfo, parse_steps, replay_step, step_columns

# Row identity and bookkeeping columns: not summarised as signals (DataComp metadata adds url, sha256).
IDENTITY_COLUMNS = frozenset(
    {
        "uid",
        "uid_derived",
        "key",
        "shard",
        "text",
        "status",
        "error",
        "original_width",
        "original_height",
        "url",
        "sha256",
    }
)
N_BINS = 10
TOP_VALUES = 5
N_EXAMPLES = 3
CAPTION_CHARS = 80
QUANTILES = (0.1, 0.5, 0.9)
_BARS = " ▁▂▃▄▅▆▇█"


# ----------------------------------------------------------------------------- column summaries
def _clean(x: Any) -> Any:
    """Plain JSON value: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def histogram_bar(counts: list[int]) -> str:
    """One unicode block per bin, height relative to the fullest bin (a space for an empty bin)."""
    top = max(counts) if counts else 0
    if top == 0:
        return ""
    return "".join(_BARS[0 if c == 0 else max(1, math.ceil(c / top * (len(_BARS) - 1)))] for c in counts)


def summarize_column(name: str, arr: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    """Compact summary of one column; ``kind`` is numeric, boolean, string, list or other."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.cast(t.value_type), t.value_type
    n = len(arr)
    out: dict[str, Any] = {"name": name, "rows": n, "type": str(t)}
    if pa.types.is_boolean(t):
        nn = n - arr.null_count
        trues = int(pc.sum(arr).as_py() or 0)
        out.update(kind="boolean", non_null=nn, true=trues, share_true=(trues / nn) if nn else None)
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        v = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        fin = v[np.isfinite(v)]
        out.update(kind="numeric", non_null=int(fin.size), non_finite=int((~np.isnan(v)).sum() - fin.size))
        if fin.size:
            q = np.quantile(fin, QUANTILES)
            counts, edges = np.histogram(fin, bins=N_BINS)
            out.update(
                mean=float(fin.mean()),
                min=float(fin.min()),
                max=float(fin.max()),
                **{f"p{round(p * 100)}": float(x) for p, x in zip(QUANTILES, q, strict=True)},
                histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            )
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        vc = pc.value_counts(pc.drop_null(arr))
        pairs = sorted(
            zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True),
            key=lambda p: (-p[1], p[0]),
        )
        out.update(
            kind="string",
            non_null=n - arr.null_count,
            distinct=len(pairs),
            top=[{"value": v, "count": int(c)} for v, c in pairs[:TOP_VALUES]],
        )
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lens = pc.list_value_length(arr)
        nn = n - lens.null_count
        total = pc.sum(lens).as_py() or 0
        out.update(kind="list", non_null=nn, mean_length=(total / nn) if nn else None)
    else:
        out.update(kind="other", non_null=n - arr.null_count)
    return {k: _clean(v) if not isinstance(v, dict | list) else v for k, v in out.items()}


class PoolTables:
    """The pool's parquet files with their schemas, row counts and row offsets (``load_pool`` order)."""

    def __init__(self, source: Path) -> None:
        self.files, self.kind = pool_files(source)
        self.schemas = [pq.read_schema(f) for f in self.files]
        self.rows = [pq.read_metadata(f).num_rows for f in self.files]
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.columns = list(dict.fromkeys(n for s in self.schemas for n in s.names))

    def column(self, col: str) -> pa.ChunkedArray:
        """One column over the whole pool (nulls for tables that lack it)."""
        types = [s.field(col).type for s in self.schemas if col in s.names]
        typ = next((t for t in types if not pa.types.is_null(t)), types[0])
        chunks: list[pa.Array] = []
        for f, s, r in zip(self.files, self.schemas, self.rows, strict=True):
            if col not in s.names:
                chunks.append(pa.nulls(r, typ))
                continue
            c = pq.read_table(f, columns=[col]).column(col)
            try:
                chunks.extend(c.cast(typ).chunks)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                chunks.append(pa.nulls(r, typ))
        return pa.chunked_array(chunks, typ)

    def values_at(self, col: str, rows: np.ndarray) -> dict[int, Any]:
        """``{pool row: value}`` for a few rows, reading only the tables those rows live in."""
        out: dict[int, Any] = {}
        file_idx = np.searchsorted(self.offsets, rows, side="right") - 1
        for fi in sorted(set(file_idx.tolist())):
            if col not in self.schemas[fi].names:
                continue
            vals = pq.read_table(self.files[fi], columns=[col]).column(col)
            mine = rows[file_idx == fi]
            taken = vals.take(pa.array(mine - int(self.offsets[fi]))).to_pylist()
            out.update(zip(mine.tolist(), taken, strict=True))
        return out

    def floats(self, col: str) -> np.ndarray:
        """One numeric or boolean column over the whole pool as float64 (NaN where missing)."""
        arr = self.column(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if pa.types.is_boolean(arr.type):
            arr = pc.cast(arr, pa.int8())
        return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


# ----------------------------------------------------------------------------- pool
def _shards(tab: PoolTables, run_dir: Path) -> dict[str, Any]:
    errors = []
    for f, s, r in zip(tab.files, tab.schemas, tab.rows, strict=True):
        raw = (s.metadata or {}).get(SHARD_META_KEY)
        err = json.loads(raw).get("error") if raw else None
        if err:
            errors.append({"shard": f.stem, "rows": r, "error": err})
    log = run_dir / "logs" / "shard_errors.jsonl"
    logged = 0
    if log.is_file():
        logged = sum(1 for line in log.read_text().splitlines() if line.strip())
    rows = np.asarray(tab.rows)
    return {
        "count": len(tab.files),
        "rows_min": int(rows.min()),
        "rows_median": float(np.median(rows)),
        "rows_max": int(rows.max()),
        "read_errors": errors,
        "error_log_entries": logged,
    }


def _statuses(df: pd.DataFrame) -> list[dict[str, Any]]:
    n = max(len(df), 1)
    counts = df["status"].fillna("<null>").value_counts()
    out = []
    for status, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        example = None
        if status != "ok" and "error" in df.columns:
            errs = df.loc[(df["status"] == status) & df["error"].notna(), "error"]
            example = str(errs.iloc[0]) if len(errs) else None
        out.append({"status": status, "count": int(count), "share": count / n, "example_error": example})
    return out


def _signals(tab: PoolTables) -> dict[str, Any]:
    sig: dict[str, Any] = {}
    for s in tab.schemas:
        for k, v in table_signals(s).items():
            sig.setdefault(k, v)
    return dict(sorted(sig.items()))


# ----------------------------------------------------------------------------- selection
def find_selection(run_dir: Path, subset: Path | None) -> Path | None:
    """The selection JSON: ``subset`` (its .npy or .json) or ``RUN_DIR/subset.json`` when it exists."""
    if subset is None:
        p = Path(run_dir) / "subset.json"
        return p if p.is_file() else None
    p = Path(subset)
    p = p.with_suffix(".json") if p.suffix == ".npy" else p
    if not p.is_file():
        raise ConfigError(
            f"selection summary {p} not found (written by 'altsift select' beside the subset .npy)"
        )
    return p


def _show_columns(step: StepInfo, cols: list[str]) -> list[str]:
    if step.kind == "status":
        return ["status", "error"]
    if step.kind == "dedup":
        return ["uid"]
    return [c for c in cols if c not in ("uid", "shard", "text")]


def _pick(idx: np.ndarray, k: int) -> np.ndarray:
    """Up to ``k`` indices spread evenly over ``idx`` (deterministic)."""
    if idx.size <= k:
        return idx
    return idx[np.unique(np.linspace(0, idx.size - 1, k).round().astype(int))]


def _caption(text: Any) -> str | None:
    if text is None:
        return None
    s = " ".join(str(text).split())
    return s if len(s) <= CAPTION_CHARS else s[: CAPTION_CHARS - 1] + "…"


def _selection(sel: dict[str, Any], sel_path: Path, tab: PoolTables, df: pd.DataFrame) -> dict[str, Any]:
    steps = parse_steps(sel)
    out: dict[str, Any] = {
        "file": str(sel_path),
        "pool_rows": sel.get("pool_rows"),
        "selected": sel.get("selected"),
        "fraction_selected": sel.get("fraction_selected"),
        "steps": [],
        "warnings": [],
    }
    n = len(df)
    reproducible = sel.get("pool_rows") == n
    if not reproducible:
        out["warnings"].append(
            f"the selection saw {sel.get('pool_rows')} rows but the tables now hold {n}: the pool changed "
            "since this selection was made, so no examples are shown"
        )
    subset_npy = subset_file(sel, sel_path)
    mask = np.ones(n, dtype=bool)
    prev_cum = n
    for i, step in enumerate(steps):
        rec: dict[str, Any] = {
            "name": step.name,
            "kind": step.kind,
            "column": step.column,
            "op": step.op,
            "threshold": step.threshold,
            "fraction": step.fraction,
            "kept_alone": step.kept_alone,
            "kept_cumulative": step.kept_cumulative,
            "removed": (prev_cum - step.kept_cumulative) if step.kept_cumulative is not None else None,
            "detail": step.detail,
            "examples": [],
            "note": None,
        }
        prev_cum = step.kept_cumulative if step.kept_cumulative is not None else prev_cum
        out["steps"].append(rec)
        if not reproducible:
            continue
        try:
            new_mask, alone = replay_step(step, df, mask, is_last=i == len(steps) - 1, subset_npy=subset_npy)
        except (AltsiftError, KeyError, ValueError) as e:
            new_mask, alone, rec["note"] = None, None, f"cannot re-evaluate this step on the tables: {e}"
        if new_mask is None:
            rec["note"] = rec["note"] or "this step cannot be re-evaluated from the tables; no examples"
            reproducible = False
            continue
        if int(new_mask.sum()) != step.kept_cumulative or (alone is not None and alone != step.kept_alone):
            rec["note"] = (
                f"re-evaluating this step on the tables keeps {int(new_mask.sum())} (the selection "
                f"recorded {step.kept_cumulative}); no examples"
            )
            reproducible = False
            continue
        removed = np.flatnonzero(mask & ~new_mask)
        picks = _pick(removed, N_EXAMPLES)
        used = step_columns(step, tab.columns, IDENTITY_COLUMNS)
        show = [c for c in _show_columns(step, used) if c in df.columns]
        if picks.size:
            texts = tab.values_at("text", picks) if "text" in tab.columns else {}
            for r in picks.tolist():
                rec["examples"].append(
                    {
                        "uid": df["uid"].iat[r],
                        "shard": df["shard"].iat[r],
                        "key": df["key"].iat[r] if "key" in df.columns else None,
                        "text": _caption(texts.get(r)),
                        "values": {c: _clean(df[c].iat[r]) for c in show},
                    }
                )
        mask = new_mask
    return out


def subset_file(sel: dict[str, Any], sel_path: Path) -> Path:
    """The uid ``.npy`` a selection summary describes (its ``subset`` entry, else beside the json)."""
    p = Path(sel.get("subset") or sel_path.with_suffix(".npy"))
    return p if p.is_file() else sel_path.with_suffix(".npy")


# ----------------------------------------------------------------------------- report
def build_report(run_dir: str | Path, subset: Path | None = None) -> dict[str, Any]:
    """Everything ``render_markdown`` shows, as a JSON-ready dict (see the module docstring)."""
    run_dir = Path(run_dir)
    tab = PoolTables(run_dir)
    sel_path = find_selection(run_dir, subset)
    sel = json.loads(sel_path.read_text()) if sel_path else None
    step_cols = {c for s in parse_steps(sel or {}) for c in step_columns(s, tab.columns, IDENTITY_COLUMNS)}
    want = sorted(({"key", "error"} | step_cols) & set(tab.columns))
    df = load_pool(run_dir, columns=want)
    signal_cols = [c for c in tab.columns if c not in IDENTITY_COLUMNS]
    report: dict[str, Any] = {
        "source": str(run_dir),
        "kind": tab.kind,
        "pool_rows": int(len(df)),
        "shards": _shards(tab, run_dir),
        "statuses": _statuses(df),
        "signals": _signals(tab),
        "columns": [summarize_column(c, tab.column(c)) for c in signal_cols],
        "selection": _selection(sel, sel_path, tab, df) if sel is not None and sel_path is not None else None,
        "parrot": parrot_stats(run_dir) if "has_text" in tab.columns else None,
    }
    return report


def write_report(run_dir: str | Path, subset: Path | None = None, out: Path | None = None) -> Path:
    """Write ``report.md`` (default ``RUN_DIR/report.md``) and ``report.json`` beside it; returns the .md path."""
    run_dir = Path(run_dir)
    out = Path(out) if out else (run_dir if run_dir.is_dir() else run_dir.parent) / "report.md"
    report = build_report(run_dir, subset)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(report))
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return out


# ----------------------------------------------------------------------------- markdown
def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        x = float(x)
        if not math.isfinite(x):
            return str(x)
        if x == int(x) and abs(x) < 1e15:
            return f"{int(x):,}"
        return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"
    return str(x)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _esc(s: Any, limit: int | None = None) -> str:
    """Text safe inside a markdown table cell or list item."""
    t = " ".join(str(s).split())
    if limit and len(t) > limit:
        t = t[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", t)


def _code(s: Any) -> str:
    """An inline code span (backticks replaced, pipes escaped for tables)."""
    return "`" + " ".join(str(s).split()).replace("`", "'").replace("|", "\\|") + "`"


def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    align = align or "l" * len(header)
    seps = ["---:" if a == "r" else "---" for a in align]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(seps) + " |",
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
    ]


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for k, v in detail.items():
        if k == "steps":
            continue
        if isinstance(v, float):
            parts.append(f"{k}={_fmt(v)}")
        else:
            parts.append(f"{k}={json.dumps(v, sort_keys=True, default=str)}")
    return _esc("; ".join(parts), 160)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown (deterministic: depends only on the tables and the selection JSON)."""
    L: list[str] = [f"# altsift report: {_esc(report['source'])}", ""]
    sh = report["shards"]
    L += [
        f"- pool: **{_fmt(report['pool_rows'])}** rows in **{_fmt(sh['count'])}** "
        f"{'shards' if report['kind'] == 'run' else 'metadata files'} "
        f"(rows per shard: min {_fmt(sh['rows_min'])}, median {_fmt(sh['rows_median'])}, max {_fmt(sh['rows_max'])})",
        f"- shards with read errors: {len(sh['read_errors'])}"
        + (
            f" ({sh['error_log_entries']} entries in logs/shard_errors.jsonl)"
            if sh["error_log_entries"]
            else ""
        ),
    ]
    if report["signals"]:
        L.append("- signals: " + ", ".join(f"`{k}`" for k in report["signals"]))
    L.append("")
    if sh["read_errors"]:
        L += ["## Shard read errors", ""]
        L += _table(
            ["shard", "rows read", "error"],
            [[_esc(e["shard"]), _fmt(e["rows"]), _esc(e["error"], 160)] for e in sh["read_errors"]],
            "lrl",
        )
    L += ["## Statuses", ""]
    L += _table(
        ["status", "rows", "share", "example error"],
        [
            [
                _code(s["status"]),
                _fmt(s["count"]),
                _pct(s["share"]),
                _esc(s["example_error"], 120) if s["example_error"] else "",
            ]
            for s in report["statuses"]
        ],
        "lrrl",
    )
    cols = report["columns"]
    num = [c for c in cols if c["kind"] == "numeric"]
    if cols:
        L += ["## Signal columns", ""]
    if num:
        L += ["Numeric (quantiles: linear interpolation; histogram: 10 equal bins from min to max).", ""]
        L += _table(
            ["column", "non-null", "mean", "min", "p10", "p50", "p90", "max", "histogram"],
            [
                [
                    _code(c["name"]),
                    _fmt(c["non_null"]),
                    *(_fmt(c.get(k)) for k in ("mean", "min", "p10", "p50", "p90", "max")),
                    f"`{histogram_bar(c['histogram']['counts'])}`" if c.get("histogram") else "",
                ]
                for c in num
            ],
            "lrrrrrrrl",
        )
    boo = [c for c in cols if c["kind"] == "boolean"]
    if boo:
        L += _table(
            ["boolean column", "non-null", "true", "share true"],
            [[_code(c["name"]), _fmt(c["non_null"]), _fmt(c["true"]), _pct(c["share_true"])] for c in boo],
            "lrrr",
        )
    st = [c for c in cols if c["kind"] == "string"]
    if st:
        L += _table(
            ["text column", "non-null", "distinct", f"top {TOP_VALUES} values"],
            [
                [
                    _code(c["name"]),
                    _fmt(c["non_null"]),
                    _fmt(c["distinct"]),
                    ", ".join(f"{_esc(t['value'], 30)} ({_fmt(t['count'])})" for t in c["top"]),
                ]
                for c in st
            ],
            "lrrl",
        )
    other = [c for c in cols if c["kind"] in ("list", "other")]
    if other:
        L += _table(
            ["other column", "type", "non-null", "mean length"],
            [
                [_code(c["name"]), _esc(c["type"]), _fmt(c["non_null"]), _fmt(c.get("mean_length"))]
                for c in other
            ],
            "llrr",
        )
    if report.get("parrot"):
        L += _render_parrot(report["parrot"])
    sel = report.get("selection")
    if sel:
        L += _render_selection(sel, report["pool_rows"])
    return "\n".join(L).rstrip() + "\n"


def _render_parrot(st: dict[str, Any]) -> list[str]:
    """Parrot's Table 1 statistics (see :func:`altsift.report.stats.parrot_stats`)."""
    L = [
        "## Parrot captions",
        "",
        "Lin et al.'s Table 1 statistics over the images the `ocr` signal ran on.",
        "",
    ]
    rows = [
        ["images scored by ocr", _fmt(st["images"]), ""],
        ["images with embedded text", _fmt(st["with_text"]), _pct(st["share_with_text"])],
    ]
    for label, r in (("CoTR", st["exact"]), ("fuzzy CoTR", st["fuzzy"])):
        if r is None:
            continue
        rows += [
            [f"{label}, mean over all images", "", _pct(r["mean_all"])],
            [f"{label}, mean over images with text", "", _pct(r["mean_text"])],
            [
                f"images with co-emb. text ({label} > 0)",
                _fmt(r["co_emb"]),
                _pct(r["share_co_emb_text"]) + " of w/ text",
            ],
            [
                f"fully spotted ({label} = 1)",
                _fmt(r["fully_spotted"]),
                _pct(r["share_fully_text"]) + " of w/ text",
            ],
            [
                f"partly spotted (0 < {label} < 1)",
                _fmt(r["partly_spotted"]),
                _pct(r["share_partly_text"]) + " of w/ text",
            ],
        ]
    L += _table(["statistic", "images", "share"], rows, "lrr")
    for label, r in (("CoTR", st["exact"]), ("fuzzy CoTR", st["fuzzy"])):
        if r is None:
            continue
        L += _table(
            [f"{label} bin", "all images", "images with text"],
            [
                [_esc(b), _fmt(x), _fmt(y)]
                for b, x, y in zip(st["bins"], r["hist_all"], r["hist_text"], strict=True)
            ],
            "lrr",
        )
    return L


def _render_selection(sel: dict[str, Any], pool_rows: int) -> list[str]:
    n = max(pool_rows, 1)
    L = [
        "## Selection funnel",
        "",
        f"{_code(sel['file'])}: selected **{_fmt(sel['selected'])}** of {_fmt(sel['pool_rows'])} "
        f"({_pct(sel['fraction_selected'])}). Each step is evaluated on the whole pool; "
        "*kept alone* counts what it keeps by itself, *kept so far* what is left after it and all earlier steps.",
        "",
    ]
    for w in sel["warnings"]:
        L += [f"> warning: {_esc(w)}", ""]
    rows = []
    for i, s in enumerate(sel["steps"], 1):
        rows.append(
            [
                str(i),
                _esc(s["name"], 100),
                _fmt(s["kept_alone"]),
                _fmt(s["kept_cumulative"]),
                _pct((s["kept_cumulative"] or 0) / n),
                _fmt(s["removed"]),
                _detail(s["detail"]),
            ]
        )
        for sub in s["detail"].get("steps", []) if isinstance(s["detail"].get("steps"), list) else []:
            rows.append(
                [
                    "",
                    "↳ " + _esc(sub.get("name", ""), 98),
                    _fmt(sub.get("kept_alone")),
                    _fmt(sub.get("kept_cumulative")),
                    "",
                    "",
                    _detail(sub.get("detail") or {}),
                ]
            )
    L += _table(
        ["#", "step", "kept alone", "kept so far", "of pool", "removed here", "detail"], rows, "rlrrrrl"
    )
    L += [
        "### What each step removed",
        "",
        f"Up to {N_EXAMPLES} samples per step that the step removed while every earlier step kept them.",
        "",
    ]
    for i, s in enumerate(sel["steps"], 1):
        if not s["examples"] and not s["note"]:
            continue
        L += [f"**{i}. {_esc(s['name'], 100)}**", ""]
        if s["note"]:
            L += [f"- _{_esc(s['note'])}_"]
        for e in s["examples"]:
            vals = ", ".join(f"{_esc(k)}={_esc(_fmt(v), 60)}" for k, v in e["values"].items())
            cap = f'"{_esc(e["text"])}"' if e["text"] is not None else "(no caption)"
            where = _code(f"{e['shard']}/{e['key']}") if e.get("key") is not None else _code(e["uid"])
            L.append(f"- {where} {cap}" + (f" — {vals}" if vals else ""))
        L.append("")
    return L
