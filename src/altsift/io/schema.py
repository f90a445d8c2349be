"""The score-table schema: the base columns every table has, and turning column values into arrow.

A score table (``RUN_DIR/scores/<shard>.parquet``) is :data:`BASE_SCHEMA` followed by the columns of the
signals that ran, each with the arrow type its signal declares (``Signal.column_types``). Writing with
declared types (instead of letting arrow guess per shard) is what lets a run directory open as one
dataset in pandas, pyarrow, Polars, DuckDB and HF ``datasets`` even when one shard's column is all null.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

BASE_TYPES: dict[str, pa.DataType] = {
    "uid": pa.string(),
    "uid_derived": pa.bool_(),
    "key": pa.string(),
    "shard": pa.string(),
    "text": pa.string(),
    "status": pa.string(),
    "error": pa.string(),
    "original_width": pa.int64(),
    "original_height": pa.int64(),
}
BASE_COLUMNS: tuple[str, ...] = tuple(BASE_TYPES)
BASE_SCHEMA = pa.schema([pa.field(n, t) for n, t in BASE_TYPES.items()])


def to_arrow(values: Sequence[Any], type: pa.DataType | None = None) -> pa.Array:
    """``values`` as an arrow array of ``type``; without a type, arrow infers one (JSON text as a last resort).

    A value that does not fit its declared type is a signal bug and raises ``pa.ArrowInvalid`` /
    ``pa.ArrowTypeError`` naming the type.
    """
    if type is not None:
        return pa.array(list(values), type=type)
    try:
        return pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in values], type=pa.string())
