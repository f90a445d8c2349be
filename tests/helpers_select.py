"""Small pools written straight to parquet (no scoring), and the CLI run in-process."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def uid(i: int, tag: str = "u") -> str:
    return hashlib.md5(f"{tag}-{i}".encode()).hexdigest()


def write_run(root: Path, frames: list[pd.DataFrame | pa.Table], signals: dict | None = None) -> Path:
    """An altsift-like run dir: RUN/scores/<00000..>.parquet (with the signals record in the metadata)."""
    from altsift.io.tables import with_signals_meta

    (root / "scores").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        t = f if isinstance(f, pa.Table) else pa.Table.from_pandas(f, preserve_index=False)
        t = with_signals_meta(t, signals or {}, {"shard": f"{i:05d}"})
        pq.write_table(t, root / "scores" / f"{i:05d}.parquet")
    return root


def write_meta(root: Path, frames: list[pd.DataFrame]) -> Path:
    """A DataComp-like metadata folder of parquet files."""
    root.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        f.to_parquet(root / f"{i:08d}.parquet", index=False)
    return root


def scored_frame(n: int, start: int = 0, rng: np.random.Generator | None = None, **cols) -> pd.DataFrame:
    rng = rng or np.random.default_rng(start)
    df = pd.DataFrame({"uid": [uid(start + i) for i in range(n)], "status": ["ok"] * n,
                       "text": [f"caption number {start + i}" for i in range(n)],
                       "clip_score": rng.uniform(0.1, 0.4, n)})  # fmt: skip
    for k, v in cols.items():
        df[k] = v
    return df


def cli(capsys, *args) -> tuple[int, str, str]:
    """``altsift ARGS`` in this process, as ``main()`` runs it (exit codes included)."""
    import altsift.cli as c

    old = sys.argv
    sys.argv = ["altsift", *map(str, args)]
    try:
        c.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err
