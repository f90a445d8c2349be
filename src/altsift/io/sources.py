"""Where shards come from: local paths and object-store URLs, expanded, named, identified and opened.

An input is a string: a local path, a ``file://`` URL, or any fsspec URL (``s3://``, ``gs://``,
``https://``, ...), as DataComp and img2dataset accept them. ``expand_inputs`` turns paths, globs
(``s3://bucket/dir/*.tar``), brace patterns (``s3://bucket/shards/{00000..00009}.tar``) and folders or
object-store prefixes (``s3://bucket/dir/``) into a list of shard sources; folders contribute every
``.tar``, ``.tar.gz`` and ``.tgz`` below them. Local sources come back as absolute paths, remote ones
as full URLs.

Object stores go through fsspec (the file-system layer pandas, Dask, Ray Data and HF datasets share)
so every backend it knows works without code here: ``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``,
aiohttp for ``http(s)://``. Credentials and endpoints come from the backend's usual places (for S3:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL``, ``~/.aws``) or from
``storage_options``, the keyword arguments of the fsspec file system, e.g. in a run config::

    score:
      storage_options: {client_kwargs: {endpoint_url: "http://minio.local:9000"}, anon: false}

``open_source`` opens a shard for a single forward pass: local files with a plain buffered ``open``;
``http(s)`` as a streaming response (no range requests, memory = one read); other stores with
fsspec's read-ahead cache of ``block_size`` bytes, so memory per open shard stays about one block.

Public API::

    SHARD_SUFFIXES: tuple[str, ...]
    is_url(source) -> bool
    expand_inputs(specs, storage_options=None) -> list[str]
    shard_names(sources) -> list[str]
    shard_identity(source, storage_options=None) -> dict        # path, size, mtime, etag
    identity_matches(recorded, current) -> bool
    open_source(source, storage_options=None, block_size=8 MiB) -> BinaryIO
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

import braceexpand

from altsift.errors import ConfigError

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
STREAMING_PROTOCOLS = ("http", "https")  # read as one streaming response, never listed or globbed
DEFAULT_BLOCK_SIZE = 8 * 2**20
_GLOB_CHARS = "*?["
_NAME_LIMIT = 160  # bytes of a table name (file systems allow 255; `.parquet` and suffixes follow)


def _protocol(source: str) -> str | None:
    """The URL scheme of ``source`` (``s3``, ``https``...), None for a plain path. ``file`` counts as a path."""
    if "://" not in source:
        return None
    scheme = source.split("://", 1)[0].lower()
    if not scheme or not all(c.isalnum() or c in "+-." for c in scheme):
        return None
    return None if scheme in ("file", "local") else scheme


def is_url(source: str | Path) -> bool:
    """True for an object-store or web URL (anything fsspec opens other than a local file)."""
    return isinstance(source, str) and _protocol(source) is not None


def _local_path(source: str | Path) -> Path:
    s = str(source)
    if s.startswith("file://"):
        s = s[len("file://") :]
    elif s.startswith("local://"):
        s = s[len("local://") :]
    return Path(s).expanduser()


def _is_shard_file(name: str) -> bool:
    return name.lower().endswith(SHARD_SUFFIXES)


def _expand_local(pattern: str) -> list[str] | None:
    """Shard paths for one local pattern (no braces left), or None when it names nothing."""
    p = _local_path(pattern)
    if p.is_dir():
        return sorted(str(q) for q in p.rglob("*") if _is_shard_file(q.name) and q.is_file())
    if any(ch in str(p) for ch in _GLOB_CHARS):
        hits = sorted(g for g in glob.glob(str(p), recursive=True) if Path(g).is_file())
        return hits or None
    if p.is_file():
        return [str(p)]
    return None


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except (ImportError, ValueError) as e:  # unknown protocol or its package is not installed
        raise ConfigError(f"cannot open {url}: {e}") from None


def _expand_remote(pattern: str, storage_options: Mapping[str, Any] | None) -> list[str] | None:
    """Shard URLs for one remote pattern, or None when it names nothing."""
    if _protocol(pattern) in STREAMING_PROTOCOLS:
        return [pattern]  # web servers cannot be listed; a missing URL is a shard error at read time
    fs, path = _filesystem(pattern, storage_options)
    try:
        fs.invalidate_cache()  # listings are cached per file system instance: never trust an old one
        if any(ch in path for ch in _GLOB_CHARS):
            hits = fs.glob(path, detail=True)
            files = sorted(name for name, info in hits.items() if info.get("type") == "file")
        else:
            try:
                info = fs.info(path)
            except FileNotFoundError:
                return None
            if info.get("type") == "directory":
                found = fs.find(path, detail=True)
                files = sorted(n for n, i in found.items() if i.get("type") == "file" and _is_shard_file(n))
            else:
                files = [path]
    except FileNotFoundError:  # e.g. the bucket does not exist
        return None
    except ConfigError:
        raise
    except Exception as e:  # credentials, endpoint, network: a run-level problem, said once
        raise ConfigError(f"cannot list {pattern}: {type(e).__name__}: {e}") from None
    return [fs.unstrip_protocol(f) for f in files] or None


def expand_inputs(specs: Iterable[str | Path], storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Turn paths, URLs, globs, brace patterns and folders/prefixes into a list of shard sources.

    Local shards come back as absolute paths, remote ones as URLs; duplicates are dropped (first
    wins). Raises ConfigError naming every spec that matched nothing, or when listing a store fails.
    """
    out: list[str] = []
    missing: list[str] = []
    for spec in specs:
        spec = str(spec)
        before = len(out)
        for pattern in braceexpand.braceexpand(spec):
            found = _expand_remote(pattern, storage_options) if is_url(pattern) else _expand_local(pattern)
            if found is None:
                missing.append(pattern)
            else:
                out.extend(found)
        if len(out) == before and not missing:
            missing.append(spec)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ConfigError(f"input not found: {shown}")
    seen: set[str] = set()
    uniq: list[str] = []
    for s in out:
        canon = s if is_url(s) else str(Path(s).resolve())
        if canon not in seen:
            seen.add(canon)
            uniq.append(canon)
    if not uniq:
        raise ConfigError("no input shards given")
    return uniq


def _safe(part: str, limit: int = _NAME_LIMIT) -> str:
    """A file-name-safe version of ``part``: letters, digits and ``._-+=@,`` kept, the rest ``_``."""
    s = "".join(c if (c.isalnum() and c.isprintable()) or c in "._-+=@," else "_" for c in part)
    if s.startswith("."):
        s = "_" + s[1:]
    while len(s.encode("utf-8", "replace")) > limit:
        s = s[: max(1, len(s) - 8)]
    return s or "shard"


def _name_parts(source: str | Path) -> tuple[str, list[str]]:
    """(file name, parent folder names nearest first) of a path or URL, without query strings."""
    if is_url(source):
        u = urlsplit(str(source))
        p = PurePosixPath((u.netloc or "") + "/" + u.path.lstrip("/"))
    else:
        p = PurePosixPath(_local_path(source).as_posix())
    parents = [q.name for q in p.parents if q.name]
    return p.name, parents


def _stem(name: str) -> str:
    low = name.lower()
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def shard_names(sources: Iterable[str | Path]) -> list[str]:
    """Unique, filesystem-safe table names: the file stem (``00000`` for ``.../00000.tar``, ``.tar.gz``
    or ``.tgz``), prefixed by parent folders (``a__00000``) and then numbered (``00000__1``) only to
    tell shards apart. Names compare case-insensitively so tables never collide on macOS/Windows."""
    names: list[str] = []
    used: set[str] = set()
    for src in sources:
        fname, parents = _name_parts(src)
        name = _safe(_stem(fname))
        for parent in parents:
            if name.casefold() not in used:
                break
            name = _safe(f"{_safe(parent, 60)}__{name}")
        base, i = name, 1
        while name.casefold() in used:
            name = f"{base}__{i}"
            i += 1
        used.add(name.casefold())
        names.append(name)
    return names


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    iso = getattr(v, "isoformat", None)
    return iso() if callable(iso) else str(v)


def shard_identity(source: str | Path, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the shard is right now, cheaply: ``{"path", "size", "mtime", "etag"}`` (JSON values).

    Local: absolute path, size and ``st_mtime_ns``; remote: the URL and what one fsspec ``info()``
    call returns (S3: ``LastModified`` and ``ETag``; GCS: ``updated`` and ``md5Hash``). Fields a store
    does not give are None. Raises OSError (FileNotFoundError when it is gone).
    """
    if not is_url(source):
        p = _local_path(source).resolve()
        st = p.stat()
        return {"path": str(p), "size": st.st_size, "mtime": st.st_mtime_ns, "etag": None}
    url = str(source)
    fs, path = _filesystem(url, storage_options)
    info = fs.info(path)
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("content_md5")
    mtime = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified")
    size = info.get("size")
    return {
        "path": url,
        "size": int(size) if isinstance(size, int | float) else None,
        "mtime": _jsonable(mtime),
        "etag": None if etag is None else str(etag).strip('"'),
    }


def identity_matches(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """True when ``current`` is the same shard as ``recorded``: same path and size, and the same ETag
    (or, without one on both sides, the same mtime). A missing record never matches."""
    if not recorded:
        return False
    if recorded.get("path") != current.get("path") or recorded.get("size") != current.get("size"):
        return False
    if recorded.get("etag") is not None and current.get("etag") is not None:
        return recorded["etag"] == current["etag"]
    return recorded.get("mtime") == current.get("mtime")


def open_source(
    source: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> IO[bytes]:
    """Open a shard for one forward pass (the caller closes it). Raises OSError when it cannot."""
    if not is_url(source):
        return open(_local_path(source), "rb", buffering=1 << 16)  # noqa: SIM115 - the caller closes it
    url = str(source)
    try:
        fs, path = _filesystem(url, storage_options)
    except ConfigError as e:
        raise OSError(str(e)) from None
    streaming = _protocol(url) in STREAMING_PROTOCOLS
    return fs.open(path, "rb", block_size=0 if streaming else block_size)


def source_label(source: Any) -> str:
    """How a source is named in messages and tables: the path or URL, or ``<stream>`` for a file object."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    return getattr(source, "name", None) if isinstance(getattr(source, "name", None), str) else "<stream>"
