"""Resume after a kill, and adding a signal to an existing run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import scoring_helpers
from altsift.config import build_config
from altsift.io.tables import table_signals
from altsift.pipeline.score import score
from helpers_shards import make_shards

HERE = Path(__file__).parent


def tables_of(run_dir: Path) -> dict[str, list[dict]]:
    return {f.stem: pq.read_table(f).to_pylist() for f in sorted((run_dir / "scores").glob("*.parquet"))}


def test_kill_and_resume_gives_identical_tables(tmp_path):
    shards = make_shards(tmp_path / "in", n_shards=6, per_shard=8)
    args = [str(p) for p in shards]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "scoring_helpers.py"), str(killed), "0.15", *args], env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((killed / "scores").glob("*.parquet")) if (killed / "scores").exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list((killed / "scores").glob("*.parquet")))
    assert 2 <= partial < 6, "the kill should land mid-run"
    # a half-written temp table, as a kill during a write leaves one, must be ignored by the resumed run
    (killed / "scores" / ".00005.parquet.deadbeef.tmp").write_bytes(b"PAR1 half written")
    subprocess.run(
        [sys.executable, str(HERE / "scoring_helpers.py"), str(killed), "0", *args], env=env, check=True
    )
    resumed = json.loads((killed / "score_summary.json").read_text())
    assert (
        resumed["shards_skipped"] >= partial - 1 and resumed["run"]["shards_done"] == 6
    )  # finished tables kept
    clean = tmp_path / "clean"
    subprocess.run(
        [sys.executable, str(HERE / "scoring_helpers.py"), str(clean), "0", *args], env=env, check=True
    )
    a, b = tables_of(killed), tables_of(clean)
    assert a == b
    uids = [r["uid"] for rows in a.values() for r in rows]
    assert len(uids) == len(set(uids)) == 48
    for shard in a:
        ha = np.load(killed / "arrays" / "pixel_hist" / f"{shard}.npy")
        hb = np.load(clean / "arrays" / "pixel_hist" / f"{shard}.npy")
        assert np.array_equal(ha, hb) and len(ha) == 8


def cfg(signals, **extra):
    return build_config({"signals": signals, "score": {"progress": False, "batch_size": 4}, **extra})


def test_adding_a_signal_computes_only_it(tmp_path):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=2, per_shard=5)]
    run = tmp_path / "run"
    c = cfg(["basic"])
    score(shards, run, c.signals, c)
    before = tables_of(run)
    scoring_helpers.PixelMeanSignal.calls = 0
    c2 = cfg(["test_pixel_mean"])
    s2 = score(shards, run, c2.signals, c2)
    assert s2.signals_computed == {"test_pixel_mean": 10}
    assert scoring_helpers.PixelMeanSignal.calls > 0
    after = tables_of(run)
    for shard, rows in after.items():
        for old, new in zip(before[shard], rows, strict=True):
            assert {k: new[k] for k in old} == old  # basic columns untouched
            assert new["pixel_mean"] is not None
    meta = table_signals(pq.read_table(run / "scores" / "00000.parquet"))
    assert set(meta) == {"basic", "test_pixel_mean"}
    # nothing left to do: every shard is skipped, no signal is even loaded
    scoring_helpers.PixelMeanSignal.calls = 0
    s3 = score(shards, run, c2.signals, c2)
    assert s3.shards_skipped == 2 and scoring_helpers.PixelMeanSignal.calls == 0


def test_changed_options_recompute_that_signal_and_dependents(tmp_path):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=1, per_shard=4)]
    run = tmp_path / "run"
    c = cfg(["test_text_len"])  # pulls in basic first
    s = score(shards, run, c.signals, c)
    assert set(s.signals_computed) == {"basic", "test_text_len"}
    rows = tables_of(run)["00000"]
    assert all(r["words_x2"] == 2 * r["caption_num_words"] for r in rows)
    c2 = cfg(["test_text_len"], basic={"min_words": 5})
    s2 = score(shards, run, c2.signals, c2)
    assert set(s2.signals_computed) == {"basic", "test_text_len"}
    c3 = cfg(["test_text_len"], basic={"min_words": 5, "batch_size": 7})  # runtime-only option
    s3 = score(shards, run, c3.signals, c3)
    assert s3.shards_skipped == 1


def test_failing_signal_isolates_bad_rows(tmp_path):
    from typing import ClassVar

    import pyarrow as pa

    from altsift.signals.base import Signal
    from altsift.signals.registry import register_signal

    @register_signal
    class Flaky(Signal):
        name: ClassVar[str] = "test_flaky"
        needs_image: ClassVar[bool] = False
        column_types: ClassVar[dict] = {"flaky": pa.float64()}

        def __call__(self, batch):
            if any("number 2 " in (t or "") for t in batch["text"]):
                raise RuntimeError("cannot score sample 2")
            return {"flaky": [1.0] * len(batch["text"])}

    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=1, per_shard=5)]
    c = cfg(["test_flaky"])
    s = score(shards, tmp_path / "run", c.signals, c)
    rows = tables_of(tmp_path / "run")["00000"]
    assert [r["status"] for r in rows] == ["ok", "ok", "error_test_flaky", "ok", "ok"]
    assert [r["flaky"] for r in rows] == [1.0, 1.0, None, 1.0, 1.0]
    assert "cannot score sample 2" in rows[2]["error"]
    assert s.status_counts == {"ok": 4, "error_test_flaky": 1}
    # adding another signal later keeps the failure on record (the flaky signal is not rerun)
    c2 = cfg(["basic"])
    score(shards, tmp_path / "run", c2.signals, c2)
    rows = tables_of(tmp_path / "run")["00000"]
    assert rows[2]["status"] == "error_test_flaky" and rows[2]["flaky"] is None
