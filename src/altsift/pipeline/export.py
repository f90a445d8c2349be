"""``altsift export``: reshard the selected samples into new webdataset shards.

Reads the original shards listed in each score table, keeps the samples whose uid is in the subset
(membership by ``np.searchsorted`` on the sorted ``u8,u8`` array, as DataComp's resharder), and writes
``{:08d}.tar`` + ``{:08d}_stats.json``. The original json is kept and gains the sample's signal values
under ``"altsift"``; with ``caption_column`` the ``.txt`` takes that column's text and the original
caption is kept in the json as ``original_caption``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from altsift.errors import ConfigError
from altsift.io import tables
from altsift.io.schema import BASE_COLUMNS
from altsift.io.shards import IMAGE_EXTS, is_url, read_shard
from altsift.io.uids import contains, load_subset
from altsift.io.wds_writer import ShardWriter

log = logging.getLogger("altsift.export")


@dataclass
class ExportSummary:
    selected: int
    written: int
    missing: int
    shards: list[str]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


STAGING = ".altsift-export-staging"


def export(run_dir: str | Path, subset_path: str | Path, out_dir: str | Path,
           caption_column: str | None = None, shard_size: int = 10_000, progress: bool = True,
           overwrite: bool = False) -> ExportSummary:
    """Write the subset's samples as new shards under ``out_dir``.

    Shards are written into ``out_dir/.altsift-export-staging/`` and moved into ``out_dir`` only when the
    whole export succeeded, so a killed export leaves no partial shard set behind (a rerun starts over).
    ``overwrite`` replaces the ``{:08d}.tar`` / ``{:08d}_stats.json`` files of an earlier export.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.resolve() in (run_dir.resolve(), (run_dir / "scores").resolve()):
        raise ConfigError("--to must be a new folder, not the run directory or its scores folder")
    old = _exported_files(out_dir)
    if old and not overwrite:
        raise ConfigError(f"{out_dir} already holds exported shards; choose an empty folder or pass --overwrite")
    subset = load_subset(subset_path)
    staging = out_dir / STAGING
    if staging.exists():
        log.info("removing %s left by an interrupted export", staging)
        shutil.rmtree(staging)
    captions: dict[str, Any] = {}
    side = Path(subset_path).with_suffix(".parquet")
    if caption_column and side.exists():
        sdf = pd.read_parquet(side)
        if caption_column in sdf.columns:
            captions = dict(zip(sdf["uid"], sdf[caption_column], strict=True))
    files = tables.list_tables(run_dir)
    if not files:
        raise ConfigError(f"no score tables in {run_dir}/scores")
    written = 0
    seen: set[str] = set()
    used_keys: set[str] = set()
    with ShardWriter(staging, shard_size=shard_size) as writer:
        for f in tqdm(files, unit="shard", desc="export", disable=not progress):
            t = pq.read_table(f)
            meta = json.loads((t.schema.metadata or {}).get(tables.SHARD_META_KEY, b"{}"))
            df = t.to_pandas()
            if df.empty:
                continue
            sel = contains(subset, df["uid"].tolist()) & (df["status"] == "ok").to_numpy()
            if not sel.any():
                continue
            if caption_column and not captions and caption_column not in df.columns:
                raise ConfigError(f"--caption-column '{caption_column}' is neither in the score tables nor in {side}")
            src = meta.get("path")
            if not src or (not is_url(src) and not Path(src).exists()):
                log.error("original shard for %s not found (%s); its %d selected samples are skipped", f.stem, src, int(sel.sum()))
                continue
            raw = {s.key: s for s in read_shard(src).samples}
            signal_cols = [c for c in df.columns if c not in BASE_COLUMNS]
            for row in df[sel].itertuples(index=False):
                r = row._asdict()
                uid = r["uid"]
                if uid in seen:
                    continue
                sample = raw.get(r["key"])
                if sample is None:
                    continue
                seen.add(uid)
                members: dict[str, bytes] = {}
                ext = next((e for e in IMAGE_EXTS if e in sample.files), None)
                if ext is None:
                    continue
                members[ext] = sample.files[ext]
                try:
                    js = json.loads(sample.files.get("json", b"{}").decode("utf-8"))
                    if not isinstance(js, dict):
                        js = {}
                except (UnicodeDecodeError, json.JSONDecodeError):
                    js = {}
                js.setdefault("uid", uid)
                js["altsift"] = {c: _jsonable(r[c]) for c in signal_cols}
                text = r["text"]
                if caption_column:
                    new = captions.get(uid) if captions else r.get(caption_column)
                    if isinstance(new, str) and new:
                        js["original_caption"] = text
                        text = new
                members["txt"] = (text or "").encode("utf-8")
                members["json"] = json.dumps(js, default=_jsonable).encode("utf-8")
                key = r["key"].replace("/", "_")
                if key in used_keys:  # two source shards reuse a key: keep members of samples apart
                    key = f"{r['shard']}_{key}"
                    js["source_key"] = r["key"]
                    members["json"] = json.dumps(js, default=_jsonable).encode("utf-8")
                used_keys.add(key)
                writer.write(key, members)
                written += 1
    for f in old:
        f.unlink()
    shards = []
    for f in sorted(staging.iterdir()):
        os.replace(f, out_dir / f.name)
        if f.suffix == ".tar":
            shards.append(str(out_dir / f.name))
    staging.rmdir()
    summary = ExportSummary(selected=int(len(subset)), written=written, missing=int(len(subset)) - written,
                            shards=shards)
    if summary.missing:
        log.warning("%d selected uids were not found in the run's shards", summary.missing)
    return summary


def _exported_files(out_dir: Path) -> list[Path]:
    """The shard and stats files an earlier export wrote (``{:08d}.tar``, ``{:08d}_stats.json``)."""
    if not out_dir.is_dir():
        return []
    pat = re.compile(r"^\d{8}(\.tar|_stats\.json)$")
    return sorted(f for f in out_dir.iterdir() if f.is_file() and pat.match(f.name))
