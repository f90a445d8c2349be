"""Reading pools for selection (issue 12 items 1-2) and select's hostile / unlucky inputs (issue 10)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from altsift.io.pool import PoolFiles
from altsift.io.uids import UID_DTYPE, array_to_uids, load_subset
from altsift.select.base import STEP_KINDS, Pool, get_threshold
from altsift.select.core import SelectRequest, first_occurrence, run_selection, write_selection
from helpers_select import cli, scored_frame, uid, write_meta, write_run

STEP_FIELDS = {
    "name",
    "kind",
    "column",
    "op",
    "threshold",
    "fraction",
    "kept_alone",
    "kept_cumulative",
    "detail",
}


def _spy_columns(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = PoolFiles.batches

    def spy(self, columns, progress=False):
        calls.append(sorted(set(columns)))
        return real(self, columns, progress)

    monkeypatch.setattr(PoolFiles, "batches", spy)
    return calls


def test_reads_only_the_columns_a_request_names_in_one_scan(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frames = [scored_frame(50, 50 * i, rng, sieve_score=rng.uniform(0, 1, 50), aesthetic=rng.uniform(3, 7, 50),
                           big_text=["x" * 200] * 50) for i in range(3)]  # fmt: skip
    run = write_run(tmp_path / "run", frames)
    calls = _spy_columns(monkeypatch)
    req = SelectRequest(where=["aesthetic > 4"], top_fraction={"clip_score": 0.3})
    pool, sel = run_selection(run, req)
    assert calls == [["aesthetic", "clip_score", "status", "uid"]]  # one scan, no text
    calls.clear()
    run_selection(
        run, SelectRequest(fuse={"sieve_score": 0.5, "clip_score": 0.5}, top_fraction={"fused": 0.2})
    )
    assert calls == [["clip_score", "sieve_score", "status", "uid"]]
    calls.clear()
    run_selection(run, SelectRequest(preset="sieve"))  # a preset's declared columns come in the same scan
    assert calls == [["clip_score", "sieve_score", "status", "uid"]]
    # the result equals the same selection computed on a whole in-memory frame
    full = pd.concat(frames, ignore_index=True)
    s = full["clip_score"].to_numpy()
    want = (full["aesthetic"] > 4).to_numpy() & (s >= -np.sort(-s)[int(len(s) * 0.3)])
    assert sel.mask.tolist() == want.tolist()


def test_threshold_is_datacomps_exactly():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 1000, 10_001):
        s = rng.normal(size=n).round(2)  # ties
        s[rng.integers(0, n, max(1, n // 10))] = np.nan
        valid = s[~np.isnan(s)]
        for f in (0.01, 0.3, 0.5, 0.999, 1.0):
            want = -np.sort(-valid)[min(int(len(valid) * f), len(valid) - 1)] if len(valid) else np.inf
            assert get_threshold(s, f) == want


def test_uids_are_uint64_halves_and_dedup_is_exact(tmp_path):
    base = uid(1)
    same_hi = base[:16] + "0" * 16  # shares the high half with `base`, another uid
    rows = [base, same_hi, uid(2), base.upper(), uid(3), "not-a-uid", None, uid(2), "g" * 32, uid(4)]
    status = ["ok"] * 10
    status[4] = "bad_image"
    df = pd.DataFrame({"uid": rows, "status": status, "clip_score": np.linspace(0.1, 1.0, 10)})
    run = write_run(tmp_path / "run", [df.iloc[:5], df.iloc[5:]])  # the repeats cross files
    pool, sel = run_selection(run, SelectRequest())
    # kept: base (0), same_hi (1), uid(2) (2), uid(4) (9); not: upper-case repeat of base (3), bad status (4),
    # invalid uids (5, 6, 8), the second uid(2) (7)
    assert np.flatnonzero(sel.mask).tolist() == [0, 1, 2, 9]
    dedup = next(s for s in sel.steps if s.kind == "dedup")
    assert dedup.detail == {"repeated_uids": 2, "invalid_uids": 3}
    assert any("3 rows have no valid uid" in w for w in sel.warnings)
    hi, lo, valid = pool.uids()
    assert hi.dtype == lo.dtype == np.uint64 and valid.sum() == 7
    assert int(hi[0]) == int(base[:16], 16) and int(lo[0]) == int(base[16:], 16)  # DataComp's u8,u8 split
    write_selection(pool, sel, tmp_path / "s.npy")
    sub = load_subset(tmp_path / "s.npy")
    assert sub.dtype == UID_DTYPE and sorted(array_to_uids(sub)) == sorted([base, same_hi, uid(2), uid(4)])
    # exact on both halves, on many rows
    rng = np.random.default_rng(0)
    hi = rng.integers(0, 50, 10_000).astype(np.uint64)  # many shared high halves
    lo = rng.integers(0, 3, 10_000).astype(np.uint64)
    first = first_occurrence(hi, lo, np.ones(10_000, bool))
    ref = ~pd.DataFrame({"h": hi, "l": lo}).duplicated().to_numpy()
    assert first.tolist() == ref.tolist()


def test_older_tables_with_null_typed_or_missing_columns(tmp_path):
    """A shard whose signal column is all null (typed null by older writers) or absent still reads."""
    a = pa.table({"uid": [uid(i) for i in range(3)], "status": ["ok"] * 3, "clip_score": pa.nulls(3),
                  "lang": pa.nulls(3)})  # fmt: skip
    b = pa.table({"uid": [uid(i) for i in range(3, 6)], "status": ["ok"] * 3, "clip_score": [0.1, 0.5, 0.3],
                  "lang": ["en", "de", "en"]})  # fmt: skip
    c = pa.table({"uid": [uid(i) for i in range(6, 8)], "status": ["ok"] * 2,
                  "clip_score": pa.array([7, 1], pa.int64())})  # fmt: skip
    run = write_run(tmp_path / "run", [a, b, c])
    with pytest.raises(
        (pa.ArrowInvalid, pa.ArrowNotImplementedError)
    ):  # the failure users met with the first file's guessed schema
        import pyarrow.dataset as ds

        ds.dataset(str(run / "scores"), format="parquet").to_table()
    pool, sel = run_selection(run, SelectRequest(where=["lang == 'en' or clip_score > 5"]))
    assert pool.types["clip_score"] == pa.float64() and pool.types["lang"] == pa.string()
    assert np.flatnonzero(sel.mask).tolist() == [3, 5, 6]
    np.testing.assert_array_equal(pool.numeric("clip_score"), [np.nan] * 3 + [0.1, 0.5, 0.3, 7, 1])
    from altsift.io.tables import load_pool

    df = load_pool(run)
    assert len(df) == 8 and df["clip_score"].dtype == np.float64 and df["shard"].nunique() == 3


def test_corrupt_table_is_named(tmp_path, capsys):
    rng = np.random.default_rng(0)
    run = write_run(tmp_path / "run", [scored_frame(200, 200 * i, rng) for i in range(3)])
    bad = run / "scores" / "00001.parquet"
    bad.write_bytes(bad.read_bytes()[:-100])  # truncated: footer gone
    code, _, err = cli(capsys, "select", run, "--top-fraction", "clip_score=0.3")
    assert code == 2 and str(bad) in err and "Traceback" not in err
    # a readable footer with garbage pages: found while scanning, still named
    good = run / "scores" / "00002.parquet"
    pq.write_table(pa.Table.from_pandas(scored_frame(200, 1000, rng)), bad, compression="zstd")
    raw = bytearray(bad.read_bytes())
    mid = len(raw) // 3
    raw[mid : mid + 400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(raw))
    assert pq.read_metadata(bad).num_rows == 200  # the footer still reads
    code, _, err = cli(capsys, "select", run, "--top-fraction", "clip_score=0.3")
    assert code == 2 and str(bad) in err and str(good) not in err, err


def test_top_fraction_and_fuse_inputs(tmp_path, capsys):
    run = write_run(tmp_path / "run", [scored_frame(20)])
    code, _, err = cli(capsys, "select", run, "--top-fraction", "text=0.5")
    assert code == 2 and "'text' holds text, not numbers" in err
    code, _, err = cli(capsys, "select", run, "-t", "clip_score=0.5", "-t", "clip_score=0.3")
    assert code == 2 and "'clip_score' is given twice" in err
    code, _, err = cli(capsys, "select", run, "--top-fraction", "clip_scor=0.5")
    assert code == 2 and "did you mean clip_score" in err
    empty = write_run(tmp_path / "empty", [scored_frame(0)])
    code, out, err = cli(capsys, "select", empty, "--fuse", "clip_score=1", "--top-fraction", "fused=0.2")
    assert code == 0, err
    assert "selected 0 of 0" in out and load_subset(empty / "subset.npy").shape == (0,)


def test_metadata_without_uid_and_bad_subset_files(tmp_path, capsys):
    meta = write_meta(tmp_path / "meta", [pd.DataFrame({"text": ["a"], "clip_b32_similarity_score": [0.3]})])
    code, _, err = cli(capsys, "select", meta, "--out", tmp_path / "s.npy")
    assert code == 2 and "00000000.parquet has no 'uid' column" in err
    run = write_run(tmp_path / "run", [scored_frame(10)])
    np.save(tmp_path / "two_d.npy", np.zeros((3, 2), np.uint64))
    code, _, err = cli(capsys, "select", run, "--and", tmp_path / "two_d.npy")
    assert code == 2 and "expected a DataComp subset (1-D array of dtype u8,u8)" in err
    np.save(tmp_path / "two_d_u8u8.npy", np.zeros((2, 2), UID_DTYPE))
    code, _, err = cli(capsys, "select", run, "--not", tmp_path / "two_d_u8u8.npy")
    assert code == 2 and "got shape (2, 2)" in err
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    code, _, err = cli(capsys, "select", run, "--or", tmp_path / "junk.npy")
    assert code == 2 and "junk.npy: not a readable .npy subset" in err


def test_duplicate_uids_in_a_subset_are_reported_as_duplicates(tmp_path):
    from altsift.io.uids import uids_to_array

    run = write_run(tmp_path / "run", [scored_frame(10)])
    sub = uids_to_array([uid(1), uid(2), uid(2), uid(2), uid(99)])  # uid(99) is not in the pool
    np.save(tmp_path / "dup.npy", sub)
    _, sel = run_selection(run, SelectRequest(and_subsets=[tmp_path / "dup.npy"]))
    st = sel.steps[-1]
    assert (
        st.kind == "subset" and st.op == "and" and st.detail["duplicates"] == 2 and st.detail["in_pool"] == 2
    )
    assert sel.n_selected == 2 and any("listed more than once" in w for w in sel.warnings)


def test_outputs_never_land_in_scores_or_arrays(tmp_path, capsys):
    """Issue 10 item 3: ``--out RUN/scores/00001.npy --preset sieve`` wrote its side file over a table."""
    rng = np.random.default_rng(0)
    run = write_run(tmp_path / "run", [scored_frame(20, 20 * i, rng, sieve_score=rng.uniform(0, 1, 20))
                                       for i in range(2)])  # fmt: skip
    before = {p: p.read_bytes() for p in (run / "scores").iterdir()}
    for out in (
        run / "scores" / "00001.npy",
        run / "arrays" / "clip_image_emb" / "x.npy",
        run / "arrays" / "s.npy",
    ):
        code, _, err = cli(capsys, "select", run, "--out", out, "--preset", "sieve")
        assert code == 2 and "never writes into a run's scores/ or arrays/" in err, err
    other = write_run(tmp_path / "other", [scored_frame(5)])  # another run's scores/ is protected too
    code, _, err = cli(capsys, "select", run, "--out", other / "scores" / "x.npy")
    assert code == 2
    assert {p: p.read_bytes() for p in (run / "scores").iterdir()} == before
    assert not (run / "arrays").exists()
    code, _, err = cli(capsys, "select", run, "--out", run / "scores")
    assert code == 2 and ".npy" in err


def test_no_silent_overwrite(tmp_path, capsys):
    rng = np.random.default_rng(0)
    run = write_run(tmp_path / "run", [scored_frame(20, 0, rng, sieve_score=rng.uniform(0, 1, 20))])
    out = tmp_path / "sel" / "s.npy"
    assert cli(capsys, "select", run, "--preset", "sieve", "--out", out)[0] == 0
    assert out.with_suffix(".parquet").exists()  # the fused score, beside the subset
    code, _, err = cli(capsys, "select", run, "--top-fraction", "clip_score=0.5", "--out", out)
    assert code == 2 and "exists; pass --overwrite" in err
    code, _, err = cli(capsys, "select", run, "--top-fraction", "clip_score=0.5", "--out", out, "--overwrite")
    assert code == 0, err
    assert not out.with_suffix(".parquet").exists()  # the stale side file of the earlier selection is gone
    assert json.loads(out.with_suffix(".json").read_text())["selected"] == 11
    foreign = tmp_path / "sel" / "t.parquet"
    foreign.write_bytes(b"someone's table")
    code, _, err = cli(
        capsys, "select", run, "--preset", "sieve", "--out", foreign.with_suffix(".npy"), "--overwrite"
    )
    assert (
        code == 2
        and "was not written by altsift select" in err
        and foreign.read_bytes() == b"someone's table"
    )


def test_side_files_never_go_into_a_metadata_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    meta = write_meta(tmp_path / "meta", [scored_frame(20, 0, rng, sieve_score=rng.uniform(0, 1, 20))
                                          .drop(columns=["status"])])  # fmt: skip
    code, _, err = cli(capsys, "select", meta, "--preset", "sieve", "--out", meta / "s.npy")
    assert code == 2 and "read as part of the pool" in err
    assert sorted(p.name for p in meta.iterdir()) == ["00000000.parquet"]


def test_structured_steps_and_summary(tmp_path):
    rng = np.random.default_rng(0)
    run = write_run(tmp_path / "run", [scored_frame(40, 0, rng, sieve_score=rng.uniform(0, 1, 40),
                                                    basic_pass=rng.random(40) > 0.3)])  # fmt: skip
    np.save(
        tmp_path / "not.npy", np.sort(np.array([(int(uid(0)[:16], 16), int(uid(0)[16:], 16))], UID_DTYPE))
    )
    req = SelectRequest(where=["basic_pass"], top_fraction={"clip_score": 0.5},
                        fuse={"sieve_score": 0.5, "clip_score": 0.5}, presets={"sieve": {"fraction": 0.5}},
                        not_subsets=[tmp_path / "not.npy"], verdicts=True)  # fmt: skip
    pool, sel = run_selection(run, req)
    summary = write_selection(pool, sel, tmp_path / "s.npy", request=req)
    kinds = [s["kind"] for s in summary["steps"]]
    assert kinds == ["status", "dedup", "fuse", "where", "top_fraction", "preset", "subset"]
    for s in summary["steps"] + summary["steps"][5]["detail"]["steps"]:
        assert set(s) == STEP_FIELDS and s["kind"] in STEP_KINDS
    top = summary["steps"][4]
    assert top["column"] == "clip_score" and top["op"] == ">=" and top["fraction"] == 0.5
    assert top["threshold"] == get_threshold(pool.numeric("clip_score"), 0.5)
    cum = [s["kept_cumulative"] for s in summary["steps"]]
    assert cum == sorted(cum, reverse=True) and cum[-1] == summary["selected"] == sel.n_selected
    assert summary["request"]["presets"] == {"sieve": {"fraction": 0.5}} and summary["request"]["not"]
    on_disk = json.loads((tmp_path / "s.json").read_text())
    assert on_disk["steps"] == json.loads(json.dumps(summary["steps"]))
    v = pq.read_table(tmp_path / "s.verdicts.parquet").to_pandas()
    assert (
        len(v) == 40
        and list(v.columns) == ["uid", "sieve"]
        and v["uid"].tolist() == [uid(i) for i in range(40)]
    )
    assert v["sieve"].tolist() == sel.verdicts["sieve"].tolist()
    assert Pool.open(run).kind == "run"


def test_selects_without_torch(tmp_path):
    """The light install: select (expressions, presets, fusion, gcld3/fastText aside) imports no torch."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    meta = write_meta(tmp_path / "meta", [scored_frame(30, 0, rng, sieve_score=rng.uniform(0, 1, 30))
                                          .drop(columns=["status"])])  # fmt: skip
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'sentence_transformers', 'torchvision'): sys.modules[m] = None\n"
        "from altsift.select.core import SelectRequest, run_selection, write_selection\n"
        f"pool, sel = run_selection({str(meta)!r}, SelectRequest(where=['clip_score > 0.15'], "
        "fuse={'sieve_score': 0.5, 'clip_score': 0.5}, top_fraction={'fused': 0.5}, "
        "presets={'clip_score': {'fraction': 0.5, 'arch': 'l14'}, 'sieve': {}}))\n"
        f"write_selection(pool, sel, {str(tmp_path / 's.npy')!r})\n"
        "print(sel.n_selected)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == load_subset(tmp_path / "s.npy").size > 0


def test_replay_reproduces_recorded_steps(tmp_path):
    """``replay`` (for reports) re-evaluates the structured steps of a written selection exactly."""
    from altsift.io.uids import uids_to_array
    from altsift.select.core import replay

    rng = np.random.default_rng(5)
    df = scored_frame(60, 0, rng, sieve_score=rng.uniform(0, 1, 60), basic_pass=rng.random(60) > 0.3)
    df.loc[3, "status"] = "bad_image"
    df.loc[7, "uid"] = df.loc[6, "uid"]
    run = write_run(tmp_path / "run", [df.iloc[:30], df.iloc[30:]])
    np.save(tmp_path / "not.npy", uids_to_array([uid(10), uid(11)]))
    np.save(tmp_path / "or.npy", uids_to_array([uid(3), uid(12)]))
    req = SelectRequest(where=["basic_pass or sieve_score > 0.9"], fuse={"sieve_score": 0.5, "clip_score": 0.5},
                        top_fraction={"fused": 0.5}, presets={"clip_score": {"fraction": 0.8, "arch": "l14"}},
                        not_subsets=[tmp_path / "not.npy"], or_subsets=[tmp_path / "or.npy"])  # fmt: skip
    pool, sel = run_selection(run, req)
    summary = write_selection(pool, sel, tmp_path / "s.npy")
    got = list(replay(run, summary["steps"]))
    assert len(got) == len(summary["steps"])
    for (_st, alone, cum), rec in zip(got, summary["steps"], strict=True):
        if alone is not None and rec["op"] != "or":
            assert int(alone.sum()) == rec["kept_alone"], rec["name"]
        assert int(cum.sum()) == rec["kept_cumulative"], rec["name"]
    assert got[-1][2].tolist() == sel.mask.tolist()


def test_unwritable_output_is_an_environment_error(tmp_path, capsys):
    run = write_run(tmp_path / "run", [scored_frame(5)])
    code, _, err = cli(capsys, "select", run, "--out", "/proc/altsift-no-such-dir/s.npy")
    assert code == 4 and "cannot write the selection" in err and "Traceback" not in err


def test_threshold_of_large_pools_without_a_copy(monkeypatch):
    """The histogram path (large pools) gives DataComp's exact value too: ties, NaN, heavy bins."""
    import altsift.select.base as base

    monkeypatch.setattr(base, "PARTITION_MAX", 100)
    rng = np.random.default_rng(2)
    cases = [rng.normal(size=50_000), rng.normal(size=50_000).round(3), np.concatenate([np.full(30_000, 0.25),
             rng.uniform(0, 1, 20_000)]), rng.exponential(size=40_000) ** 4]  # fmt: skip
    for s in cases:
        s[rng.integers(0, len(s), 500)] = np.nan
        valid = s[~np.isnan(s)]
        for f in (1e-5, 0.01, 0.2, 0.3, 0.5, 0.75, 0.999, 1.0):
            want = -np.sort(-valid)[min(int(len(valid) * f), len(valid) - 1)]
            assert get_threshold(s, f) == want, (f, len(valid))
