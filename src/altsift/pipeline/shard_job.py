"""One shard job for every runner: what a shard still needs, scoring it, committing it, accounting for it.

The in-process runner (:mod:`altsift.pipeline.score`) and the Ray runner (:mod:`altsift.pipeline.ray_runner`)
are thin drivers over these calls, so resume rules, statuses and outputs cannot drift between them:

1. :func:`altsift.pipeline.ledger.prepare_run` (driver): validate the signals, expand the inputs, and
   :func:`plan_shard` each shard
   from its table's *footer* alone (no shard is read): up to date -> skipped; otherwise a small
   :class:`ShardTask` naming the signals to compute and the recorded ones to keep. A table that is
   unreadable, has the wrong base schema or the wrong row count is moved to ``scores/.corrupt/`` and the
   shard is scored again. A different source file under the same name (identity: path, size, mtime) or
   other reader options (:func:`reader_fingerprint`) rescore the shard from scratch.
2. The driver loads every needed signal once (:class:`SignalRunner`, or one per Ray actor) *before* any
   shard is read: a model that does not load stops the run with its message (exit 2).
3. :func:`run_shard` (worker): stream the shard's rows, decode images only when a signal reads pixels or
   ``verify_images`` is on (in a thread pool, batches ahead), run the signals batch by batch through a
   ``call(signal, batch)`` function (in-process, or a Ray actor), carry earlier columns and
   ``error_<signal>`` statuses over, and commit: arrays, then the table with its declared schema and
   metadata, each atomically. Returns a small :class:`ShardResult` (the commit record); never raises
   for a per-shard problem.
4. :class:`altsift.pipeline.ledger.RunLedger` (driver): ``run.json``, ``logs/shard_errors.jsonl`` and
   ``score_summary.json`` from the commit records; the summary describes the whole run directory.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from altsift.config import ScoreOptions
from altsift.errors import AltsiftError, ConfigError, EnvironmentIOError
from altsift.io import tables
from altsift.io.schema import BASE_COLUMNS, BASE_TYPES
from altsift.io.shards import (
    NEEDED_EXTS,
    ReadLimits,
    decode_image,
    identity_matches,
    image_header,
    open_shard,
    parse_samples,
    verify_image,
)
from altsift.io.shards import shard_identity as source_identity
from altsift.pipeline.plan import SignalPlan, needed_signals, planned_schema
from altsift.signals.base import Signal

log = logging.getLogger("altsift.score")

#: score options that change statuses or pixels: a change rescores every shard
READER_OPTION_KEYS = (
    "max_image_pixels",
    "max_decode_side",
    "verify_images",
    "max_member_bytes",
    "max_sample_bytes",
)

Batch = dict[str, list[Any]]


# ----------------------------------------------------------------------------- reader
def shard_identity(source: str, opts: ScoreOptions | None = None) -> dict[str, Any]:
    """What identifies a shard's content cheaply (``io.sources.shard_identity``): path or URL, size, and
    mtime (local, ns) or the object store's ETag. Raises OSError when the shard is gone."""
    return source_identity(source, opts.storage_options if opts is not None else None)


class ShardUnavailable(OSError):
    """The shard could not be read at all right now (gone, network, credentials): nothing is recorded,
    so a rerun retries it."""


class ShardRows:
    """The parsed rows of one shard in tar order, streamed one sample at a time (``io.shards.open_shard``
    with the run's byte budgets and ``storage_options``); ``error`` / ``error_kind`` are the shard-level
    read outcome, known once iteration ends."""

    def __init__(self, source: str, name: str, opts: ScoreOptions | None = None) -> None:
        self.source, self.name = source, name
        self.limits = ReadLimits.from_options(opts) if opts is not None else ReadLimits()
        self.storage_options = opts.storage_options if opts is not None else None
        self.error: str | None = None
        self.error_kind: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with open_shard(self.source, self.limits, self.storage_options, NEEDED_EXTS) as stream:
            yield from parse_samples(stream, self.name)
        self.error, self.error_kind = stream.error, stream.error_kind
        if stream.error_kind == "unavailable" and not stream.samples:
            raise ShardUnavailable(stream.error)


def reader_fingerprint(opts: ScoreOptions) -> dict[str, Any]:
    """Options that change a shard's statuses or pixels; recorded per table and compared on resume."""
    return {k: getattr(opts, k) for k in READER_OPTION_KEYS}


# ----------------------------------------------------------------------------- signals
@dataclass
class SignalOutput:
    """What one signal returned for a batch: parquet columns, 2-D arrays, and rows it could not score."""

    columns: dict[str, list[Any]]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # row index -> error message


class SignalRunner:
    """Runs one signal on batches. The model loads once (:meth:`load`); a batch that raises is retried
    row by row so only the failing rows are marked. Run-level errors (:class:`AltsiftError`) propagate."""

    def __init__(self, plan: SignalPlan) -> None:
        self.plan = plan
        self._signal: Signal | None = None

    def load(self) -> Signal:
        """Instantiate the signal (load its model) once; a failure is a run-level error (exit 2)."""
        if self._signal is None:
            log.info("loading signal '%s'", self.plan.name)
            try:
                self._signal = self.plan.instantiate()
            except AltsiftError:
                raise
            except Exception as e:
                raise ConfigError(
                    f"signal '{self.plan.name}' could not be loaded: {type(e).__name__}: {e}"
                ) from e
        return self._signal

    def __call__(self, batch: Batch) -> SignalOutput:
        signal = self.load()
        n = len(batch["uid"])
        try:
            return self._normalize(signal(batch), n)
        except AltsiftError:
            raise
        except Exception as e:  # isolate the bad rows: retry one row at a time
            log.warning("signal '%s' failed on a batch of %d (%s); retrying row by row", self.plan.name, n, e)
        outs: list[SignalOutput | None] = []
        failed: dict[int, str] = {}
        for i in range(n):
            row = {k: v[i : i + 1] for k, v in batch.items()}
            try:
                outs.append(self._normalize(signal(row), 1))
            except AltsiftError:
                raise
            except Exception as e:
                failed[i] = f"signal {self.plan.name}: {type(e).__name__}: {e}"
                outs.append(None)
        return self._merge(outs, failed)

    def _normalize(self, out: dict[str, Any], n: int) -> SignalOutput:
        for k, v in out.items():
            if len(v) != n:
                raise ValueError(
                    f"signal '{self.plan.name}' returned {len(v)} values for '{k}', expected {n}"
                )
        cols = {c: [None] * n if out.get(c) is None else list(out[c]) for c in self.plan.columns}
        arrays = {c: np.asarray(out[c]) for c in self.plan.array_columns if c in out}
        return SignalOutput(cols, arrays)

    def _merge(self, outs: list[SignalOutput | None], failed: dict[int, str]) -> SignalOutput:
        cols = {c: [None if o is None else o.columns[c][0] for o in outs] for c in self.plan.columns}
        arrays: dict[str, np.ndarray] = {}
        for c in self.plan.array_columns:
            parts = [None if o is None else o.arrays.get(c) for o in outs]
            parts = [p if p is not None and p.ndim == 2 and p.shape[1] else None for p in parts]
            dim = next((p.shape[1] for p in parts if p is not None), 0)
            if dim:
                arrays[c] = np.concatenate(
                    [p if p is not None else np.full((1, dim), np.nan, np.float32) for p in parts]
                )
        return SignalOutput(cols, arrays, failed)


SignalCall = Callable[[str, Batch], SignalOutput]


# ----------------------------------------------------------------------------- tasks and results
@dataclass
class JobContext:
    """Everything a shard job needs besides the shard; picklable, sent once to every worker."""

    run_dir: str
    plans: list[SignalPlan]
    opts: ScoreOptions
    reader: dict[str, Any] = field(default_factory=dict)
    types: dict[str, pa.DataType] = field(default_factory=dict)

    @classmethod
    def create(cls, run_dir: str | Path, plans: list[SignalPlan], opts: ScoreOptions) -> JobContext:
        return cls(str(run_dir), plans, opts, reader_fingerprint(opts), planned_schema(plans, BASE_TYPES))

    def plan(self, name: str) -> SignalPlan:
        return next(p for p in self.plans if p.name == name)


@dataclass
class ShardTask:
    """What one shard still needs (decided from its table's footer); small and JSON-able."""

    name: str
    source: str
    todo: list[str]  # signals to compute, in dependency order
    keep: dict[str, Any] = field(
        default_factory=dict
    )  # recorded {signal: fingerprint} whose columns are kept
    fresh: bool = True  # ignore the existing table (new shard, other source, other reader options)
    reason: str = "new"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> ShardTask:
        return cls(**json.loads(s))


@dataclass
class ShardResult:
    """The commit record a shard job hands back to the driver (small: no rows, no arrays)."""

    name: str
    source: str
    rows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)  # signals recorded as computed by this job
    failed_signals: dict[str, str] = field(default_factory=dict)  # signals that failed on every row
    error: str | None = None  # shard-level read error; the rows read were still committed
    failure: str | None = None  # the job failed: no table written (a rerun retries it)
    fatal: dict[str, str] | None = None  # {"kind": "environment"|"usage", "message"}: the run must stop
    worker: str = "local"
    seconds: float = 0.0

    @property
    def committed(self) -> bool:
        return self.failure is None and self.fatal is None

    @property
    def problem(self) -> str | None:
        """Why this shard is not complete, or None."""
        if self.failure:
            return self.failure
        if self.failed_signals:
            return "; ".join(
                f"signal {k} failed on every row ({v}); rerun to retry"
                for k, v in sorted(self.failed_signals.items())
            )
        return self.error

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> ShardResult:
        return cls(**json.loads(s))


# ----------------------------------------------------------------------------- planning (driver)
def _recorded_and_valid(ctx: JobContext, info: tables.TableInfo) -> dict[str, Any]:
    """The table's recorded signals, minus planned ones whose columns or arrays are missing or mistyped."""
    recorded = dict(info.signals)
    for p in ctx.plans:
        if p.name not in recorded:
            continue
        for c in p.columns:
            i = info.schema.get_field_index(c)
            if i < 0 or info.schema.field(i).type != ctx.types[c]:
                log.warning(
                    "shard %s: column '%s' of signal '%s' is %s; recomputing it",
                    info.path.stem,
                    c,
                    p.name,
                    "missing" if i < 0 else f"of type {info.schema.field(i).type}",
                )
                recorded.pop(p.name, None)
                break
        if p.name in recorded and info.shard.get("statuses", {}).get("ok"):  # no ok row: no array is written
            for c in p.array_columns:
                if not tables.array_path(Path(ctx.run_dir), c, info.path.stem).exists():
                    log.warning(
                        "shard %s: array '%s' of signal '%s' is missing; recomputing it",
                        info.path.stem,
                        c,
                        p.name,
                    )
                    recorded.pop(p.name, None)
                    break
    return recorded


def plan_shard(ctx: JobContext, name: str, source: str, retry_errors: bool = False) -> ShardTask | None:
    """What shard ``name`` still needs, from its table's footer; None when it is up to date."""
    every = [p.name for p in ctx.plans]
    tpath = tables.table_path(Path(ctx.run_dir), name)
    try:
        info = tables.inspect_table(tpath)
    except tables.CorruptTableError as e:
        tables.quarantine_table(tpath, str(e))
        return ShardTask(name, source, every, reason=f"corrupt table moved aside ({e})")
    if info is None:
        return ShardTask(name, source, every)
    meta = info.shard
    try:
        identity: dict[str, Any] | None = shard_identity(source, ctx.opts)
    except OSError as e:  # gone since the inputs were listed: the job records the failure
        log.warning("shard %s: cannot stat %s (%s)", name, source, e)
        identity = None
    if identity is None or not identity_matches(meta.get("identity"), identity):
        was = meta.get("identity") or {"path": meta.get("path")}
        log.warning(
            "shard %s: the table was made from another file (%s) than %s (%s); scoring it again",
            name,
            json.dumps(was, sort_keys=True),
            source,
            json.dumps(identity, sort_keys=True),
        )
        return ShardTask(name, source, every, reason="source changed")
    if meta.get("reader") != ctx.reader:
        log.info(
            "shard %s: reader options changed (%s -> %s); scoring it again",
            name,
            meta.get("reader"),
            ctx.reader,
        )
        return ShardTask(name, source, every, reason="reader options changed")
    recorded = _recorded_and_valid(ctx, info)
    force: set[str] = set()
    if retry_errors and info.rows:
        errs = (
            {s for s in meta.get("statuses", {}) if s.startswith("error_")}
            if "statuses" in meta
            else {
                s
                for s in pq.read_table(tpath, columns=["status"]).column("status").to_pylist()
                if s.startswith("error_")
            }
        )
        force = {p.name for p in ctx.plans if f"error_{p.name}" in errs}
    todo = [p.name for p in needed_signals(ctx.plans, {k: v for k, v in recorded.items() if k not in force})]
    retry_read = retry_errors and bool(meta.get("error"))
    if not todo and not retry_read:
        return None
    keep = {k: v for k, v in recorded.items() if k not in todo}
    reason = "retry errors" if (force or retry_read) else "signals to compute"
    return ShardTask(name, source, todo, keep=keep, fresh=False, reason=reason)


# ----------------------------------------------------------------------------- running (worker)
class _ShardChanged(Exception):
    """The shard's samples differ from its table's (same identity): score it from scratch."""


def _decoded_batches(
    rows: Iterable[dict[str, Any]], opts: ScoreOptions, pool: ThreadPoolExecutor, mode: str
) -> Iterator[list[dict[str, Any]]]:
    """Yield batches with images handled ``prefetch_batches`` batches ahead, in a thread pool.

    ``mode``: ``decode`` (a signal reads pixels: keep the decoded image), ``verify`` (no signal reads
    pixels but ``verify_images``: decode to give broken images a status, keep no pixels) or ``header``
    (read only the size the header claims). Image bytes are dropped as soon as they were handled.
    """
    pending: deque[tuple[list[dict[str, Any]], list[Future] | None]] = deque()
    fn = {"decode": decode_image, "verify": verify_image, "header": image_header}[mode]

    def submit(b: list[dict[str, Any]]) -> list[Future] | None:
        if mode == "decode":
            return [
                pool.submit(fn, r["_image_bytes"], opts.max_image_pixels, opts.max_decode_side)
                if r["status"] == "ok"
                else None
                for r in b
            ]
        return [
            pool.submit(fn, r["_image_bytes"], opts.max_image_pixels)
            if r["status"] == "ok" and r.get("_image_bytes") is not None
            else None
            for r in b
        ]

    def finish(b: list[dict[str, Any]], futs: list[Future] | None) -> list[dict[str, Any]]:
        for i, r in enumerate(b):
            r["image"] = None
            r.pop("_image_bytes", None)
            if futs is None or futs[i] is None:
                continue
            img, status, err, size = futs[i].result()
            r["image"] = img
            if size is not None:
                r["original_width"] = r["original_width"] or size[0]
                r["original_height"] = r["original_height"] or size[1]
            if status is not None and r["status"] == "ok":
                r["status"], r["error"] = status, err
        return b

    batch: list[dict[str, Any]] = []
    for r in rows:
        batch.append(r)
        if len(batch) == opts.batch_size:
            pending.append((batch, submit(batch)))
            batch = []
            if len(pending) > opts.prefetch_batches:
                yield finish(*pending.popleft())
    if batch:
        pending.append((batch, submit(batch)))
    while pending:
        yield finish(*pending.popleft())


def run_shard(
    ctx: JobContext,
    task: ShardTask,
    call: SignalCall,
    pool: ThreadPoolExecutor,
    tick: Callable[[int], None] | None = None,
    worker: str = "local",
) -> ShardResult:
    """Score one shard and commit its table; per-shard problems come back in the result, never raised.

    ``call(signal, batch)`` runs a signal (in-process or on a Ray actor); ``pool`` decodes images;
    ``tick(n)`` reports progress per batch; ``worker`` names where the job ran (kept in the summary).
    """
    t0 = time.time()
    try:
        try:
            result = _run(ctx, task, call, pool, tick)
        except _ShardChanged:
            log.warning("shard %s: its samples differ from the table's; recomputing every signal", task.name)
            fresh = replace(
                task, todo=[p.name for p in ctx.plans], keep={}, fresh=True, reason="samples changed"
            )
            result = _run(ctx, fresh, call, pool, tick)
    except EnvironmentIOError as e:
        result = ShardResult(task.name, task.source, fatal={"kind": "environment", "message": str(e)})
    except AltsiftError as e:
        result = ShardResult(task.name, task.source, fatal={"kind": "usage", "message": str(e)})
    except Exception as e:  # costs this shard only; a rerun retries it
        msg = f"shard failed, no table written (rerun to retry): {type(e).__name__}: {e}"
        log.exception("shard %s: %s", task.name, msg)
        result = ShardResult(task.name, task.source, failure=msg)
    result.worker = worker
    result.seconds = round(time.time() - t0, 3)
    return result


def _load_prior(ctx: JobContext, task: ShardTask) -> pa.Table | None:
    """The existing table, when the task keeps some of it; a table that does not read is quarantined."""
    tpath = tables.table_path(Path(ctx.run_dir), task.name)
    if task.fresh or not tpath.exists():
        return None
    try:
        return pq.read_table(tpath)
    except Exception as e:  # noqa: BLE001 - a footer that reads but data pages that do not
        tables.quarantine_table(tpath, f"unreadable data: {type(e).__name__}: {e}")
        raise _ShardChanged from None


def _run(
    ctx: JobContext,
    task: ShardTask,
    call: SignalCall,
    pool: ThreadPoolExecutor,
    tick: Callable[[int], None] | None,
) -> ShardResult:
    run_dir = Path(ctx.run_dir)
    todo = [ctx.plan(n) for n in task.todo]
    todo_names = {p.name for p in todo}
    todo_cols = {c for p in todo for c in p.columns}
    existing = _load_prior(ctx, task)
    if existing is None and not task.fresh and task.keep:
        raise _ShardChanged  # the table vanished since planning
    prior: dict[str, list[Any]] = {}
    prior_types: dict[str, pa.DataType] = {}
    prior_keys: list[str] | None = None
    prior_status: list[tuple[str, str | None]] = []
    prior_failed: dict[str, str] = {}
    if existing is not None:
        prior_keys = existing.column("key").to_pylist()
        for c in existing.column_names:
            if c not in BASE_COLUMNS and c not in todo_cols:
                prior[c] = existing.column(c).to_pylist()
                prior_types[c] = existing.schema.field(c).type
        prior_status = list(
            zip(existing.column("status").to_pylist(), existing.column("error").to_pylist(), strict=True)
        )
        prior_failed = {
            k: v
            for k, v in tables.shard_meta(existing).get("failed_signals", {}).items()
            if k not in todo_names
        }
    carry = {f"error_{k}" for k in prior_failed} | {f"error_{k}" for k in task.keep}

    identity = shard_identity(task.source, ctx.opts)
    reader = ShardRows(task.source, task.name, ctx.opts)
    need_image = (
        "decode" if any(p.needs_image for p in todo) else "verify" if ctx.opts.verify_images else "header"
    )
    rows: list[dict[str, Any]] = []
    outputs: dict[str, list[Any]] = {c: [] for p in todo for c in p.columns}
    arrays: dict[str, list[tuple[int, np.ndarray | None]]] = {c: [] for p in todo for c in p.array_columns}
    attempted: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    for b in _decoded_batches(reader, ctx.opts, pool, need_image):
        n, off = len(b), len(rows)
        if prior_keys is not None:
            if [r["key"] for r in b] != prior_keys[off : off + n]:
                raise _ShardChanged
            for r, (st, err) in zip(b, prior_status[off : off + n], strict=True):
                if st in carry and r["status"] == "ok":
                    r["status"], r["error"] = st, err  # a kept signal failed on this row earlier
        batch: Batch = {k: [r.get(k) for r in b] for k in (*BASE_COLUMNS, "json", "image")}
        for c, vals in prior.items():
            batch[c] = vals[off : off + n]
        for p in todo:
            sub = batch if p.needs_image else {**batch, "image": [None] * n}
            ok = [i for i in range(n) if batch["status"][i] == "ok"]
            out = call(p.name, sub)
            for i, msg in out.failed.items():
                first_error.setdefault(p.name, msg)
                if batch["status"][i] == "ok":
                    batch["status"][i], batch["error"][i] = f"error_{p.name}", msg
            attempted[p.name] += len(ok)
            failed[p.name] += sum(1 for i in ok if i in out.failed)
            for c in p.columns:
                vals = out.columns.get(c)
                vals = [None] * n if vals is None else list(vals)
                outputs[c].extend(vals)
                batch[c] = vals
            for c in p.array_columns:
                arrays[c].append((n, out.arrays.get(c)))
        for i, r in enumerate(b):
            rows.append(
                {
                    "status": batch["status"][i],
                    "error": batch["error"][i],
                    **{c: r.get(c) for c in BASE_COLUMNS if c not in ("status", "error")},
                }
            )
        if tick is not None:
            tick(n)
    if prior_keys is not None and len(rows) != len(prior_keys):
        raise _ShardChanged
    # A signal that failed on every row it was given (at least two) has a run-level problem: the rows
    # carry error_<signal>, but the signal is not recorded as computed, so every rerun retries it.
    failed_signals = dict(prior_failed)
    for p in todo:
        if attempted[p.name] >= 2 and failed[p.name] == attempted[p.name]:
            failed_signals[p.name] = first_error[p.name]
            log.warning(
                "shard %s: signal '%s' failed on all %d rows (%s); not recorded as computed",
                task.name,
                p.name,
                attempted[p.name],
                first_error[p.name],
            )
    computed = [p for p in todo if p.name not in failed_signals]
    signals_meta = {k: v for k, v in task.keep.items() if k not in todo_names}
    signals_meta.update({p.name: p.fingerprint() for p in computed})

    columns: dict[str, Any] = {c: [r[c] for r in rows] for c in BASE_COLUMNS}
    columns.update(prior)
    columns.update(outputs)
    types = {**BASE_TYPES, **prior_types, **{c: ctx.types[c] for c in outputs}}
    statuses = Counter(r["status"] for r in rows)
    info = {
        "path": identity["path"],
        "identity": identity,
        "reader": ctx.reader,
        "rows": len(rows),
        "error": reader.error,
        "statuses": dict(sorted(statuses.items())),
        "failed_signals": dict(sorted(failed_signals.items())),
    }
    table = tables.with_signals_meta(tables.build_table(columns, types), signals_meta, info)
    _commit(run_dir, task.name, table, arrays, {p.name for p in computed}, ctx, fresh=existing is None)
    if reader.error:
        log.warning("shard %s: %s", task.source, reader.error)
    return ShardResult(
        task.name,
        task.source,
        rows=len(rows),
        statuses=dict(sorted(statuses.items())),
        computed=[p.name for p in computed],
        failed_signals=dict(sorted(failed_signals.items())),
        error=reader.error,
    )


def _commit(
    run_dir: Path,
    name: str,
    table: pa.Table,
    arrays: dict[str, list[tuple[int, np.ndarray | None]]],
    computed: set[str],
    ctx: JobContext,
    fresh: bool,
) -> None:
    """Arrays first, then the table (each atomic); then remove array files the table no longer vouches for."""
    written: set[str] = set()
    target = tables.table_path(run_dir, name)
    try:
        for c, parts in arrays.items():
            owner = next(p.name for p in ctx.plans if c in p.array_columns)
            parts = [(k, a if a is not None and a.ndim == 2 and a.shape[1] else None) for k, a in parts]
            dim = next((a.shape[1] for _, a in parts if a is not None), 0)
            if owner not in computed or not dim or not table.num_rows:
                continue
            stacked = np.concatenate(
                [a if a is not None else np.full((k, dim), np.nan, np.float32) for k, a in parts]
            )
            target = tables.array_path(run_dir, c, name)
            tables.write_array_atomic(stacked, target)
            written.add(c)
        target = tables.table_path(run_dir, name)
        tables.write_table_atomic(table, target)
    except OSError as e:
        err = tables.environment_error(e, f"writing the results of shard {name}", target)
        if err is not None:
            raise err from None
        raise
    stale = set(arrays) - written  # arrays of signals that failed or wrote none this time
    if fresh:  # every earlier array of this shard belongs to rows that are gone
        stale |= {d.name for d in (run_dir / "arrays").glob("*") if d.is_dir()} - written
    for c in stale:
        tables.array_path(run_dir, c, name).unlink(missing_ok=True)
