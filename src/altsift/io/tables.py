"""Per-shard score tables (parquet): writing, validating, and loading the whole pool for selection.

``RUN_DIR/scores/<shard>.parquet`` holds one row per sample seen in that shard, in tar order, with the
declared column types (:mod:`altsift.io.schema` plus each signal's ``column_types``). Writes are atomic
(temp file + fsync + rename), so a killed run never leaves a half table: a shard's table either exists
complete or not at all. Row-aligned arrays (embeddings) live in ``RUN_DIR/arrays/<column>/<shard>.npy``
and are written before the table that commits them.

Each table's schema metadata says what produced it (:data:`SIGNALS_META_KEY`: the options of every
signal recorded as computed; :data:`SHARD_META_KEY`: the source shard's identity, the reader options,
row and status counts, the shard's read error and the signals that failed on every row). A table whose
footer cannot be read, whose base columns have other types, or whose row count disagrees with its
metadata is *corrupt*: :func:`inspect_table` says why and :func:`quarantine_table` moves it aside to
``RUN_DIR/scores/.corrupt/`` so the shard is scored again.

``load_pool`` also reads DataComp metadata folders (``*.parquet`` with ``uid``,
``clip_b32_similarity_score``, ... and optional ``.npz`` features beside them), so users who already
have DataComp metadata select from it directly.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from altsift.errors import ConfigError, EnvironmentIOError
from altsift.io.schema import BASE_TYPES

log = logging.getLogger(__name__)

SIGNALS_META_KEY = b"altsift.signals"
SHARD_META_KEY = b"altsift.shard"
CORRUPT_DIR = ".corrupt"
#: errno values that mean "the machine refused" (exit code 4), not a bug or a bad sample
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def scores_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "scores"


def table_path(run_dir: Path, shard: str) -> Path:
    return scores_dir(run_dir) / f"{shard}.parquet"


def array_path(run_dir: Path, column: str, shard: str) -> Path:
    return Path(run_dir) / "arrays" / column / f"{shard}.npy"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write parquet to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_array_atomic(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def table_signals(table_or_schema: pa.Table | pa.Schema) -> dict[str, Any]:
    """The ``{signal: options}`` record stored in a table's schema metadata."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    meta = schema.metadata or {}
    raw = meta.get(SIGNALS_META_KEY)
    return json.loads(raw) if raw else {}


def with_signals_meta(table: pa.Table, signals: dict[str, Any], shard_info: dict[str, Any]) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta[SIGNALS_META_KEY] = json.dumps(signals, sort_keys=True).encode()
    meta[SHARD_META_KEY] = json.dumps(shard_info, sort_keys=True).encode()
    return table.replace_schema_metadata(meta)


def read_table(path: Path) -> pa.Table | None:
    """Read a score table, or None if it does not exist."""
    return pq.read_table(path) if path.exists() else None


def build_table(
    columns: Mapping[str, Sequence[Any] | pa.Array], types: Mapping[str, pa.DataType]
) -> pa.Table:
    """A table of ``columns`` (in order) with each column's declared type from ``types``.

    A column without a declared type (e.g. one added by ``altsift cluster``) keeps the type arrow infers,
    or its own type when it is already an arrow array.
    """
    from altsift.io.schema import to_arrow

    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        t = types.get(name)
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values if t is None or values.type == t else values.cast(t)
        else:
            arrays[name] = to_arrow(values, t)
    return pa.table(arrays)


class CorruptTableError(Exception):
    """A score table that cannot be trusted (unreadable, wrong base schema, row count mismatch)."""


@dataclass
class TableInfo:
    """What a table's footer says, read without its data pages."""

    path: Path
    rows: int
    schema: pa.Schema
    signals: dict[str, Any] = field(default_factory=dict)
    shard: dict[str, Any] = field(default_factory=dict)


def shard_meta(table_or_schema: pa.Table | pa.Schema) -> dict[str, Any]:
    """The :data:`SHARD_META_KEY` record of a table (``{}`` when absent)."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    raw = (schema.metadata or {}).get(SHARD_META_KEY)
    return json.loads(raw) if raw else {}


def inspect_table(path: Path) -> TableInfo | None:
    """Read and check a table's footer; None when there is no table. Raises :class:`CorruptTableError`.

    Checked: the parquet footer reads, the base columns exist with their declared types, the metadata
    is JSON, and the footer's row count equals the ``rows`` the writer recorded.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        md = pq.read_metadata(path)
        schema = md.schema.to_arrow_schema()
    except Exception as e:  # noqa: BLE001 - any failure to read a footer means the file is unusable
        raise CorruptTableError(f"unreadable parquet: {type(e).__name__}: {e}") from None
    for name, t in BASE_TYPES.items():
        i = schema.get_field_index(name)
        if i < 0:
            raise CorruptTableError(f"base column '{name}' is missing")
        if schema.field(i).type != t:
            raise CorruptTableError(f"base column '{name}' has type {schema.field(i).type}, expected {t}")
    try:
        signals, shard = table_signals(schema), shard_meta(schema)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptTableError(f"unreadable altsift metadata: {e}") from None
    if "rows" in shard and shard["rows"] != md.num_rows:
        raise CorruptTableError(f"holds {md.num_rows} rows but its metadata records {shard['rows']}")
    return TableInfo(path=path, rows=md.num_rows, schema=schema, signals=signals, shard=shard)


def quarantine_table(path: Path, reason: str) -> Path:
    """Move a corrupt table to ``scores/.corrupt/`` (never deleted) and log why; returns the new path."""
    path = Path(path)
    dest_dir = path.parent / CORRUPT_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}{path.suffix}"
    os.replace(path, dest)
    log.warning("score table %s is corrupt (%s): moved to %s; the shard is scored again", path, reason, dest)
    return dest


def environment_error(e: BaseException, action: str, path: Path | None = None) -> EnvironmentIOError | None:
    """An :class:`EnvironmentIOError` (exit 4) for a disk-full / read-only / permission error, else None.

    ``path``: the file being written (default: the error's own file name, which may be a temp file).
    """
    if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
        what = {
            errno.ENOSPC: "no space left on device",
            errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system",
        }.get(e.errno, "permission denied")
        target = path or e.filename
        where = f" ({target})" if target else ""
        return EnvironmentIOError(
            f"{what} while {action}{where}; fix it and rerun (finished shards are kept)"
        )
    return None


def list_tables(run_dir: Path) -> list[Path]:
    return sorted(scores_dir(run_dir).glob("*.parquet"))


def pool_files(source: str | Path) -> tuple[list[Path], str]:
    """Parquet files of a pool and its kind (see :func:`altsift.io.pool.pool_files`)."""
    from altsift.io.pool import pool_files as _pool_files

    return _pool_files(source)


def load_pool(source: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The pool as one DataFrame (shard-file order), read under one unified schema.

    ``columns``: project to these (plus ``uid``, ``status``, ``shard``). DataComp metadata tables get
    ``status='ok'`` and ``shard`` = the file stem. For reports and small pools: selection reads columns
    lazily through :class:`altsift.select.base.Pool` instead.
    """
    from altsift.io.pool import load_frame

    return load_frame(source, columns)


def load_pool_array(source: str | Path, name: str) -> np.ndarray:
    """Row-aligned 2-D array for the whole pool, in the same order as :func:`load_pool`."""
    from altsift.io.pool import PoolFiles, load_array

    return np.asarray(load_array(PoolFiles.open(source), name))


def add_pool_columns(run_dir: str | Path, values: dict[str, np.ndarray]) -> None:
    """Add (or replace) whole-pool columns, row-aligned with :func:`load_pool`, in every shard table.

    Used by post-scoring steps such as clustering. Each table is rewritten atomically.
    """
    files, kind = pool_files(run_dir)
    if kind != "run":
        raise ConfigError("adding columns needs an altsift run directory")
    sizes = [pq.read_metadata(f).num_rows for f in files]
    for col, arr in values.items():
        if len(arr) != sum(sizes):
            raise ConfigError(f"column '{col}' has {len(arr)} rows; the pool has {sum(sizes)}")
    start = 0
    for f in files:
        t = pq.read_table(f)
        n = t.num_rows
        for col, arr in values.items():
            chunk = pa.array(np.asarray(arr)[start : start + n])
            if col in t.column_names:
                t = t.set_column(t.column_names.index(col), col, chunk)
            else:
                t = t.append_column(col, chunk)
        write_table_atomic(t, f)
        start += n
