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


def _is_run_dir(p: Path) -> bool:
    return (p / "scores").is_dir()


def pool_files(source: str | Path) -> tuple[list[Path], str]:
    """Parquet files of a pool and its kind: ``run`` (altsift RUN_DIR) or ``metadata`` (DataComp)."""
    p = Path(source)
    if _is_run_dir(p):
        files, kind = list_tables(p), "run"
    elif p.is_dir():
        files, kind = sorted(p.glob("*.parquet")), "metadata"
    elif p.is_file() and p.suffix == ".parquet":
        files, kind = [p], "metadata"
    else:
        raise ConfigError(f"{p} is neither a run directory (with scores/), a folder of parquet files, nor a parquet file")
    if not files:
        raise ConfigError(f"no parquet score tables found in {p}")
    return files, kind


def load_pool(source: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Concatenate all score tables (shard-file order) into one DataFrame.

    ``columns``: project to these (plus ``uid``, ``status``, ``shard`` when present) to save memory.
    DataComp metadata tables get ``status='ok'`` and ``shard`` = the file stem.
    """
    files, kind = pool_files(source)
    frames = []
    for f in files:
        schema = pq.read_schema(f)
        names = schema.names
        if columns is not None:
            want = [c for c in dict.fromkeys(["uid", "status", "shard", *columns]) if c in names]
            t = pq.read_table(f, columns=want)
        else:
            t = pq.read_table(f)
        df = t.to_pandas()
        if "status" not in df.columns:
            df["status"] = "ok"
        if "shard" not in df.columns:
            df["shard"] = f.stem
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ConfigError(
                f"column(s) {', '.join(missing)} not in the score tables of {source}. "
                f"Available: {', '.join(map(str, df.columns))}"
            )
    return df


def load_pool_array(source: str | Path, name: str) -> np.ndarray:
    """Row-aligned 2-D array for the whole pool, in the same order as :func:`load_pool`."""
    files, kind = pool_files(source)
    parts = []
    for f in files:
        if kind == "run":
            ap = array_path(Path(source), name, f.stem)
            if not ap.exists():
                hint = (" (rerun `altsift score` with --set clip.save_embeddings=true; the clip signal and those reading it are recomputed, the rest kept)"
                        if name.startswith("clip_") else "; score with the option that saves it")
                raise ConfigError(f"array '{name}' missing for shard {f.stem} ({ap}){hint}")
            parts.append(np.load(ap))
        else:
            npz = f.with_suffix(".npz")
            if not npz.exists():
                raise ConfigError(f"features file {npz} not found (DataComp .npz beside the parquet)")
            with np.load(npz) as z:
                if name not in z:
                    raise ConfigError(f"{npz} has no array '{name}' (has {', '.join(z.files)})")
                parts.append(z[name])
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


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
