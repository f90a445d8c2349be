"""In-process scoring: stream shards, decode images ahead of the models, write one table per shard.

Per shard: read the tar (``io.shards``), decode images in a thread pool one or more batches ahead of
the signals (so decoding overlaps model work), run the signals the shard still needs in dependency
order, and commit ``RUN_DIR/scores/<shard>.parquet`` atomically. Finished shards are skipped on a
rerun; a rerun with an extra signal computes only that signal's columns and keeps the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from altsift.config import RunConfig, ScoreOptions
from altsift.errors import AltsiftError
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
from altsift.pipeline.plan import SignalPlan, needed_signals, plan_signals, planned_schema
from altsift.signals.base import Signal

log = logging.getLogger("altsift.score")

@dataclass
class ScoreSummary:
    """What a score run did (also written to RUN_DIR/score_summary.json)."""

    shards_total: int = 0
    shards_scored: int = 0
    shards_skipped: int = 0
    shards_with_errors: dict[str, str] = field(default_factory=dict)
    samples_scored: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    signals_computed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class SignalRunner:
    """Runs one signal on a batch; isolates failing samples instead of stopping the run."""

    def __init__(self, plan: SignalPlan) -> None:
        self.plan = plan
        self._signal: Signal | None = None

    @property
    def signal(self) -> Signal:
        if self._signal is None:  # load the model once, on first use
            log.info("loading signal '%s'", self.plan.name)
            self._signal = self.plan.instantiate()
        return self._signal

    def __call__(self, batch: dict[str, list]) -> dict[str, Any]:
        n = len(batch["uid"])
        try:
            return self._check(self.signal(batch), n)
        except Exception as e:  # isolate the bad rows: retry one row at a time
            log.warning("signal '%s' failed on a batch of %d (%s); retrying row by row", self.plan.name, n, e)
        outs: list[dict[str, Any] | None] = []
        for i in range(n):
            row = {k: v[i : i + 1] for k, v in batch.items()}
            try:
                outs.append(self._check(self.signal(row), 1))
            except Exception as e:
                if batch["status"][i] == "ok":
                    batch["status"][i] = f"error_{self.plan.name}"
                    batch["error"][i] = f"signal {self.plan.name}: {type(e).__name__}: {e}"
                outs.append(None)
        return self._merge_rows(outs)

    def _check(self, out: dict[str, Any], n: int) -> dict[str, Any]:
        for k, v in out.items():
            if len(v) != n:
                raise ValueError(f"signal '{self.plan.name}' returned {len(v)} values for '{k}', expected {n}")
        return out

    def _merge_rows(self, outs: list[dict[str, Any] | None]) -> dict[str, Any]:
        cols = self.plan.columns
        arrays = self.plan.array_columns
        merged: dict[str, Any] = {c: [] for c in cols}
        arr_parts: dict[str, list[np.ndarray | None]] = {c: [] for c in arrays}
        for o in outs:
            for c in cols:
                merged[c].append(None if o is None else _first(o.get(c)))
            for c in arrays:
                arr_parts[c].append(None if o is None or c not in o else np.asarray(o[c]))
        for c, parts in arr_parts.items():
            dim = next((p.shape[1] for p in parts if p is not None), 0)
            merged[c] = np.concatenate(
                [p if p is not None else np.full((1, dim), np.nan, np.float32) for p in parts]
            ) if dim else np.zeros((len(parts), 0), np.float32)
        return merged


def _first(v: Any) -> Any:
    return None if v is None else v[0]


def _batches(
    rows: list[dict[str, Any]], opts: ScoreOptions, pool: ThreadPoolExecutor, need_image: bool
) -> Iterator[list[dict[str, Any]]]:
    """Yield batches whose images are decoded; decoding runs ``prefetch_batches`` ahead."""
    bs = opts.batch_size
    pending: deque[tuple[list[dict[str, Any]], list[Future] | None]] = deque()

    def submit(b: list[dict[str, Any]]) -> list[Future] | None:
        if not need_image:
            return None
        return [
            pool.submit(decode_image, r["_image_bytes"], opts.max_image_pixels, opts.max_decode_side)
            if r["status"] == "ok"
            else None
            for r in b
        ]

    def finish(b: list[dict[str, Any]], futs: list[Future] | None) -> list[dict[str, Any]]:
        for i, r in enumerate(b):
            r["image"] = None
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

    for start in range(0, len(rows), bs):
        b = rows[start : start + bs]
        pending.append((b, submit(b)))
        if len(pending) > opts.prefetch_batches:
            yield finish(*pending.popleft())
    while pending:
        yield finish(*pending.popleft())


class Scorer:
    """Scores shards into a run directory. Models load lazily, once, on the first shard that needs them."""

    def __init__(self, run_dir: str | Path, signal_names: list[str], cfg: RunConfig) -> None:
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.opts = cfg.score
        self.plans = plan_signals(signal_names, cfg)
        self.runners = {p.name: SignalRunner(p) for p in self.plans}
        self.types = planned_schema(self.plans, BASE_TYPES)  # declared column types of every table
        self._tick: Callable[[int], None] = lambda n: None  # progress per batch, set by score()

    # ------------------------------------------------------------------ shards
    def score(self, inputs: list[str], retry_errors: bool = False) -> ScoreSummary:
        t0 = time.time()
        paths = expand_inputs(inputs, self.opts.storage_options)
        names = shard_names(paths)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_manifest(inputs, paths, names)
        summary = ScoreSummary(shards_total=len(paths))
        statuses: Counter[str] = Counter()
        with ThreadPoolExecutor(self.opts.decode_threads, thread_name_prefix="decode") as pool, tqdm(
            total=len(paths), unit="shard", disable=not self.opts.progress, desc="score"
        ) as bar:
            live = [0]  # samples through the models so far, updated per batch (a shard can be large)

            def tick(n: int) -> None:
                live[0] += n
                bar.set_postfix(samples=live[0], samples_s=f"{live[0] / max(time.time() - t0, 1e-9):.1f}",
                                skipped=summary.shards_skipped, refresh=False)
                bar.refresh()

            self._tick = tick
            for path, name in zip(paths, names, strict=True):
                try:
                    done = self.score_shard(path, name, pool, retry_errors, summary, statuses)
                except AltsiftError:
                    raise  # a config or model problem: every shard would fail the same way
                except Exception as e:  # anything else costs this shard only; a rerun retries it
                    msg = f"shard failed, no table written (rerun to retry): {type(e).__name__}: {e}"
                    log.exception("shard %s: %s", name, msg)
                    summary.shards_with_errors[name] = msg
                    self._log_shard_error(name, path, msg)
                    done = 0
                summary.samples_scored += done
                bar.update(1)
        summary.status_counts = dict(statuses)
        summary.seconds = round(time.time() - t0, 3)
        if summary.shards_skipped:
            log.info("skipped %d shard(s): already scored with the same signals and options "
                     "(change an option or add a signal to compute more)", summary.shards_skipped)
        (self.run_dir / "score_summary.json").write_text(json.dumps(asdict(summary), indent=2))
        return summary

    def _write_manifest(self, inputs: list[str], paths: list[str], names: list[str]) -> None:
        manifest = {
            "inputs": list(inputs),
            "shards": dict(zip(names, paths, strict=True)),  # absolute paths or URLs (expand_inputs)
            "signals": [p.name for p in self.plans],
        }
        (self.run_dir / "run.json").write_text(json.dumps(manifest, indent=2))

    def score_shard(
        self,
        path: str,
        name: str,
        pool: ThreadPoolExecutor,
        retry_errors: bool,
        summary: ScoreSummary,
        statuses: Counter[str],
    ) -> int:
        """Score one shard if it needs work; returns the number of samples scored."""
        tpath = tables.table_path(self.run_dir, name)
        existing = tables.read_table(tpath)
        recorded = tables.table_signals(existing) if existing is not None else {}
        shard_meta = _shard_meta(existing)
        todo = needed_signals(self.plans, recorded) if existing is not None else list(self.plans)
        if existing is not None and not todo and not (retry_errors and shard_meta.get("error")):
            log.debug("shard %s: up to date, skipped", name)
            summary.shards_skipped += 1
            if shard_meta.get("error"):
                summary.shards_with_errors[name] = shard_meta["error"]
            return 0
        result = read_shard(path, limits=ReadLimits.from_options(self.opts),
                            storage_options=self.opts.storage_options, extensions=NEEDED_EXTS)
        if result.error:
            log.warning("shard %s: %s", path, result.error)
            summary.shards_with_errors[name] = result.error
            self._log_shard_error(name, path, result.error)
        seen: set[str] = set()
        rows = [parse_sample(s, name, seen) for s in result.samples]
        prior: dict[str, list] = {}
        if existing is not None:
            if existing.column("key").to_pylist() == [r["key"] for r in rows]:
                keep = [c for c in existing.column_names if c not in BASE_COLUMNS]
                prior = {c: existing.column(c).to_pylist() for c in keep}
                redo = {f"error_{p.name}" for p in todo}
                for r, st, err in zip(rows, existing.column("status").to_pylist(),
                                      existing.column("error").to_pylist(), strict=True):
                    if st.startswith("error_") and st not in redo and r["status"] == "ok":
                        r["status"], r["error"] = st, err  # a kept signal failed on this row earlier
            else:
                log.warning("shard %s: its samples differ from the table's (the shard changed); recomputing all signals", name)
                todo, recorded = list(self.plans), {}
        for p in todo:  # drop stale columns of signals being recomputed
            for c in p.columns:
                prior.pop(c, None)
        table = self._run_signals(rows, todo, prior, pool)
        kept = {k: v for k, v in recorded.items() if k not in {p.name for p in todo}}
        kept.update({p.name: p.fingerprint() for p in todo})
        info = {"path": path, "error": result.error, "rows": len(rows)}
        tables.write_table_atomic(tables.with_signals_meta(table, kept, info), tpath)
        for s in table.column("status").to_pylist():
            statuses[s] += 1
        for p in todo:
            summary.signals_computed[p.name] = summary.signals_computed.get(p.name, 0) + len(rows)
        summary.shards_scored += 1
        return len(rows)

    def _run_signals(
        self,
        rows: list[dict[str, Any]],
        todo: list[SignalPlan],
        prior: dict[str, list],
        pool: ThreadPoolExecutor,
    ) -> pa.Table:
        need_image = self.opts.verify_images or any(p.needs_image for p in todo)
        outputs: dict[str, list] = {c: [] for p in todo for c in p.columns}
        arrays: dict[str, list[np.ndarray]] = {c: [] for p in todo for c in p.array_columns}
        offset = 0
        for b in _batches(rows, self.opts, pool, need_image):
            n = len(b)
            batch: dict[str, list] = {
                k: [r.get(k) for r in b] for k in (*BASE_COLUMNS, "json", "image")
            }
            for c, vals in prior.items():
                batch[c] = vals[offset : offset + n]
            for p in todo:
                out = self.runners[p.name](batch)
                for c in p.columns:
                    vals = out.get(c)
                    vals = [None] * n if vals is None else list(vals)
                    outputs[c].extend(vals)
                    batch[c] = vals
                for c in p.array_columns:
                    if c in out:
                        arrays[c].append(np.asarray(out[c]))
            for i, r in enumerate(b):  # statuses may have been changed by decoding or signals
                r["status"], r["error"] = batch["status"][i], batch["error"][i]
                r["original_width"], r["original_height"] = batch["original_width"][i], batch["original_height"][i]
                r.pop("image", None)
                r.pop("_image_bytes", None)
            offset += n
            self._tick(n)
        cols: dict[str, pa.Array] = {
            c: pa.array([r.get(c) for r in rows], type=BASE_TYPES[c]) for c in BASE_COLUMNS
        }
        for c, vals in prior.items():
            cols[c] = to_arrow(vals, self.types.get(c))
        for c, vals in outputs.items():
            cols[c] = to_arrow(vals, self.types.get(c))
        shard = rows[0]["shard"] if rows else None
        for c, parts in arrays.items():
            if shard is not None and parts:
                tables.write_array_atomic(np.concatenate(parts), tables.array_path(self.run_dir, c, shard))
        return pa.table(cols)

    def _log_shard_error(self, name: str, path: str, error: str) -> None:
        d = self.run_dir / "logs"
        d.mkdir(exist_ok=True)
        with open(d / "shard_errors.jsonl", "a") as f:
            f.write(json.dumps({"shard": name, "path": str(path), "error": error, "time": time.time()}) + "\n")


def _shard_meta(table: pa.Table | None) -> dict[str, Any]:
    if table is None:
        return {}
    raw = (table.schema.metadata or {}).get(tables.SHARD_META_KEY)
    return json.loads(raw) if raw else {}


def score(inputs: list[str], run_dir: str | Path, signals: list[str], cfg: RunConfig, retry_errors: bool = False) -> ScoreSummary:
    """Score ``inputs`` into ``run_dir`` with ``signals`` (plus their requirements)."""
    if cfg.score.runner == "ray":
        from altsift.pipeline.ray_runner import score_with_ray

        return score_with_ray(inputs, run_dir, signals, cfg, retry_errors=retry_errors)
    return Scorer(run_dir, signals, cfg).score(inputs, retry_errors=retry_errors)
