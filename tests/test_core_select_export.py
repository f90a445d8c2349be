"""Selection semantics (pool-wide), the subset format, and the export round trip."""

import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from altsift.config import build_config
from altsift.errors import ConfigError
from altsift.io.tables import load_pool
from altsift.io.uids import array_to_uids, load_subset
from altsift.pipeline.export import export
from altsift.pipeline.score import score
from altsift.select.base import fuse, get_threshold, minmax, top_fraction_mask
from altsift.select.core import SelectRequest, run_selection, write_selection
from helpers_shards import make_shards, sample, write_tar


def _scored_run(tmp_path, n_shards=3, per_shard=6):
    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=n_shards, per_shard=per_shard)]
    c = build_config({"signals": ["test_pixel_mean", "basic"], "score": {"progress": False}})
    import scoring_helpers  # noqa: F401  (registers the test signal)

    score(shards, tmp_path / "run", c.signals, c)
    return tmp_path / "run"


def test_get_threshold_matches_datacomp_formula():
    s = np.array([0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    assert get_threshold(s, 0.3) == -np.sort(-s)[int(10 * 0.3)]
    m, t = top_fraction_mask(s, 0.3)
    assert t == 0.6 and m.sum() == 4  # >= threshold keeps int(N*f)+1 rows, as DataComp does
    m, _ = top_fraction_mask(np.array([1.0, np.nan, 0.5, np.nan]), 0.5)
    assert m.tolist() == [True, False, True, False]  # NaN never selected nor counted in N


def test_top_fraction_is_pool_wide_not_per_shard(tmp_path):
    run = _scored_run(tmp_path)
    df = load_pool(run)
    scores = df["pixel_mean"].to_numpy(dtype=float)
    _, sel = run_selection(run, SelectRequest(top_fraction={"pixel_mean": 0.25}))
    t = get_threshold(scores, 0.25)
    assert sel.mask.tolist() == (scores >= t).tolist()
    per_shard = df.groupby("shard")["pixel_mean"].transform(
        lambda s: s >= get_threshold(s.to_numpy(float), 0.25)
    )
    assert sel.mask.sum() == int(len(df) * 0.25) + 1
    # a per-shard quantile would keep a different set on this pool
    assert per_shard.to_numpy(bool).tolist() != sel.mask.tolist() or df["shard"].nunique() == 1


def test_and_of_conditions_and_status(tmp_path):
    run = _scored_run(tmp_path)
    df = load_pool(run)
    req = SelectRequest(where=["pixel_mean > 100", "basic_pass"], top_fraction={"pixel_mean": 0.5})
    _, sel = run_selection(run, req)
    s = df["pixel_mean"].to_numpy(float)
    expect = (s > 100) & df["basic_pass"].astype(bool).to_numpy() & (s >= get_threshold(s, 0.5))
    assert sel.mask.tolist() == expect.tolist()
    names = [st.name for st in sel.steps]
    assert names[0] == "status == 'ok'" and any("top 0.5" in n for n in names)


def test_non_ok_rows_never_selected(tmp_path):
    items = [("a", sample(0)), ("b", {**sample(1), "jpg": b"broken"}), ("c", sample(2))]
    p = write_tar(tmp_path / "in" / "00000.tar", items)
    import scoring_helpers  # noqa: F401

    c = build_config({"signals": ["basic"], "score": {"progress": False}})
    score([str(p)], tmp_path / "run", c.signals, c)
    _, sel = run_selection(
        tmp_path / "run", SelectRequest(where=["caption_num_words >= 0 or status != 'ok'"])
    )
    df = load_pool(tmp_path / "run")
    assert df.loc[sel.mask, "key"].tolist() == ["a", "c"]


def test_fusion_is_minmax_weighted_sum():
    df = pd.DataFrame({"a": [0.0, 5.0, 10.0], "b": [1.0, 3.0, 2.0]})
    f = fuse(df, {"a": 0.25, "b": 0.75})
    assert np.allclose(f, 0.25 * minmax(df["a"]) + 0.75 * minmax(df["b"]))
    assert np.allclose(f, [0.0, 0.125 + 0.75, 0.25 + 0.375])
    with pytest.raises(ConfigError, match="sum to 1"):
        fuse(df, {"a": 0.5, "b": 0.6})


def test_where_errors_name_columns(tmp_path):
    run = _scored_run(tmp_path, n_shards=1)
    with pytest.raises(ConfigError, match="pixel_mean"):
        run_selection(run, SelectRequest(where=["no_such_column > 3"]))


def test_subset_file_and_export_round_trip(tmp_path):
    run = _scored_run(tmp_path)
    pool, sel = run_selection(run, SelectRequest(top_fraction={"pixel_mean": 0.5}))
    summary = write_selection(pool, sel, run / "subset.npy", run)
    df = load_pool(run)
    sub = load_subset(run / "subset.npy")
    chosen = set(df.loc[sel.mask, "uid"])
    assert set(array_to_uids(sub)) == chosen and summary["selected"] == len(chosen)
    info = json.loads((run / "subset.json").read_text())
    assert info["steps"][-1]["kept_cumulative"] == len(chosen)
    out = tmp_path / "export"
    es = export(run, run / "subset.npy", out, shard_size=4, progress=False)
    assert es.written == len(chosen) and es.missing == 0
    tars = sorted(out.glob("*.tar"))
    assert [t.name for t in tars] == [f"{i:08d}.tar" for i in range(len(tars))]
    assert all((out / f"{i:08d}_stats.json").exists() for i in range(len(tars)))
    got = {}
    src_images = {}
    for p in sorted((tmp_path / "in").glob("*.tar")):
        with tarfile.open(p) as tf:
            for m in tf:
                if m.name.endswith(".jpg"):
                    src_images[m.name[:-4]] = tf.extractfile(m).read()
    for t in tars:
        with tarfile.open(t) as tf:
            members = {m.name: tf.extractfile(m).read() for m in tf}
        for name, data in members.items():
            if name.endswith(".json"):
                js = json.loads(data)
                key = name[:-5]
                got[js["uid"]] = js
                assert members[f"{key}.jpg"] == src_images[key]  # image bytes unchanged
                assert "pixel_mean" in js["altsift"] and "basic_pass" in js["altsift"]
    assert set(got) == chosen


def test_export_with_caption_column(tmp_path):
    run = _scored_run(tmp_path, n_shards=1, per_shard=4)
    pool, sel = run_selection(run, SelectRequest())
    sel.columns = {"caption": np.array([f"new caption {i}" for i in range(len(pool))], dtype=object)}
    write_selection(pool, sel, run / "s.npy", run)
    assert (run / "s.parquet").exists()
    out = tmp_path / "export"
    export(run, run / "s.npy", out, caption_column="caption", progress=False)
    with tarfile.open(out / "00000000.tar") as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf}
    txts = sorted(v.decode() for k, v in members.items() if k.endswith(".txt"))
    assert txts == [f"new caption {i}" for i in range(4)]
    js = [json.loads(v) for k, v in members.items() if k.endswith(".json")]
    assert all(j["original_caption"].startswith("a photo of a red car") for j in js)


def test_export_refuses_non_empty_target(tmp_path):
    run = _scored_run(tmp_path, n_shards=1, per_shard=2)
    df, sel = run_selection(run, SelectRequest())
    write_selection(df, sel, run / "s.npy", run)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "00000000.tar").write_bytes(b"")
    with pytest.raises(ConfigError, match="holds shards that no altsift export wrote"):
        export(run, run / "s.npy", tmp_path / "o", progress=False)


def test_select_directly_from_datacomp_metadata(tmp_path):
    """A folder of DataComp metadata parquet (+ .npz) is a pool: no images, no recomputation."""
    import subprocess
    import sys

    from altsift.io.tables import load_pool_array
    from helpers_shards import uid_of

    rng = np.random.default_rng(0)
    meta = tmp_path / "metadata"
    meta.mkdir()
    frames = []
    for part in range(2):
        n = 50
        df = pd.DataFrame(
            {
                "uid": [uid_of(part * 100 + i) for i in range(n)],
                "url": [f"http://x/{i}.jpg" for i in range(n)],
                "text": ["some caption"] * n,
                "original_width": 512,
                "original_height": 384,
                "clip_b32_similarity_score": rng.uniform(0.1, 0.4, n),
                "clip_l14_similarity_score": rng.uniform(0.1, 0.4, n),
            }
        )
        df.to_parquet(meta / f"{part:08x}.parquet", index=False)
        np.savez(meta / f"{part:08x}.npz", l14_img=rng.normal(size=(n, 8)).astype(np.float16))
        frames.append(df)
    pool = pd.concat(frames, ignore_index=True)
    assert load_pool_array(meta, "l14_img").shape == (100, 8)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "altsift",
            "select",
            str(meta),
            "--preset",
            "clip_score",
            "--set",
            "arch=l14",
            "--set",
            "fraction=0.3",
            "--out",
            str(tmp_path / "l14_30.npy"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    got = set(array_to_uids(load_subset(tmp_path / "l14_30.npy")))
    s = pool["clip_l14_similarity_score"].to_numpy()
    want = set(pool.loc[s >= -np.sort(-s)[int(len(s) * 0.3)], "uid"])
    assert got == want and len(got) == 31


def test_export_keeps_json_and_txt_overwrites_and_leaves_no_staging(tmp_path):
    run = _scored_run(tmp_path, n_shards=1, per_shard=3)
    df, sel = run_selection(run, SelectRequest())
    write_selection(df, sel, run / "s.npy", run)
    out = tmp_path / "o"
    (out / "notes.md").parent.mkdir()
    (out / "notes.md").write_text("mine")
    (out / ".altsift-export-staging").mkdir()  # as an interrupted export leaves it
    (out / ".altsift-export-staging" / "00000000.tar").write_bytes(b"half")
    export(run, run / "s.npy", out, progress=False)
    assert not (out / ".altsift-export-staging").exists()
    with tarfile.open(out / "00000000.tar") as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf}
    src = {}
    with tarfile.open(tmp_path / "in" / "00000.tar") as tf:
        src = {m.name: tf.extractfile(m).read() for m in tf}
    for name, data in members.items():
        if name.endswith(".txt"):
            assert data == src[name]  # without --caption-column the caption is unchanged
        if name.endswith(".json"):
            js, orig = json.loads(data), json.loads(src[name])
            assert {k: js[k] for k in orig} == orig and "altsift" in js  # original fields survive
    # a second export needs overwrite, which replaces only the exported files
    with pytest.raises(ConfigError, match="--overwrite"):
        export(run, run / "s.npy", out, progress=False)
    s = export(run, run / "s.npy", out, progress=False, overwrite=True)
    assert s.written == 3 and sorted(p.name for p in out.iterdir()) == [
        ".altsift-export.json",
        "00000000.tar",
        "00000000_stats.json",
        "notes.md",
    ]
    (out / "00000007.tar").write_bytes(b"a shard no export wrote: overwrite must not delete it")
    with pytest.raises(ConfigError, match="no altsift export wrote"):
        export(run, run / "s.npy", out, progress=False, overwrite=True)


def test_export_keeps_samples_apart_when_source_shards_reuse_keys(tmp_path):
    shards = [write_tar(tmp_path / "in" / f"{s:05d}.tar", [("k0", sample(s))]) for s in range(2)]
    c = build_config({"signals": ["basic"], "score": {"progress": False}})
    score([str(p) for p in shards], tmp_path / "run", c.signals, c)
    run = tmp_path / "run"
    df, sel = run_selection(run, SelectRequest())
    write_selection(df, sel, run / "s.npy", run)
    export(run, run / "s.npy", tmp_path / "o", progress=False)
    with tarfile.open(tmp_path / "o" / "00000000.tar") as tf:
        names = sorted(m.name for m in tf)
        js = [json.loads(tf.extractfile(m).read()) for m in tf if m.name.endswith(".json")]
    assert len(names) == len(set(names)) == 6 and "00001%2Fk0.json" in names  # shard/key, escaped
    uids = df.uid_strings().to_pylist()
    assert sorted(j["uid"] for j in js) == sorted(uids) and any(j.get("source_key") == "k0" for j in js)


def test_language_presets_on_datacomp_metadata_compute_lang_on_the_fly(tmp_path):
    """DataComp metadata has no language column: basic_filter / laion2b compute it from text, as DataComp does."""
    from helpers_shards import uid_of

    meta = tmp_path / "metadata"
    meta.mkdir()
    texts = [
        "a brown dog running on the beach at sunset",
        "une maison rouge au bord de la mer en été",
        "vintage red bicycle leaning against a brick wall",
        "the dog",
        "mountain lake with pine trees and snow",
    ]
    pd.DataFrame(
        {
            "uid": [uid_of(i) for i in range(5)],
            "text": texts,
            "original_width": [512, 512, 150, 512, 512],
            "original_height": 384,
            "clip_b32_similarity_score": [0.30, 0.35, 0.31, 0.40, 0.20],
        }
    ).to_parquet(meta / "00000000.parquet", index=False)
    pool, sel = run_selection(meta, SelectRequest(preset="basic_filter"))
    assert pool.uid_strings(sel.mask).to_pylist() == [
        uid_of(0),
        uid_of(4),
    ]  # French, small image, 2 words removed
    assert pool.texts("lang").tolist() == ["en", "fr", "en", "en", "en"]
    pool, sel = run_selection(
        meta, SelectRequest(preset="laion2b", preset_options={"lang_detector": "fasttext"})
    )
    assert pool.uid_strings(sel.mask).to_pylist() == [
        uid_of(i) for i in (0, 2, 3)
    ]  # English and B/32 >= 0.28
