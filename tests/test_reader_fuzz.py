"""Property tests of the shard reader over mutated real shards and generated hostile ones.

Property: for any bytes given as a shard, reading never raises; every key group read becomes
exactly one sample with a status from STATUS_CODES (or the shard reports an error of a documented
kind); every string bound for a table is valid UTF-8 and the rows make a parquet table.

Bounded for CI: a fixed number of examples, no deadline (the box is shared), no example database;
under CI (``CI`` set) the examples are derandomized so a run is reproducible.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altsift.io.images import decode_image
from altsift.io.schema import BASE_TYPES
from altsift.io.shards import (
    SHARD_ERROR_KINDS,
    STATUS_CODES,
    ReadLimits,
    clean_text,
    open_shard,
    parse_samples,
)
from helpers_hostile import nested_json
from helpers_shards import jpeg_bytes, uid_of

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
LIMITS = ReadLimits(max_member_bytes=64 * 1024, max_sample_bytes=96 * 1024, max_header_bytes=8192)
TYPES = BASE_TYPES  # the score table's base columns, as the pipeline declares them


def _base_shard() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for i in range(4):
            js = {
                "uid": uid_of(i),
                "original_width": 32,
                "original_height": 24,
                "caption": f"json caption {i}",
            }
            for ext, data in (
                ("jpg", jpeg_bytes(32, 24, seed=i)),
                ("txt", f"a small caption {i}".encode()),
                ("json", json.dumps(js).encode()),
            ):
                ti = tarfile.TarInfo(f"{i:09d}.{ext}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


BASE = _base_shard()
BASE_GZ = gzip.compress(BASE)


def check(data: bytes, decode: bool = False) -> tuple[list, list[dict], ShardOutcome]:
    """Read ``data`` as a shard and assert every invariant; returns (raw samples, rows, outcome)."""
    with open_shard(io.BytesIO(data), LIMITS) as stream:
        samples = list(stream)
    assert stream.samples == len(samples)
    if stream.error is not None:
        assert stream.error_kind in SHARD_ERROR_KINDS
        stream.error.encode("utf-8")
    else:
        assert stream.error_kind is None and samples
    seen_keys: set[str] = set()
    for i, s in enumerate(samples):
        assert s.index == i
        s.key.encode("utf-8")
        assert s.problem is None or s.problem in STATUS_CODES
        if s.key in seen_keys:
            assert s.problem == "duplicate_key" or "appeared earlier" in (s.detail or "")
        seen_keys.add(s.key)
        assert sum(len(v) for v in s.files.values()) <= LIMITS.max_sample_bytes
    if stream.error is not None and samples:
        last = samples[-1]
        assert last.problem == "truncated_shard" or "shard ended while reading" in (last.detail or "")
    rows = list(parse_samples(samples, "00000"))
    assert len(rows) == len(samples)
    assert [r["key"] for r in rows] == [s.key for s in samples]
    for r in rows:
        assert r["status"] in STATUS_CODES
        assert (r["status"] == "ok") == (r["error"] is None)
        if decode and r["status"] == "ok":
            d = decode_image(r["_image_bytes"], 10_000_000, 64)
            assert d.status is None or d.status in STATUS_CODES
    table = pa.table({c: pa.array([r[c] for r in rows], type=t) for c, t in TYPES.items()})
    pq.write_table(table, io.BytesIO())
    json.dumps([r["json"] for r in rows], default=str).encode("utf-8")
    return samples, rows, ShardOutcome(stream.error, stream.error_kind)


class ShardOutcome:
    def __init__(self, error: str | None, kind: str | None) -> None:
        self.error, self.kind = error, kind


# ----------------------------------------------------------------------------- mutated real shards

_edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**7), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**7), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**7), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**7), st.binary(min_size=1, max_size=600)),
    st.tuples(st.just("delete"), st.integers(0, 10**7), st.integers(1, 2000)),
    st.tuples(st.just("zero_block"), st.integers(0, 10**7), st.just(0)),
)


def _apply(data: bytes, edits: list) -> bytes:
    b = bytearray(data)
    for op, pos, val in edits:
        if not b:
            break
        pos %= len(b)
        if op == "flip":
            b[pos] ^= 1 << val
        elif op == "set":
            b[pos] = val
        elif op == "cut":
            del b[pos:]
        elif op == "insert":
            b[pos:pos] = val
        elif op == "delete":
            del b[pos : pos + val]
        elif op == "zero_block":
            start = pos - pos % 512
            b[start : start + 512] = bytes(min(512, len(b) - start))
    return bytes(b)


@settings(FUZZ, max_examples=250)
@given(st.lists(_edit, min_size=1, max_size=6), st.booleans())
def test_mutated_real_shards_never_raise(edits, compressed):
    check(_apply(BASE_GZ if compressed else BASE, edits), decode=True)


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data):
    check(data)


def _data_end(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        last = tf.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


BASE_END = _data_end(BASE)  # where the end-of-archive marker starts


@settings(FUZZ, max_examples=60)
@given(st.integers(1, len(BASE)))
def test_truncated_shards_keep_a_prefix(cut):
    samples, _, outcome = check(BASE[:cut])
    keys = [f"{i:09d}" for i in range(4)]
    assert [s.key for s in samples] == keys[: len(samples)]
    assert (outcome.error is not None) == (cut < BASE_END + 512)  # no silent truncation
    assert all(set(s.files) == {"jpg", "txt", "json"} for s in samples if s.problem is None)


# ------------------------------------------------------------------------ generated hostile shards

_name_bytes = st.one_of(
    st.sampled_from([b"000000001", b"a/b", b"./x", b"../up", b"/abs/path", b"dir/", b"k", b"k.k", b"", b"."]),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b),
    st.text(min_size=1, max_size=30)
    .map(lambda t: t.encode("utf-8", "surrogatepass"))
    .filter(lambda b: b"\0" not in b),
)
_ext = st.sampled_from(["jpg", "JPG", "txt", "json", "png", "webp", "npy", "", "tar.gz", "a.b"])


def _json_payload(kind: int, n: int) -> bytes:
    return [
        nested_json(2000 + n % 3000),
        b'{"caption": "\\ud800 lone", "uid": "%s"}' % uid_of(n).encode(),
        b'{"uid": 5, "original_width": 1e400, "original_height": -3}',
        b'["not", "an", "object"]',
        b'{"n": ' + b"9" * 5000 + b"}",
        b'{"caption": "\\udcff\\udc80", "k\\ud83d": {"\\ud800": ["\\udfff"]}}',
        b"\xff\xfe not utf8",
        b"",
    ][kind % 8]


_payload = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.integers(0, 7), st.integers(0, 10**6)).map(lambda t: _json_payload(*t)),
    st.sampled_from([b"\xff\xfe\xfd", "caf\u00e9".encode("latin-1"), b"  ", b"ok caption"]),
    st.integers(64 * 1024 - 2, 64 * 1024 + 2).map(lambda n: b"x" * n),  # around max_member_bytes
    st.just(jpeg_bytes(16, 16)),
)
_kind = st.sampled_from(["file"] * 8 + ["dir", "symlink", "hardlink", "fifo"])
_member = st.tuples(_name_bytes, _ext, _payload, _kind)


def _build(members: list, fmt: int) -> tuple[bytes, list[str]]:
    """A tar of ``members`` and the key groups it must read as (an independent statement of the rule)."""
    buf = io.BytesIO()
    expected: list[str] = []
    cur: str | None = None
    exts: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for raw_name, ext, payload, kind in members:
            name = raw_name.decode("utf-8", "surrogateescape") + (f".{ext}" if ext else "")
            if kind != "dir":
                name = name.rstrip("/")  # tarfile reads a trailing slash as a directory in some formats
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif kind in ("symlink", "hardlink"):
                ti.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                ti.linkname = "/etc/passwd"
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            else:
                ti.size = len(payload)
            try:
                tf.addfile(ti, io.BytesIO(payload) if kind == "file" else None)
            except (ValueError, UnicodeError):  # a name or field this tar format cannot hold
                continue
            stored = ti.name
            if kind == "dir":
                continue
            base_at = stored.rfind("/") + 1
            dot = stored.find(".", base_at)
            key, e = (stored, "") if dot < 0 else (stored[:dot], stored[dot + 1 :].lower())
            key = clean_text(key)[0]
            if cur is None or key != cur or e in exts:
                expected.append(key)
                cur, exts = key, set()
            exts.add(e)
    return buf.getvalue(), expected


@settings(FUZZ, max_examples=200)
@given(st.lists(_member, max_size=12), st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_generated_shards_give_one_sample_per_key_group(members, fmt):
    data, expected = _build(members, fmt)
    samples, rows, outcome = check(data)
    if not expected:
        assert samples == [] and outcome.kind == "empty"
        return
    assert outcome.error is None, outcome.error
    assert [s.key for s in samples] == expected
    assert len({r["uid"] for r in rows if r["status"] == "ok"}) == sum(r["status"] == "ok" for r in rows)


@settings(FUZZ, max_examples=40)
@given(st.lists(_member, min_size=1, max_size=8), st.integers(0, 10**6))
def test_generated_then_gzipped_and_cut(members, cut):
    data, expected = _build(members, tarfile.GNU_FORMAT)
    gz = gzip.compress(data)
    samples, _, _ = check(gz[: cut % (len(gz) + 1)])
    assert [s.key for s in samples] == expected[: len(samples)]
