"""The Python API: the command line's verbs for notebooks and scripts.

    import altsift
    run = altsift.score("shards/{00000..00009}.tar", out="runs/pool", signals=["basic"])
    df = run.to_pandas(columns=["uid", "text", "caption_num_words"])
    subset = run.select(preset="basic_filter")          # or where=[...], top_fraction={...}
    subset.save("runs/pool/basic.npy")
    run.export(subset, "export/basic")                  # webdataset shards, DataComp layout
    run.report(subset)                                   # markdown report
    run.report([subset, other], out="compare.html")      # the visual page

    table = altsift.score([(pil_image, "a caption"), ...], signals=["basic"])   # in memory, no files

A thin facade over the pipeline's public functions (``pipeline.score.score``, ``select.core.run_selection`` /
``write_selection``, ``pipeline.export.export``, ``report.summary.write_report`` / ``report.html.write_html``).
The CLI's ``score``, ``select``, ``export``, ``report`` and ``run`` are a layer over this module (they parse
options and print; the work happens here), so both behave alike. Errors are :class:`altsift.errors.AltsiftError` subclasses with a
user-facing message and an ``exit_code``.
"""

from __future__ import annotations

import copy
import io
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from altsift.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from altsift.config import RunConfig
    from altsift.pipeline.export import ExportSummary

__all__ = [
    "Run",
    "Subset",
    "build_run_config",
    "export",
    "list_presets",
    "list_signals",
    "open_run",
    "report",
    "score",
    "score_pairs",
    "select",
]

PathLike = str | Path


# ----------------------------------------------------------------------------- config
def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def build_run_config(
    signals: str | Sequence[str] | None = None,
    config: PathLike | Mapping[str, Any] | RunConfig | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> RunConfig:
    """A validated :class:`~altsift.config.RunConfig` from a YAML path or dict, plus ``options`` overrides.

    ``options`` is a nested dict in the config's layout, e.g. ``{"basic": {"min_words": 1},
    "score": {"batch_size": 32}}``; ``signals`` replaces the config's ``signals:`` list. A ``RunConfig``
    (e.g. from :func:`altsift.config.build_config`) is used as it is when nothing overrides it.
    """
    from altsift.config import RunConfig, build_config, load_config_tree

    if isinstance(config, RunConfig):
        if signals is None and not options and progress is None:
            return config
        config = config.model_dump(mode="json", exclude_unset=True)

    tree = load_config_tree(config) if isinstance(config, str | Path) else copy.deepcopy(dict(config or {}))
    _deep_merge(tree, options or {})
    if signals is not None:
        tree["signals"] = (
            [s.strip() for s in signals.split(",") if s.strip()]
            if isinstance(signals, str)
            else list(signals)
        )
    if progress is not None:
        tree.setdefault("score", {})["progress"] = progress
    return build_config(tree, str(config) if isinstance(config, str | Path) else "options")


# ----------------------------------------------------------------------------- score
def _is_pairs(inputs: Any) -> bool:
    if isinstance(inputs, str | Path):
        return False
    first = next(iter(inputs), None) if isinstance(inputs, Sequence) else None
    return isinstance(first, tuple | list)


def score(
    inputs: PathLike | Sequence[PathLike] | Sequence[tuple[Any, str | None]],
    out: PathLike | None = None,
    *,
    signals: str | Sequence[str] | None = None,
    config: PathLike | Mapping[str, Any] | RunConfig | None = None,
    options: Mapping[str, Any] | None = None,
    retry_errors: bool = False,
    progress: bool | None = None,
    uids: Sequence[str] | None = None,
    as_arrow: bool = False,
) -> Run | pd.DataFrame | pa.Table:
    """Score shards into a run directory (returns the :class:`Run`), or (image, caption) pairs in memory.

    Shards: ``inputs`` are paths, globs, brace patterns or folders, ``out`` the run directory (resumable,
    as ``altsift score``). Pairs: ``inputs`` is a list of ``(image, caption)`` tuples (image: a PIL image,
    encoded bytes or a file path; caption: str or None); returns a DataFrame (``as_arrow``: a pyarrow
    Table) with one row per pair, see :func:`score_pairs`. ``progress``: show bars (default: the
    config's ``score.progress``, on unless set off). The score summary of a shard run is ``run.last_score``
    (shards scored / skipped / with errors, statuses; ``.incomplete`` when a shard failed).
    """
    if _is_pairs(inputs):
        if out is not None:
            raise ConfigError(
                "score(pairs) returns a table; 'out' is for scoring shards into a run directory"
            )
        return score_pairs(
            inputs,
            signals=signals,
            config=config,
            options=options,
            uids=uids,  # type: ignore[arg-type]
            as_arrow=as_arrow,
        )
    if out is None:
        raise ConfigError("score(shards) needs out=RUN_DIR (where the score tables go)")
    from altsift.pipeline.score import score as run_score

    cfg = build_run_config(signals, config, options, progress)
    specs = [str(inputs)] if isinstance(inputs, str | Path) else [str(p) for p in inputs]
    summary = run_score(specs, Path(out), cfg.signals, cfg, retry_errors=retry_errors)
    run = Run(out, allow_empty=True)
    run.last_score = summary
    return run


def _pair_row(
    i: int, image: Any, caption: Any, uid: str | None, max_pixels: int, max_side: int | None
) -> dict[str, Any]:
    from PIL import Image

    from altsift.io.shards import decode_image
    from altsift.io.uids import derive_uid, normalize_uid

    row: dict[str, Any] = {
        "uid": normalize_uid(uid) or derive_uid("memory", str(i)),
        "uid_derived": normalize_uid(uid) is None,
        "key": str(i),
        "shard": "memory",
        "text": caption if isinstance(caption, str) else None,
        "status": "ok",
        "error": None,
        "original_width": None,
        "original_height": None,
        "json": {},
        "image": None,
    }
    if uid is not None:
        row["json"] = {"uid": uid}
    if caption is None:
        row["status"], row["error"] = "missing_caption", "no caption"
    elif not isinstance(caption, str):
        row["status"], row["error"] = "missing_caption", f"caption is {type(caption).__name__}, not str"
    elif not caption.strip():
        row["status"], row["error"] = "empty_caption", "caption is empty"
    if isinstance(image, str | Path):
        try:
            image = Path(image).read_bytes()
        except OSError as e:
            image, row["error"] = None, f"cannot read image file: {e}"
            row["status"] = "missing_image" if row["status"] == "ok" else row["status"]
    if isinstance(image, Image.Image):
        buf = io.BytesIO()  # one decoding path for all images: the same guards and resizing as shards
        image.convert("RGB").save(buf, format="PNG", compress_level=0)
        image = buf.getvalue()
    if isinstance(image, bytes | bytearray | memoryview) or image is None:
        img, st, err, size = decode_image(bytes(image) if image is not None else None, max_pixels, max_side)
        row["image"] = img
        if size is not None:
            row["original_width"], row["original_height"] = size
        if st is not None and row["status"] == "ok":
            row["status"], row["error"] = st, err
    else:
        raise ConfigError(f"pair {i}: image must be a PIL image, bytes or a path, got {type(image).__name__}")
    return row


def score_pairs(
    pairs: Iterable[tuple[Any, str | None]],
    *,
    signals: str | Sequence[str] | None = None,
    config: PathLike | Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    uids: Sequence[str] | None = None,
    as_arrow: bool = False,
) -> pd.DataFrame | pa.Table:
    """Run the planned signals in-process on ``(image, caption)`` pairs; one row per pair, in order.

    Rows carry the same base columns as a score table (``uid`` is derived from the position unless
    ``uids`` are given, ``shard`` is ``"memory"``) and the same statuses (a ``None`` caption is
    ``missing_caption``, undecodable bytes ``bad_image``...). Array outputs (e.g. CLIP embeddings with
    ``save_embeddings``) become columns of 1-D numpy arrays in the DataFrame.
    """
    import numpy as np
    import pyarrow as pa

    from altsift.io.schema import BASE_COLUMNS, BASE_TYPES, to_arrow
    from altsift.pipeline.plan import plan_signals, planned_schema
    from altsift.pipeline.shard_job import SignalRunner

    cfg = build_run_config(signals, config, options, progress=False)
    pairs = list(pairs)
    if uids is not None and len(uids) != len(pairs):
        raise ConfigError(f"{len(uids)} uids for {len(pairs)} pairs")
    rows = []
    for i, p in enumerate(pairs):
        if not isinstance(p, tuple | list) or len(p) != 2:
            raise ConfigError(f"pair {i} is not an (image, caption) tuple")
        rows.append(
            _pair_row(
                i,
                p[0],
                p[1],
                uids[i] if uids is not None else None,
                cfg.score.max_image_pixels,
                cfg.score.max_decode_side,
            )
        )
    plans = plan_signals(cfg.signals, cfg)
    types = planned_schema(plans, BASE_TYPES)
    runners = [SignalRunner(p) for p in plans]
    for r in runners:  # every model loads before any pair is scored (a model that does not load: exit 2)
        r.load()
    outputs: dict[str, list] = {c: [] for p in plans for c in p.columns}
    arrays: dict[str, list] = {c: [] for p in plans for c in p.array_columns}
    bs = cfg.score.batch_size
    for start in range(0, len(rows), bs):
        b = rows[start : start + bs]
        batch: dict[str, list] = {k: [r[k] for r in b] for k in (*BASE_COLUMNS, "json", "image")}
        for runner in runners:
            out = runner(batch)
            for i, msg in out.failed.items():  # rows the signal could not score, as in a score table
                if batch["status"][i] == "ok":
                    batch["status"][i], batch["error"][i] = f"error_{runner.plan.name}", msg
            for c in runner.plan.columns:
                vals = out.columns.get(c)
                batch[c] = [None] * len(b) if vals is None else list(vals)
                outputs[c].extend(batch[c])
            for c in runner.plan.array_columns:
                if out.arrays.get(c) is not None:
                    arrays[c].extend(list(np.asarray(out.arrays[c])))
                else:
                    arrays[c].extend([None] * len(b))
        for i, r in enumerate(b):
            r["status"], r["error"] = batch["status"][i], batch["error"][i]
    cols = {c: pa.array([r[c] for r in rows], type=BASE_TYPES[c]) for c in BASE_COLUMNS}
    cols.update({c: to_arrow(v, types.get(c)) for c, v in outputs.items()})
    table = pa.table(cols)
    if as_arrow:
        for c, v in arrays.items():
            table = table.append_column(
                c, pa.array([None if a is None else np.asarray(a).tolist() for a in v])
            )
        return table
    df = table.to_pandas()
    for c, v in arrays.items():
        df[c] = v
    return df


# ----------------------------------------------------------------------------- runs
class Run:
    """A run directory (or a folder of DataComp metadata parquet) opened for reading and selecting."""

    def __init__(self, path: PathLike, *, allow_empty: bool = False) -> None:
        from altsift.io.tables import pool_files

        self.path = Path(path)
        try:
            self.files, self.kind = pool_files(self.path)  # ConfigError when it is neither
        except ConfigError:
            if not (allow_empty and self.path.is_dir()):
                raise
            self.files, self.kind = [], "run"  # a score run that wrote no table (every shard failed)
        self.last_score: Any = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.kind!r}, tables={len(self.files)})"

    @property
    def schema(self) -> pa.Schema:
        """The unified arrow schema of all tables (a column missing or all-null in a shard is still typed)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pa.unify_schemas(
            [pq.read_schema(f).remove_metadata() for f in self.files], promote_options="permissive"
        )

    @property
    def columns(self) -> list[str]:
        """Column names of the pool (from the table footers; nothing is read)."""
        return list(self.schema.names)

    def dataset(self) -> Any:
        """A ``pyarrow.dataset.Dataset`` over the tables (for filters, batches, DuckDB or Polars scans)."""
        import pyarrow.dataset as ds

        return ds.dataset([str(f) for f in self.files], format="parquet", schema=self.schema)

    def table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The pool as one arrow Table, reading only ``columns`` (default: all)."""
        if columns is not None:
            missing = [c for c in columns if c not in self.columns]
            if missing:
                raise ConfigError(
                    f"column(s) {', '.join(missing)} not in {self.path}. Available: {', '.join(self.columns)}"
                )
        return self.dataset().to_table(columns=list(columns) if columns is not None else None)

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The pool as a pandas DataFrame, reading only ``columns`` (default: all; mind the memory)."""
        return self.table(columns).to_pandas()

    def to_polars(self, columns: Sequence[str] | None = None) -> Any:
        """The pool as a polars DataFrame (zero-copy from arrow), reading only ``columns``."""
        try:
            import polars as pl
        except ImportError:
            raise ConfigError("to_polars needs polars (pip install polars)") from None
        return pl.from_arrow(self.table(columns))

    def select(
        self,
        preset: str | None = None,
        where: str | Sequence[str] | None = None,
        top_fraction: Mapping[str, float] | None = None,
        fuse: Mapping[str, float] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        presets: Mapping[str, Mapping[str, Any]] | None = None,
        and_: Sequence[Subset | PathLike] = (),
        or_: Sequence[Subset | PathLike] = (),
        not_: Sequence[Subset | PathLike] = (),
        verdicts: bool = False,
        out: PathLike | None = None,
        overwrite: bool = False,
        progress: bool = False,
    ) -> Subset:
        """Choose a subset (the CLI's ``select``): conditions are AND-ed and computed pool-wide.

        ``preset`` + ``options``: one preset; ``presets``: several, ``{name: options}`` (AND-ed).
        ``and_`` / ``not_`` / ``or_``: saved subsets (Subset or ``.npy``) to intersect with, remove, or add
        (after every pool-wide threshold). ``verdicts``: keep each preset's own verdict as a column.
        ``out``: save there (checked before anything is read; ``overwrite`` to replace a subset).
        """
        from altsift.select.core import SelectRequest

        def saved(items: Sequence[Subset | PathLike]) -> list[str | Path]:
            paths = []
            for it in items:
                if isinstance(it, Subset) and it.path is None:
                    raise ConfigError(
                        "a Subset used in and_/or_/not_ must be saved first (subset.save(path))"
                    )
                paths.append(it.path if isinstance(it, Subset) else Path(it))
            return paths  # type: ignore[return-value]

        req = SelectRequest(
            where=[where] if isinstance(where, str) else list(where or []),
            top_fraction=dict(top_fraction or {}),
            fuse=dict(fuse or {}),
            preset=preset,
            preset_options=dict(options or {}),
            presets={k: dict(v or {}) for k, v in (presets or {}).items()},
            and_subsets=saved(and_),
            or_subsets=saved(or_),
            not_subsets=saved(not_),
            verdicts=verdicts,
        )
        return self.select_request(req, out=out, overwrite=overwrite, progress=progress)

    def select_request(
        self, request: Any, out: PathLike | None = None, overwrite: bool = False, progress: bool = False
    ) -> Subset:
        """Apply a prepared :class:`altsift.select.core.SelectRequest` (as ``altsift run`` does with a
        config's ``select:`` section); ``out`` is checked before anything is read and saved after."""
        from altsift.select.core import check_output, run_selection

        check = (lambda pool: check_output(out, pool, overwrite)) if out is not None else None
        pool, sel = run_selection(self.path, request, progress=progress, before_read=check)
        sub = Subset(self, pool, sel, request)
        if out is not None:
            sub.save(out, overwrite=overwrite)
        return sub

    def export(
        self, subset: Subset | PathLike | Sequence[str], out: PathLike, **kwargs: Any
    ) -> ExportSummary:
        """Reshard ``subset`` into webdataset shards under ``out`` (see :func:`altsift.export`)."""
        return export(self, subset, out, **kwargs)

    def report(
        self,
        subset: Subset | PathLike | Sequence[Subset | PathLike] | None = None,
        out: PathLike | None = None,
        **kwargs: Any,
    ) -> Path:
        """Write the markdown report (default ``RUN_DIR/report.md``) or, with ``out="….html"``, the visual
        page comparing up to two subsets (see :func:`altsift.api.report`); returns its path."""
        return report(self, subset, out, **kwargs)


def open_run(path: PathLike) -> Run:
    """Open a run directory (``RUN_DIR/scores/*.parquet``) or a folder of DataComp metadata parquet."""
    return Run(path)


class Subset:
    """A selection: the chosen uids, how each step filtered, and extra per-row columns (e.g. mixed captions)."""

    def __init__(self, run: Run, pool: Any, selection: Any, request: Any = None) -> None:
        self.run = run
        self._pool = pool  # altsift.select.base.Pool: lazy, reads only the columns asked for
        self._sel = selection
        self._req = request
        self.path: Path | None = None
        n = int(pool.n)
        self.summary: dict[str, Any] = {
            "pool_rows": n,
            "selected": int(selection.mask.sum()),
            "fraction_selected": float(selection.mask.mean()) if n else 0.0,
            "steps": [s.to_dict() for s in selection.steps],
        }

    def __len__(self) -> int:
        return self.summary["selected"]

    def __repr__(self) -> str:
        return f"Subset({len(self)} of {self.summary['pool_rows']} rows{', ' + str(self.path) if self.path else ''})"

    @property
    def uids(self) -> list[str]:
        """Selected uids (hex), in pool order."""
        return self._pool.uid_strings(self._sel.mask).to_pylist()

    @property
    def mask(self) -> np.ndarray:
        """Boolean mask over the pool rows (``run.to_pandas()`` order)."""
        return self._sel.mask

    @property
    def columns(self) -> dict[str, Any]:
        """Extra per-row columns a preset produced (e.g. ``caption``), for the selected rows."""
        return {c: v[self._sel.mask] for c, v in self._sel.columns.items()}

    def to_pandas(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The selected rows of the pool, reading only ``columns`` (default: every column of the score
        tables), with any preset columns. The pool is streamed: memory holds the selected rows only."""
        import pyarrow as pa

        if columns is not None:
            missing = [c for c in columns if c not in self.run.columns]
            if missing:
                raise ConfigError(f"column(s) {', '.join(missing)} not in {self.run.path}")
        mask, at, parts = self._sel.mask, 0, []
        ds = self.run.dataset()
        for batch in ds.to_batches(columns=list(columns) if columns is not None else None):
            m = mask[at : at + batch.num_rows]
            at += batch.num_rows
            if m.any():
                parts.append(batch.filter(pa.array(m)))
        schema = ds.schema if columns is None else pa.schema([ds.schema.field(c) for c in columns])
        out = pa.Table.from_batches(parts, schema=schema).to_pandas()
        for c, v in self.columns.items():
            out[c] = list(v)
        return out

    def save(self, path: PathLike, overwrite: bool = False) -> Path:
        """Write the DataComp uid ``.npy``, its ``.json`` summary and (if any) the side ``.parquet``."""
        from altsift.select.core import write_selection

        path = Path(path)
        self.summary = write_selection(
            self._pool, self._sel, path, self.run.path, overwrite=overwrite, request=self._req
        )
        self.path = path
        return path


def _subset_arg(subset: Subset | PathLike | Sequence[str]) -> tuple[Any, dict[str, Any] | None]:
    """What ``pipeline.export`` takes: a path (preferred: it has the side columns) or uids + captions."""
    if isinstance(subset, Subset):
        if subset.path is not None:
            return subset.path, None
        cols = subset.columns
        caps = dict(zip(subset.uids, cols["caption"], strict=True)) if "caption" in cols else None
        return subset.uids, caps
    return subset, None


def export(
    run: Run | PathLike,
    subset: Subset | PathLike | Sequence[str],
    out: PathLike,
    *,
    caption_column: str | None = None,
    shard_size: int = 10_000,
    overwrite: bool = False,
    source_roots: Sequence[str] | None = None,
    progress: bool = True,
    storage_options: dict[str, Any] | None = None,
    limits: Any = None,
) -> ExportSummary:
    """Reshard ``subset`` of ``run`` into ``{:08d}.tar`` webdataset shards under ``out``.

    Never writes into the run directory or a folder holding the run's input shards; ``overwrite`` replaces
    only the files an earlier export listed in its manifest. ``source_roots``: ``["OLD=NEW", ...]`` when the
    source shards moved since scoring. ``storage_options``: fsspec options for object-store sources (as
    ``score.storage_options``); ``limits``: an ``altsift.io.shards.ReadLimits``. Source shards are streamed, one sample in memory at a time. Raises
    IncompleteError when selected samples cannot be found.
    """
    from altsift.pipeline.export import export as run_export

    run_dir = run.path if isinstance(run, Run) else Path(run)
    sub, captions = _subset_arg(subset)
    return run_export(
        run_dir,
        sub,
        out,
        caption_column=caption_column,
        shard_size=shard_size,
        progress=progress,
        overwrite=overwrite,
        source_roots=source_roots,
        captions=captions,
        storage_options=storage_options,
        limits=limits,
    )


def select(run: Run | PathLike, **kwargs: Any) -> Subset:
    """``open_run(run).select(...)``."""
    return (run if isinstance(run, Run) else open_run(run)).select(**kwargs)


def report(
    run: Run | PathLike,
    subset: Subset | PathLike | Sequence[Subset | PathLike] | None = None,
    out: PathLike | None = None,
    *,
    images: bool = True,
    progress: bool = False,
    **layout: Any,
) -> Path:
    """Write a report of a run and its selections; returns the report's path.

    ``out`` ending in ``.html`` writes the visual page (plots, thumbnails streamed from the shards unless
    ``images=False``, and the first two subsets side by side; needs matplotlib, the ``[report]`` extra);
    otherwise the markdown report (default ``RUN_DIR/report.md``, with ``report.json`` beside it), which
    explains the first subset. ``subset``: a Subset, a subset ``.npy``/``.json`` path, or a list of them.
    ``layout`` (HTML only): ``scatter=("x", "y")``, ``per_grid`` (thumbnails per grid), ``max_thumbs``.
    """
    run_dir = run.path if isinstance(run, Run) else Path(run)
    items = list(subset) if isinstance(subset, list | tuple) else ([] if subset is None else [subset])
    out_path = Path(out) if out is not None else None
    html = out_path is not None and out_path.suffix in (".html", ".htm")
    with tempfile.TemporaryDirectory(prefix="altsift-subset-") as tmp:
        paths: list[Path] = []
        for i, item in enumerate(items):
            if isinstance(item, Subset):
                if (
                    item.path is None
                ):  # the report reads the selection's .json: keep an unsaved one in a temp dir
                    saved = Subset(item.run, item._pool, item._sel, item._req)
                    saved.save(Path(tmp) / f"subset{i}.npy")
                    item = saved
                paths.append(item.path)  # type: ignore[arg-type]
            else:
                paths.append(Path(item))
        if html:
            try:
                from altsift.report.html import write_html
            except ModuleNotFoundError as e:
                if e.name != "matplotlib":
                    raise
                raise ConfigError(
                    "the HTML report draws its plots with matplotlib: pip install 'altsift[report]' "
                    "(or write the markdown report: out='report.md')"
                ) from None
            return write_html(run_dir, paths, out_path, images=images, progress=progress, **layout)
        if layout:
            raise ConfigError(f"{', '.join(layout)}: options of the HTML report (out='report.html')")
        from altsift.report.summary import write_report

        return write_report(run_dir, paths[0] if paths else None, out_path)


# ----------------------------------------------------------------------------- catalogues
def list_signals() -> dict[str, dict[str, Any]]:
    """Available signals: description, output columns, requirements and options (default, description)."""
    from altsift.pipeline.plan import SignalPlan
    from altsift.signals.registry import available_signals

    out = {}
    for name, cls in sorted(available_signals().items()):
        try:
            plan = SignalPlan(name, cls, cls.Options())
            columns, requires = list(plan.columns), list(plan.requires)
        except Exception:  # noqa: BLE001 - options that need a value: list what the class declares
            columns, requires = list(cls.columns or cls.column_types), list(cls.requires)
        out[name] = {
            "description": describe(cls),
            "columns": columns,
            "requires": requires,
            "options": options_of(cls.Options),
        }
    return out


def list_presets() -> dict[str, dict[str, Any]]:
    """Available selection presets: description and options (default, description)."""
    from altsift.select.base import available_presets

    return {
        name: {"description": describe(cls), "options": options_of(cls.Options)}
        for name, cls in sorted(available_presets().items())
    }


def describe(cls: type) -> str:
    """The first paragraph of a class docstring, on one line (never cut mid-sentence)."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def options_of(model: type) -> dict[str, dict[str, Any]]:
    """Each pydantic field's default (``default_factory`` called; ``required`` when there is none)."""
    out = {}
    for k, f in model.model_fields.items():  # type: ignore[attr-defined]
        entry: dict[str, Any] = {"description": f.description or ""}
        if f.is_required():
            entry["required"] = True
        elif f.default_factory is not None:
            entry["default"] = f.default_factory()  # type: ignore[call-arg]
        else:
            entry["default"] = f.default
        out[k] = entry
    return out
