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


def test_ray_clip_scores_equal_local(tmp_path, ray_session):
    """A real model signal (tiny random CLIP through the user loading path): same scores with 2 actors."""
    from helpers_clip import make_tiny_clip

    model = make_tiny_clip(tmp_path / "clip")
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=3, per_shard=5)]
    base = {"signals": ["clip"], "clip": {"model": str(model), "batch_size": 3, "save_embeddings": True},
            "score": {"progress": False, "batch_size": 3}}
    local = build_config(base)
    score(shards, tmp_path / "local", local.signals, local)
    rcfg = build_config({**base, "score": {**base["score"], "runner": "ray",
                                           "ray": {"num_actors": 2, "num_cpus_per_actor": 0.5}}})
    score(shards, tmp_path / "ray", rcfg.signals, rcfg)
    a, b = rows(tmp_path / "local"), rows(tmp_path / "ray")
    for k in a:
        sa = [r["clip_score"] for r in a[k]]
        sb = [r["clip_score"] for r in b[k]]
        assert np.allclose(sa, sb, atol=1e-5), k
        assert np.allclose(np.load(tmp_path / "local" / "arrays" / "clip_image_emb" / f"{k}.npy"),
                           np.load(tmp_path / "ray" / "arrays" / "clip_image_emb" / f"{k}.npy"), atol=1e-5)
