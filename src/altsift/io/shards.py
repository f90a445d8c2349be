"""Streaming, bounded, fault-isolating reader of webdataset shards (img2dataset / DataComp layout).

A shard is a tar (optionally gzip/bzip2/xz-compressed) of ``{key}.jpg|png|webp``, ``{key}.txt`` and
``{key}.json`` members, local or on an object store (``io.sources``). We read it with Python's
``tarfile`` in stream mode (``r|``) rather than webdataset's iterators because we need member-level
control; grouping follows webdataset's rule (key = path up to the first dot of the basename,
consecutive members with one key form one sample).

Guarantees, for any bytes given as a shard:

- **Streaming.** One member at a time, one sample held at a time: ``open_shard`` yields ``RawSample``s
  as their key group ends. Members above ``max_member_bytes`` and members that would take a sample
  past ``max_sample_bytes`` are streamed past without being read (status ``member_too_large`` /
  ``sample_too_large``). Tar headers (GNU long names, pax records, sparse maps) are capped at
  ``max_header_bytes``; compressed shards stop with a shard error once the decompressed bytes pass
  ``max_compression_ratio`` x the compressed bytes (plus an allowance): a 2 MB ``.tar.gz`` bomb
  costs neither memory nor much time. Nothing is ever extracted to disk; links and devices are
  never followed.
- **Every sample exactly once.** Each key group becomes exactly one ``RawSample``, with a status
  when something is wrong. A key seen earlier in the same tar (not adjacent), or an extension
  repeated within a group, starts a new sample flagged ``duplicate_key``: both appear.
- **No lost shard from one sample.** ``parse_sample`` turns any exception confined to a sample into
  its status (``bad_sample`` with the exception in ``error``); json nested too deeply is
  ``bad_json``. Every string that goes to a table (key, text, error, json strings) is valid UTF-8:
  non-UTF-8 member names keep their bytes as ``\\xNN`` escapes (status ``bad_utf8``), lone surrogates
  become U+FFFD (a caption holding one is ``bad_utf8``).
- **Damage keeps what came before.** A truncated, corrupt or vanished shard keeps the samples read
  before the damage; the sample in progress is flagged ``truncated_shard`` and the stream reports a
  shard-level ``error`` with an ``error_kind`` (``SHARD_ERROR_KINDS``). Iterating never raises.

Public API (everything a runner needs; the pipeline builds on these)::

    STATUS_CODES: dict[str, str]             # every per-sample status with its meaning ("ok" included)
    SHARD_ERROR_KINDS: dict[str, str]        # unavailable | corrupt | empty
    IMAGE_EXTS, TEXT_EXTS, NEEDED_EXTS, SHARD_SUFFIXES
    class ReadLimits(max_member_bytes, max_sample_bytes, max_header_bytes,
                     max_compression_ratio, compression_allowance, block_size)
        ReadLimits.from_options(score_options) -> ReadLimits
    class RawSample(key, files, problem, detail, index)
    class ShardStream   # iterator of RawSample; .error, .error_kind, .samples, .bytes_read after the loop
    open_shard(source, limits=None, storage_options=None, extensions=None) -> ShardStream
    parse_sample(raw, shard, seen_uids) -> dict          # never raises
    parse_samples(samples, shard) -> Iterator[dict]
    clean_text(s) -> tuple[str, bool]                    # valid UTF-8 text, changed?
    read_shard(path, max_member_bytes=None, *, limits=None, storage_options=None,
               extensions=None) -> ShardReadResult       # compatibility: the whole shard as a list
    # re-exported: expand_inputs, shard_names, shard_identity, identity_matches, is_url (io.sources);
    #              decode_image, image_header, verify_image, Decoded (io.images)

Typical use::

    with open_shard(url, ReadLimits(), storage_options, extensions=NEEDED_EXTS) as stream:
        for row in parse_samples(stream, name):
            ...                        # one row dict at a time, each with a status
    stream.error, stream.error_kind    # shard-level outcome, final once the loop ended
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import logging
import lzma
import re
import tarfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from altsift.io.images import Decoded, decode_image, image_header, verify_image
from altsift.io.sources import (
    DEFAULT_BLOCK_SIZE,
    SHARD_SUFFIXES,
    expand_inputs,
    identity_matches,
    is_url,
    open_source,
    shard_identity,
    shard_names,
    source_label,
)
from altsift.io.uids import derive_uid, normalize_uid

__all__ = [
    "IMAGE_EXTS",
    "NEEDED_EXTS",
    "SHARD_ERROR_KINDS",
    "SHARD_SUFFIXES",
    "STATUS_CODES",
    "TEXT_EXTS",
    "Decoded",
    "RawSample",
    "ReadLimits",
    "ShardReadResult",
    "ShardStream",
    "clean_text",
    "decode_image",
    "expand_inputs",
    "identity_matches",
    "image_header",
    "is_url",
    "open_shard",
    "parse_sample",
    "parse_samples",
    "read_shard",
    "shard_identity",
    "shard_names",
    "verify_image",
]

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt", "json")
NEEDED_EXTS = frozenset(IMAGE_EXTS + TEXT_EXTS)  # all scoring reads; pass as `extensions` to skip the rest

#: Every per-sample status, in one place (docs and tests read this). Reader statuses first, then the
#: parser's, then the decoder's; the pipeline adds ``error_<signal>`` when a signal fails on a row.
STATUS_CODES: dict[str, str] = {
    "ok": "usable sample",
    "unsafe_path": "a member name escapes the shard (absolute or '..'), or a member is a link or device",
    "member_too_large": "a member is above max_member_bytes; it was skipped unread",
    "sample_too_large": "the sample's members add up to more than max_sample_bytes; the rest were skipped unread",
    "duplicate_key": "the key appeared earlier in this shard (or an extension repeats in one sample); both samples are kept",
    "truncated_shard": "the shard ended or failed while this sample was being read; it may be incomplete",
    "bad_sample": "parsing the sample failed in an unexpected way (the exception is in `error`)",
    "bad_json": "the .json member is not a JSON object (invalid, not UTF-8, or nested too deeply)",
    "bad_utf8": "the caption or a member name is not valid UTF-8 (invalid parts replaced or escaped)",
    "missing_caption": "no .txt member and no 'caption' string in the json",
    "empty_caption": "the caption is empty or whitespace",
    "duplicate_uid": "the uid was already seen in this shard",
    "missing_image": "no image member (jpg, jpeg, png, webp)",
    "empty_image": "the image member is zero bytes",
    "bad_image": "the image cannot be decoded (corrupt, truncated or an unsupported format)",
    "image_too_large": "the image header claims more than max_image_pixels pixels; not decoded",
}

#: Shard-level outcomes (``ShardStream.error_kind``); samples read before the problem are kept.
SHARD_ERROR_KINDS: dict[str, str] = {
    "unavailable": "the shard could not be opened or reading it failed (missing, permissions, network)",
    "corrupt": "not a readable tar, truncated, a header over the limits, or a decompression bomb",
    "empty": "a readable tar with no samples",
}


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what reading one shard may cost. Every value must be positive."""

    max_member_bytes: int = 32 * 2**20  # one member above this is skipped unread (member_too_large)
    max_sample_bytes: int = 64 * 2**20  # members of one sample past this are skipped (sample_too_large)
    max_header_bytes: int = 2**20  # GNU long name / pax header / sparse map of one member
    max_compression_ratio: float = 200.0  # decompressed / compressed bytes of a compressed shard ...
    compression_allowance: int = 64 * 2**20  # ... beyond this many decompressed bytes
    block_size: int = DEFAULT_BLOCK_SIZE  # object-store read size (memory per open shard ~ one block)

    @classmethod
    def from_options(cls, opts: Any) -> ReadLimits:
        """Limits from an object with ``max_member_bytes`` / ``max_sample_bytes`` (e.g. ``ScoreOptions``)."""
        names = ("max_member_bytes", "max_sample_bytes")
        return cls(**{n: getattr(opts, n) for n in names if getattr(opts, n, None) is not None})

    def __post_init__(self) -> None:
        for name in (
            "max_member_bytes",
            "max_sample_bytes",
            "max_header_bytes",
            "max_compression_ratio",
            "compression_allowance",
            "block_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"ReadLimits.{name} must be a positive number, got {value!r}")


@dataclass
class RawSample:
    """One sample as read from a tar: its members by extension, plus read-time problems."""

    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None  # first status code when the sample is unusable at read time
    detail: str | None = None
    index: int = 0  # position in the shard (0-based), in tar order

    def flag(self, problem: str, detail: str) -> None:
        """Record a read-time problem; the first one gives the status, every one goes to ``detail``."""
        detail = _short(detail)
        if self.problem is None:
            self.problem, self.detail = problem, detail
        elif self.detail is None or detail not in self.detail:
            self.detail = f"{self.detail}; {detail}" if self.detail else detail


@dataclass
class ShardReadResult:
    samples: list[RawSample]
    error: str | None = None  # shard-level error (empty, truncated, not a tar, unavailable)
    error_kind: str | None = None


# ---------------------------------------------------------------------------------------------- text
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_MEMBER_CHUNK = 1 << 20
_TAR_BUFSIZE = (
    tarfile.RECORDSIZE
)  # tarfile's stream read size; it re-slices its buffer on every read: keep small


def clean_text(s: str) -> tuple[str, bool]:
    """``s`` as valid UTF-8 text, and whether it changed. Bytes smuggled in by ``surrogateescape``
    (non-UTF-8 tar names) become ``\\xNN``; any other lone surrogate becomes U+FFFD."""
    if s.isascii() or not _SURROGATE.search(s):
        return s, False

    def fix(m: re.Match[str]) -> str:
        c = ord(m.group())
        return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else "\ufffd"

    return _SURROGATE.sub(fix, s), True


def _short(s: str, limit: int = 500) -> str:
    s = clean_text(s)[0]
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _exc(e: BaseException) -> str:
    return _short(f"{type(e).__name__}: {e}")


def _clean_json(obj: Any) -> Any:
    """Replace lone surrogates in every string of a decoded json value (iteratively: no recursion)."""
    root = [obj]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, k = stack.pop()
        v = parent[k]
        if isinstance(v, str):
            parent[k] = clean_text(v)[0]
        elif isinstance(v, list):
            stack.extend((v, i) for i in range(len(v)))
        elif isinstance(v, dict):
            items = list(v.items())
            v.clear()
            for key, val in items:
                v[clean_text(key)[0] if isinstance(key, str) else key] = val
            stack.extend((v, key) for key in v)
    return root[0]


# --------------------------------------------------------------------------------------------- tar
class SourceError(Exception):
    """Reading the underlying file, object or stream failed (not a problem of the tar format)."""


class ReadLimitExceeded(Exception):
    """A tar header or the decompressed stream exceeds a ReadLimits bound (a shard-level error)."""


class _GuardedTarInfo(tarfile.TarInfo):
    """TarInfo whose variable-length headers are bounded, and which records how the archive ended."""

    max_header_bytes = 2**20

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as e:  # tarfile treats most of these as "end of archive"
            tarfile_._altsift_end = e  # type: ignore[attr-defined]
            raise

    def _check_header(self, what: str) -> None:
        if not 0 <= self.size <= self.max_header_bytes:
            raise ReadLimitExceeded(
                f"{what} of {self.size} bytes is over the {self.max_header_bytes}-byte header limit"
            )

    def _proc_gnulong(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header("GNU long name")
        return super()._proc_gnulong(tarfile_)

    def _proc_pax(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._check_header("pax header")
        return super()._proc_pax(tarfile_)

    def _proc_sparse(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        """tarfile's GNU sparse reader with a bound on the number of extension blocks."""
        structs, isextended, origsize = self._sparse_structs
        del self._sparse_structs
        blocks = 0
        while isextended:
            blocks += 1
            if blocks * tarfile.BLOCKSIZE > self.max_header_bytes:
                raise ReadLimitExceeded(
                    f"GNU sparse map of {self.name!r} is over the {self.max_header_bytes}-byte header limit"
                )
            buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
            if len(buf) < tarfile.BLOCKSIZE:
                raise tarfile.ReadError("unexpected end of data in a sparse map")
            pos = 0
            for _ in range(21):
                try:
                    offset = tarfile.nti(buf[pos : pos + 12])
                    numbytes = tarfile.nti(buf[pos + 12 : pos + 24])
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
                pos += 24
            isextended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tarfile_.fileobj.tell()
        tarfile_.offset = self.offset_data + self._block(self.size)
        self.size = origsize
        return self

    def _proc_gnusparse_10(
        self, next_: tarfile.TarInfo, pax_headers: dict, tarfile_: tarfile.TarFile
    ) -> None:
        """tarfile's GNU sparse 1.0 map reader with a bound on the map's size."""
        sparse: list[int] = []
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        read = len(buf)
        fields_raw, buf = buf.split(b"\n", 1)
        fields = int(fields_raw)
        if not 0 <= fields * 4 <= self.max_header_bytes:
            raise ReadLimitExceeded(f"GNU sparse map with {fields} entries is over the header limit")
        while len(sparse) < fields * 2:
            if b"\n" not in buf:
                if read > self.max_header_bytes:
                    raise ReadLimitExceeded("GNU sparse map is over the header limit")
                chunk = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
                if not chunk:
                    raise tarfile.ReadError("unexpected end of data in a sparse map")
                buf += chunk
                read += len(chunk)
            number, buf = buf.split(b"\n", 1)
            sparse.append(int(number))
        next_.offset_data = tarfile_.fileobj.tell()
        next_.sparse = list(zip(sparse[::2], sparse[1::2], strict=False))


class _Counted(io.RawIOBase):
    """The source as a raw stream: counts the bytes read and marks the source's failures."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.f.read(len(b))
        except Exception as e:
            raise SourceError(f"reading the shard failed: {_exc(e)}") from e
        n = len(data)
        b[:n] = data
        self.count += n
        return n


class _Read1(io.RawIOBase):
    """One underlying ``read1`` per call, so data before a failing read reaches tarfile: buffered
    readers that gather many reads into one would drop it with the exception."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # tarfile calls read(): skip RawIOBase's bytearray round trip
        return self.f.read1(size if size is not None and size >= 0 else io.DEFAULT_BUFFER_SIZE)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n


class _Decompressed(_Read1):
    """A decompressed view that stops once the output outgrows the input (decompression bombs)."""

    def __init__(self, dec: Any, source: _Counted, limits: ReadLimits) -> None:
        super().__init__(dec)
        self.source, self.limits = source, limits
        self.out = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.out += len(data)
        lim = self.limits
        if self.out > lim.compression_allowance + lim.max_compression_ratio * self.source.count:
            raise ReadLimitExceeded(
                f"decompressed {self.out} bytes from {self.source.count}: compression ratio above "
                f"{lim.max_compression_ratio:g} (decompression bomb guard)"
            )
        return data


def _decompressing(
    buffered: io.BufferedReader, source: _Counted, limits: ReadLimits, stack: contextlib.ExitStack
) -> IO[bytes]:
    """Detect gzip / bzip2 / xz by magic bytes (as tarfile's ``r|*`` does) and wrap accordingly. A
    first block that is a valid tar header is a plain tar whatever its first bytes (a member named
    ``\x1f\x8b\x08...`` fooled tarfile's own detection)."""
    head = buffered.peek(tarfile.BLOCKSIZE)
    dec: Any
    if _is_tar_header(head):
        return _Read1(buffered)  # type: ignore[return-value]
    if head.startswith(b"\x1f\x8b\x08"):
        dec = stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))
    elif head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        dec = stack.enter_context(bz2.BZ2File(buffered))
    elif head.startswith((b"\x5d\x00\x00\x80", b"\xfd7zXZ")):
        dec = stack.enter_context(lzma.LZMAFile(buffered))  # noqa: SIM115 - closed by the stack
    else:
        return _Read1(buffered)  # type: ignore[return-value]
    return _Decompressed(dec, source, limits)  # type: ignore[return-value]


def _is_tar_header(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    try:
        return tarfile.nti(block[148:156]) in tarfile.calc_chksums(block[: tarfile.BLOCKSIZE])
    except (ValueError, tarfile.HeaderError):
        return False


def _source_error(e: BaseException) -> SourceError | None:
    """The SourceError behind ``e`` (itself or in its chain), if reading the source is what failed."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 20:
        if isinstance(cur, SourceError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _read_member(tf: tarfile.TarFile, m: tarfile.TarInfo) -> bytes:
    """A member's bytes, read in 1 MiB pieces (tarfile's own ``read()`` copies a member ~3 times)."""
    f = tf.extractfile(m)
    if f is None:
        return b""
    if m.size <= _MEMBER_CHUNK:
        return f.read()
    chunks: list[bytes] = []
    got = 0
    while got < m.size:
        chunk = f.read(min(_MEMBER_CHUNK, m.size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _split_member(name: str) -> tuple[str, str]:
    """webdataset's key/extension split: key = the path up to the first dot of the basename,
    extension = the rest, lower-cased (``a/b.c.JPG`` -> ``a/b``, ``c.jpg``); no dot: no extension."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :].lower()


def _unsafe(name: str) -> bool:
    """An absolute name or one with a ``..`` component (never extracted anyway; reported)."""
    return name.startswith("/") or (".." in name and ".." in name.split("/"))


class ShardStream:
    """Iterator of a shard's samples (``RawSample``), read one member at a time.

    Use as a context manager (or call ``close``). After the loop ends, ``error`` holds the shard-level
    problem (None when the tar was read to its end-of-archive marker) and ``error_kind`` its kind.
    """

    def __init__(
        self,
        source: str | Path | IO[bytes],
        limits: ReadLimits | None = None,
        storage_options: Mapping[str, Any] | None = None,
        extensions: Collection[str] | None = None,
    ) -> None:
        self.source = source
        self.label = source_label(source)
        self.limits = limits or ReadLimits()
        self.storage_options = dict(storage_options or {})
        self.extensions = None if extensions is None else frozenset(e.lower() for e in extensions)
        self.error: str | None = None
        self.error_kind: str | None = None
        self.samples = 0  # samples yielded so far
        self.bytes_read = 0  # bytes read from the source (compressed bytes for a compressed shard)
        self._gen = self._run()

    def __iter__(self) -> ShardStream:
        return self

    def __next__(self) -> RawSample:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> ShardStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, kind: str, message: str) -> None:
        if self.error is None:
            self.error, self.error_kind = _short(message, 1000), kind

    def _run(self) -> Iterator[RawSample]:
        owned = not hasattr(self.source, "read")  # a file object given by the caller stays open
        with contextlib.ExitStack() as stack:
            try:
                if owned:
                    raw = stack.enter_context(
                        open_source(self.source, self.storage_options, self.limits.block_size)
                    )  # type: ignore[arg-type]
                else:
                    raw = self.source  # type: ignore[assignment]
            except Exception as e:
                self._fail("unavailable", f"cannot open shard: {_exc(e)}")
                return
            counted = _Counted(raw)
            buffered = stack.enter_context(io.BufferedReader(counted, buffer_size=1 << 16))
            yield from self._members(counted, buffered, stack)

    def _members(
        self, counted: _Counted, buffered: io.BufferedReader, stack: contextlib.ExitStack
    ) -> Iterator[RawSample]:
        lim = self.limits
        group: RawSample | None = None
        exts: set[str] = set()
        sample_bytes = 0
        seen_keys: set[str] = set()
        tf: tarfile.TarFile | None = None
        try:
            stream = _decompressing(buffered, counted, lim, stack)
            tinfo = type("_LimitedTarInfo", (_GuardedTarInfo,), {"max_header_bytes": lim.max_header_bytes})
            tf = stack.enter_context(
                tarfile.open(  # noqa: SIM115 - closed by the stack
                    fileobj=stream,
                    mode="r|",
                    tarinfo=tinfo,
                    encoding="utf-8",
                    errors="surrogateescape",
                    bufsize=_TAR_BUFSIZE,
                )
            )
            while True:
                m = tf.next()
                self.bytes_read = counted.count
                if m is None:
                    break
                tf.members.clear()  # stream mode would otherwise keep every header of the shard
                if m.isdir():
                    continue
                if m.size < 0:
                    raise ReadLimitExceeded(f"member {m.name!r} has a negative size")
                key, ext = _split_member(m.name)
                key, renamed = clean_text(key)
                if group is None or key != group.key or ext in exts:
                    if group is not None:
                        self.samples += 1
                        yield group
                    group = RawSample(key=key, index=self.samples)
                    exts, sample_bytes = set(), 0
                    if key in seen_keys:
                        group.flag("duplicate_key", f"key '{key}' appeared earlier in this shard")
                    seen_keys.add(key)
                exts.add(ext)
                name = m.name if len(m.name) <= 200 and m.name.isascii() else _short(m.name, 200)
                if renamed:
                    group.flag("bad_utf8", f"member name '{name}' is not valid UTF-8")
                if not m.isfile():  # links and devices are never followed or read
                    group.flag("unsafe_path", f"tar member '{name}' is a link or special file")
                    continue
                if _unsafe(m.name):
                    group.flag("unsafe_path", f"tar member name '{name}' escapes the shard")
                    continue
                if self.extensions is not None and ext not in self.extensions:
                    continue  # not needed: streamed past unread
                if m.size > lim.max_member_bytes:
                    group.flag(
                        "member_too_large",
                        f"member '{name}' is {m.size} bytes (max_member_bytes={lim.max_member_bytes})",
                    )
                    continue
                if sample_bytes + m.size > lim.max_sample_bytes:
                    group.flag(
                        "sample_too_large",
                        f"members add up to more than max_sample_bytes="
                        f"{lim.max_sample_bytes} at '{name}' ({m.size} bytes)",
                    )
                    continue
                data = _read_member(tf, m)
                if len(data) != m.size:
                    raise tarfile.ReadError(f"unexpected end of data in member {name!r}")
                group.files[ext] = data
                sample_bytes += len(data)
            end = getattr(tf, "_altsift_end", None)
            if not isinstance(end, tarfile.EOFHeaderError):  # tarfile ends quietly on a bad header
                why = f"{type(end).__name__}: {end}" if end is not None else "no end-of-archive marker"
                raise tarfile.ReadError(f"shard ends without its end-of-archive marker ({why})")
        except Exception as e:
            src = _source_error(e)
            self._fail("unavailable" if src else "corrupt", str(src) if src else _exc(e))
            if group is not None:
                group.flag("truncated_shard", f"shard ended while reading this sample ({self.error})")
        self.bytes_read = counted.count
        if group is not None:
            self.samples += 1
            yield group
        elif self.error is None:
            self._fail("empty", "empty shard: no samples")


def open_shard(
    source: str | Path | IO[bytes],
    limits: ReadLimits | None = None,
    storage_options: Mapping[str, Any] | None = None,
    extensions: Collection[str] | None = None,
) -> ShardStream:
    """Stream the samples of one shard: a local path, a URL (``io.sources``) or a binary file object
    (left open). ``extensions`` (e.g. ``NEEDED_EXTS``) limits which members are read; the others still
    group keys but are streamed past unread. Nothing is opened until the first ``next()``."""
    return ShardStream(source, limits, storage_options, extensions)


def read_shard(
    path: str | Path | IO[bytes],
    max_member_bytes: int | None = None,
    *,
    limits: ReadLimits | None = None,
    storage_options: Mapping[str, Any] | None = None,
    extensions: Collection[str] | None = None,
) -> ShardReadResult:
    """Compatibility wrapper: every sample of a shard as a list (bounded per sample, not per shard).
    New code should iterate ``open_shard`` instead."""
    limits = limits or ReadLimits()
    if max_member_bytes is not None:
        limits = ReadLimits(**{**limits.__dict__, "max_member_bytes": max_member_bytes})
    with open_shard(path, limits, storage_options, extensions) as stream:
        samples = list(stream)
    return ShardReadResult(samples=samples, error=stream.error, error_kind=stream.error_kind)


# ------------------------------------------------------------------------------------------- parse
def _size(value: Any) -> int | None:
    """A json image side as a positive int32, else None (NaN, Infinity, 1e400, bools, strings, <= 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 < value < 2**31 else None  # NaN fails both comparisons


def _parse_json(data: bytes) -> tuple[dict[str, Any], str | None, bool]:
    """(object, problem detail, caption had a lone surrogate). Never raises for bad data: invalid,
    non-UTF-8, too deep, not an object. Lone surrogates in any string become U+FFFD."""
    try:
        loaded = json.loads(data.decode("utf-8"))
    except RecursionError:
        return {}, "json is nested too deeply", False
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, int digit limits
        return {}, f"invalid json: {_exc(e)}", False
    if not isinstance(loaded, dict):
        return {}, "json is not an object", False
    caption_fixed = False
    if _JSON_SURROGATE_ESCAPE.search(data):  # only \udXXX escapes can yield lone surrogates
        caption = loaded.get("caption")
        caption_fixed = isinstance(caption, str) and clean_text(caption)[1]
        loaded = _clean_json(loaded)
    return loaded, None, caption_fixed


def _parse(raw: RawSample, shard: str, seen_uids: set[str]) -> dict[str, Any]:
    problems: list[tuple[str, str]] = []
    if raw.problem:
        problems.append((raw.problem, raw.detail or raw.problem))
    key = clean_text(raw.key)[0]
    meta: dict[str, Any] = {}
    caption_fixed = False
    if "json" in raw.files:
        meta, err, caption_fixed = _parse_json(raw.files["json"])
        if err:
            problems.append(("bad_json", err))
    text: str | None = None
    if "txt" in raw.files:
        try:
            text = raw.files["txt"].decode("utf-8")
        except UnicodeDecodeError as e:
            text = raw.files["txt"].decode("utf-8", errors="replace")
            problems.append(("bad_utf8", f"caption is not valid UTF-8: {e}"))
    elif isinstance(meta.get("caption"), str):
        text = meta["caption"]
        if caption_fixed:
            problems.append(("bad_utf8", "json caption holds a lone surrogate (replaced by U+FFFD)"))
    if text is None:
        problems.append(("missing_caption", "no .txt member and no caption in json"))
    elif not text.strip():
        problems.append(("empty_caption", "caption is empty"))
    image_ext = next((e for e in IMAGE_EXTS if e in raw.files), None)
    if image_ext is None and not raw.problem:
        problems.append(("missing_image", f"no image member ({'/'.join(IMAGE_EXTS)})"))
    uid = normalize_uid(meta.get("uid"))
    uid_derived = uid is None
    if uid is None:
        uid = derive_uid(shard, key)
    if uid in seen_uids:
        problems.append(("duplicate_uid", f"uid {uid} already seen in this shard"))
    row = {
        "uid": uid,
        "uid_derived": uid_derived,
        "key": key,
        "shard": shard,
        "text": text,
        "status": problems[0][0] if problems else "ok",
        "error": _short("; ".join(d for _, d in problems), 2000) if problems else None,
        "original_width": _size(meta.get("original_width")),
        "original_height": _size(meta.get("original_height")),
        "json": meta,
        "_image_bytes": raw.files.get(image_ext) if image_ext else None,
        "_image_ext": image_ext,
    }
    seen_uids.add(uid)
    return row


def parse_sample(raw: RawSample, shard: str, seen_uids: set[str]) -> dict[str, Any]:
    """Turn a RawSample into a row dict (image still encoded) with a status. Never raises: any
    exception confined to the sample gives status ``bad_sample``. ``seen_uids`` is updated."""
    shard = clean_text(str(shard))[0]
    try:
        return _parse(raw, shard, seen_uids)
    except Exception as e:
        key = clean_text(raw.key if isinstance(raw.key, str) else repr(raw.key))[0]
        uid = derive_uid(shard, key)
        problems = [("bad_sample", f"sample could not be parsed: {_exc(e)}")]
        if raw.problem:
            problems.insert(0, (str(raw.problem), _short(str(raw.detail or raw.problem))))
        if uid in seen_uids:
            problems.append(("duplicate_uid", f"uid {uid} already seen in this shard"))
        seen_uids.add(uid)
        return {
            "uid": uid,
            "uid_derived": True,
            "key": key,
            "shard": shard,
            "text": None,
            "status": problems[0][0],
            "error": "; ".join(d for _, d in problems),
            "original_width": None,
            "original_height": None,
            "json": {},
            "_image_bytes": None,
            "_image_ext": None,
        }


def parse_samples(samples: Iterable[RawSample], shard: str) -> Iterator[dict[str, Any]]:
    """Rows of ``samples`` in order (uids checked for duplicates across them). Lazy: one at a time."""
    seen: set[str] = set()
    for raw in samples:
        yield parse_sample(raw, shard, seen)


_ = (
    Decoded,
    decode_image,
    image_header,
    verify_image,
    expand_inputs,
    identity_matches,
    is_url,
    shard_identity,
    shard_names,
)  # re-exported for callers of io.shards
