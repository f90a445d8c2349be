"""``altsift export``: reshard the selected samples into new webdataset shards, never touching the inputs.

Reads the original shards listed in each score table, keeps the samples whose uid is in the subset
(membership by ``np.searchsorted`` on the sorted ``u8,u8`` array, as DataComp's resharder), and writes
``{:08d}.tar`` + ``{:08d}_stats.json``. The original json is kept and gains ``uid`` (if it had none),
``source_key`` (the sample's key in its source shard) and the signal values under ``"altsift"``; with
``caption_column`` the ``.txt`` takes that column's text and the original caption is kept in the json as
``original_caption``. Output keys are escaped with :func:`~altsift.io.wds_writer.safe_key` so webdataset
(key = basename up to the first dot) reads back exactly the samples written.

Safety, checked before anything is written:

- the output folder is never the run directory or inside it, and never holds (at any depth) a shard the run
  read: any path recorded in the score tables or ``run.json``, before or after ``--source-root`` remapping;
- the output folder's ``.tar`` files must all be listed in the manifest (``.altsift-export.json``) of an
  earlier export; any other tar there is refused, with or without ``overwrite``;
- ``overwrite`` replaces only the files that manifest lists; without it an earlier export is refused.

Shards are written into ``OUT/.altsift-export-staging/`` and moved into ``OUT`` only when the whole
export succeeded; the manifest is rewritten first to list old and new names, so a kill at any point leaves
every shard in ``OUT`` owned by the manifest, and a rerun with ``overwrite`` can clean up.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from altsift.errors import ConfigError, IncompleteError
from altsift.io import tables
from altsift.io.pool import checked_pool_files, read_table_checked
from altsift.io.schema import BASE_COLUMNS
from altsift.io.shards import IMAGE_EXTS, ReadLimits, open_shard
from altsift.io.sources import shard_identity
from altsift.io.uids import UID_DTYPE, contains, load_subset, normalize_uid, uids_to_array
from altsift.io.wds_writer import ShardWriter, safe_key

log = logging.getLogger("altsift.export")

STAGING = ".altsift-export-staging"
EXPORT_EXTS = frozenset(
    {*IMAGE_EXTS, "txt", "json"}
)  # the members an export writes; others are streamed past
MANIFEST = ".altsift-export.json"
MANIFEST_FORMAT = "altsift-export/1"
_SHARD_LIKE = re.compile(r"\.(tar|tgz|tar\.(gz|bz2|xz|zst|lz4))$", re.IGNORECASE)


@dataclass
class ExportSummary:
    """What an export did. ``missing``: selected samples of the run that could not be read back."""

    selected: int
    written: int
    missing: int
    shards: list[str]
    not_in_run: int = 0
    not_ok: int = 0
    out: str = ""
    missing_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ----------------------------------------------------------------------------- source locations
def parse_source_roots(items: Iterable[str] | None) -> list[tuple[str, str]]:
    """``OLD=NEW`` prefix rewrites for recorded shard paths (longest OLD first)."""
    roots: list[tuple[str, str]] = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(
                f"--source-root expects OLD=NEW (a path prefix and its new location), got '{item}'"
            )
        old, new = (s.strip() for s in item.split("=", 1))
        if not old or not new:
            raise ConfigError(f"--source-root has an empty side in '{item}'")
        roots.append((_norm_prefix(old), _norm_prefix(new)))
    return sorted(roots, key=lambda r: len(r[0]), reverse=True)


def _norm_prefix(p: str) -> str:
    if "://" in p:
        return p.rstrip("/")
    return str(Path(p).expanduser().resolve())


def remap(path: str, roots: Sequence[tuple[str, str]]) -> str:
    """Rewrite the first (longest) matching prefix; a prefix matches whole path components only."""
    for old, new in roots:
        if path == old or path.startswith(old + "/"):
            return new + path[len(old) :]
    return path


def recorded_sources(run_dir: Path, files: Sequence[Path]) -> dict[str, str]:
    """Shard path per table stem, from each table's metadata, else from ``run.json``."""
    out: dict[str, str] = {}
    manifest = Path(run_dir) / "run.json"
    if manifest.is_file():
        try:
            out.update(
                {str(k): str(v) for k, v in json.loads(manifest.read_text()).get("shards", {}).items()}
            )
        except (ValueError, AttributeError):
            log.warning("%s is not valid JSON; using the paths recorded in the score tables", manifest)
    for f in files:
        meta = json.loads((pq.read_schema(f).metadata or {}).get(tables.SHARD_META_KEY, b"{}"))
        if meta.get("path"):
            out[f.stem] = str(meta["path"])
    return out


# ----------------------------------------------------------------------------- output folder safety
def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    p = out_dir / MANIFEST
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text())
        if not isinstance(m, dict) or not isinstance(m.get("files"), list):
            raise ValueError("no file list")
        return m
    except ValueError as e:
        raise ConfigError(
            f"{p} is not a readable export manifest ({e}); remove the folder's export by hand"
        ) from None


def _manifest_names(m: dict[str, Any] | None) -> set[str]:
    return {str(f["name"]) for f in (m or {}).get("files", []) if isinstance(f, dict) and "name" in f}


def check_target(
    run_dir: str | Path, out_dir: str | Path, sources: Iterable[str | Path], overwrite: bool = False
) -> dict[str, Any] | None:
    """Refuse an output folder that could hurt inputs; returns the earlier export's manifest (or None).

    ``sources``: every shard path the run read (recorded and remapped). Raises ConfigError naming the
    reason; nothing is written here.
    """
    run_dir, out_dir = Path(run_dir).resolve(), Path(out_dir).resolve()
    if _inside(out_dir, run_dir):
        raise ConfigError(
            f"export folder {out_dir} is inside the run directory {run_dir}; choose a folder outside it"
        )
    for s in sources:
        s = str(s)
        if "://" in s:
            continue
        sp = Path(s).resolve()
        if _inside(sp, out_dir):
            raise ConfigError(
                f"export folder {out_dir} holds input shards of this run (e.g. {sp}); exporting there could "
                "replace them. Choose another folder"
            )
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"export folder {out_dir} exists and is not a folder")
    manifest = _read_manifest(out_dir) if out_dir.is_dir() else None
    owned = _manifest_names(manifest)
    if out_dir.is_dir():
        foreign = sorted(
            f.name for f in out_dir.iterdir() if _SHARD_LIKE.search(f.name) and f.name not in owned
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ConfigError(
                f"export folder {out_dir} holds shards that no altsift export wrote ({shown}); they may be "
                "inputs, so nothing there is replaced. Choose an empty folder"
            )
    if manifest is not None and not overwrite:
        raise ConfigError(
            f"{out_dir} already holds an export ({len(owned)} files listed in {MANIFEST}); "
            "choose an empty folder or pass --overwrite to replace exactly those files"
        )
    return manifest


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- export
def _as_subset(subset: str | Path | np.ndarray | Sequence[str]) -> np.ndarray:
    if isinstance(subset, str | Path):
        return load_subset(subset)
    arr = np.asarray(subset)
    if arr.dtype == UID_DTYPE:
        return np.sort(arr)
    uids = [normalize_uid(u) for u in arr.tolist()]
    bad = [u for u, n in zip(arr.tolist(), uids, strict=True) if n is None]
    if bad:
        raise ConfigError(f"{len(bad)} subset entries are not 32-hex uids, e.g. {str(bad[0])[:40]!r}")
    return uids_to_array(uids, sort=True)  # type: ignore[arg-type]


def export(
    run_dir: str | Path,
    subset: str | Path | np.ndarray | Sequence[str],
    out_dir: str | Path,
    caption_column: str | None = None,
    shard_size: int = 10_000,
    progress: bool = True,
    overwrite: bool = False,
    source_roots: Iterable[str] | Sequence[tuple[str, str]] | None = None,
    captions: dict[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    limits: ReadLimits | None = None,
) -> ExportSummary:
    """Write the subset's samples as new shards under ``out_dir``; see the module docstring for the rules.

    ``subset``: a DataComp uid ``.npy`` path, a ``u8,u8`` array or hex uids. ``source_roots``: ``OLD=NEW``
    strings (or pairs) that rewrite recorded shard paths whose prefix is OLD (shards moved since scoring).
    ``captions``: uid -> caption for ``caption_column`` (default: the subset's side ``.parquet``).
    ``storage_options``: fsspec options for object-store sources (as ``score.storage_options``); ``limits``:
    the reader's byte bounds. Source shards are streamed: one sample is in memory at a time.
    Raises IncompleteError (exit 3) when selected samples of the run could not be read back: before writing
    anything if source shards are missing, after committing the rest if samples are missing inside them.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    roots = parse_source_roots(r if isinstance(r, str) else "=".join(r) for r in (source_roots or []))
    files = tables.list_tables(run_dir)
    if files:
        files, _ = checked_pool_files(run_dir)  # a corrupt table is named (exit 2), not a traceback
    if not files:
        raise ConfigError(f"no score tables in {run_dir}/scores")
    uids = _as_subset(subset)
    if len(uids) > 1:
        distinct = np.concatenate([[True], uids[1:] != uids[:-1]])  # sorted: repeats are neighbours
        if not distinct.all():
            log.warning(
                "%d uids appear more than once in the subset; each is exported once", int((~distinct).sum())
            )
            uids = uids[distinct]
    recorded = recorded_sources(run_dir, files)
    sources = {stem: remap(p, roots) for stem, p in recorded.items()}
    manifest = check_target(run_dir, out_dir, [*recorded.values(), *sources.values()], overwrite)

    if caption_column and captions is None and isinstance(subset, str | Path):
        side = Path(subset).with_suffix(".parquet")
        if side.exists():
            t = pq.read_table(side)
            if caption_column in t.column_names:
                captions = dict(
                    zip(t.column("uid").to_pylist(), t.column(caption_column).to_pylist(), strict=True)
                )

    # pass 1 (columns uid/status only): what each table contributes, and where its shard is
    plan: list[tuple[Path, str, np.ndarray]] = []
    seen: set[str] = set()
    found_any: set[str] = set()
    todo = 0
    for f in files:
        t = read_table_checked(f, ["uid", "status"])
        if t.num_rows == 0:
            continue
        u = t.column("uid").to_pylist()
        inset = contains(uids, u)
        ok = np.asarray(t.column("status").to_pylist(), dtype=object) == "ok"
        found_any.update(x for x, m in zip(u, inset, strict=True) if m)
        sel = np.zeros(len(u), dtype=bool)
        for i in np.flatnonzero(inset & ok):
            if u[i] not in seen:
                seen.add(u[i])
                sel[i] = True
        if sel.any():
            plan.append((f, sources.get(f.stem, ""), sel))
            todo += int(sel.sum())
    not_in_run = int(len(uids)) - len(found_any)
    not_ok = len(found_any) - len(seen)
    if not todo:
        why = (
            "the subset is empty"
            if not len(uids)
            else f"none of the subset's {len(uids)} uids is an ok sample of this run ({not_in_run} not in its score "
            f"tables, {not_ok} with a non-ok status)"
        )
        raise IncompleteError(f"nothing to export: {why}; nothing was written to {out_dir}")
    if caption_column and not captions:
        names = set(pq.read_schema(files[0]).names)
        if caption_column not in names:
            raise ConfigError(
                f"caption column '{caption_column}' is neither in the score tables nor in the subset's "
                "side .parquet"
            )
    with ThreadPoolExecutor(8) as ex:  # one stat per source shard (object stores: I/O bound)
        present = list(ex.map(lambda src: _source_present(src, storage_options), [src for _, src, _ in plan]))
    gone = [(f.stem, src) for (f, src, _), ok in zip(plan, present, strict=True) if not ok]
    if gone:
        n = sum(int(s.sum()) for f, _, s in plan if f.stem in {g for g, _ in gone})
        shown = "; ".join(f"{stem}: {src or 'no path recorded'}" for stem, src in gone[:3])
        hint = (
            " Shards moved? Pass --source-root OLD=NEW to rewrite the recorded path prefix (e.g. "
            f"--source-root {Path(gone[0][1]).parent}=/new/place)"
            if gone[0][1]
            else ""
        )
        raise IncompleteError(
            f"{len(gone)} source shard(s) holding {n} of the {todo} selected samples not found ({shown}"
            f"{' ...' if len(gone) > 3 else ''}); nothing was written.{hint}"
        )

    staging = out_dir / STAGING
    if staging.exists():
        log.info("removing %s left by an interrupted export", staging)
        shutil.rmtree(staging)
    written = 0
    missing_examples: list[str] = []
    limits = limits or ReadLimits()
    with (
        ShardWriter(staging, shard_size=shard_size) as writer,
        tqdm(total=todo, unit="sample", desc="export", disable=not progress, dynamic_ncols=True) as bar,
    ):
        for f, src, sel in plan:
            df = read_table_checked(f).to_pandas()
            if caption_column and not captions and caption_column not in df.columns:
                raise ConfigError(f"caption column '{caption_column}' is not in {f.name}")
            signal_cols = [c for c in df.columns if c not in BASE_COLUMNS]
            wanted = {r["key"]: r for r in (row._asdict() for row in df[sel].itertuples(index=False))}
            del df
            # one sample in memory at a time: the shard is streamed and only the selected keys are kept
            with open_shard(src, limits, storage_options, EXPORT_EXTS) as stream:
                for sample in stream:
                    r = wanted.pop(sample.key, None)
                    if r is None:
                        continue
                    bar.update(1)
                    ext = next((e for e in IMAGE_EXTS if e in sample.files), None)
                    if ext is None or sample.problem is not None:
                        _missing(missing_examples, r, src, sample.problem or "no image member")
                        continue
                    writer.write(
                        _out_key(writer, r["key"], r["shard"], r["uid"]),
                        _members(sample, ext, r, signal_cols, caption_column, captions),
                    )
                    written += 1
                    if not wanted:
                        break
            for r in wanted.values():  # selected but not in the shard (any more)
                bar.update(1)
                _missing(missing_examples, r, src, stream.error or "key not in the shard")
    new_files = writer.files
    _commit(
        staging,
        out_dir,
        manifest,
        new_files,
        {
            "run_dir": str(run_dir.resolve()),
            "subset": str(subset) if isinstance(subset, str | Path) else None,
            "samples": written,
            "caption_column": caption_column,
            "shard_size": shard_size,
        },
    )
    summary = ExportSummary(
        selected=int(len(uids)),
        written=written,
        missing=todo - written,
        shards=[str(out_dir / s.name) for s in writer.shards],
        not_in_run=not_in_run,
        not_ok=not_ok,
        out=str(out_dir),
        missing_examples=missing_examples,
    )
    if not_in_run:
        log.warning(
            "%d selected uids are not in this run's score tables (subset made for another pool?)", not_in_run
        )
    if not_ok:
        log.warning(
            "%d selected uids have a non-ok status in this run (unreadable samples) and were skipped", not_ok
        )
    if summary.missing:
        err = IncompleteError(
            f"{summary.missing} of {todo} selected samples were not found (or not readable) in their source shards (the "
            f"shards changed since scoring, or tighter reader limits?), e.g. {'; '.join(missing_examples[:3])}. "
            + (f"The {written} others were exported to {out_dir}" if written else "Nothing was exported")
            + "; rescore the changed shards, then rerun with --overwrite"
        )
        err.summary = summary.to_dict()  # type: ignore[attr-defined]
        raise err
    return summary


def _source_present(src: str, storage_options: Mapping[str, Any] | None) -> bool:
    if not src:
        return False
    try:
        shard_identity(src, storage_options)
    except OSError:
        return False
    return True


def _missing(examples: list[str], r: dict[str, Any], src: str, why: str) -> None:
    if len(examples) < 5:
        examples.append(f"{r['uid']} (key {r['key']!r} in {src}: {why})")


def _out_key(writer: ShardWriter, key: str, shard: str, uid: str) -> str:
    """The escaped key, made unique within the output shard (two source shards may reuse a key)."""
    for candidate in (safe_key(key), safe_key(f"{shard}/{key}"), uid):
        if not writer.has_key(candidate):
            return candidate
    raise ValueError(f"uid {uid} written twice")  # uids are deduplicated before writing


def _members(
    sample: Any,
    ext: str,
    r: dict[str, Any],
    signal_cols: list[str],
    caption_column: str | None,
    captions: dict[str, Any] | None,
) -> dict[str, bytes]:
    try:
        js = json.loads(sample.files.get("json", b"{}").decode("utf-8"))
        if not isinstance(js, dict):
            js = {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        js = {}
    js.setdefault("uid", r["uid"])
    js["source_key"] = r["key"]
    js["altsift"] = {c: _jsonable(r[c]) for c in signal_cols}
    text = r["text"]
    if caption_column:
        new = captions.get(r["uid"]) if captions else r.get(caption_column)
        if isinstance(new, str) and new:
            js["original_caption"] = text
            text = new
    return {
        ext: sample.files[ext],
        "txt": (text or "").encode("utf-8", "surrogatepass"),
        "json": json.dumps(js, default=_jsonable).encode("utf-8", "surrogatepass"),
    }


def _commit(
    staging: Path, out_dir: Path, old: dict[str, Any] | None, new_files: list, info: dict[str, Any]
) -> None:
    """Move the staged shards into ``out_dir``, replacing only what the earlier manifest lists."""
    old_names = _manifest_names(old)
    new_names = {f.name for f in new_files}
    mpath = out_dir / MANIFEST
    if old_names:  # while files move, the manifest owns old and new names alike
        _write_json_atomic(
            mpath,
            {
                "format": MANIFEST_FORMAT,
                "complete": False,
                "files": [{"name": n} for n in sorted(old_names | new_names)],
            },
        )
    for name in sorted(old_names - new_names):
        (out_dir / name).unlink(missing_ok=True)
    for f in new_files:
        os.replace(staging / f.name, out_dir / f.name)
    _write_json_atomic(
        mpath,
        {
            "format": MANIFEST_FORMAT,
            "complete": True,
            "created": time.time(),
            **info,
            "files": [asdict(f) for f in new_files],
        },
    )
    shutil.rmtree(staging, ignore_errors=True)
