"""Reading a pool for selection: only the columns asked for, streamed, under one schema.

A pool is an altsift run directory (``RUN_DIR/scores/*.parquet``), a folder of DataComp metadata
parquet files (``uid``, ``text``, ``clip_*_similarity_score`` ... with ``.npz`` features beside them)
or a single parquet file. Engine: pyarrow's parquet reader (already a core dependency, so the light
install keeps working): footers give row counts and schemas; a scan reads only the column chunks it
needs, one row group at a time with arrow's decoding threads, at most ``PREFETCH`` row groups ahead of
the consumer, in file order; every file is cast to one unified schema (a column typed ``null`` in an
older shard, or missing from it, reads as nulls of the column's type). ``pyarrow.dataset``'s scanner
was the first choice, but it reads ahead without bound when the consumer is slower than the disk
(570 MB of buffered batches on a 20M-row pool). docs/select.md compares it with Polars and DuckDB.

Row order is the pool order everywhere: files sorted by name, rows in file order.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from altsift.errors import ConfigError
from altsift.io.schema import BASE_TYPES

log = logging.getLogger(__name__)

SIGNALS_META_KEY = b"altsift.signals"
BATCH_ROWS = 131_072
#: row groups read ahead of the consumer (bounds memory; pyarrow.dataset's scanner buffered ~570 MB here)
PREFETCH = 2
_READ_ERRORS = (OSError, pa.ArrowException, ValueError)


def pool_files(source: str | Path) -> tuple[list[Path], str]:
    """Parquet files of a pool and its kind: ``run`` (altsift RUN_DIR) or ``metadata`` (DataComp)."""
    p = Path(source)
    if (p / "scores").is_dir():
        files, kind = sorted((p / "scores").glob("*.parquet")), "run"
    elif p.is_dir():
        files, kind = sorted(p.glob("*.parquet")), "metadata"
    elif p.is_file() and p.suffix == ".parquet":
        files, kind = [p], "metadata"
    else:
        raise ConfigError(
            f"{p} is neither a run directory (with scores/), a folder of parquet files, nor a parquet file"
        )
    if not files:
        raise ConfigError(f"no parquet score tables found in {p}")
    return files, kind


def checked_pool_files(source: str | Path) -> tuple[list[Path], str]:
    """:func:`pool_files`, each file's parquet footer read once: a corrupt or truncated table is a
    ConfigError naming the file (for readers such as the report that open files one by one)."""
    files, kind = pool_files(source)
    for f in files:
        try:
            pq.read_metadata(f)
        except _READ_ERRORS as e:
            raise _bad_file(f, e) from None
    return files, kind


def read_table_checked(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """``pq.read_table`` where a corrupt or truncated file is a ConfigError naming it."""
    try:
        return pq.read_table(path, columns=None if columns is None else list(columns))
    except _READ_ERRORS as e:
        raise _bad_file(path, e) from None


def _bad_file(path: Path, e: BaseException) -> ConfigError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ConfigError(
        f"{path}: cannot read this table ({msg}). It is corrupt or truncated: move it aside (an altsift run "
        "rescores its shard on the next `altsift score`) or restore it"
    )


def unify_schemas(schemas: Sequence[pa.Schema], files: Sequence[Path]) -> pa.Schema:
    """One schema for all files: per column the non-null type (ints and floats meet as float64).

    A column that is ``null`` in every file takes its declared base type when it has one.
    """
    names: dict[str, list[tuple[pa.DataType, Path]]] = {}
    for s, f in zip(schemas, files, strict=True):
        for fld in s:
            names.setdefault(fld.name, []).append((fld.type, f))
    fields = []
    for name, typed in names.items():
        types = [t for t, _ in typed if not pa.types.is_null(t)]
        if not types:
            fields.append(pa.field(name, BASE_TYPES.get(name, pa.null())))
            continue
        distinct = list(dict.fromkeys(types))
        if len(distinct) == 1:
            fields.append(pa.field(name, distinct[0]))
            continue
        try:
            merged = pa.unify_schemas(
                [pa.schema([pa.field(name, t)]) for t in distinct], promote_options="permissive"
            )
            t = merged.field(name).type
            if pa.types.is_integer(t) and any(pa.types.is_floating(x) for x in distinct):  # pragma: no cover
                t = pa.float64()
            fields.append(pa.field(name, t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            a = next(f for t, f in typed if t == distinct[0])
            b = next(f for t, f in typed if t == distinct[1])
            raise ConfigError(
                f"column '{name}' has incompatible types across tables: {distinct[0]} in {a}, {distinct[1]} in {b}"
            ) from None
    return pa.schema(fields)


@dataclass
class PoolFiles:
    """The files of a pool with their row counts and one unified schema (footers only are read)."""

    source: Path
    kind: str
    files: list[Path]
    rows: list[int]
    schemas: list[pa.Schema]
    schema: pa.Schema
    metadata: list[pq.FileMetaData] = field(default_factory=list)
    offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.rows, dtype=np.int64)]).astype(np.int64)

    @classmethod
    def open(cls, source: str | Path) -> PoolFiles:
        files, kind = pool_files(source)
        rows, schemas, metas = [], [], []
        for f in files:
            try:
                md = pq.read_metadata(f)
                schemas.append(md.schema.to_arrow_schema())
                rows.append(md.num_rows)
                metas.append(md)
            except _READ_ERRORS as e:
                raise _bad_file(f, e) from None
        if kind == "metadata":
            for f, s in zip(files, schemas, strict=True):
                if "uid" not in s.names:
                    raise ConfigError(
                        f"{f} has no 'uid' column: DataComp metadata identifies samples by uid "
                        f"(columns: {', '.join(s.names[:20])})"
                    )
        return cls(Path(source), kind, files, rows, schemas, unify_schemas(schemas, files), metas)

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def signals(self) -> dict[str, Any]:
        """``{signal: options}`` recorded in the tables' schema metadata (first record of each signal)."""
        out: dict[str, Any] = {}
        for s in self.schemas:
            raw = (s.metadata or {}).get(SIGNALS_META_KEY)
            if not raw:
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict):
                for k, v in rec.items():
                    out.setdefault(k, v)
        return out

    def batches(self, columns: Sequence[str], progress: bool = False) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns`` in pool order, cast to the unified schema.

        Row groups are read (projected, decoded with arrow's threads) by a reader thread at most
        ``PREFETCH`` row groups ahead of the consumer, so memory stays bounded however slow the consumer
        is. A file that fails to read is named in the error.
        """
        cols = [c for c in dict.fromkeys(columns) if c in self.schema.names]
        units = [(fi, rg) for fi, md in enumerate(self.metadata) for rg in range(md.num_row_groups)]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=self.n, unit="rows", desc="reading", leave=False)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="altsift-read")
        pending: deque[Future] = deque()
        try:
            it = iter(units)
            for unit in it:
                pending.append(pool.submit(self._read_unit, *unit, cols))
                if len(pending) >= PREFETCH:
                    break
            while pending:
                t = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._read_unit, *nxt, cols))
                for b in t.to_batches(max_chunksize=BATCH_ROWS) if cols else [t]:
                    if bar is not None:
                        bar.update(b.num_rows)
                    yield b
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()

    def _read_unit(self, fi: int, rg: int, cols: list[str]) -> pa.Table | pa.RecordBatch:
        """One row group of one file, projected to ``cols`` and conformed to the unified schema."""
        f, md = self.files[fi], self.metadata[fi]
        n = md.row_group(rg).num_rows
        if not cols:
            return pa.record_batch([pa.nulls(n)], names=["_"]).select([])
        present = [c for c in cols if c in self.schemas[fi].names]
        try:
            t = (
                pq.ParquetFile(f, metadata=md).read_row_group(rg, columns=present, use_threads=True)
                if present
                else None
            )
        except _READ_ERRORS as e:
            raise _bad_file(f, e) from None
        arrays = []
        for c in cols:
            typ = self.schema.field(c).type
            if t is None or c not in t.column_names:
                arrays.append(pa.nulls(n, typ))
                continue
            a = t.column(c)
            if a.type != typ:
                try:
                    a = pa.chunked_array([pa.nulls(len(a), typ)]) if pa.types.is_null(a.type) else a.cast(typ)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                    raise ConfigError(
                        f"{f}: column '{c}' of type {a.type} cannot be read as {typ} ({e})"
                    ) from None
            arrays.append(a)
        return pa.Table.from_arrays(arrays, schema=pa.schema([self.schema.field(c) for c in cols]))

    def table(self, columns: Sequence[str], progress: bool = False) -> pa.Table:
        """The whole pool's ``columns`` as one arrow table (plus ``status``/``shard`` for metadata)."""
        want = list(dict.fromkeys(columns))
        real = [c for c in want if c in self.schema.names]
        if real:
            schema = pa.schema([self.schema.field(c) for c in real])
            t = pa.Table.from_batches(list(self.batches(real, progress=progress)), schema=schema)
        else:
            t = pa.table({"_": pa.nulls(self.n)}).drop_columns(["_"])
        if "status" in want and "status" not in real:
            t = t.append_column("status", pa.array(np.full(self.n, "ok", dtype=object), pa.string()))
        if "shard" in want and "shard" not in real:
            stems = np.repeat(np.array([f.stem for f in self.files], dtype=object), self.rows)
            t = t.append_column("shard", pa.array(stems, pa.string()))
        return t


def load_frame(source: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The pool as a pandas frame: ``columns`` (plus ``uid``, ``status``, ``shard``) or every column.

    For reports and small pools; selection itself never builds a whole-pool frame.
    """
    pf = PoolFiles.open(source)
    if columns is None:
        want = [*pf.columns, "status", "shard"]
    else:
        missing = [c for c in columns if c not in pf.schema.names and c not in ("status", "shard")]
        if missing:
            raise ConfigError(
                f"column(s) {', '.join(missing)} not in the score tables of {source}. "
                f"Available: {', '.join(pf.columns)}"
            )
        want = ["uid", "status", "shard", *columns]
    t = pf.table(list(dict.fromkeys(c for c in want if c in pf.schema.names or c in ("status", "shard"))))
    return t.to_pandas()


def load_array(pf: PoolFiles, name: str) -> np.ndarray:
    """Row-aligned 2-D array for the whole pool: ``RUN_DIR/arrays/<name>/<shard>.npy`` for runs, the
    ``name`` key of the ``.npz`` beside each metadata parquet otherwise. Filled into one buffer."""
    out: np.ndarray | None = None
    for f, start, r in zip(pf.files, pf.offsets[:-1], pf.rows, strict=True):
        part = _array_part(pf, f, name)
        if part.ndim != 2 or len(part) != r:
            raise ConfigError(f"array '{name}' for {f.stem} has shape {part.shape}; its table has {r} rows")
        if out is None:
            out = np.empty((pf.n, part.shape[1]), dtype=part.dtype)
        elif part.shape[1] != out.shape[1]:
            raise ConfigError(
                f"array '{name}' for {f.stem} is {part.shape[1]}-d, earlier shards {out.shape[1]}-d"
            )
        out[start : start + r] = part
    if out is None:  # pragma: no cover - pools have files
        raise ConfigError(f"array '{name}': the pool has no files")
    return out


def _array_part(pf: PoolFiles, f: Path, name: str) -> np.ndarray:
    if pf.kind == "run":
        ap = pf.source / "arrays" / name / f"{f.stem}.npy"
        if not ap.exists():
            hint = (
                " (rerun `altsift score` with --set clip.save_embeddings=true; the clip signal and those reading "
                "it are recomputed, the rest kept)"
                if name.startswith("clip_")
                else "; score with the option that saves it"
            )
            raise ConfigError(f"array '{name}' missing for shard {f.stem} ({ap}){hint}")
        try:
            return np.load(ap, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise ConfigError(f"{ap}: not a readable .npy array ({e})") from None
    npz = f.with_suffix(".npz")
    if not npz.exists():
        raise ConfigError(f"features file {npz} not found (DataComp .npz beside the parquet)")
    try:
        with np.load(npz) as z:
            if name not in z:
                raise ConfigError(f"{npz} has no array '{name}' (has {', '.join(z.files)})")
            return z[name]
    except (OSError, ValueError) as e:
        raise ConfigError(f"{npz}: not a readable .npz file ({e})") from None
