"""Scale-out scoring on Ray: the shared shard job runs inside Ray Data workers; each signal has its own actor pool.

Topology (one run)::

    driver   prepare_run()                 plan every shard from its table footer (no shard is read)
             start_signal_pools()          per signal: N actors sized from Signal.resources (+ overrides);
                                           each loads its model once; a load failure stops the run here
             ray.data.from_items(tasks)    one small JSON task per shard that needs work
               .map_batches(ShardWorker,   ActorPoolStrategy(read_parallelism) CPU workers: run_shard()
                                           reads + decodes the shard, sends each batch to the signals'
                                           actors, writes arrays and the table (atomic) to the run dir
             .iter_batches()               only commit records (shard, rows, statuses) reach the driver
             RunLedger                     run.json, logs/shard_errors.jsonl, score_summary.json

Rows, pixels and embeddings travel between a shard worker and the signal actors through the object store,
never through the driver, so the driver's memory does not grow with the pool. The run directory must be
on a filesystem every worker node sees (local disk for one machine, NFS/Lustre/... for a cluster).
The shard job is :func:`altsift.pipeline.shard_job.run_shard`, the same code the in-process runner calls.
"""

from __future__ import annotations

import logging
import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from altsift.config import RayOptions, RaySignalOptions, RunConfig
from altsift.errors import AltsiftError, ConfigError
from altsift.pipeline.ledger import ScoreSummary, prepare_run
from altsift.pipeline.plan import SignalPlan
from altsift.pipeline.shard_job import (
    Batch,
    JobContext,
    ShardResult,
    ShardTask,
    SignalOutput,
    SignalRunner,
    run_shard,
)

log = logging.getLogger("altsift.ray")


# ----------------------------------------------------------------------------- sizing
@dataclass(frozen=True)
class PoolSpec:
    """One signal's actor pool: how many actors and what each reserves."""

    signal: str
    num_actors: int
    num_cpus: float
    num_gpus: float
    memory_gb: float
    resources: dict[str, float] = field(default_factory=dict)


def size_pools(
    plans: list[SignalPlan], ray_opts: RayOptions, cluster: dict[str, float]
) -> tuple[list[PoolSpec], int]:
    """Actor pools for ``plans`` and the number of shard workers, from each signal's declared resources,
    the cluster's totals (``ray.cluster_resources()``) and ``score.ray`` overrides.

    - GPUs: a signal that declares GPUs (and is not pinned to ``device: cpu``) gets them when the cluster
      has GPUs; signals that declare none (``basic``, ``ocr``) never reserve one.
    - Actors: GPU pools split the cluster's GPUs; shard workers default to ``max(2, 2 x largest GPU pool)``;
      CPU pools share the CPUs left over (one actor per ``num_cpus``), never more than the shard workers
      can keep busy (each worker has one batch in flight per signal).
    """
    unknown = sorted(set(ray_opts.signals) - {p.name for p in plans})
    if unknown:
        log.warning(
            "score.ray.signals has settings for %s, which this run does not compute", ", ".join(unknown)
        )
    gpus_total = float(cluster.get("GPU", 0.0))
    cpus_total = float(cluster.get("CPU", 0.0))
    per: dict[str, dict[str, Any]] = {}
    for p in plans:
        r = p.resources
        o = ray_opts.signals.get(p.name, RaySignalOptions())
        gpus = o.num_gpus if o.num_gpus is not None else (r.gpus if gpus_total > 0 else 0.0)
        per[p.name] = {
            "cpus": o.num_cpus if o.num_cpus is not None else r.cpus,
            "gpus": gpus,
            "mem": o.memory_gb if o.memory_gb is not None else r.memory_gb,
            "n": o.num_actors or ray_opts.num_actors,
            "res": dict(o.resources),
        }
    auto_gpu = [n for n, v in per.items() if v["gpus"] > 0 and v["n"] is None]
    if auto_gpu:
        share = sum(per[n]["gpus"] for n in auto_gpu)
        for n in auto_gpu:
            per[n]["n"] = max(1, math.floor(gpus_total / share))
    gpu_sizes = [v["n"] for v in per.values() if v["gpus"] > 0]
    workers = ray_opts.read_parallelism or max(2, 2 * max(gpu_sizes, default=0))
    auto_cpu = [n for n, v in per.items() if v["n"] is None]
    if auto_cpu:
        used = workers * ray_opts.shard_cpus + sum(
            v["n"] * v["cpus"] for v in per.values() if v["n"] is not None
        )
        spare = max(0.0, cpus_total - used)
        for n in auto_cpu:
            fit = math.floor(spare / len(auto_cpu) / per[n]["cpus"]) if per[n]["cpus"] else workers
            per[n]["n"] = max(1, min(workers, fit))
    specs = [
        PoolSpec(n, int(v["n"]), float(v["cpus"]), float(v["gpus"]), float(v["mem"]), v["res"])
        for n, v in per.items()
    ]
    return specs, int(workers)


def _need(specs: list[PoolSpec], workers: int, shard_cpus: float) -> tuple[float, float]:
    cpus = workers * shard_cpus + sum(s.num_actors * s.num_cpus for s in specs)
    gpus = sum(s.num_actors * s.num_gpus for s in specs)
    return cpus, gpus


# ----------------------------------------------------------------------------- actors
class SignalActor:
    """One copy of a signal (its model loaded once) serving batches from any shard worker."""

    def __init__(self, plan: SignalPlan) -> None:
        self.runner = SignalRunner(plan)
        self.error: AltsiftError | None = None
        try:
            self.runner.load()
        except AltsiftError as e:  # reported by ready(); the driver stops the run with this message
            self.error = e

    def ready(self) -> tuple[AltsiftError | None, str]:
        """The load error (None when the model loaded) and the node this actor runs on."""
        import ray

        return self.error, ray.get_runtime_context().get_node_id()

    def run(self, batch: Batch) -> SignalOutput:
        return self.runner(batch)


class ShardWorker:
    """Ray Data ``map_batches`` worker: runs the shared shard job for each task, calling the signal pools.

    Batches go to actors on this worker's node when the pool has any there (pixels stay off the network),
    else to any actor of the pool; round robin from a random start spreads workers over actors.
    """

    def __init__(self, ctx: JobContext, pools: dict[str, list[tuple[Any, str]]]) -> None:
        import ray

        self.ctx = ctx
        node = ray.get_runtime_context().get_node_id()
        self.pools = {n: [h for h, at in hs if at == node] or [h for h, _ in hs] for n, hs in pools.items()}
        self.turn = {n: random.randrange(len(h)) for n, h in self.pools.items()}
        self.decoder = ThreadPoolExecutor(ctx.opts.decode_threads, thread_name_prefix="decode")
        self.worker = f"node:{node}"

    def _call(self, name: str, batch: Batch) -> SignalOutput:
        import ray

        handles = self.pools[name]
        i = self.turn[name]
        self.turn[name] = (i + 1) % len(handles)
        return ray.get(handles[i].run.remote(batch))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [
            run_shard(
                self.ctx, ShardTask.from_json(str(t)), self._call, self.decoder, worker=self.worker
            ).to_json()
            for t in batch["task"]
        ]
        return {"result": np.asarray(out, dtype=object)}


def start_signal_pools(plans: list[SignalPlan], specs: list[PoolSpec]) -> dict[str, list[tuple[Any, str]]]:
    """Start every pool and wait until each actor has loaded its model; a failure raises its message.

    Returns ``{signal: [(actor handle, node id)]}``.
    """
    import ray

    remote = ray.remote(SignalActor)
    by_name = {p.name: p for p in plans}
    pools: dict[str, list[Any]] = {}
    waiting: dict[Any, tuple[str, int]] = {}
    for s in specs:
        opts: dict[str, Any] = {
            "num_cpus": s.num_cpus,
            "num_gpus": s.num_gpus,
            "max_restarts": 2,
            "max_task_retries": 2,
        }
        if s.memory_gb:
            opts["memory"] = int(s.memory_gb * 2**30)
        if s.resources:
            opts["resources"] = s.resources
        pools[s.signal] = [remote.options(**opts).remote(by_name[s.signal]) for _ in range(s.num_actors)]
        waiting.update({h.ready.remote(): (s.signal, i) for i, h in enumerate(pools[s.signal])})
        log.info(
            "signal '%s': %d actor(s), %g CPU + %g GPU each", s.signal, s.num_actors, s.num_cpus, s.num_gpus
        )
    nodes: dict[tuple[str, int], str] = {}
    pending = list(waiting)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=60)
            for ref in done:
                name = waiting[ref][0]
                try:
                    err, node = ray.get(ref)
                except Exception as e:  # the actor process died while loading (OOM, crash)
                    raise ConfigError(
                        f"signal '{name}' could not start on Ray: {type(e).__name__}: {e}"
                    ) from None
                if err is not None:
                    raise err
                nodes[waiting[ref]] = node
            if pending:
                log.warning(
                    "waiting for %d signal actor(s) to start (%s): the cluster may lack the resources "
                    "they reserve",
                    len(pending),
                    ", ".join(sorted({waiting[r][0] for r in pending})),
                )
    except BaseException:
        stop_pools(pools)
        raise
    return {n: [(h, nodes[(n, i)]) for i, h in enumerate(hs)] for n, hs in pools.items()}


def stop_pools(pools: dict[str, list[Any]]) -> None:
    import ray

    for handles in pools.values():
        for h in handles:
            ray.kill(h[0] if isinstance(h, tuple) else h)


# ----------------------------------------------------------------------------- driver
def _init_ray(ray_opts: RayOptions, cpus_needed: float) -> None:
    import ray

    if ray.is_initialized():
        return
    if ray_opts.address:
        ray.init(address=ray_opts.address, log_to_driver=True)
    else:
        # A local cluster with at least the logical CPUs the pools and shard workers reserve (they mostly
        # wait on each other, so oversubscribing the cores is fine); GPUs are detected by Ray.
        ray.init(
            num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed)),
            include_dashboard=False,
            log_to_driver=True,
        )


def score_with_ray(
    inputs: list[str], run_dir: str | Path, signals: list[str], cfg: RunConfig, retry_errors: bool = False
) -> ScoreSummary:
    """Score with Ray; the same tables, statuses, logs and summary as the in-process runner."""
    import ray

    run = prepare_run(inputs, run_dir, signals, cfg, retry_errors)
    if not run.tasks:
        run.ledger.write_manifest()
        return run.ledger.finish()
    opts = cfg.score
    plans = run.needed_plans()
    # sizes assuming no GPUs, for the logical CPUs of a local cluster; then sized against the real cluster
    specs, workers = size_pools(plans, opts.ray, {"CPU": 0.0})
    _init_ray(opts.ray, _need(specs, workers, opts.ray.shard_cpus)[0])
    cluster = {k: float(v) for k, v in ray.cluster_resources().items()}
    specs, workers = size_pools(plans, opts.ray, cluster)
    cpus, gpus = _need(specs, workers, opts.ray.shard_cpus)
    if cpus > cluster.get("CPU", 0.0) or gpus > cluster.get("GPU", 0.0):
        log.warning(
            "this run reserves %g CPUs and %g GPUs; the cluster has %g and %g now (an autoscaler may add "
            "more; else lower score.ray.read_parallelism or score.ray.signals.<name>.num_actors)",
            cpus,
            gpus,
            cluster.get("CPU", 0.0),
            cluster.get("GPU", 0.0),
        )
    pools = start_signal_pools(plans, specs)
    try:
        run.ledger.write_manifest()
        data_ctx = ray.data.DataContext.get_current()
        data_ctx.enable_progress_bars = False
        # a few shards per block: fine-grained scheduling without per-shard block metadata on the driver
        blocks = min(len(run.tasks), max(4 * workers, 256))
        ds = ray.data.from_items([{"task": t.to_json()} for t in run.tasks], override_num_blocks=blocks)
        ds = ds.map_batches(
            ShardWorker,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=opts.ray.shard_cpus,
            resources=opts.ray.shard_resources or None,
            fn_constructor_kwargs={"ctx": run.ctx, "pools": pools},
        )
        with tqdm(total=len(run.tasks), unit="shard", disable=not opts.progress, desc="score[ray]") as bar:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for r in batch["result"]:
                    run.ledger.record(ShardResult.from_json(str(r)))
                    bar.update(1)
    finally:
        stop_pools(pools)
    return run.ledger.finish()
