"""``altsift select``: the public selection API, used by the CLI, the mini bench and the report.

One small surface::

    from altsift.select.core import SelectRequest, run_selection, write_selection
    pool, sel = run_selection("runs/pool", SelectRequest(where=["basic_pass"], top_fraction={"clip_score": 0.3}))
    summary = write_selection(pool, sel, "runs/pool/clip30.npy")

Semantics (docs/select.md): rows whose status is not ``ok`` are never selected; of several rows sharing
a uid only the first is eligible. Every condition - ``where`` expressions, top fractions, presets,
``and`` subsets - is evaluated on the **whole pool** (thresholds and fractions are never computed per
shard, nor after another condition, as DataComp computes them), then the masks are AND-ed, ``not``
subsets are removed, and ``or`` subsets are added back (eligible rows only). Only the columns the
request names are read, in one streaming scan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from altsift.errors import ConfigError, EnvironmentIOError
from altsift.io.uids import count_duplicates, read_subset, save_subset_pairs, sort_pairs
from altsift.select.base import (
    Pool,
    Preset,
    Selection,
    Step,
    fuse,
    get_preset,
    top_fraction_mask,
)
from altsift.select.expr import compile_where, kind_of

log = logging.getLogger("altsift.select")
FORMAT = "altsift.selection/2"


@dataclass
class SelectRequest:
    """What to select. Every field is optional; an empty request keeps every eligible row.

    ``preset``/``preset_options`` name one preset (kept for existing callers); ``presets`` maps several
    preset names to their options (all AND-ed). ``and_subsets``/``not_subsets``/``or_subsets`` are
    DataComp subset ``.npy`` files to intersect with, remove, or add. ``verdicts`` writes each preset's
    own mask as a column of ``<out>.verdicts.parquet``.
    """

    where: list[str] = field(default_factory=list)
    top_fraction: dict[str, float] = field(default_factory=dict)
    fuse: dict[str, float] = field(default_factory=dict)
    fused_column: str = "fused"
    preset: str | None = None
    preset_options: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    and_subsets: list[str | Path] = field(default_factory=list)
    or_subsets: list[str | Path] = field(default_factory=list)
    not_subsets: list[str | Path] = field(default_factory=list)
    verdicts: bool = False

    def all_presets(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.preset:
            out[self.preset] = dict(self.preset_options)
        elif self.preset_options:
            raise ConfigError("preset options were given without a preset")
        for name, opts in self.presets.items():
            if name in out:
                raise ConfigError(f"preset '{name}' is given twice")
            out[name] = dict(opts or {})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"where": list(self.where), "top_fraction": dict(self.top_fraction), "fuse": dict(self.fuse),
                "fused_column": self.fused_column, "presets": self.all_presets(),
                "and": [str(p) for p in self.and_subsets], "or": [str(p) for p in self.or_subsets],
                "not": [str(p) for p in self.not_subsets], "verdicts": self.verdicts}  # fmt: skip


def parse_pairs(items: list[str] | None, what: str) -> dict[str, float]:
    """Parse ``A=0.5,B=0.5`` / repeated ``A=0.5`` options into a dict; a key given twice is an error."""
    out: dict[str, float] = {}
    for item in items or []:
        for part in item.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"{what} expects COLUMN=VALUE, got '{part}'")
            k, v = part.split("=", 1)
            k = k.strip()
            if k in out:
                raise ConfigError(
                    f"{what}: column '{k}' is given twice ({out[k]:g} and {v.strip()}); give it once"
                )
            try:
                out[k] = float(v)
            except ValueError:
                raise ConfigError(f"{what}: '{v}' is not a number (in '{part}')") from None
    return out


def make_preset(name: str, options: dict[str, Any]) -> Preset:
    cls = get_preset(name)
    try:
        return cls(options)
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(map(str, x['loc'])) or name}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"preset '{name}': {errs}") from None


def first_occurrence(hi: np.ndarray, lo: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows holding the first occurrence of their (valid) uid, exactly on the two uint64 halves.

    One (SIMD) sort of a copy of the high halves finds the few high halves that repeat; only the rows
    holding them are compared on both halves (pandas' hash-based ``duplicated``, in pool order).
    """
    first = valid.copy()
    h = hi[valid] if not valid.all() else hi.copy()
    h.sort()
    rep = h[1:][h[1:] == h[:-1]]
    del h
    if rep.size == 0:
        return first
    rep = np.unique(rep)
    pos = np.minimum(np.searchsorted(rep, hi), rep.size - 1)
    idx = np.flatnonzero((rep[pos] == hi) & valid)
    del pos
    dup = pd.DataFrame({"h": hi[idx], "l": lo[idx]}).duplicated(keep="first").to_numpy()
    first[idx[dup]] = False
    return first


def _check_numeric(pool: Pool, col: str, what: str, extra: dict[str, pa.DataType]) -> None:
    t = extra.get(col) or pool.types.get(col)
    if t is None:
        import difflib

        close = difflib.get_close_matches(col, [*pool.columns, *extra], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{what}: column '{col}' not found{hint}. Columns: {', '.join(pool.columns)}")
    k = kind_of(t)
    if k not in ("num", "bool", "null"):
        word = {"str": "text", "list": "lists"}.get(k, str(t))
        raise ConfigError(f"{what}: column '{col}' holds {word}, not numbers; it cannot be ranked")


def run_selection(source: Any, req: SelectRequest, progress: bool = False,
                  before_read: Callable[[Pool], None] | None = None) -> tuple[Pool, Selection]:  # fmt: skip
    """Apply ``req`` to a pool (run dir, DataComp metadata folder, parquet file, DataFrame or Pool).

    Returns the pool (lazy; it holds the columns that were read, and the uids as uint64 halves) and the
    selection (mask, structured steps, extra columns, warnings). Raises ConfigError on any bad input;
    the request is checked against the pool's schema before any column is read. ``before_read(pool)``
    runs after those checks and before the scan (the CLI checks the output path there).
    """
    pool = Pool.open(source, progress=progress)
    n = len(pool)
    presets = [(name, make_preset(name, opts)) for name, opts in req.all_presets().items()]
    warns: list[str] = []
    for _, p in presets:
        warns.extend(p.check(pool))
    fused = req.fused_column if req.fuse else None
    if fused and pool.has(fused):
        raise ConfigError(f"--fuse writes column '{fused}', which the pool already has; choose another name")
    derived_types = {fused: pa.float64()} if fused else {}
    for col in req.fuse:
        _check_numeric(pool, col, "--fuse", {})
    for col in req.top_fraction:
        _check_numeric(pool, col, "--top-fraction", derived_types)
    exprs = [compile_where(e, {**pool.types, **derived_types}) for e in req.where]
    subsets = {op: [(Path(p), read_subset(p)) for p in paths]
               for op, paths in (("and", req.and_subsets), ("not", req.not_subsets), ("or", req.or_subsets))}  # fmt: skip
    if before_read is not None:
        before_read(pool)
    # one scan: uids, status, every numeric column named, the presets' columns, streamable expressions
    need = [*req.fuse, *(c for c in req.top_fraction if c != fused)]
    for _, p in presets:
        need.extend(c for c in p.needed_columns() if pool.has(c))
    stream = [w for w in exprs if not (fused and fused in w.columns)]
    stream_masks = dict(
        zip(map(id, stream), pool.load(need, where=stream, uids=True, status=True), strict=True)
    )

    # 1. every condition on the whole pool, independently (masks of one byte per row)
    conds: list[tuple[Step, np.ndarray | None]] = []
    if fused:
        values = fuse(pool, req.fuse)
        pool.set_column(fused, values)
        later = {c for w in exprs for c in w.columns} | set(req.top_fraction) | set(need[len(req.fuse) :])
        pool.release([c for c in req.fuse if c not in later])  # the inputs are not needed any more
        complete = int((~np.isnan(values)).sum())
        conds.append((Step(f"fuse {req.fuse} -> {fused}", "fuse", column=fused, kept_alone=complete,
                           detail={"weights": dict(req.fuse), "rows_with_all_columns": complete}), None))  # fmt: skip
    for w in exprs:
        m = stream_masks.get(id(w))
        if m is None:
            m = pool.where([w])[0]
        conds.append(
            (Step(f"where {w.text}", "where", detail={"expression": w.text, "columns": list(w.columns)}), m)
        )
    for col, frac in req.top_fraction.items():
        m, t = top_fraction_mask(pool.numeric(col), frac)
        conds.append((Step(f"top {frac:g} of {col} (pool-wide)", "top_fraction", column=col, op=">=", threshold=t,
                           fraction=frac, detail={"threshold": t, "fraction": frac}), m))  # fmt: skip
    columns: dict[str, np.ndarray] = {}
    verdicts: dict[str, np.ndarray] = {}
    for name, p in presets:
        sel = p.apply(pool)
        if len(sel.mask) != n:  # pragma: no cover - a preset bug
            raise ConfigError(f"preset '{name}' returned {len(sel.mask)} rows for a pool of {n}")
        warns.extend(sel.warnings)
        conds.append((Step(f"preset {name}", "preset", detail={
            "preset": name, "steps": [s.to_dict() for s in sel.steps], "options": p.options.model_dump(mode="json")}),
            sel.mask))  # fmt: skip
        for c, v in sel.columns.items():
            if c in columns:
                raise ConfigError(
                    f"presets both write column '{c}' (the second is '{name}'): use one of them"
                )
            columns[c] = v
        if req.verdicts:
            verdicts[name] = sel.mask
    pool.release()  # score columns are re-read if asked for again; the uids stay for dedup and writing

    # 2. eligibility (status, first occurrence of each uid), then the AND of the conditions, in order
    mask = np.ones(n, dtype=bool)
    steps: list[Step] = []

    def add(step: Step, m: np.ndarray | None) -> None:
        nonlocal mask
        if m is not None:
            mask &= m
            step.kept_alone = int(m.sum()) if step.kept_alone is None else step.kept_alone
        step.kept_cumulative = int(mask.sum())
        steps.append(step)

    add(Step("status == 'ok'", "status", column="status", op="==", detail={"value": "ok"}), pool.status_ok())
    hi, lo, valid = pool.uids()
    first = first_occurrence(hi, lo, valid)
    n_invalid = int((~valid).sum())
    n_dup = int(valid.sum() - first.sum())
    if n_dup:
        log.warning("%d rows repeat a uid seen earlier in the pool; only the first is eligible", n_dup)
    if n_invalid:
        warns.append(f"{n_invalid} rows have no valid uid (32 hex digits) and cannot be selected")
    add(Step("first occurrence of uid", "dedup", column="uid",
             detail={"repeated_uids": n_dup, "invalid_uids": n_invalid}), first)  # fmt: skip
    del first
    eligible = mask.copy()
    for step, m in conds:
        add(step, m)
    for op in ("and", "not", "or"):
        for path, sub in subsets[op]:
            member = pool.member(sub)
            dups = count_duplicates(sub)
            if dups:
                warns.append(f"{path}: {dups} uid(s) are listed more than once (each counted once)")
            detail = {"path": str(path), "uids": int(len(sub)), "duplicates": dups,
                      "in_pool": int(member.sum())}  # fmt: skip
            name = {"and": f"and in {path}", "not": f"not in {path}", "or": f"or in {path}"}[op]
            step = Step(name, "subset", column="uid", op=op, detail=detail)
            if op == "and":
                add(step, member)
            elif op == "not":
                add(step, ~member)
            else:
                step.kept_alone = int((member & eligible).sum())
                mask |= member & eligible
                step.kept_cumulative = int(mask.sum())
                steps.append(step)
    for w_ in warns:
        log.warning("%s", w_)
    return pool, Selection(mask=mask, steps=steps, columns=columns, warnings=warns, verdicts=verdicts)


# ------------------------------------------------------------------------------------ writing
def side_paths(out: Path) -> dict[str, Path]:
    return {"json": out.with_suffix(".json"), "columns": out.with_suffix(".parquet"),
            "verdicts": out.with_name(out.stem + ".verdicts.parquet")}  # fmt: skip


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_output(out: str | Path, pool: Pool | None = None, overwrite: bool = False,
                 will_write: tuple[str, ...] = ("json",)) -> Path:  # fmt: skip
    """Refuse outputs that would damage a run or be read as part of a pool; refuse silent overwrites."""
    out = Path(out)
    if out.suffix != ".npy":
        raise ConfigError(f"--out must end with .npy (DataComp subset format), got {out}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name ending in .npy")
    protected = [anc for anc in out.resolve().parents
                 if anc.name in ("scores", "arrays") and (anc.parent / "scores").is_dir()]  # fmt: skip
    if pool is not None and pool.kind == "run" and pool.source is not None:
        protected += [p for p in (pool.source / "scores", pool.source / "arrays") if _inside(out, p)]
    if protected:
        rd = protected[0].parent
        raise ConfigError(
            f"--out {out} is inside {protected[0]}: select never writes into a run's scores/ or arrays/ (its "
            f"files would be taken for score tables). Write the subset beside them, e.g. {rd / 'subset.npy'}"
        )
    sides = side_paths(out)
    if pool is not None and pool.kind == "metadata" and pool.source is not None:
        folder = pool.source if pool.source.is_dir() else pool.source.parent
        for key in ("columns", "verdicts"):
            if (
                key in will_write
                and _inside(sides[key], folder)
                and sides[key].parent.resolve() == folder.resolve()
            ):
                raise ConfigError(
                    f"{sides[key]} would be written into the metadata folder {folder} and read as part of the "
                    "pool next time; choose --out in another folder"
                )
    old = _read_json(sides["json"])
    ours = {k: old.get(f"{k}_file") for k in ("columns", "verdicts")} if old else {}
    for key in ("columns", "verdicts"):
        p = sides[key]
        if p.exists() and (not old or Path(str(ours.get(key))) != p):
            raise ConfigError(
                f"{p} exists and was not written by altsift select; move it or choose another --out"
            )
    existing = [p for p in (out, sides["json"], sides["columns"], sides["verdicts"]) if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} exists; pass --overwrite to replace this selection")
    return out


def _read_json(p: Path) -> dict[str, Any] | None:
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def write_selection(pool: Pool, sel: Selection, out: str | Path, source: str | Path | None = None, *,
                    overwrite: bool = False, request: SelectRequest | None = None) -> dict[str, Any]:  # fmt: skip
    """Write the uid ``.npy`` (DataComp format, sorted ``u8,u8``), the ``.json`` summary and, when the
    selection has them, the extra columns (``.parquet``: uid + columns of the selected rows) and the
    presets' verdicts (``.verdicts.parquet``: uid + one bool column per preset, every pool row).

    Refuses to write into ``scores/`` or ``arrays/`` of a run, side files into a metadata folder, and to
    replace an existing selection unless ``overwrite``. Returns the summary written to the ``.json``.
    """
    verdicts = sel.verdicts
    will = ("json", *(("columns",) if sel.columns else ()), *(("verdicts",) if verdicts else ()))
    out = check_output(out, pool, overwrite, will)
    try:
        return _write_selection(pool, sel, out, source, request)
    except OSError as e:  # disk full, read-only file system, permission denied: exit 4, no traceback
        raise EnvironmentIOError(f"cannot write the selection {out}: {e.strerror or e}") from None


def _write_selection(pool: Pool, sel: Selection, out: Path, source: str | Path | None,
                     request: SelectRequest | None) -> dict[str, Any]:  # fmt: skip
    verdicts = sel.verdicts
    sides = side_paths(out)
    n = len(pool)
    hi, lo, _ = pool.uids()
    mask = np.asarray(sel.mask, dtype=bool)
    hs, ls = sort_pairs(hi[mask], lo[mask])
    save_subset_pairs(out, hs, ls)
    del hs, ls
    summary: dict[str, Any] = {
        "format": FORMAT,
        "source": str(source if source is not None else pool.source),
        "pool_kind": pool.kind,
        "pool_rows": int(n),
        "selected": int(mask.sum()),
        "fraction_selected": float(mask.mean()) if n else 0.0,
        "subset": str(out),
        "columns_file": None,
        "verdicts_file": None,
        "request": request.to_json() if request is not None else None,
        "steps": [s.to_dict() for s in sel.steps],
        "warnings": list(sel.warnings),
        "provenance": _provenance(pool, sel),
    }
    if sel.columns:
        cols = {"uid": pool.uid_strings(mask)}
        for c, v in sel.columns.items():
            cols[c] = pa.array(np.asarray(v, dtype=object)[mask].tolist())
        _write_parquet(pa.table(cols), sides["columns"])
        summary["columns_file"] = str(sides["columns"])
    elif sides["columns"].exists():
        sides["columns"].unlink()  # ours (check_output verified it): stale from an earlier selection
    if verdicts:
        cols = {"uid": pool.uid_strings()}
        cols.update({name: pa.array(np.asarray(v, dtype=bool)) for name, v in verdicts.items()})
        _write_parquet(pa.table(cols), sides["verdicts"])
        summary["verdicts_file"] = str(sides["verdicts"])
    elif sides["verdicts"].exists():
        sides["verdicts"].unlink()
    tmp = sides["json"].with_name(f".{sides['json'].name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    tmp.replace(sides["json"])
    return summary


def _write_parquet(t: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(t, tmp, compression="zstd")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _provenance(pool: Pool, sel: Selection) -> dict[str, Any]:
    """Model provenance of the columns the steps used (model-based columns only)."""
    from altsift.select.provenance import column_provenance

    signals = pool.signals()
    used: set[str] = set()

    def walk(steps: list[dict[str, Any]]) -> None:
        for s in steps:
            if s.get("column"):
                used.add(s["column"])
            d = s.get("detail") or {}
            used.update(c for c in d.get("columns", []) if isinstance(c, str))
            used.update(k for k in (d.get("weights") or {}) if isinstance(k, str))
            walk(d.get("steps") or [])

    walk([s.to_dict() for s in sel.steps])
    out = {}
    for c in sorted(used):
        rec = column_provenance(signals, c)
        if rec is not None:
            out[c] = rec
    return out


# ------------------------------------------------------------------------------------ replay and helpers
def eval_where(df: pd.DataFrame, expr: str) -> np.ndarray:
    """Evaluate a ``--where`` expression on a DataFrame (the safe language; see :mod:`altsift.select.expr`)."""
    pool = Pool(df=df)
    w = compile_where(expr, pool.types)
    return pool.where([w])[0]


def replay(source: Any, steps: list[dict[str, Any]], subset: str | Path | None = None):
    """Re-evaluate recorded top-level steps on a pool: yields ``(step, alone_mask, cumulative_mask)``.

    ``alone_mask`` is None for steps that do not filter (fuse). A preset step is re-run with its recorded
    options; when that is impossible and ``subset`` (the selection's .npy) is given, the last step's
    result is the subset membership. Used by the report to show what each step removed.
    """
    pool = Pool.open(source)
    n = len(pool)
    mask = np.ones(n, dtype=bool)
    eligible = None
    for i, st in enumerate(steps):
        kind, d = st.get("kind"), st.get("detail") or {}
        m: np.ndarray | None
        if kind == "status":
            m = pool.status_ok()
        elif kind == "dedup":
            m = first_occurrence(*pool.uids())
        elif kind == "fuse":
            pool.set_column(st["column"], fuse(pool, d["weights"]))
            m = None
        elif kind == "where":
            m = pool.where([compile_where(d.get("expression", st["name"][6:]), pool.types)])[0]
        elif kind == "top_fraction":
            m, _ = top_fraction_mask(pool.numeric(st["column"]), float(st["fraction"]))
        elif kind == "preset":
            try:
                m = make_preset(d["preset"], d.get("options") or {}).apply(pool).mask
            except ConfigError:
                if subset is None or i != len(steps) - 1:
                    raise
                m = pool.member(read_subset(subset))
        elif kind == "subset":
            m = pool.member(read_subset(d["path"]))
            if st.get("op") == "not":
                m = ~m
            elif st.get("op") == "or":
                mask = mask | (m & (eligible if eligible is not None else True))
                yield st, m, mask.copy()
                continue
        else:
            raise ConfigError(f"step {i + 1} ('{st.get('name')}') has an unknown kind {kind!r}")
        if m is not None:
            mask = mask & m
        if kind == "dedup":
            eligible = mask.copy()
        yield st, m, mask.copy()


def request_from_options(s: Any) -> SelectRequest:
    """A :class:`SelectRequest` from a config's ``select:`` section (:class:`altsift.config.SelectOptions`)."""
    names = [s.preset] if isinstance(s.preset, str) else list(s.preset or [])
    presets: dict[str, dict[str, Any]] = {}
    if len(names) == 1:
        presets[names[0]] = dict(s.preset_options)
    else:
        extra = set(s.preset_options) - set(names)
        if extra:
            raise ConfigError(f"select.preset_options: {', '.join(sorted(extra))} are not among the presets "
                              f"({', '.join(names) or 'none'}); with several presets, give {{preset: {{option: value}}}}")  # fmt: skip
        for n in names:
            if n in presets:
                raise ConfigError(f"select.preset lists '{n}' twice")
            opts = s.preset_options.get(n) or {}
            if not isinstance(opts, dict):
                raise ConfigError(f"select.preset_options.{n} must be a mapping of options")
            presets[n] = dict(opts)
    return SelectRequest(where=list(s.where), top_fraction=dict(s.top_fraction), fuse=dict(s.fuse), presets=presets,
                         and_subsets=list(s.and_), or_subsets=list(s.or_), not_subsets=list(s.not_),
                         verdicts=s.verdicts)  # fmt: skip
