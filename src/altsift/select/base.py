"""Selection primitives, the lazy :class:`Pool`, and the preset registry.

Selection runs on score columns alone (never images or models). A selection is a boolean mask plus
structured steps saying how many rows each condition kept, and optionally extra per-row columns
(e.g. ``caption`` / ``caption_source`` from a mixing policy) written next to the subset for
``altsift export --caption-column``.

Pool-wide semantics: every fraction / normalisation is computed over the whole pool given to select
(all shards), never per shard and never after another condition, following DataComp ``get_threshold``
and SIEVE ``generic_filter``.

The pool is lazy: a column is read (projected, streamed) the first time a condition asks for it, and
several columns can be read in one scan with :meth:`Pool.load`; nothing builds a whole-pool frame.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from altsift.errors import ConfigError
from altsift.io.pool import BATCH_ROWS, PoolFiles, load_array
from altsift.io.uids import format_hex_uids, member_pairs, parse_hex_uids
from altsift.registry import Registry
from altsift.select.expr import kind_of

if TYPE_CHECKING:
    from altsift.select.expr import Where

log = logging.getLogger("altsift.select")

STEP_KINDS = ("status", "dedup", "where", "top_fraction", "threshold", "fuse", "preset", "subset")


@dataclass
class Step:
    """One selection step, as written to the subset ``.json`` ``steps`` list.

    ``kept_alone``: rows this step keeps by itself (null when it was evaluated only on rows earlier steps
    kept); ``kept_cumulative``: rows left after it and every earlier step. A preset's own steps are
    nested under ``detail["steps"]`` with the same fields.
    """

    name: str
    kind: str
    column: str | None = None
    op: str | None = None
    threshold: float | None = None
    fraction: float | None = None
    kept_alone: int | None = None
    kept_cumulative: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("threshold", "fraction"):
            if d[k] is not None:
                d[k] = float(d[k])
        return d


@dataclass
class Selection:
    """The result of selecting on a pool."""

    mask: np.ndarray
    steps: list[Step] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: per preset, its own mask (written to ``<out>.verdicts.parquet`` when asked)
    verdicts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_selected(self) -> int:
        return int(self.mask.sum())


class StepLog:
    """Accumulates AND-ed conditions as steps (each alone and cumulatively)."""

    def __init__(self, n: int) -> None:
        self.mask = np.ones(n, dtype=bool)
        self.steps: list[Step] = []

    def add(self, name: str, cond: np.ndarray | None, kind: str = "where", *, alone: bool = True,
            **fields: Any) -> None:  # fmt: skip
        if cond is not None:
            self.mask &= cond
        detail = fields.pop("detail", {}) or {}
        self.steps.append(Step(name, kind, kept_alone=int(cond.sum()) if cond is not None and alone else None,
                               kept_cumulative=int(self.mask.sum()), detail=detail, **fields))  # fmt: skip

    def result(self, **kw: Any) -> Selection:
        return Selection(self.mask, self.steps, **kw)


# ------------------------------------------------------------------------------------ primitives
#: pools up to this many scored rows use one partial sort of a copy; larger ones a two-pass histogram
PARTITION_MAX = 4_000_000
_CHUNK = 1 << 20
_BINS = 1 << 16


def get_threshold(scores: np.ndarray, fraction: float) -> float:
    """DataComp ``get_threshold``: ``-sort(-scores)[int(N * fraction)]`` over the whole pool.

    Keeping ``scores >= threshold`` then keeps about ``fraction`` of the pool (ties may add rows).
    Rows without a score (NaN: failed or unscored samples) are not part of N and are never kept.
    The value is exactly DataComp's, found without sorting: a partial sort (``np.partition``) of a copy
    for small pools; for large ones, without a whole-column copy, a histogram of the scores (in chunks)
    locates the bin holding the rank and only that bin's values are partially sorted.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    s = np.asarray(scores, dtype=np.float64)
    n = s.size - int(np.count_nonzero(np.isnan(s)))
    if n == 0:
        return float("inf")
    idx = min(int(n * fraction), n - 1)  # index into the descending order
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = float(np.nanmin(s)), float(np.nanmax(s))
    if n <= PARTITION_MAX or not (np.isfinite(lo) and np.isfinite(hi)) or hi == lo:
        if hi == lo:
            return lo
        v = s[~np.isnan(s)]
        k = n - 1 - idx  # the same element in ascending order
        v.partition(k)
        return float(v[k])
    scale = _BINS / (hi - lo)

    def bins_of(c: np.ndarray) -> np.ndarray:
        b = ((c - lo) * scale).astype(np.int64)
        np.clip(b, 0, _BINS - 1, out=b)  # monotone in the score: higher bins hold larger values
        return b

    counts = np.zeros(_BINS, dtype=np.int64)
    for i in range(0, s.size, _CHUNK):
        c = s[i : i + _CHUNK]
        counts += np.bincount(bins_of(c[~np.isnan(c)]), minlength=_BINS)
    above = np.cumsum(counts[::-1])[::-1] - counts  # values in higher bins
    target = int(np.flatnonzero((above <= idx) & (idx < above + counts))[0])
    parts = []
    for i in range(0, s.size, _CHUNK):
        c = s[i : i + _CHUNK]
        c = c[~np.isnan(c)]
        parts.append(c[bins_of(c) == target])
    v = np.concatenate(parts)
    r = idx - int(above[target])  # rank within the bin, from the top
    k = v.size - 1 - r
    v.partition(k)
    return float(v[k])


def top_fraction_mask(scores: np.ndarray, fraction: float) -> tuple[np.ndarray, float]:
    """Mask of ``scores >= get_threshold(scores, fraction)`` (NaN never kept) and the threshold."""
    t = get_threshold(scores, fraction)
    return ge(scores, t), t


def ge(scores: np.ndarray, t: float) -> np.ndarray:
    """``scores >= t`` with NaN never passing."""
    with np.errstate(invalid="ignore"):
        return np.asarray(scores, dtype=np.float64) >= t


def minmax(values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Min-max normalise over the whole pool (SIEVE ``generic_filter``); NaN stays NaN.

    ``rows``: compute min and max over these rows only (fusion uses the rows where every fused column
    is present, so normalisation and ranking see the same rows).
    """
    v = np.asarray(values, dtype=np.float64)
    ref = v if rows is None else v[rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN / empty: handled below
        lo = np.nanmin(ref) if ref.size else np.nan
        hi = np.nanmax(ref) if ref.size else np.nan
    if not np.isfinite(lo) or not np.isfinite(hi) or hi == lo:
        return np.where(np.isnan(v), np.nan, 0.0)
    return (v - lo) / (hi - lo)


def fuse(df: Any, weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of min-max-normalised columns; weights must sum to 1 (SIEVE fusion).

    ``df``: a :class:`Pool`, a DataFrame or a mapping of column -> array. A row missing any fused column
    gets NaN (never selected), and each column is normalised over the rows where **all** fused columns
    are present: the rows that are ranked. Without missing values this is exactly SIEVE's
    ``generic_filter`` (which normalises each column over its own rows and counts every row in N).
    """
    if not weights:
        raise ConfigError("--fuse needs at least one COLUMN=WEIGHT")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"fusion weights must sum to 1, got {total:g} ({dict(weights)})")
    cols = {c: _numeric_of(df, c) for c in weights}
    n = len(next(iter(cols.values())))
    complete = np.ones(n, dtype=bool)
    for v in cols.values():
        complete &= ~np.isnan(v)
    out = np.zeros(n, dtype=np.float64)
    if complete.any():
        for col, w in weights.items():
            v = cols[col]
            lo = float(np.min(v, where=complete, initial=np.inf))  # no copy of the column
            hi = float(np.max(v, where=complete, initial=-np.inf))
            if not np.isfinite(lo) or not np.isfinite(hi) or hi == lo:
                continue  # a constant column normalises to 0
            for i in range(0, n, _CHUNK):  # w * ((v - lo) / (hi - lo)): SIEVE's operations, in its order
                out[i : i + _CHUNK] += w * ((v[i : i + _CHUNK] - lo) / (hi - lo))
    out[~complete] = np.nan
    return out


def _numeric_of(src: Any, col: str) -> np.ndarray:
    if isinstance(src, Pool):
        return src.numeric(col)
    if isinstance(src, pd.DataFrame):
        return require_column(src, col)
    if col not in src:
        raise ConfigError(f"column '{col}' is not in the pool. Available: {', '.join(map(str, src))}")
    return np.asarray(src[col], dtype=np.float64)


def require_column(df: Any, col: str) -> np.ndarray:
    """Column as float array, or a clear error naming the available columns (Pool or DataFrame)."""
    if isinstance(df, Pool):
        return df.numeric(col)
    if col not in df.columns:
        raise ConfigError(
            f"column '{col}' is not in the score tables. Available: {', '.join(map(str, df.columns))}"
        )
    s = df[col]
    if s.dtype == object:
        first = next((v for v in s if v is not None and not (isinstance(v, float) and np.isnan(v))), None)
        if first is not None and not isinstance(first, int | float | np.number | bool):
            raise ConfigError(
                _not_numeric(col, "list" if isinstance(first, list | tuple | np.ndarray) else "str")
            )
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


def _not_numeric(col: str, kind: str, type_: Any = None) -> str:
    if kind == "list":
        return (f"column '{col}' holds lists{f' ({type_})' if type_ else ''}, not numbers (e.g. one score per "
                "caption); score a single text column into it, or reduce it first")  # fmt: skip
    if kind == "str":
        return f"column '{col}' holds text, not numbers: it cannot be ranked or thresholded"
    return f"column '{col}' holds {type_ or kind} values, not numbers"


# ------------------------------------------------------------------------------------ the pool
def _frame_to_table(df: pd.DataFrame) -> pa.Table:
    arrays, names = [], []
    for c in df.columns:
        s = df[c]
        try:
            arr = pa.array(s, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arr = pa.array([None if v is None else str(v) for v in s], pa.string())
        arrays.append(arr)
        names.append(str(c))
    return (
        pa.Table.from_arrays(arrays, names=names)
        if names
        else pa.table({"_": pa.nulls(len(df))}).drop_columns(["_"])
    )


def _to_f64(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if not pa.types.is_float64(arr.type):
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


class Pool:
    """The pool as selection sees it: lazy, column-pruned access to one row per sample.

    ``Pool.open(path)`` reads a run directory or DataComp metadata lazily; ``Pool(df)`` (a DataFrame or
    arrow table) is an in-memory pool for tests and notebooks. Row order: files sorted by name, rows in
    file order. ``array(name)`` returns a row-aligned 2-D array (``RUN_DIR/arrays/<name>/<shard>.npy``,
    or the ``name`` key of the ``.npz`` beside each DataComp metadata parquet, e.g. ``l14_img``).
    """

    def __init__(self, df: pd.DataFrame | pa.Table | None = None, source: Any = None,
                 array_loader: Callable[[str], np.ndarray] | None = None, *, files: PoolFiles | None = None,
                 progress: bool = False) -> None:  # fmt: skip
        self._files = files
        self._table: pa.Table | None = None
        if files is None:
            if df is None:
                raise ConfigError("a Pool needs a DataFrame / arrow table, or files (Pool.open)")
            self._table = df if isinstance(df, pa.Table) else _frame_to_table(df)
        self.source = Path(source) if source is not None else (files.source if files is not None else None)
        self._array_loader = array_loader
        self.progress = progress
        schema = files.schema if files is not None else self._table.schema  # type: ignore[union-attr]
        self._stored: dict[str, pa.DataType] = {f.name: f.type for f in schema}
        self._derived: dict[str, np.ndarray | pa.ChunkedArray] = {}
        self._derived_types: dict[str, pa.DataType] = {}
        self._cache: dict[str, np.ndarray | pa.ChunkedArray] = {}
        self._uids: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ok: np.ndarray | None = None
        self.notes: list[str] = []

    @classmethod
    def open(cls, source: Any, progress: bool = False) -> Pool:
        """A pool from a path (run dir, metadata folder, parquet file), a DataFrame, a table or a Pool."""
        if isinstance(source, Pool):
            return source
        if isinstance(source, pd.DataFrame | pa.Table):
            return cls(df=source)
        return cls(files=PoolFiles.open(source), progress=progress)

    # -------------------------------------------------------------- shape and schema
    @property
    def kind(self) -> str:
        return self._files.kind if self._files is not None else "memory"

    @property
    def files(self) -> PoolFiles | None:
        return self._files

    def __len__(self) -> int:
        return self._files.n if self._files is not None else self._table.num_rows  # type: ignore[union-attr]

    @property
    def n(self) -> int:
        return len(self)

    @property
    def types(self) -> dict[str, pa.DataType]:
        """Arrow type of every column (stored and derived)."""
        return {**self._stored, **self._derived_types}

    @property
    def columns(self) -> list[str]:
        return list(self.types)

    def has(self, col: str) -> bool:
        return col in self._stored or col in self._derived

    def _require(self, col: str) -> pa.DataType:
        t = self.types.get(col)
        if t is None:
            import difflib

            close = difflib.get_close_matches(col, self.columns, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"column '{col}' is not in the score tables{hint}. Available: {', '.join(self.columns)}"
            )
        return t

    # -------------------------------------------------------------- reading
    def _batches(self, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        if self._files is not None:
            yield from self._files.batches(columns, progress=self.progress)
            return
        t = self._table
        cols = [c for c in dict.fromkeys(columns) if c in t.column_names]  # type: ignore[union-attr]
        sub = t.select(cols) if cols else pa.table({"_": pa.nulls(t.num_rows)})  # type: ignore[union-attr]
        batches = sub.to_batches(max_chunksize=BATCH_ROWS) or [
            pa.RecordBatch.from_pylist([], schema=sub.schema)
        ]
        for b in batches:
            yield b if cols else b.select([])

    def load(self, columns: Iterable[str] = (), where: Sequence[Where] = (), uids: bool = False,
             status: bool = False) -> list[np.ndarray]:  # fmt: skip
        """Read stored ``columns`` into the cache, evaluate ``where`` expressions and read uids / status,
        all in one streaming scan. Returns one mask per expression. Numbers are kept as float64 arrays,
        other columns as arrow arrays; expression-only columns are not kept.
        """
        n = len(self)
        cols = [c for c in dict.fromkeys(columns) if c in self._stored and c not in self._cache]
        num = [c for c in cols if kind_of(self._stored[c]) == "num"]
        other = [c for c in cols if c not in num]
        need_uids = uids and self._uids is None
        need_ok = status and self._ok is None
        read = list(cols)
        if need_uids:
            if "uid" not in self._stored:
                raise ConfigError("the pool has no 'uid' column: subsets are lists of uids")
            read.append("uid")
        stored_status = "status" in self._stored
        if need_ok and stored_status:
            read.append("status")
        for w in where:
            read.extend(w.columns)
        if not read and not where and not need_ok:
            return []
        bufs = {c: np.empty(n, dtype=np.float64) for c in num}
        chunks: dict[str, list[pa.Array]] = {c: [] for c in other}
        masks = [np.empty(n, dtype=bool) for _ in where]
        if need_uids:
            hi, lo, valid = np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, bool)
        ok = np.ones(n, dtype=bool) if need_ok else None
        pos = 0
        for b in self._batches(read):
            r = b.num_rows
            sl = slice(pos, pos + r)
            if pos + r > n:
                raise ConfigError(f"the pool changed while reading it (more than {n} rows)")
            for c in num:
                bufs[c][sl] = _to_f64(b.column(c))
            for c in other:
                chunks[c].append(b.column(c))
            if need_uids:
                hi[sl], lo[sl], valid[sl] = parse_hex_uids(b.column("uid"))
            if ok is not None and stored_status:
                st = b.column("status")
                if kind_of(st.type) != "str":
                    st = pc.cast(st, pa.string())  # an all-null (or odd) status column
                ok[sl] = np.asarray(
                    pc.fill_null(pc.equal(st, "ok"), False).to_numpy(zero_copy_only=False), dtype=bool
                )
            for m, w in zip(masks, where, strict=True):
                m[sl] = w.evaluate({c: b.column(c) for c in w.columns}, r)
            pos += r
        if pos != n:
            raise ConfigError(f"the pool changed while reading it ({pos} rows read, {n} expected)")
        self._cache.update(bufs)
        for c in other:
            self._cache[c] = pa.chunked_array(chunks[c], type=self._stored[c])
        if need_uids:
            self._uids = (hi, lo, valid)
        if ok is not None:
            self._ok = ok
        return masks

    def release(self, columns: Iterable[str] | None = None) -> None:
        """Drop cached columns (all by default; never the uids nor the status): read again when asked for."""
        if columns is None:
            self._cache.clear()
        for c in columns or ():
            self._cache.pop(c, None)

    def where(self, exprs: Sequence[Where]) -> list[np.ndarray]:
        """Masks of expressions; those naming derived columns are evaluated on whole columns."""
        stream = [w for w in exprs if not any(c in self._derived for c in w.columns)]
        masks = dict(zip([id(w) for w in stream], self.load(where=stream), strict=True))
        out = []
        for w in exprs:
            if id(w) in masks:
                out.append(masks[id(w)])
            else:
                out.append(w.evaluate({c: self.column(c) for c in w.columns}, len(self)))
        return out

    def column(self, col: str) -> pa.ChunkedArray:
        """The whole column as arrow (read once, then cached)."""
        if col in self._derived:
            v = self._derived[col]
            return v if isinstance(v, pa.ChunkedArray) else pa.chunked_array([pa.array(v, from_pandas=True)])
        self._require(col)
        if col not in self._cache:
            self.load([col])
        v = self._cache[col]
        if isinstance(v, np.ndarray):
            return pa.chunked_array([pa.array(v, from_pandas=True)])
        return v

    def numeric(self, col: str) -> np.ndarray:
        """The column as float64 (null -> NaN), or a clear error when it does not hold numbers."""
        if col in self._derived:
            v = self._derived[col]
            if isinstance(v, np.ndarray) and v.dtype.kind in "fiub":
                return v.astype(np.float64, copy=False)
            t = self._derived_types[col]
        else:
            t = self._require(col)
            v = self._cache.get(col)
            if isinstance(v, np.ndarray):
                return v
        k = kind_of(t)
        if k not in ("num", "bool", "null"):
            raise ConfigError(_not_numeric(col, k, t))
        if col not in self._derived and col not in self._cache:
            self.load([col])
            v = self._cache[col]
            if isinstance(v, np.ndarray):
                return v
        arr = self.column(col)
        return np.full(len(self), np.nan) if k == "null" else _to_f64(arr)

    def boolean(self, col: str, null: bool = False) -> np.ndarray:
        """The column as bool (null -> ``null``); numbers are true when non-zero."""
        t = self.types.get(col) or self._require(col)
        k = kind_of(t)
        if k == "num":
            v = self.numeric(col)
            return np.where(np.isnan(v), null, v != 0)
        if k not in ("bool", "null"):
            raise ConfigError(f"column '{col}' holds {t} values, not true/false")
        if k == "null":
            return np.full(len(self), null, dtype=bool)
        arr = self.column(col)
        return np.asarray(pc.fill_null(arr, null).to_numpy(zero_copy_only=False), dtype=bool)

    def texts(self, col: str) -> np.ndarray:
        """The column as a numpy object array of str / None (text columns only)."""
        t = self.types.get(col) or self._require(col)
        k = kind_of(t)
        if k not in ("str", "null"):
            raise ConfigError(f"column '{col}' holds {t} values, not text")
        arr = self.column(col)
        if k == "null":
            return np.full(len(self), None, dtype=object)
        if pa.types.is_dictionary(arr.type):
            arr = pc.cast(arr, arr.type.value_type)
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)

    def set_column(self, name: str, values: Any, type: pa.DataType | None = None) -> None:
        """Add a derived column (e.g. a fused score, or ``lang`` computed on the fly)."""
        if isinstance(values, pa.ChunkedArray | pa.Array):
            arr = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
            self._derived[name], self._derived_types[name] = arr, arr.type
        else:
            v = np.asarray(values)
            if len(v) != len(self):
                raise ConfigError(f"column '{name}' has {len(v)} values; the pool has {len(self)} rows")
            if v.dtype.kind in "fiu":
                self._derived[name], self._derived_types[name] = (
                    v.astype(np.float64, copy=False),
                    pa.float64(),
                )
            elif v.dtype.kind == "b":
                self._derived[name], self._derived_types[name] = v, pa.bool_()
            else:
                arr = pa.chunked_array([pa.array(v.tolist(), type=type)])
                self._derived[name], self._derived_types[name] = arr, arr.type
        self._cache.pop(name, None)

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        """A pandas frame of a few columns (for small pools, notebooks and reports)."""
        return pd.DataFrame({c: self.column(c).to_pandas() for c in columns})

    # -------------------------------------------------------------- identity
    def uids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(hi, lo, valid)``: the uids as two uint64 halves (DataComp's ``u8,u8``) and which parse."""
        if self._uids is None:
            self.load(uids=True)
        return self._uids  # type: ignore[return-value]

    def status_ok(self) -> np.ndarray:
        """Rows whose status is ``ok`` (every row of a pool without a status column)."""
        if self._ok is None:
            self.load(status=True)
            if self._ok is None:
                self._ok = np.ones(len(self), dtype=bool)
        return self._ok

    def uid_strings(self, mask: np.ndarray | None = None) -> pa.Array:
        """Hex uids (arrow strings) of the rows in ``mask`` (all rows when None)."""
        hi, lo, _ = self.uids()
        if mask is not None:
            hi, lo = hi[mask], lo[mask]
        return format_hex_uids(hi, lo)

    def member(self, subset: np.ndarray) -> np.ndarray:
        """Rows whose uid is in a sorted ``u8,u8`` subset array."""
        hi, lo, valid = self.uids()
        return member_pairs(subset, hi, lo) & valid

    def array(self, name: str) -> np.ndarray:
        if self._array_loader is not None:
            return self._array_loader(name)
        if self._files is None:
            raise ConfigError(f"this pool has no arrays; '{name}' is needed")
        return load_array(self._files, name)

    def signals(self) -> dict[str, Any]:
        """``{signal: options}`` recorded by the run that wrote the tables (empty for other pools)."""
        return self._files.signals() if self._files is not None else {}


# ------------------------------------------------------------------------------------ presets
class PresetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Preset:
    """A named selection recipe (DataComp baselines, SIEVE fusion, mixing policies, parrot filter)."""

    name: ClassVar[str]
    Options: ClassVar[type[PresetOptions]] = PresetOptions
    #: columns the preset reads, read together in one scan before it runs
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: PresetOptions | dict[str, Any] | None = None) -> None:
        if options is None:
            options = self.Options()
        elif not isinstance(options, PresetOptions):
            options = self.Options.model_validate(dict(options))
        self.options = options

    def needed_columns(self) -> tuple[str, ...]:
        """Columns to read before :meth:`apply` (those missing from a pool are skipped)."""
        return self.needs

    def check(self, pool: Pool) -> list[str]:
        """Warnings about the pool this preset is about to run on (e.g. the CLIP architecture)."""
        return []

    def apply(self, pool: Pool) -> Selection:  # pragma: no cover - abstract
        raise NotImplementedError


PRESETS: Registry[type[Preset]] = Registry(
    "preset",
    (
        "altsift.select.datacomp",
        "altsift.select.mixing",
        "altsift.select.sieve_fusion",
        "altsift.select.parrot",
    ),
)


def register_preset(cls: type[Preset]) -> type[Preset]:
    return PRESETS.register(cls)


def available_presets() -> dict[str, type[Preset]]:
    return PRESETS.available()


def get_preset(name: str) -> type[Preset]:
    return PRESETS.get(name)
