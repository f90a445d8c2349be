"""Scale-out scoring on Ray Data, with the same signal classes as the in-process runner.

Plan (per run): the driver decides which shards need which signals (exactly as the local runner) and
builds one Ray Data pipeline::

    from_items(shards) -> flat_map(read_shard_rows)            # CPU tasks: robust tar reading
                       -> map_batches(RaySignal, signal=A)      # actor pool per signal: model loaded once
                       -> map_batches(RaySignal, signal=B) ...  #   per actor, GPUs via num_gpus_per_actor
                       -> iter_batches on the driver            # rows grouped back into shards

Images travel as encoded bytes and are decoded inside the actor (in a thread pool, overlapped with
the model by Ray's prefetching), never as pixels through the object store. The driver commits each
shard's table atomically as soon as all of its rows have arrived, so resume works as in local mode.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from altsift.config import RunConfig
from altsift.io import tables
from altsift.io.schema import BASE_COLUMNS, BASE_TYPES, to_arrow
from altsift.io.shards import (
    NEEDED_EXTS,
    ReadLimits,
    decode_image,
    expand_inputs,
    parse_sample,
    read_shard,
    shard_names,
)
from altsift.pipeline.plan import SignalPlan, needed_signals, plan_signals
from altsift.pipeline.score import ScoreSummary, SignalRunner, _shard_meta

log = logging.getLogger("altsift.ray")

_META = ("_row", "_n", "_shard_error", "_path", "_image_bytes")


def read_shard_rows(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray flat_map: one row per sample (image still encoded), plus columns already in the table."""
    path, name = item["path"], item["name"]
    result = read_shard(path, limits=ReadLimits(**item["limits"]), storage_options=item["storage_options"],
                        extensions=NEEDED_EXTS)
    seen: set[str] = set()
    rows = [parse_sample(s, name, seen) for s in result.samples]
    prior: dict[str, list] = {}
    existing = tables.read_table(Path(item["table"]))
    if existing is not None and existing.column("key").to_pylist() == [r["key"] for r in rows]:
        prior = {c: existing.column(c).to_pylist() for c in existing.column_names
                 if c not in BASE_COLUMNS and c not in item["drop"]}
    n = len(rows)
    out = []
    for i, r in enumerate(rows):
        row = {c: r[c] for c in BASE_COLUMNS}
        row.update({"_shard_error": result.error, "_path": path, "_image_bytes": r["_image_bytes"]})
        for c, vals in prior.items():
            row[c] = vals[i]
        out.append(_pack(name, i, n, row))
    if not out:  # keep the shard visible to the driver so it gets a table and a recorded error
        out.append(_pack(name, -1, 0, {"_shard_error": result.error, "_path": path}))
    return out


def _pack(shard: str, row: int, n: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Rows travel as (shard, index, count, pickled payload): Ray never has to infer column types
    from Python objects (a column that is None in one block and text in another breaks Arrow)."""
    return {"shard": shard, "_row": row, "_n": n, "_payload": pickle.dumps(payload, protocol=5)}


class RaySignal:
    """Ray Data ``map_batches`` actor wrapping one signal: same class, same failure isolation."""

    def __init__(self, plan: SignalPlan, decode: bool, max_pixels: int, max_side: int | None, threads: int) -> None:
        self.runner = SignalRunner(plan)
        _ = self.runner.signal  # load the model once per actor
        self.decode = decode
        self.max_pixels, self.max_side = max_pixels, max_side
        self.pool = ThreadPoolExecutor(threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        payloads = [pickle.loads(b) for b in batch["_payload"]]
        n = len(payloads)
        real = [i for i in range(n) if int(batch["_n"][i]) > 0]
        keys = sorted({k for p in payloads for k in p})
        cols: dict[str, list[Any]] = {k: [p.get(k) for p in payloads] for k in keys}
        images: list[Any] = [None] * n
        if self.decode:
            futs = {i: self.pool.submit(decode_image, cols["_image_bytes"][i], self.max_pixels, self.max_side)
                    for i in real if cols["status"][i] == "ok"}
            for i, f in futs.items():
                img, status, err, size = f.result()
                images[i] = img
                if size is not None:
                    cols["original_width"][i] = cols["original_width"][i] or size[0]
                    cols["original_height"][i] = cols["original_height"][i] or size[1]
                if status is not None:
                    cols["status"][i], cols["error"][i] = status, err
        sub = {k: [v[i] for i in real] for k, v in cols.items()}
        sub["image"] = [images[i] for i in real]
        sub["json"] = [{} for _ in real]
        out = self.runner(sub) if real else {}
        for k in ("status", "error", "original_width", "original_height"):
            for j, i in enumerate(real):
                cols[k][i] = sub[k][j]
        plan = self.runner.plan
        for c in plan.columns:
            vals = [None] * n
            for j, i in enumerate(real):
                vals[i] = out[c][j] if c in out else None
            cols[c] = vals
        for c in plan.array_columns:
            if c in out and len(real):
                arr = np.asarray(out[c])
                vals = [None] * n
                for j, i in enumerate(real):
                    vals[i] = arr[j]
                cols[c] = vals
        packed = np.empty(n, dtype=object)
        packed[:] = [pickle.dumps({k: v[i] for k, v in cols.items()}, protocol=5) for i in range(n)]
        return {"shard": batch["shard"], "_row": batch["_row"], "_n": batch["_n"], "_payload": packed}


def score_with_ray(inputs: list[str], run_dir: str | Path, signals: list[str], cfg: RunConfig,
                   retry_errors: bool = False) -> ScoreSummary:
    """Score with Ray Data; same outputs, resume and statuses as the local runner."""
    import ray

    t0 = time.time()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    opts = cfg.score
    plans = plan_signals(signals, cfg)
    paths = expand_inputs(inputs, opts.storage_options)
    limits = ReadLimits.from_options(opts)
    names = shard_names(paths)
    summary = ScoreSummary(shards_total=len(paths))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    recorded_by_shard: dict[str, dict[str, Any]] = {}
    for path, name in zip(paths, names, strict=True):
        tpath = tables.table_path(run_dir, name)
        existing = tables.read_table(tpath)
        recorded = tables.table_signals(existing) if existing is not None else {}
        todo = needed_signals(plans, recorded) if existing is not None else plans
        if existing is not None and not todo and not (retry_errors and _shard_meta(existing).get("error")):
            summary.shards_skipped += 1
            continue
        if not todo:
            todo = plans
        recorded_by_shard[name] = recorded
        drop = sorted({c for p in todo for c in p.columns})
        groups[tuple(p.name for p in todo)].append({"path": path, "name": name, "table": str(tpath), "drop": drop,
                                                    "limits": dict(limits.__dict__),
                                                    "storage_options": dict(opts.storage_options)})
    if not groups:
        summary.seconds = round(time.time() - t0, 3)
        return summary
    if not ray.is_initialized():
        # Local cluster: logical CPUs for every actor pool plus one for the shard readers, or the
        # pipeline would deadlock waiting for a CPU that an idle actor holds.
        need = len(plans) * opts.ray.num_actors * opts.ray.num_cpus_per_actor + 1
        ray.init(address=opts.ray.address, include_dashboard=False, log_to_driver=False,
                 **({} if opts.ray.address else {"num_cpus": max(2, int(np.ceil(need)))}))
    statuses: Counter[str] = Counter()
    by_name = {p.name: p for p in plans}
    with tqdm(total=sum(len(v) for v in groups.values()), unit="shard", disable=not opts.progress, desc="score[ray]") as bar:
        for todo_names, items in groups.items():
            todo = [by_name[n] for n in todo_names]
            ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            ds = ds.flat_map(read_shard_rows)
            first = True
            for p in todo:
                decode = first and (opts.verify_images or any(q.needs_image for q in todo))
                ds = ds.map_batches(
                    RaySignal,
                    fn_constructor_kwargs={"plan": p, "decode": decode or p.needs_image,
                                           "max_pixels": opts.max_image_pixels, "max_side": opts.max_decode_side,
                                           "threads": opts.decode_threads},
                    batch_size=opts.batch_size,
                    batch_format="numpy",
                    concurrency=opts.ray.num_actors,
                    num_gpus=opts.ray.num_gpus_per_actor or None,
                    num_cpus=opts.ray.num_cpus_per_actor,
                )
                first = False
            pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
                for shard, i, cnt, payload in zip(batch["shard"], batch["_row"], batch["_n"], batch["_payload"],
                                                  strict=True):
                    row = pickle.loads(payload)
                    row.update({"shard": str(shard), "_row": int(i), "_n": int(cnt)})
                    pending[str(shard)].append(row)
                for name in list(pending):
                    rows = pending[name]
                    if rows and len(rows) >= max(1, int(rows[0]["_n"])):
                        _commit(run_dir, name, rows, todo, recorded_by_shard[name], summary, statuses)
                        del pending[name]
                        bar.update(1)
            for name, rows in pending.items():  # should not happen; never lose rows silently
                log.error("shard %s: only %d rows arrived; not committed", name, len(rows))
    summary.status_counts = dict(statuses)
    summary.seconds = round(time.time() - t0, 3)
    return summary


def _commit(run_dir: Path, name: str, rows: list[dict[str, Any]], todo: list[SignalPlan],
            recorded: dict[str, Any], summary: ScoreSummary, statuses: Counter[str]) -> None:
    rows = sorted((r for r in rows if int(r["_row"]) >= 0), key=lambda r: int(r["_row"]))
    error = next((_py(r["_shard_error"]) for r in rows), None) if rows else None
    path = None
    if not rows:
        summary.shards_with_errors[name] = "empty shard: no samples"
    elif error:
        summary.shards_with_errors[name] = str(error)
    cols: dict[str, pa.Array] = {c: pa.array([_py(r.get(c)) for r in rows], type=BASE_TYPES[c]) for c in BASE_COLUMNS}
    skip = set(BASE_COLUMNS) | set(_META) | {c for p in todo for c in p.array_columns}
    extra = sorted({k for r in rows for k in r} - skip)
    for c in extra:
        cols[c] = to_arrow([_py(r.get(c)) for r in rows])
    for p in todo:
        for c in p.array_columns:
            if rows and any(r.get(c) is not None for r in rows):
                dim = next(np.asarray(r[c]).shape[-1] for r in rows if r.get(c) is not None)
                stacked = np.stack([np.asarray(r[c], dtype=np.float32) if r.get(c) is not None
                                    else np.full(dim, np.nan, np.float32) for r in rows])
                tables.write_array_atomic(stacked, tables.array_path(run_dir, c, name))
    if rows:
        path = rows[0]["_path"]
    kept = {k: v for k, v in recorded.items() if k not in {p.name for p in todo}}
    kept.update({p.name: p.fingerprint() for p in todo})
    table = pa.table(cols) if rows else pa.table({c: pa.array([], type=BASE_TYPES[c]) for c in BASE_COLUMNS})
    info = {"path": path, "error": summary.shards_with_errors.get(name), "rows": len(rows)}
    tables.write_table_atomic(tables.with_signals_meta(table, kept, info), tables.table_path(run_dir, name))
    for r in rows:
        statuses[str(r["status"])] += 1
    for p in todo:
        summary.signals_computed[p.name] = summary.signals_computed.get(p.name, 0) + len(rows)
    summary.samples_scored += len(rows)
    summary.shards_scored += 1


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v
