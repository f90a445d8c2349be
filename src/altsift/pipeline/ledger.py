"""Driver-side bookkeeping shared by every runner: planning a run, the run directory, commit accounting.

:func:`prepare_run` validates the signals, expands the inputs and plans every shard from its table footer
(:func:`altsift.pipeline.shard_job.plan_shard`); :class:`RunLedger` turns the commit records that shard
jobs hand back (:class:`~altsift.pipeline.shard_job.ShardResult`) into ``run.json``,
``logs/shard_errors.jsonl`` and ``score_summary.json``. The summary describes the whole run directory
(from table footers), not only the shards of this invocation.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from altsift.config import RunConfig
from altsift.errors import AltsiftError, ConfigError, EnvironmentIOError
from altsift.io import tables
from altsift.io.shards import expand_inputs, shard_names
from altsift.pipeline.plan import SignalPlan, plan_signals
from altsift.pipeline.shard_job import JobContext, ShardResult, ShardTask, plan_shard

log = logging.getLogger("altsift.score")


@dataclass
class ScoreSummary:
    """What a score run did (also written to RUN_DIR/score_summary.json).

    The ``shards_*``/``samples_*`` counts are this invocation's; ``run`` is the state of the whole run
    directory afterwards (every shard it knows: done, failed, pending).
    """

    shards_total: int = 0
    shards_scored: int = 0
    shards_skipped: int = 0
    shards_with_errors: dict[str, str] = field(default_factory=dict)
    samples_scored: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    signals_computed: dict[str, int] = field(default_factory=dict)
    tables_quarantined: list[str] = field(default_factory=list)
    workers: dict[str, int] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def incomplete(self) -> bool:
        """True when a shard of this invocation failed, or when nothing could be scored."""
        return bool(self.shards_with_errors)


@contextmanager
def environment_guard(action: str) -> Iterator[None]:
    """Turn disk-full / read-only / permission errors into one clear :class:`EnvironmentIOError` (exit 4)."""
    try:
        yield
    except OSError as e:
        err = tables.environment_error(e, action)
        if err is not None:
            raise err from None
        raise


def ensure_run_dir(run_dir: Path) -> None:
    """Create the run directory and check it is a writable directory (before any model loads)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file; the run directory must be a directory")
    inside = next(
        (
            anc
            for anc in run_dir.resolve().parents
            if anc.name in ("scores", "arrays") and (anc.parent / "scores").is_dir()
        ),
        None,
    )
    if inside is not None:
        raise ConfigError(
            f"--out {run_dir} is inside {inside}, a run's own folder: its files would be taken for "
            f"score tables. Give a run directory of its own, e.g. beside {inside.parent}"
        )
    with environment_guard(f"creating the run directory {run_dir}"):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"--out {run_dir}: a parent of it is a file, not a directory") from None
        probe = run_dir / f".write-probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()


class RunLedger:
    """Driver-side bookkeeping from commit records: manifest, shard error log, run-wide summary."""

    def __init__(self, run_dir: Path, ctx: JobContext, inputs: list[str], shards: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.ctx = ctx
        self.inputs = inputs
        self.shards = shards  # name -> source, this invocation
        self.summary = ScoreSummary(shards_total=len(shards))
        self.statuses: Counter[str] = Counter()
        self.failures: dict[str, str] = {}  # shards of this invocation whose job failed (no table written)
        self.t0 = time.time()

    def write_manifest(self) -> None:
        """``run.json``: the inputs of this invocation and every shard this run directory has been given."""
        path = self.run_dir / "run.json"
        known: dict[str, str] = {}
        if path.is_file():
            try:
                known = dict(json.loads(path.read_text()).get("shards", {}))
            except (ValueError, AttributeError, TypeError):
                log.warning("run.json is unreadable; rewriting it")
        known.update(self.shards)
        manifest = {
            "inputs": list(self.inputs),
            "shards": dict(sorted(known.items())),
            "signals": [p.name for p in self.ctx.plans],
            "reader": self.ctx.reader,
        }
        with environment_guard("writing run.json"):
            _write_text_atomic(path, json.dumps(manifest, indent=2))

    def skipped(self, name: str) -> None:
        self.summary.shards_skipped += 1

    def quarantined(self, name: str) -> None:
        self.summary.tables_quarantined.append(name)

    def record(self, result: ShardResult) -> None:
        """Account for one commit record; raises the run-level error a worker reported."""
        if result.fatal:
            msg = result.fatal["message"]
            raise EnvironmentIOError(msg) if result.fatal["kind"] == "environment" else AltsiftError(msg)
        s = self.summary
        s.workers[result.worker] = s.workers.get(result.worker, 0) + 1
        if result.problem:
            self._log_shard_error(result.name, result.source, result.problem)
        if not result.committed:
            self.failures[result.name] = result.failure or "failed"
            return
        self.failures.pop(result.name, None)
        s.shards_scored += 1
        s.samples_scored += result.rows
        self.statuses.update(result.statuses)
        for name in result.computed:
            s.signals_computed[name] = s.signals_computed.get(name, 0) + result.rows

    def _log_shard_error(self, name: str, source: str, error: str) -> None:
        d = self.run_dir / "logs"
        with environment_guard("writing logs/shard_errors.jsonl"):
            d.mkdir(exist_ok=True)
            with open(d / "shard_errors.jsonl", "a") as f:
                f.write(
                    json.dumps({"shard": name, "path": source, "error": error, "time": time.time()}) + "\n"
                )

    def finish(self) -> ScoreSummary:
        """Fill in the run-wide state, write ``score_summary.json`` and return the summary."""
        s = self.summary
        s.status_counts = dict(sorted(self.statuses.items()))
        s.signals_computed = dict(sorted(s.signals_computed.items()))
        s.workers = dict(sorted(s.workers.items()))
        s.run = run_state(self.run_dir, self.failures)
        failed = s.run["failed_shards"]
        s.shards_with_errors = {n: failed[n] for n in sorted(self.shards) if n in failed}
        s.seconds = round(time.time() - self.t0, 3)
        with environment_guard("writing score_summary.json"):
            _write_text_atomic(self.run_dir / "score_summary.json", json.dumps(asdict(s), indent=2))
        if s.shards_skipped:
            log.info(
                "skipped %d shard(s): already scored with the same signals and options "
                "(change an option or add a signal to compute more)",
                s.shards_skipped,
            )
        return s


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_state(run_dir: Path, failed_now: dict[str, str] | None = None) -> dict[str, Any]:
    """The state of every shard a run directory knows (its tables and ``run.json``), from footers only.

    ``failed_now``: shards whose job just failed (an older table of theirs may still be there).
    """
    run_dir = Path(run_dir)
    known: dict[str, str] = {}
    with suppress(OSError, ValueError, AttributeError, TypeError):
        known = dict(json.loads((run_dir / "run.json").read_text()).get("shards", {}))
    logged: dict[str, str] = {}
    log_path = run_dir / "logs" / "shard_errors.jsonl"
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                e = json.loads(line)
                logged[e["shard"]] = e["error"]
            except (ValueError, KeyError, TypeError):
                continue
    done = 0
    rows = 0
    statuses: Counter[str] = Counter()
    failed: dict[str, str] = {}
    seen: set[str] = set()
    files = tables.list_tables(run_dir)
    with ThreadPoolExecutor(8) as ex:
        infos = list(ex.map(_safe_inspect, files))
    for f, info in zip(files, infos, strict=True):
        seen.add(f.stem)
        if isinstance(info, str):
            failed[f.stem] = f"corrupt table: {info}"
            continue
        rows += info.rows
        meta = info.shard
        if failed_now and f.stem in failed_now:  # an older table is still there, but its job failed now
            failed[f.stem] = failed_now[f.stem]
            continue
        if "statuses" in meta:
            statuses.update(meta["statuses"])
        elif info.rows:
            statuses.update(pq.read_table(f, columns=["status"]).column("status").to_pylist())
        problem = ShardResult(
            "", "", failed_signals=meta.get("failed_signals") or {}, error=meta.get("error")
        ).problem
        if problem:
            failed[f.stem] = problem
        else:
            done += 1
    pending = 0
    for name in known:
        if name in seen:
            continue
        if failed_now and name in failed_now:
            failed[name] = failed_now[name]
        elif name in logged:
            failed[name] = logged[name]
        else:
            pending += 1
    return {
        "shards": len(seen | set(known)),
        "shards_done": done,
        "shards_failed": len(failed),
        "shards_pending": pending,
        "rows": rows,
        "status_counts": dict(sorted(statuses.items())),
        "failed_shards": dict(sorted(failed.items())),
    }


def _safe_inspect(path: Path) -> tables.TableInfo | str:
    try:
        info = tables.inspect_table(path)
    except tables.CorruptTableError as e:
        return str(e)
    return info if info is not None else "vanished"


# ----------------------------------------------------------------------------- the shared driver prelude
@dataclass
class RunPlan:
    """A planned score run: the job context, the shards that need work, and the ledger."""

    ctx: JobContext
    tasks: list[ShardTask]
    ledger: RunLedger

    def needed_plans(self) -> list[SignalPlan]:
        """Signals some shard needs, in dependency order (these are loaded before any shard is read)."""
        need = {n for t in self.tasks for n in t.todo}
        return [p for p in self.ctx.plans if p.name in need]


def prepare_run(
    inputs: list[str],
    run_dir: str | Path,
    signal_names: list[str],
    cfg: RunConfig,
    retry_errors: bool = False,
) -> RunPlan:
    """Validate, expand inputs and plan every shard from table footers (no shard is read, no model loaded)."""
    run_dir = Path(run_dir)
    plans = plan_signals(signal_names, cfg)
    sources = expand_inputs(inputs, cfg.score.storage_options)
    names = shard_names(sources)
    ensure_run_dir(run_dir)
    ctx = JobContext.create(run_dir, plans, cfg.score)
    shards = {n: str(p) for p, n in zip(sources, names, strict=True)}
    ledger = RunLedger(run_dir, ctx, list(inputs), shards)

    def plan_one(item: tuple[str, str]) -> ShardTask | None:
        with environment_guard(f"checking the table of shard {item[0]}"):
            return plan_shard(ctx, item[0], item[1], retry_errors)

    with ThreadPoolExecutor(8) as ex:  # footer reads and stats: I/O bound
        planned = list(ex.map(plan_one, shards.items()))
    tasks: list[ShardTask] = []
    for name, task in zip(shards, planned, strict=True):
        if task is None:
            ledger.skipped(name)
            continue
        if task.reason.startswith("corrupt"):
            ledger.quarantined(name)
        tasks.append(task)
    return RunPlan(ctx, tasks, ledger)
