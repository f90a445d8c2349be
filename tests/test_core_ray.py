"""The Ray Data runner produces the same tables as the local runner, and resumes the same way."""

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from altsift.config import build_config
from altsift.pipeline.score import score
from helpers_shards import make_shards, sample, write_tar

ray = pytest.importorskip("ray")
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def ray_session():
    os.environ["PYTHONPATH"] = f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    ray.init(num_cpus=4,  # logical CPUs: two actor pools + readers
             include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def rows(run_dir):
    return {f.stem: pq.read_table(f).to_pylist() for f in sorted((run_dir / "scores").glob("*.parquet"))}


def test_ray_matches_local(tmp_path, ray_session):
    import scoring_helpers  # noqa: F401

    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=3, per_shard=5)]
    bad = write_tar(tmp_path / "in" / "00003.tar", [("x", {**sample(99), "jpg": b"nope"}), ("y", sample(98))])
    empty = tmp_path / "in" / "00004.tar"
    empty.write_bytes(b"")
    shards += [str(bad), str(empty)]
    base = {"signals": ["basic", "test_pixel_mean"], "score": {"progress": False, "batch_size": 4}}
    local = build_config(base)
    score(shards, tmp_path / "local", local.signals, local)
    rcfg = build_config({**base, "score": {**base["score"], "runner": "ray", "ray": {"num_actors": 1}}})
    s = score(shards, tmp_path / "ray", rcfg.signals, rcfg)
    assert s.shards_scored == 5 and s.samples_scored == 17
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k
        if a[k]:
            assert np.allclose(np.load(tmp_path / "local" / "arrays" / "pixel_hist" / f"{k}.npy"),
                               np.load(tmp_path / "ray" / "arrays" / "pixel_hist" / f"{k}.npy"), equal_nan=True)
    assert b["00003"][0]["status"] == "bad_image"
    s2 = score(shards, tmp_path / "ray", rcfg.signals, rcfg)  # resume: nothing to do
    assert s2.shards_skipped == 5
