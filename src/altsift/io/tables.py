"""Per-shard score tables (parquet) and loading the whole pool for selection.

``RUN_DIR/scores/<shard>.parquet`` holds one row per sample seen in that shard, in tar order.
Writes are atomic (temp file + rename), so a killed run never leaves a half table: a shard's table
either exists complete or not at all. Row-aligned arrays (embeddings) live in
``RUN_DIR/arrays/<column>/<shard>.npy`` and are written before the table that commits them.

``load_pool`` also reads DataComp metadata folders (``*.parquet`` with ``uid``,
``clip_b32_similarity_score``, ... and optional ``.npz`` features beside them), so users who already
have DataComp metadata select from it directly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from altsift.errors import ConfigError

SIGNALS_META_KEY = b"altsift.signals"
SHARD_META_KEY = b"altsift.shard"


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
