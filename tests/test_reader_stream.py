"""The shard reader: streaming with bounded memory, every sample once with a status, no lost shard."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.errors import ConfigError
from helpers_hostile import (
    caption_json,
    gz_bomb_tar,
    nested_json,
    peak_rss_mb,
    sparse_tar,
    tar_body,
    tar_bytes,
)
from helpers_shards import sample, uid_of, write_tar

# ------------------------------------------------------------------------------------ bounded memory


def test_sparse_tar_of_huge_members_is_read_with_low_memory(tmp_path):
    """A 5 KB sparse tar claiming 4 x 250 MB members peaked at 1.3 GB when read whole."""
    p = sparse_tar(tmp_path / "sparse.tar")
    assert p.stat().st_size < 10_000
    peak, out = peak_rss_mb(f"""
        from altsift.io.shards import read_shard
        r = read_shard({str(p)!r})
        print("ROWS", [(s.key, s.problem, sorted(s.files)) for s in r.samples], r.error)
    """)
    assert peak < 300, f"peak RSS {peak:.0f} MB"
    assert "('s0', 'member_too_large', [])" in out and "('s3', 'member_too_large', [])" in out


def test_stream_holds_one_sample_at_a_time(tmp_path):
    """With budgets that admit each 100 MB member, streaming keeps one sample, not the shard."""
    p = sparse_tar(tmp_path / "sparse.tar", n=4, real_size=100 * 2**20)
    peak, out = peak_rss_mb(f"""
        from altsift.io.shards import ReadLimits, open_shard
        lim = ReadLimits(max_member_bytes=128 * 2**20, max_sample_bytes=128 * 2**20)
        sizes = []
        with open_shard({str(p)!r}, lim) as stream:
            for s in stream:
                sizes.append(len(s.files["jpg"]))
        print("SIZES", sizes, stream.error)
    """)
    assert f"SIZES {[100 * 2**20] * 4} None" in out
    # measured: ~340 MB (the caller's previous sample + the one being joined from its pieces + ~40 MB
    # of interpreter); holding the shard, as read_shard does, peaks at ~540 MB
    assert peak < 440, f"peak RSS {peak:.0f} MB: more than one 100 MB sample held"


def test_gzip_bomb_is_refused_quickly_with_low_memory(tmp_path):
    """800 MB of zeros in an 0.8 MB .tar.gz: the ratio guard stops it, the sample in progress is flagged."""
    p = gz_bomb_tar(tmp_path / "bomb.tar.gz")
    assert p.stat().st_size < 2 * 2**20
    peak, out = peak_rss_mb(f"""
        from altsift.io.shards import read_shard
        r = read_shard({str(p)!r})
        print("ROWS", [(s.key, s.problem, s.detail) for s in r.samples])
        print("ERROR", getattr(r, "error_kind", None), r.error)
    """)
    assert peak < 300, f"peak RSS {peak:.0f} MB"
    assert "ERROR corrupt" in out and "decompression bomb" in out
    assert "truncated_shard" in out or "shard ended while reading this sample" in out


def test_oversized_members_in_gzip_are_skipped_unread(tmp_path):
    from altsift.io.shards import ReadLimits, read_shard

    p = gz_bomb_tar(tmp_path / "big.tar.gz", n=2, member_size=40 * 2**20)
    r = read_shard(p, limits=ReadLimits(max_compression_ratio=1e9))
    assert r.error is None
    assert [(s.key, s.problem, s.files) for s in r.samples] == [
        ("z0", "member_too_large", {"txt": b"hello"}),
        ("z1", "member_too_large", {"txt": b"hello"}),
    ]


def test_sample_budget_counts_all_members(tmp_path):
    from altsift.io.shards import ReadLimits, read_shard

    data = tar_bytes([("a.jpg", b"x" * 600), ("a.png", b"y" * 600), ("a.txt", b"cap"), ("b.txt", b"ok")])
    r = read_shard(io.BytesIO(data), limits=ReadLimits(max_member_bytes=1000, max_sample_bytes=1000))
    a, b = r.samples
    assert a.problem == "sample_too_large" and set(a.files) == {"jpg", "txt"}
    assert b.problem is None and b.files == {"txt": b"ok"}


def test_oversized_tar_headers_are_a_shard_error_not_memory():
    from altsift.io.shards import ReadLimits, read_shard

    ok = tar_body([("k0.txt", b"fine")])
    pax = tarfile.TarInfo("p.txt")
    pax.pax_headers = {"comment": "x" * 2000}
    for tail, fmt in (([("d/" * 40_000 + "x.txt", b"a")], tarfile.GNU_FORMAT), ([pax], tarfile.PAX_FORMAT)):
        data = ok + tar_body(tail, fmt) + b"\0" * 1024
        r = read_shard(io.BytesIO(data), limits=ReadLimits(max_header_bytes=1024))
        assert r.error_kind == "corrupt" and "header limit" in r.error, r.error
        assert [s.key for s in r.samples] == ["k0"]
        assert r.samples[0].problem == "truncated_shard"
        assert read_shard(io.BytesIO(data)).error is None  # fine under the default limit


def test_unneeded_extensions_are_streamed_past(tmp_path):
    from altsift.io.shards import NEEDED_EXTS, read_shard

    data = tar_bytes([("a.jpg", b"j"), ("a.npy", b"n" * 5000), ("a.txt", b"t"), ("b.npy", b"n")])
    r = read_shard(io.BytesIO(data), extensions=NEEDED_EXTS)
    assert [(s.key, sorted(s.files)) for s in r.samples] == [("a", ["jpg", "txt"]), ("b", [])]
    assert r.error is None


# ----------------------------------------------------------------------- one bad sample, one status


def _score(tmp_path: Path, shards: list[Path], **opts):
    from altsift.pipeline.score import score

    cfg = build_config({"signals": ["basic"], "score": {"progress": False, **opts}})
    out = tmp_path / "run"
    summary = score([str(p) for p in shards], out, cfg.signals, cfg)
    rows = [r for f in sorted((out / "scores").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return summary, rows


def test_samples_that_used_to_lose_the_shard_get_statuses(tmp_path):
    """Deep json (RecursionError), a non-UTF-8 member name and a json caption with a lone surrogate
    each lost the whole shard, exit 0. Now each is one row with a status; the shard is fine."""
    good = sample(0)
    members: list[tuple[str, bytes]] = []
    for ext, data in good.items():
        members.append((f"k0.{ext}", data))
    deep = sample(1)
    deep["json"] = nested_json(5000)
    members += [(f"k1.{e}", d) for e, d in deep.items()]
    latin = sample(2)
    members += [(f"caf\udce9.{e}", d) for e, d in latin.items()]  # byte 0xE9: not UTF-8
    sur = {k: v for k, v in sample(3).items() if k != "txt"}
    sur["json"] = caption_json(uid_of(3), "a dog \ud800 on grass")
    members += [(f"k3.{e}", d) for e, d in sur.items()]
    members += [(f"k4.{e}", d) for e, d in sample(4).items()]
    p = tmp_path / "in" / "00000.tar"
    p.parent.mkdir()
    p.write_bytes(tar_bytes(members))
    summary, rows = _score(tmp_path, [p])
    assert not summary.shards_with_errors
    by_key = {r["key"]: r for r in rows}
    assert [r["key"] for r in rows] == ["k0", "k1", "caf\\xe9", "k3", "k4"]
    assert by_key["k0"]["status"] == "ok" and by_key["k4"]["status"] == "ok"
    assert by_key["k1"]["status"] == "bad_json" and "deeply" in by_key["k1"]["error"]
    assert by_key["caf\\xe9"]["status"] == "bad_utf8" and "name" in by_key["caf\\xe9"]["error"]
    assert by_key["caf\\xe9"]["uid"] == uid_of(2)  # the json uid is kept
    assert by_key["k3"]["status"] == "bad_utf8" and by_key["k3"]["text"] == "a dog \ufffd on grass"


def test_any_exception_in_one_sample_becomes_bad_sample(monkeypatch):
    import altsift.io.shards as shards

    real = shards._parse_json

    def flaky(data: bytes):
        if b"boom" in data:
            raise MemoryError("simulated")
        return real(data)

    monkeypatch.setattr(shards, "_parse_json", flaky)
    items = [("a", sample(0)), ("b", {**sample(1), "json": b'{"boom": 1}'}), ("c", sample(2))]
    data = tar_bytes([(f"{k}.{e}", d) for k, m in items for e, d in m.items()])
    r = shards.read_shard(io.BytesIO(data))
    rows = list(shards.parse_samples(r.samples, "s"))
    assert [x["status"] for x in rows] == ["ok", "bad_sample", "ok"]
    assert "MemoryError: simulated" in rows[1]["error"] and rows[1]["uid_derived"]


def test_parse_sample_never_raises_on_odd_raw_samples():
    from altsift.io.shards import RawSample, parse_sample

    seen: set[str] = set()
    odd = [RawSample(key="x\udcff", files={"json": "not bytes"}), RawSample(key="y", files={"txt": None})]  # type: ignore[dict-item]
    rows = [parse_sample(r, "s\udc80", seen) for r in odd]
    assert [r["status"] for r in rows] == ["bad_sample", "bad_sample"]
    pa.table({c: [r[c] for r in rows] for c in ("key", "shard", "error")})  # valid UTF-8 throughout


def test_repeated_key_keeps_both_samples(tmp_path):
    """A key repeated later in the tar lost the first sample silently (members were merged by key)."""
    from altsift.io.shards import parse_sample, read_shard

    a1, b, a2 = sample(0, text="first a"), sample(1), sample(2, text="second a")
    p = write_tar(tmp_path / "00000.tar", [("a", a1), ("b", b), ("a", a2)])
    r = read_shard(p)
    seen: set[str] = set()
    rows = [parse_sample(x, "00000", seen) for x in r.samples]
    assert [(x["key"], x["text"], x["status"]) for x in rows] == [
        ("a", "first a", "ok"),
        ("b", sample(1)["txt"].decode(), "ok"),
        ("a", "second a", "duplicate_key"),
    ]


def test_repeated_extension_within_a_group_starts_a_new_sample():
    from altsift.io.shards import read_shard

    data = tar_bytes([("a.jpg", b"1"), ("a.txt", b"x"), ("a.jpg", b"2")])
    r = read_shard(io.BytesIO(data))
    assert [(s.key, s.files.get("jpg"), s.problem) for s in r.samples] == [
        ("a", b"1", None),
        ("a", b"2", "duplicate_key"),
    ]


# ------------------------------------------------------------------------------- damaged shards


def _six(tmp_path: Path) -> bytes:
    return write_tar(tmp_path / "six.tar", [(f"k{i}", sample(i)) for i in range(6)]).read_bytes()


def _file(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "damaged.tar"
    p.write_bytes(data)
    return p


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getmembers()


def test_truncation_mid_member_keeps_earlier_samples(tmp_path):
    from altsift.io.shards import read_shard

    data = _six(tmp_path)
    m = _members(data)[10]  # k3.txt
    r = read_shard(_file(tmp_path, data[: m.offset_data + 2]))
    assert [s.key for s in r.samples] == ["k0", "k1", "k2", "k3"]
    assert [s.problem for s in r.samples] == [None, None, None, "truncated_shard"]
    assert r.error_kind == "corrupt"


def test_truncation_at_a_member_boundary_is_not_silent(tmp_path):
    """Cut right after a member (or inside the next header), tarfile ends quietly: the last sample
    looked complete and the shard clean. Now it is a shard error and the last sample is flagged."""
    from altsift.io.shards import read_shard

    data = _six(tmp_path)
    nxt = _members(data)[9]  # k3.jpg: samples have 3 members each
    for cut in (nxt.offset, nxt.offset + 100):
        r = read_shard(_file(tmp_path, data[:cut]))
        assert r.error is not None and "end-of-archive" in r.error
        assert [s.key for s in r.samples] == ["k0", "k1", "k2"]
        assert r.samples[-1].problem == "truncated_shard"


def test_corrupt_header_mid_shard_is_not_silent(tmp_path):
    from altsift.io.shards import read_shard

    data = bytearray(_six(tmp_path))
    data[_members(bytes(data))[9].offset + 10] ^= 0xFF  # breaks the header checksum
    r = read_shard(_file(tmp_path, bytes(data)))
    assert r.error is not None and r.error_kind == "corrupt"
    assert [s.key for s in r.samples] == ["k0", "k1", "k2"]


def test_truncated_gzip_shard_keeps_earlier_samples(tmp_path):
    import gzip

    from altsift.io.shards import read_shard

    gz = gzip.compress(_six(tmp_path))
    r = read_shard(io.BytesIO(gz[: len(gz) // 2]))
    assert 0 < len(r.samples) < 6 and r.samples[-1].problem == "truncated_shard"
    assert r.error_kind == "corrupt"
    for mode in ("bz2", "xz"):
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode=f"w:{mode}") as tf:
            ti = tarfile.TarInfo("k.txt")
            ti.size = 2
            tf.addfile(ti, io.BytesIO(b"hi"))
        r = read_shard(io.BytesIO(packed.getvalue()))
        assert r.error is None and r.samples[0].files == {"txt": b"hi"}


class FailingReader(io.RawIOBase):
    """A source that raises after ``limit`` bytes, as a network stream that drops mid-read."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit, self.pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.pos >= self.limit:
            raise ConnectionResetError("peer went away")
        n = min(len(b), self.limit - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_source_failure_mid_read_keeps_earlier_samples(tmp_path):
    from altsift.io.shards import open_shard

    data = _six(tmp_path)
    src = FailingReader(data, _members(data)[10].offset_data + 2)
    with open_shard(src) as stream:
        got = [(s.key, s.problem) for s in stream]
    assert got == [("k0", None), ("k1", None), ("k2", None), ("k3", "truncated_shard")]
    assert stream.error_kind == "unavailable" and "peer went away" in stream.error
    assert not src.closed  # a caller's file object is left open


def test_unopenable_empty_and_non_tar_shards(tmp_path):
    from altsift.io.shards import read_shard

    r = read_shard(tmp_path / "missing.tar")
    assert (r.samples, r.error_kind) == ([], "unavailable") and "cannot open shard" in r.error
    r = read_shard(io.BytesIO(b""))
    assert r.samples == [] and r.error_kind == "corrupt"
    r = read_shard(io.BytesIO(b"not a tar at all" * 100))
    assert r.samples == [] and r.error_kind == "corrupt"
    r = read_shard(io.BytesIO(tar_bytes([])))
    assert (r.samples, r.error, r.error_kind) == ([], "empty shard: no samples", "empty")


def test_closing_early_closes_the_file(tmp_path, monkeypatch):
    from altsift.io import shards

    p = write_tar(tmp_path / "00000.tar", [(f"k{i}", sample(i)) for i in range(3)])
    opened = []
    real = shards.open_source

    def spy(*a, **k):
        opened.append(real(*a, **k))
        return opened[-1]

    monkeypatch.setattr(shards, "open_source", spy)
    with shards.open_shard(p) as stream:
        next(stream)
        assert not opened[0].closed
    assert opened[0].closed


# ------------------------------------------------------------------------------ inputs and names


def test_folders_include_compressed_shards(tmp_path):
    """``.tar.gz`` / ``.tgz`` files in a folder input were skipped silently."""
    from altsift.io.shards import expand_inputs, read_shard

    d = tmp_path / "d"
    write_tar(d / "00000.tar", [("a", sample(0))])
    for name in ("00001.tar.gz", "00002.tgz"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for ext, data in sample(1).items():
                ti = tarfile.TarInfo(f"b.{ext}")
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        (d / name).write_bytes(buf.getvalue())
    (d / "notes.txt").write_text("not a shard")
    found = expand_inputs([str(d)])
    assert [Path(f).name for f in found] == ["00000.tar", "00001.tar.gz", "00002.tgz"]
    assert all(Path(f).is_absolute() for f in found)
    assert [s.key for s in read_shard(found[2]).samples] == ["b"]


def test_input_forms_and_missing_inputs(tmp_path):
    from altsift.io.shards import expand_inputs

    for i in range(3):
        write_tar(tmp_path / "d" / f"{i:05d}.tar", [("a", sample(i))])
    d = tmp_path / "d"
    assert len(expand_inputs([f"file://{d}/{{00000..00001}}.tar"])) == 2
    assert len(expand_inputs([str(d / "*.tar"), str(d / "00000.tar")])) == 3
    with pytest.raises(ConfigError, match="input not found: .*00007.tar"):
        expand_inputs([str(d / "{00000..00007}.tar")])


def test_shard_names_are_unique_and_safe():
    from altsift.io.shards import shard_names

    names = shard_names(
        [
            "/data/a/00000.tar",
            "/data/b/00000.tar",
            "s3://bkt/a/00000.tar.gz",
            "/x/00001.tgz",
            "https://host/p/00002.tar?sig=abc&x=1",
            "/x/we ird:na\udce9me.tar",
            "/y/..tar",
            "/z/SHARD.tar",
            "/w/shard.tar",
        ]
    )
    assert names[:5] == ["00000", "b__00000", "a__00000", "00001", "00002"]
    assert names[5] == "we_ird_na_me" and names[6] == "_"
    assert len({n.casefold() for n in names}) == len(names)
    for n in names:
        n.encode("utf-8")
        assert "/" not in n and not n.startswith(".")


def test_shard_identity_changes_with_the_file(tmp_path):
    from altsift.io.shards import identity_matches, shard_identity

    p = write_tar(tmp_path / "00000.tar", [("a", sample(0))])
    a = shard_identity(str(p))
    assert a["path"] == str(p.resolve()) and a["size"] == p.stat().st_size
    json.dumps(a)
    assert identity_matches(a, shard_identity(p))
    write_tar(p, [("a", sample(0)), ("b", sample(1))])
    assert not identity_matches(a, shard_identity(p))
    assert not identity_matches(None, a)
    with pytest.raises(FileNotFoundError):
        shard_identity(tmp_path / "gone.tar")


# ---------------------------------------------------------------------------------- options, docs


@pytest.mark.parametrize(
    "key,value",
    [
        ("max_image_pixels", 0),
        ("max_image_pixels", -5),
        ("max_decode_side", 0),
        ("batch_size", 0),
        ("max_member_bytes", -1),
        ("max_sample_bytes", 0),
        ("decode_threads", 0),
        ("ray", {"num_actors": 0}),
    ],
)
def test_score_options_reject_nonsense(key, value):
    with pytest.raises(ConfigError):
        build_config({"score": {key: value}})


def test_limits_reach_the_reader_through_the_config(tmp_path):
    p = write_tar(
        tmp_path / "in" / "00000.tar", [("a", sample(0)), ("b", {**sample(1), "txt": b"x" * 300_000})]
    )
    _, rows = _score(tmp_path, [p], max_member_bytes=200_000)
    assert [r["status"] for r in rows] == ["ok", "member_too_large"]
    with pytest.raises(ValueError):
        from altsift.io.shards import ReadLimits

        ReadLimits(max_sample_bytes=0)


def test_every_status_is_documented():
    """Every status the reader, parser and decoder can emit is in STATUS_CODES and in the README."""
    import re

    from altsift.io.shards import STATUS_CODES

    root = Path(__file__).parents[1]
    emitted: set[str] = set()
    for f in ("shards.py", "images.py"):
        text = (root / "src" / "altsift" / "io" / f).read_text()
        for pattern in (
            r'\.flag\(\s*"([a-z_0-9]+)"',
            r'problems\.(?:append|insert)\((?:0, )?\("([a-z_0-9]+)"',
            r'problems = \[\("([a-z_0-9]+)"',
            r'Decoded\(None, "([a-z_0-9]+)"',
        ):
            emitted |= set(re.findall(pattern, text))
    assert emitted == set(STATUS_CODES) - {"ok"}, emitted ^ (set(STATUS_CODES) - {"ok"})
    readme = (root / "README.md").read_text()
    assert not [c for c in STATUS_CODES if f"`{c}`" not in readme]
