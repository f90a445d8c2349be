"""Every fault class gives a per-sample status (or a shard error) and the run finishes."""

import json
import tarfile

import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.errors import ConfigError
from altsift.pipeline.score import score
from helpers_shards import jpeg_bytes, png_header_only, sample, uid_of, write_tar


def run(tmp_path, shards, **score_opts):
    cfg = build_config({"signals": ["basic"], "score": {"progress": False, **score_opts}})
    out = tmp_path / "run"
    summary = score([str(p) for p in shards], out, cfg.signals, cfg)
    rows = {}
    for f in sorted((out / "scores").glob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            rows[(r["shard"], r["key"])] = r
    return summary, rows, out


def test_each_sample_fault_gets_a_status(tmp_path):
    good = sample(0)
    items = [
        ("ok", good),
        ("corrupt", {**sample(1), "jpg": jpeg_bytes(seed=1)[:200]}),
        ("zero", {**sample(2), "jpg": b""}),
        ("notimg", {**sample(3), "jpg": b"hello, I am text"}),
        ("bomb", {**sample(4), "jpg": b"", "png": png_header_only(100_000, 100_000)}),
        ("nocap", {k: v for k, v in sample(5).items() if k != "txt"}),
        ("emptycap", {**sample(6), "txt": b"   "}),
        ("badutf", {**sample(7), "txt": b"caf\xe9 \xff"}),
        ("badjson", {**sample(8), "json": b"{nope"}),
        ("nojson", {k: v for k, v in sample(9).items() if k != "json"}),
        ("dup", sample(0)),
        ("noimage", {k: v for k, v in sample(10).items() if k != "jpg"}),
    ]
    p = write_tar(tmp_path / "in" / "00000.tar", items)
    with tarfile.open(p, "a") as tf:  # members that try to escape
        import io

        for name in ("../escape.txt", "/abs/evil.txt"):
            info = tarfile.TarInfo(name)
            data = b"x"
            info.size = 1
            tf.addfile(info, io.BytesIO(data))
    summary, rows, out = run(tmp_path, [p])
    st = {k: r["status"] for (_, k), r in rows.items()}
    assert st["ok"] == "ok"
    assert st["corrupt"] == "bad_image"
    assert st["zero"] == "empty_image"
    assert st["notimg"] == "bad_image"
    assert st["bomb"] in ("image_too_large", "empty_image")  # jpg preferred over png: zero bytes
    assert st["nocap"] == "ok" or st["nocap"] == "missing_caption"
    assert st["emptycap"] == "empty_caption"
    assert st["badutf"] == "bad_utf8"
    assert st["badjson"] == "bad_json"
    assert st["nojson"] == "ok"
    assert rows[("00000", "nojson")]["uid_derived"] is True
    assert st["dup"] == "duplicate_uid"
    assert st["noimage"] == "missing_image"
    assert st["../escape"] == "unsafe_path"
    assert st["/abs/evil"] == "unsafe_path"
    assert all(r["error"] for r in rows.values() if r["status"] != "ok")
    # nothing was written outside the run dir
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path.parent / "escape.txt").exists()
    assert sum(summary.status_counts.values()) == len(items) + 2


def test_missing_caption_uses_json_caption_else_status(tmp_path):
    a = {k: v for k, v in sample(1).items() if k != "txt"}
    a["json"] = json.dumps({"uid": uid_of(1), "caption": "from json caption here"}).encode()
    b = {k: v for k, v in sample(2).items() if k != "txt"}
    p = write_tar(tmp_path / "in" / "00000.tar", [("a", a), ("b", b)])
    _, rows, _ = run(tmp_path, [p])
    assert rows[("00000", "a")]["text"] == "from json caption here"
    assert rows[("00000", "b")]["status"] == "missing_caption"


def test_decompression_bomb_refused(tmp_path):
    s = {**sample(1)}
    del s["jpg"]
    s["png"] = png_header_only(60_000, 60_000)
    p = write_tar(tmp_path / "in" / "00000.tar", [("bomb", s)])
    _, rows, _ = run(tmp_path, [p])
    assert rows[("00000", "bomb")]["status"] == "image_too_large"


def test_small_pixel_limit_marks_large_images(tmp_path):
    p = write_tar(tmp_path / "in" / "00000.tar", [("a", sample(1))])
    _, rows, _ = run(tmp_path, [p], max_image_pixels=1000)
    assert rows[("00000", "a")]["status"] == "image_too_large"


def test_truncated_empty_and_non_tar_shards(tmp_path):
    good = write_tar(tmp_path / "in" / "00000.tar", [(f"k{i}", sample(i)) for i in range(6)])
    data = good.read_bytes()
    trunc = tmp_path / "in" / "00001.tar"
    trunc.write_bytes(data[: int(len(data) * 0.55)])
    empty = tmp_path / "in" / "00002.tar"
    empty.write_bytes(b"")
    garbage = tmp_path / "in" / "00003.tar"
    garbage.write_bytes(b"this is not a tar file at all" * 100)
    summary, rows, out = run(tmp_path, [good, trunc, empty, garbage])
    assert summary.shards_scored == 4
    assert set(summary.shards_with_errors) == {"00001", "00002", "00003"}
    trunc_rows = [r for (s, _), r in rows.items() if s == "00001"]
    assert 0 < len(trunc_rows) < 6
    assert trunc_rows[-1]["status"] in ("truncated_shard", "bad_image", "missing_caption", "missing_image")
    assert (out / "logs" / "shard_errors.jsonl").exists()
    # rerun: shards with errors are recorded as done and skipped (unless --retry-errors)
    summary2, _, _ = run(tmp_path, [good, trunc, empty, garbage])
    assert summary2.shards_skipped == 4


def test_missing_input_fails_fast(tmp_path):
    with pytest.raises(ConfigError, match="input not found"):
        run(tmp_path, [tmp_path / "nope" / "{00000..00002}.tar"])


def test_input_forms(tmp_path):
    from altsift.io.shards import expand_inputs

    for i in range(3):
        write_tar(tmp_path / "d" / f"{i:05d}.tar", [("a", sample(i))])
    d = tmp_path / "d"
    assert len(expand_inputs([str(d)])) == 3
    assert len(expand_inputs([str(d / "{00000..00001}.tar")])) == 2
    assert len(expand_inputs([str(d / "*.tar")])) == 3
    assert len(expand_inputs([str(d / "00000.tar"), str(d / "00000.tar")])) == 1


def test_absurd_sizes_links_and_empty_tar_do_not_stop_the_run(tmp_path):
    import io

    items = [
        (
            "inf",
            {
                **sample(0),
                "json": b'{"uid": "%s", "original_width": Infinity, "original_height": 1e400}'
                % uid_of(0).encode(),
            },
        ),
        ("huge", {**sample(1), "json": json.dumps({"uid": uid_of(1), "original_width": 1e30}).encode()}),
        ("fine", sample(2)),
    ]
    p = write_tar(tmp_path / "in" / "00000.tar", items)
    with tarfile.open(p, "a") as tf:  # a sample made only of links: a row with a status, never followed
        for kind, name in ((tarfile.SYMTYPE, "link.jpg"), (tarfile.LNKTYPE, "link.txt")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tf.addfile(info, io.BytesIO(b""))
    no_members = tmp_path / "in" / "00001.tar"
    with tarfile.open(no_members, "w"):
        pass
    summary, rows, _ = run(tmp_path, [p, no_members])
    st = {k: r for (_, k), r in rows.items()}
    # an absurd json size is ignored and the decoded image's size is used instead
    assert st["inf"]["status"] == "ok" and (st["inf"]["original_width"], st["inf"]["original_height"]) == (
        256,
        224,
    )
    assert st["huge"]["status"] == "ok" and st["huge"]["original_width"] == 256
    assert st["link"]["status"] == "unsafe_path" and "link" in st["link"]["error"]
    assert summary.shards_with_errors["00001"] == "empty shard: no samples"


def test_unexpected_error_costs_one_shard_and_a_rerun_retries_it(tmp_path, monkeypatch):
    from altsift.pipeline import shard_job

    shards = [
        write_tar(tmp_path / "in" / f"{s:05d}.tar", [(f"k{s}{i}", sample(s * 10 + i)) for i in range(3)])
        for s in range(3)
    ]
    real = shard_job._commit

    def flaky(run_dir, name, *a, **k):
        if name == "00001":
            raise RuntimeError("disk hiccup")
        return real(run_dir, name, *a, **k)

    monkeypatch.setattr(shard_job, "_commit", flaky)
    summary, rows, out = run(tmp_path, shards)
    assert {s for s, _ in rows} == {"00000", "00002"}
    assert "disk hiccup" in summary.shards_with_errors["00001"]
    assert summary.incomplete and summary.run["shards_failed"] == 1 and summary.run["shards_done"] == 2
    logged = [json.loads(x) for x in (out / "logs" / "shard_errors.jsonl").read_text().splitlines()]
    assert any(e["shard"] == "00001" and "disk hiccup" in e["error"] for e in logged)
    monkeypatch.setattr(shard_job, "_commit", real)
    summary2, rows2, _ = run(tmp_path, shards)
    assert summary2.shards_skipped == 2 and summary2.shards_scored == 1
    assert len(rows2) == 9 and {s for s, _ in rows2} == {"00000", "00001", "00002"}
    assert (
        not summary2.incomplete and summary2.run["shards_done"] == 3 and summary2.run["failed_shards"] == {}
    )
