"""In-process scoring: a thin driver over the shared shard job (:mod:`altsift.pipeline.shard_job`).

Plan every shard from its table footer, load each needed signal once (a model that does not load stops
the run here, before any shard is read), then run the shard job for each shard in turn: a thread pool
decodes images one or more batches ahead of the signals, so decoding overlaps model work. Finished shards
are skipped on a rerun; a rerun with an extra signal computes only that signal's columns.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from altsift.config import RunConfig
from altsift.pipeline.ledger import ScoreSummary, prepare_run
from altsift.pipeline.shard_job import Batch, SignalOutput, SignalRunner, run_shard

__all__ = ["ScoreSummary", "Scorer", "score"]


class Scorer:
    """Scores shards into a run directory in this process; loaded signals are kept across :meth:`score` calls
    (a notebook or a benchmark scoring several inputs pays each model load once)."""

    def __init__(self, run_dir: str | Path, signal_names: list[str], cfg: RunConfig) -> None:
        self.run_dir = Path(run_dir)
        self.signal_names = list(signal_names)
        self.cfg = cfg
        self.runners: dict[str, SignalRunner] = {}

    def _call(self, name: str, batch: Batch) -> SignalOutput:
        return self.runners[name](batch)

    def score(self, inputs: list[str], retry_errors: bool = False) -> ScoreSummary:
        run = prepare_run(inputs, self.run_dir, self.signal_names, self.cfg, retry_errors)
        for p in run.needed_plans():  # fail fast: every model loads before any shard is read
            r = self.runners.get(p.name)
            if r is None or r.plan.fingerprint() != p.fingerprint():
                r = self.runners[p.name] = SignalRunner(p)
            r.load()
        ledger = run.ledger
        ledger.write_manifest()
        opts = self.cfg.score
        t0 = time.time()
        with (
            ThreadPoolExecutor(opts.decode_threads, thread_name_prefix="decode") as pool,
            tqdm(total=len(run.tasks), unit="shard", disable=not opts.progress, desc="score") as bar,
        ):
            live = [0]  # samples through the models so far, updated per batch (a shard can be large)

            def tick(n: int) -> None:
                live[0] += n
                bar.set_postfix(
                    samples=live[0],
                    samples_s=f"{live[0] / max(time.time() - t0, 1e-9):.1f}",
                    skipped=ledger.summary.shards_skipped,
                    refresh=False,
                )
                bar.refresh()

            for task in run.tasks:
                ledger.record(run_shard(run.ctx, task, self._call, pool, tick))
                bar.update(1)
        return ledger.finish()


def score(
    inputs: list[str], run_dir: str | Path, signals: list[str], cfg: RunConfig, retry_errors: bool = False
) -> ScoreSummary:
    """Score ``inputs`` into ``run_dir`` with ``signals`` (plus their requirements), with the configured runner."""
    if cfg.score.runner == "ray":
        from altsift.pipeline.ray_runner import score_with_ray

        return score_with_ray(inputs, run_dir, signals, cfg, retry_errors=retry_errors)
    return Scorer(run_dir, signals, cfg).score(inputs, retry_errors=retry_errors)
