"""The shard job's rules: fail fast on run-level problems, resume safety, corrupt tables, honest exit codes."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import scoring_helpers
from altsift.config import build_config
from altsift.errors import ConfigError, ModelNotFoundError
from altsift.io import tables
from altsift.pipeline.score import score
from helpers_shards import jpeg_bytes, make_shards, sample, write_tar

DEMO = Path(__file__).parents[1] / "src" / "altsift" / "assets" / "demo" / "shards"


def cfg(signals, score_opts=None, **extra):
    return build_config(
        {"signals": signals, "score": {"progress": False, "batch_size": 4, **(score_opts or {})}, **extra}
    )


def tables_of(run_dir: Path) -> dict[str, list[dict]]:
    return {f.stem: pq.read_table(f).to_pylist() for f in sorted((run_dir / "scores").glob("*.parquet"))}


def cli_main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the real entry point in-process (so a test can patch the file system); returns (code, out, err)."""
    from altsift.cli import main

    monkeypatch.setattr(sys, "argv", ["altsift", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


# ----------------------------------------------------------------------------- run-level failures
def test_model_that_does_not_load_stops_before_any_shard_is_read(tmp_path, monkeypatch, capsys):
    """`altsift score demo_shards --signals clip --set clip.model=/nonexistent`: one load attempt, no shard
    read, exit 2 with the ModelNotFoundError text, nothing written as if scored."""
    import altsift.signals.clip as clip_mod
    from altsift.pipeline import shard_job

    calls, read = [], []
    real = clip_mod.load_model
    monkeypatch.setattr(clip_mod, "load_model", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    monkeypatch.setattr(shard_job, "open_shard", lambda *a, **k: read.append(1))
    code, _, err = cli_main(
        monkeypatch,
        capsys,
        "score",
        DEMO,
        "--out",
        tmp_path / "run",
        "--signals",
        "clip",
        "--set",
        "clip.model=/nonexistent",
        "--set",
        "score.progress=false",
    )
    assert (
        code == 2 and "could not load the image_text model '/nonexistent'" in err and "Traceback" not in err
    )
    assert err.count("could not load") == 1
    assert calls == [1] and read == []
    assert not (tmp_path / "run" / "scores").exists() and not (tmp_path / "run" / "run.json").exists()
    # the library call raises the same error
    c = cfg(["basic", "clip"], clip={"model": str(tmp_path / "nonexistent")})
    with pytest.raises(ModelNotFoundError):
        score([str(DEMO)], tmp_path / "run", c.signals, c)


def test_signal_failing_on_every_row_is_not_recorded_and_a_rerun_retries_it(tmp_path, monkeypatch):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=2, per_shard=5)]
    run = tmp_path / "run"
    c = cfg(["basic", "test_fragile"])
    monkeypatch.setattr(scoring_helpers.FragileSignal, "broken", True)
    s = score(shards, run, c.signals, c)
    assert s.incomplete and set(s.shards_with_errors) == {"00000", "00001"}
    assert "device lost" in s.shards_with_errors["00000"]
    t = pq.read_table(run / "scores" / "00000.parquet")
    assert set(tables.table_signals(t)) == {"basic"}  # not recorded as computed
    assert tables.shard_meta(t)["failed_signals"]["test_fragile"].endswith("RuntimeError: device lost")
    assert set(t.column("status").to_pylist()) == {"error_test_fragile"}
    assert s.run["shards_failed"] == 2 and s.run["shards_done"] == 0
    # the cause is fixed (same options): a plain rerun computes the signal, keeps basic
    monkeypatch.setattr(scoring_helpers.FragileSignal, "broken", False)
    s2 = score(shards, run, c.signals, c)
    assert not s2.incomplete and s2.signals_computed == {"test_fragile": 10}
    rows = tables_of(run)["00000"]
    assert {r["status"] for r in rows} == {"ok"} and all(r["fragile"] for r in rows)
    assert s2.run["shards_done"] == 2 and s2.run["failed_shards"] == {}


def test_rows_whose_signal_failed_are_retried(tmp_path, monkeypatch):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=1, per_shard=5)]
    run = tmp_path / "run"
    c = cfg(["basic", "test_fragile"])
    monkeypatch.setattr(scoring_helpers.FragileSignal, "bad_words", ("number 2 ",))
    score(shards, run, c.signals, c)
    assert [r["status"] for r in tables_of(run)["00000"]] == ["ok", "ok", "error_test_fragile", "ok", "ok"]
    monkeypatch.setattr(scoring_helpers.FragileSignal, "bad_words", ())
    s = score(shards, run, c.signals, c)  # a per-row fault is recorded; without the flag the shard is done
    assert s.shards_skipped == 1
    s = score(shards, run, c.signals, c, retry_errors=True)
    assert s.signals_computed == {"test_fragile": 5}  # basic kept
    assert [r["status"] for r in tables_of(run)["00000"]] == ["ok"] * 5
    # a changed fingerprint also retries failed rows
    monkeypatch.setattr(scoring_helpers.FragileSignal, "bad_words", ("number 2 ",))
    c2 = cfg(["basic", "test_fragile"], test_fragile={"scale": 2.0})
    score(shards, run, c2.signals, c2)
    monkeypatch.setattr(scoring_helpers.FragileSignal, "bad_words", ())
    c3 = cfg(["basic", "test_fragile"], test_fragile={"scale": 3.0})
    s = score(shards, run, c3.signals, c3)
    rows = tables_of(run)["00000"]
    assert [r["status"] for r in rows] == ["ok"] * 5 and rows[2]["fragile"] == 3.0 * len(rows[2]["text"])


# ----------------------------------------------------------------------------- resume safety
def test_a_different_file_under_the_same_name_is_scored(tmp_path):
    a = make_shards(tmp_path / "A", n_shards=2, per_shard=3, start=0)
    b = make_shards(tmp_path / "B", n_shards=2, per_shard=3, start=100)
    run = tmp_path / "run"
    c = cfg(["basic"])
    score([str(tmp_path / "A")], run, c.signals, c)
    s = score([str(tmp_path / "B")], run, c.signals, c)
    assert s.shards_scored == 2 and s.shards_skipped == 0
    uids = {r["uid"] for rows in tables_of(run).values() for r in rows}
    from helpers_shards import uid_of

    assert uids == {uid_of(i) for i in range(100, 106)}
    meta = tables.shard_meta(pq.read_schema(run / "scores" / "00000.parquet"))
    assert meta["identity"]["path"] == str(b[0].resolve()) and meta["identity"]["size"] == b[0].stat().st_size
    assert meta["path"] == str(b[0].resolve())
    # both folders in one run: names are kept apart, nothing is skipped
    s = score([str(tmp_path / "A"), str(tmp_path / "B")], tmp_path / "both", c.signals, c)
    assert s.shards_scored == 4 and len(tables_of(tmp_path / "both")) == 4
    assert a[0].exists()


def test_options_that_change_statuses_are_compared_on_resume(tmp_path):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=1, per_shard=3)]
    run = tmp_path / "run"
    score(shards, run, ["basic"], cfg(["basic"]))
    s = score(shards, run, ["basic"], cfg(["basic"], {"max_image_pixels": 1000}))
    assert s.shards_scored == 1
    assert {r["status"] for r in tables_of(run)["00000"]} == {"image_too_large"}
    s = score(shards, run, ["basic"], cfg(["basic"], {"max_image_pixels": 1000}))
    assert s.shards_skipped == 1
    s = score(shards, run, ["basic"], cfg(["basic"], {"max_image_pixels": 1000, "max_decode_side": 64}))
    assert s.shards_scored == 1
    for bad in ({"max_image_pixels": -1}, {"max_decode_side": 0}, {"max_image_pixels": 0}):
        with pytest.raises(ConfigError):
            cfg(["basic"], bad)


def _corrupt(kind: str, path: Path) -> None:
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "wrong_schema":
        t = pq.read_table(path)
        t = t.set_column(t.column_names.index("status"), "status", pa.array(range(t.num_rows)))
        pq.write_table(t, path)
    elif kind == "row_count":
        t = pq.read_table(path)
        pq.write_table(t.slice(0, t.num_rows - 1), path)  # metadata still says the full count
    elif kind == "garbage":
        path.write_bytes(b"PAR1 not really")


@pytest.mark.parametrize("kind", ["truncated", "wrong_schema", "row_count", "garbage"])
def test_corrupt_table_is_moved_aside_and_rescored(tmp_path, kind, caplog):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=2, per_shard=4)]
    run = tmp_path / "run"
    c = cfg(["basic"])
    score(shards, run, c.signals, c)
    clean = tables_of(run)
    _corrupt(kind, run / "scores" / "00001.parquet")
    with caplog.at_level("WARNING"):
        s = score(shards, run, c.signals, c)
    assert s.shards_scored == 1 and s.shards_skipped == 1 and s.tables_quarantined == ["00001"]
    assert any("corrupt" in r.message and "00001" in r.message for r in caplog.records)
    moved = list((run / "scores" / ".corrupt").glob("00001.*.parquet"))
    assert len(moved) == 1
    assert tables_of(run) == clean and not s.incomplete
    # the run directory still opens as one dataset (the quarantine folder is not part of it)
    assert len(pd.read_parquet(run / "scores")) == 8 or kind  # pandas reads the folder
    assert tables.load_pool(run).shape[0] == 8


def test_all_null_signal_column_keeps_its_declared_type(tmp_path):
    good = make_shards(tmp_path / "in", n_shards=1, per_shard=3)
    broken = write_tar(
        tmp_path / "in" / "00001.tar", [(f"b{i}", {**sample(50 + i), "jpg": b"broken"}) for i in range(3)]
    )
    run = tmp_path / "run"
    c = cfg(["basic", "test_pixel_mean"])
    score([str(p) for p in (*good, broken)], run, c.signals, c)
    t1 = pq.read_table(run / "scores" / "00001.parquet")
    assert t1.column("pixel_mean").null_count == 3 and t1.schema.field("pixel_mean").type == pa.float64()
    ds = pads.dataset(run / "scores", format="parquet")
    assert ds.to_table().num_rows == 6
    df = pd.read_parquet(run / "scores")
    assert len(df) == 6 and df["pixel_mean"].notna().sum() == 3


def test_arrays_stay_row_aligned_when_a_batch_has_no_images(tmp_path):
    """A first batch without any image returns (n, 0) arrays (as clip does): the shard still gets one
    (rows, d) array with NaN rows, and a rerun skips it."""
    items = [(f"b{i}", {**sample(i), "jpg": b"broken"}) for i in range(4)] + [
        (f"g{i}", sample(10 + i)) for i in range(3)
    ]
    shard = write_tar(tmp_path / "in" / "00000.tar", items)
    c = cfg(["test_pixel_mean"], test_pixel_mean={"empty_without_images": True})
    s = score([str(shard)], tmp_path / "run", c.signals, c)
    assert not s.incomplete and s.shards_scored == 1
    import numpy as np

    hist = np.load(tmp_path / "run" / "arrays" / "pixel_hist" / "00000.npy")
    assert hist.shape == (7, 4) and np.isnan(hist[:4]).all() and not np.isnan(hist[4:]).any()
    assert score([str(shard)], tmp_path / "run", c.signals, c).shards_skipped == 1


def test_summary_describes_the_whole_run_directory(tmp_path):
    shards = make_shards(tmp_path / "in", n_shards=3, per_shard=3)
    data = shards[2].read_bytes()
    shards[2].write_bytes(data[: int(len(data) * 0.6)])  # truncated: a read error
    run = tmp_path / "run"
    c = cfg(["basic"])
    s = score([str(p) for p in shards], run, c.signals, c)
    assert s.incomplete and list(s.shards_with_errors) == ["00002"]
    s = score([str(shards[0])], run, c.signals, c)  # only one shard this time
    assert s.shards_total == 1 and s.shards_skipped == 1 and not s.incomplete
    assert s.run["shards"] == 3 and s.run["shards_done"] == 2 and s.run["shards_failed"] == 1
    assert list(s.run["failed_shards"]) == ["00002"]
    on_disk = json.loads((run / "score_summary.json").read_text())
    assert on_disk["run"] == s.run
    manifest = json.loads((run / "run.json").read_text())
    assert set(manifest["shards"]) == {"00000", "00001", "00002"}


# ----------------------------------------------------------------------------- exit codes
def test_cli_exit_3_when_a_shard_failed(tmp_path, monkeypatch, capsys):
    shards = make_shards(tmp_path / "in", n_shards=2, per_shard=3)
    (tmp_path / "in" / "00002.tar").write_bytes(b"")
    code, out, err = cli_main(monkeypatch, capsys, "score", tmp_path / "in", "--out", tmp_path / "run")
    assert code == 3 and "1 shard(s) incomplete" in err and "Traceback" not in err
    assert "shard 00002: ReadError: empty file" in out
    assert len(shards) == 2


def test_cli_out_is_a_file_exits_2(tmp_path, monkeypatch, capsys):
    make_shards(tmp_path / "in", n_shards=1, per_shard=2)
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = cli_main(monkeypatch, capsys, "score", tmp_path / "in", "--out", f)
    assert code == 2 and "is a file" in err and "Traceback" not in err
    code, _, err = cli_main(monkeypatch, capsys, "score", tmp_path / "in", "--out", f / "run")
    assert code == 2 and "is a file" in err
    assert f.read_text() == "x"


@pytest.mark.parametrize(
    "err_no,text",
    [
        (errno.ENOSPC, "no space left on device"),
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only file system"),
    ],
)
def test_cli_environment_errors_exit_4_with_one_line(tmp_path, monkeypatch, capsys, err_no, text):
    make_shards(tmp_path / "in", n_shards=2, per_shard=2)

    def refuse(*a, **k):
        raise OSError(err_no, os.strerror(err_no), str(a[1]) if len(a) > 1 else None)

    monkeypatch.setattr(tables.pq, "write_table", refuse)
    code, _, err = cli_main(
        monkeypatch,
        capsys,
        "score",
        tmp_path / "in",
        "--out",
        tmp_path / "run",
        "--set",
        "score.progress=false",
    )
    assert code == 4 and text in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == err.strip().splitlines()[-1:]
    assert "00000.parquet" in err
    assert not list((tmp_path / "run" / "scores").glob("*"))  # no temp files left behind


def _mount_tmpfs(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_cli_real_full_disk_and_read_only_dir_exit_4(tmp_path, monkeypatch, capsys):
    """A real 1 MB tmpfs filled up, and a real read-only mount (needs root and mount; skipped otherwise)."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    if not _mount_tmpfs(full, "size=1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        assert _mount_tmpfs(ro, "ro,size=1m")
        write_tar(
            tmp_path / "in" / "00000.tar",
            [(f"k{i}", {**sample(i), "jpg": jpeg_bytes(64, 64, i)}) for i in range(40)],
        )
        st = os.statvfs(full)  # leave two pages: the run dir and run.json fit, the table does not
        (full / "filler").write_bytes(b"\1" * (st.f_bavail * st.f_frsize - 2 * 4096))
        code, _, err = cli_main(monkeypatch, capsys, "score", tmp_path / "in", "--out", full / "run")
        assert code == 4 and "no space left on device" in err and "Traceback" not in err
        code, _, err = cli_main(monkeypatch, capsys, "score", tmp_path / "in", "--out", ro / "run")
        assert code == 4 and "read-only file system" in err and "Traceback" not in err
    finally:
        for m in (full, ro):
            subprocess.run(["umount", str(m)], capture_output=True)


# ----------------------------------------------------------------------------- Ray pool sizing (no cluster)
def test_ray_pools_are_sized_per_signal_from_declared_resources():
    from altsift.pipeline.plan import plan_signals
    from altsift.pipeline.ray_runner import size_pools

    c = build_config({"signals": ["basic", "clip"], "clip": {"model": "x"}})
    plans = plan_signals(c.signals, c)
    specs, workers = size_pools(plans, c.score.ray, {"CPU": 32.0, "GPU": 8.0})
    by = {s.signal: s for s in specs}
    assert by["clip"].num_gpus == 1 and by["clip"].num_actors == 8 and workers == 16
    assert by["basic"].num_gpus == 0 and by["basic"].num_cpus == 1 and 1 <= by["basic"].num_actors <= workers
    specs, _ = size_pools(plans, c.score.ray, {"CPU": 4.0})  # no GPUs: nobody asks for one
    assert all(s.num_gpus == 0 for s in specs)
    c = build_config(
        {
            "signals": ["basic", "clip"],
            "clip": {"model": "x", "device": "cpu"},
            "score": {
                "ray": {
                    "read_parallelism": 3,
                    "signals": {"basic": {"num_actors": 5, "num_cpus": 0.5}, "clip": {"num_cpus": 4}},
                }
            },
        }
    )
    specs, workers = size_pools(plan_signals(c.signals, c), c.score.ray, {"CPU": 64.0, "GPU": 8.0})
    by = {s.signal: s for s in specs}
    assert workers == 3 and by["clip"].num_gpus == 0 and by["clip"].num_cpus == 4  # device=cpu: no GPU
    assert by["basic"].num_actors == 5 and by["basic"].num_cpus == 0.5
    with pytest.raises(ConfigError, match="num_actors"):
        build_config({"score": {"ray": {"signals": {"basic": {"num_actors": 0}}}}})
