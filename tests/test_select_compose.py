"""Composable selections (issue 12 item 3), the ∩ IN1k and mirror presets, provenance checks (item 4)
and gcld3 for the LAION-2B filter (item 5)."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from altsift.errors import ConfigError
from altsift.io.uids import array_to_uids, load_subset, uids_to_array
from altsift.select.base import Pool, get_preset, get_threshold
from altsift.select.core import SelectRequest, request_from_options, run_selection, write_selection
from helpers_select import cli, scored_frame, uid, write_meta, write_run


def _top(s: np.ndarray, f: float) -> np.ndarray:
    v = s[~np.isnan(s)]
    return np.nan_to_num(s, nan=-np.inf) >= -np.sort(-v)[int(len(v) * f)]


# ------------------------------------------------------------------ composition semantics
def test_thresholds_are_pool_wide_before_any_intersection(tmp_path):
    rng = np.random.default_rng(3)
    frames = [scored_frame(50, 50 * i, rng, basic_pass=rng.random(50) > 0.4) for i in range(2)]
    run = write_run(tmp_path / "run", frames)
    full = pd.concat(frames, ignore_index=True)
    s = full["clip_score"].to_numpy()
    in_s = np.zeros(100, bool)
    in_s[rng.choice(100, 40, replace=False)] = True
    np.save(tmp_path / "S.npy", uids_to_array(full.loc[in_s, "uid"]))
    want = _top(s, 0.3) & in_s  # DataComp: threshold over the whole pool, then the intersection
    within = in_s.copy()
    within[in_s] = _top(s[in_s], 0.3)  # what a per-subset threshold would keep instead
    assert want.tolist() != within.tolist()
    for req in (
        SelectRequest(top_fraction={"clip_score": 0.3}, and_subsets=[tmp_path / "S.npy"]),
        SelectRequest(
            presets={"clip_score": {"fraction": 0.3, "arch": "l14"}}, and_subsets=[tmp_path / "S.npy"]
        ),
    ):
        _, sel = run_selection(run, req)
        assert sel.mask.tolist() == want.tolist()
    # two presets: each on the whole pool, then AND-ed
    _, sel = run_selection(run, SelectRequest(presets={"clip_score": {"fraction": 0.3, "arch": "l14"},
                                                       "basic_filter": {}}))  # fmt: skip
    assert sel.mask.tolist() == (_top(s, 0.3) & full["basic_pass"].to_numpy()).tolist()
    inner = sel.steps[-2].detail["steps"][0]  # the clip_score preset's own step
    assert inner["threshold"] == get_threshold(s, 0.3) and inner["kept_alone"] == int(_top(s, 0.3).sum())


def test_and_or_not_subsets(tmp_path, capsys):
    df = scored_frame(8)
    df.loc[2, "status"] = "bad_image"
    df.loc[5, "uid"] = df.loc[4, "uid"]  # row 5 repeats row 4's uid
    run = write_run(tmp_path / "run", [df])
    np.save(tmp_path / "or.npy", uids_to_array([uid(0), uid(2), uid(4), uid(7)]))
    np.save(tmp_path / "not.npy", uids_to_array([uid(1), uid(3)]))
    code, _, err = cli(capsys, "select", run, "--where", "clip_score > 100", "--or", tmp_path / "or.npy",
                       "--out", tmp_path / "a.npy")  # fmt: skip
    assert code == 0, err
    # 'or' adds eligible rows only: not the bad row (2); uid(4) once (its first row)
    assert sorted(array_to_uids(load_subset(tmp_path / "a.npy"))) == sorted([uid(0), uid(4), uid(7)])
    code, _, err = cli(capsys, "select", run, "--not", tmp_path / "not.npy", "--and", tmp_path / "or.npy",
                       "--out", tmp_path / "b.npy")  # fmt: skip
    assert code == 0, err
    assert sorted(array_to_uids(load_subset(tmp_path / "b.npy"))) == sorted([uid(0), uid(4), uid(7)])
    info = json.loads((tmp_path / "b.json").read_text())
    assert [(s["kind"], s["op"]) for s in info["steps"][-2:]] == [("subset", "and"), ("subset", "not")]


def test_several_presets_from_cli_and_config(tmp_path, capsys):
    rng = np.random.default_rng(0)
    run = write_run(tmp_path / "run", [scored_frame(30, 0, rng, basic_pass=rng.random(30) > 0.5)])
    code, out, err = cli(capsys, "select", run, "-p", "clip_score", "-p", "basic_filter", "--set",
                         "clip_score.fraction=0.5", "--set", "clip_score.arch=l14", "--verdicts")  # fmt: skip
    assert code == 0, err
    v = pq.read_table(run / "subset.verdicts.parquet").to_pandas()
    assert list(v.columns) == ["uid", "clip_score", "basic_filter"]
    assert (
        int((v["clip_score"] & v["basic_filter"]).sum())
        == json.loads((run / "subset.json").read_text())["selected"]
    )
    code, _, err = cli(
        capsys, "select", run, "-p", "clip_score", "-p", "basic_filter", "--set", "fraction=0.5"
    )
    assert code == 2 and "PRESET.KEY=VALUE" in err
    code, _, err = cli(capsys, "select", run, "-p", "clip_score", "-p", "clip_score")
    assert code == 2 and "given twice" in err
    from altsift.config import build_config

    cfg = build_config({"select": {"preset": ["clip_score", "basic_filter"], "and": ["a.npy"],
                                   "preset_options": {"clip_score": {"fraction": 0.5}}}})  # fmt: skip
    req = request_from_options(cfg.select)
    assert req.presets == {"clip_score": {"fraction": 0.5}, "basic_filter": {}} and req.and_subsets == [
        "a.npy"
    ]
    with pytest.raises(ConfigError, match="not among the presets"):
        request_from_options(build_config({"select": {"preset": ["clip_score", "basic_filter"],
                                                      "preset_options": {"fraction": 0.5}}}).select)  # fmt: skip


# ------------------------------------------------------------------ ∩ IN1k and the mirror
def _in1k_pool(tmp_path):
    """12 rows in 3 well separated embedding directions; the IN1k references sit on direction 0 and 2."""
    rng = np.random.default_rng(0)
    base = np.eye(3, 8, dtype=np.float32)
    emb = np.concatenate([base[i] + 0.01 * rng.normal(size=(4, 8)) for i in range(3)]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    text = ["a photo of a dog"] * 12
    text[1] = "dog"  # fails DataComp's caption pre-filter
    syn = [f"a synthetic caption {i}" for i in range(12)]
    syn[11] = None
    df = pd.DataFrame({"uid": [uid(i) for i in range(12)], "text": text, "lang": ["en"] * 12,
                       "clip_score": [0.30, 0.12, 0.25, 0.21, 0.33, 0.11, 0.29, 0.17, 0.35, 0.10, 0.31, 0.22],
                       "clip_score_synthetic": [0.2, 0.4, 0.1, 0.3, 0.25, 0.35, 0.15, 0.33, 0.05, 0.28, 0.38, 0.9],
                       "synthetic_caption": syn})  # fmt: skip
    np.save(tmp_path / "cent.npy", base)
    np.save(tmp_path / "ref.npy", base[[0, 2]] + 0.01)
    opts = {"centroids": str(tmp_path / "cent.npy"), "reference": str(tmp_path / "ref.npy")}
    return df, emb, opts


def _pool(df, emb):
    return Pool(df=df, array_loader={"clip_image_emb": emb}.__getitem__)


def test_raw_top_in1k(tmp_path):
    df, emb, opts = _in1k_pool(tmp_path)
    image = get_preset("image_based")(opts).apply(_pool(df, emb)).mask
    assert (
        image.tolist() == [True, False, True, True] + [False] * 4 + [True] * 4
    )  # clusters 0 and 2, row 1 pre-filtered
    raw = df["clip_score"].to_numpy()
    sel = get_preset("mix_raw_top_in1k")({**opts, "fraction": 0.5, "arch": "l14"}).apply(_pool(df, emb))
    want = _top(raw, 0.5) & image
    assert sel.mask.tolist() == want.tolist() and sel.n_selected == 5
    # the threshold is the whole pool's, not the IN1k survivors'
    assert sel.steps[0].threshold == get_threshold(raw, 0.5) != get_threshold(raw[image], 0.5)
    kept = np.flatnonzero(sel.mask)
    assert sel.columns["caption"][kept].tolist() == df["text"].to_numpy()[kept].tolist()
    assert set(sel.columns["caption_source"][kept]) == {"raw"}
    # the same subset composed from the building blocks
    pool = _pool(df, emb)
    _, comp = run_selection(pool, SelectRequest(presets={"clip_score": {"fraction": 0.5, "arch": "l14"},
                                                         "image_based": opts}))  # fmt: skip
    assert comp.mask.tolist() == want.tolist()


def test_synthetic_top_in1k(tmp_path):
    df, emb, opts = _in1k_pool(tmp_path)
    image = get_preset("image_based")(opts).apply(_pool(df, emb)).mask
    sel = get_preset("mix_synthetic_top_in1k")({**opts, "arch": "l14"}).apply(_pool(df, emb))
    syn = df["clip_score_synthetic"].to_numpy().copy()
    syn[11] = np.nan  # no synthetic caption: not part of N, never kept
    want = _top(syn, 0.75) & image
    assert sel.mask.tolist() == want.tolist() and sel.steps[0].fraction == 0.75
    kept = np.flatnonzero(sel.mask)
    assert sel.columns["caption"][kept].tolist() == [f"a synthetic caption {i}" for i in kept]
    assert not sel.mask[11] and set(sel.columns["caption_source"][kept]) == {"synthetic"}


def test_synthetic_top_raw_rest_mirror(tmp_path):
    df, _, _ = _in1k_pool(tmp_path)
    syn = df["clip_score_synthetic"].to_numpy().copy()
    syn[11] = np.nan
    raw = df["clip_score"].to_numpy()
    t = get_threshold(syn, 0.3)  # 11 scored -> index 3 -> 0.33
    assert t == 0.33
    sel = get_preset("mix_synthetic_top_raw_rest")({"arch": "l14"}).apply(Pool(df))
    top = np.flatnonzero(syn >= t)
    assert sorted(top.tolist()) == [1, 5, 7, 10]
    assert sel.mask.all()  # every other row keeps its raw caption
    assert {int(i) for i in np.flatnonzero(sel.columns["caption_source"] == "synthetic")} == set(top.tolist())
    filt = get_preset("mix_synthetic_top_raw_rest_filtered")({"arch": "l14"}).apply(Pool(df))
    want_raw = (~np.isin(np.arange(12), top)) & (raw >= t)  # the rest only if its raw score passes the same t
    assert np.flatnonzero(filt.mask).tolist() == sorted(
        set(top.tolist()) | set(np.flatnonzero(want_raw).tolist())
    )
    assert np.flatnonzero(want_raw).tolist() == [4, 8]


# ------------------------------------------------------------------ provenance
def _clip_run(tmp_path, model: str, name: str = "run"):
    rng = np.random.default_rng(0)
    signals = {"clip": {"model": model, "backend": "auto", "extra_texts": {}}}
    return write_run(tmp_path / name, [scored_frame(20, 0, rng, sieve_score=rng.uniform(0, 1, 20))], signals)


def test_presets_check_the_clip_architecture(tmp_path):
    run = _clip_run(tmp_path, "openai/clip-vit-base-patch32")
    _, sel = run_selection(run, SelectRequest(preset="clip_score"))
    assert len(sel.warnings) == 1
    w = sel.warnings[0]
    assert "openai/clip-vit-base-patch32 (ViT-B/32)" in w and "uses ViT-L/14" in w and "--set arch=b32" in w
    assert (
        run_selection(run, SelectRequest(preset="clip_score", preset_options={"arch": "b32"}))[1].warnings
        == []
    )
    _, sel = run_selection(run, SelectRequest(preset="clip_score", preset_options={"arch": "l14"}))
    assert (
        "arch=l14 was given, but 'clip_score' was computed by openai/clip-vit-base-patch32" in sel.warnings[0]
    )
    assert get_preset("laion2b")().check(Pool.open(run)) == []  # DataComp's LAION-2B filter is B/32
    assert "SIEVE's fusion" in run_selection(run, SelectRequest(preset="sieve"))[1].warnings[0]
    with pytest.raises(ConfigError, match="arch must be one of"):
        run_selection(run, SelectRequest(preset="clip_score", preset_options={"arch": "vit-huge"}))


def test_architecture_from_a_local_checkpoint_config(tmp_path):
    ckpt = tmp_path / "my-finetuned-clip"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"vision_config": {"hidden_size": 1024, "patch_size": 14,
                                                                    "num_hidden_layers": 24, "image_size": 224}}))  # fmt: skip
    run = _clip_run(tmp_path, str(ckpt))
    pool, sel = run_selection(run, SelectRequest(preset="clip_score"))
    assert sel.warnings == []
    summary = write_selection(pool, sel, tmp_path / "s.npy")
    prov = summary["provenance"]["clip_score"]
    assert prov["arch"] == "l14" and prov["model"] == str(ckpt) and len(prov["config_sha256"]) == 64
    unknown = _clip_run(tmp_path, "someone/finetuned-clip", "run2")
    _, sel = run_selection(unknown, SelectRequest(preset="clip_score"))
    assert "whose architecture could not be inferred" in sel.warnings[0]


# ------------------------------------------------------------------ gcld3 for laion2b
def _laion_meta(tmp_path, scores=None):
    t = pq.read_table("tests/data/laion_alt_texts_200.parquet").to_pandas()
    n = len(t)
    df = pd.DataFrame({"uid": [uid(i, "laion") for i in range(n)], "url": t["URL"], "text": t["TEXT"],
                       "original_width": 512, "original_height": 512,
                       "clip_b32_similarity_score": 0.3 if scores is None else scores})  # fmt: skip
    return write_meta(tmp_path / "meta", [df.iloc[:120], df.iloc[120:]]), df


def test_laion2b_uses_gcld3_like_datacomp(tmp_path):
    pytest.importorskip("gcld3", reason="gcld3 is not installed (needs protobuf-compiler + libprotobuf-dev)")
    meta, df = _laion_meta(tmp_path)
    _, sel = run_selection(meta, SelectRequest(preset="laion2b"))
    assert sel.n_selected == 95  # gcld3 NNetLanguageIdentifier(0, 1000): 95 of these 200 are English
    inner = sel.steps[-1].detail["steps"]
    assert inner[1]["detail"]["detector"] == "gcld3" and inner[1]["kept_alone"] is None
    _, ft = run_selection(meta, SelectRequest(preset="laion2b", preset_options={"lang_detector": "fasttext"}))
    assert ft.n_selected == 176  # fastText lid.176 calls far more short alt-texts English
    assert int((sel.mask & ft.mask).sum()) == 88
    # gcld3 runs only on rows that passed the score threshold
    scores = np.where(np.arange(200) % 2 == 0, 0.3, 0.2)
    meta2, _ = _laion_meta(tmp_path / "half", scores)
    _, half = run_selection(meta2, SelectRequest(preset="laion2b", preset_options={"lang_detector": "gcld3"}))
    assert half.steps[-1].detail["steps"][1]["detail"]["evaluated_rows"] == 100
    assert half.mask.tolist() == (sel.mask & (scores >= 0.28)).tolist()


def test_laion2b_falls_back_to_fasttext_when_gcld3_is_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "gcld3", None)  # import gcld3 -> ImportError
    meta, _ = _laion_meta(tmp_path)
    with caplog.at_level(logging.WARNING):
        _, sel = run_selection(meta, SelectRequest(preset="laion2b"))
    assert sel.n_selected == 176
    assert "gcld3 is not installed" in caplog.text and any(
        "gcld3 is not installed" in w for w in sel.warnings
    )
    assert sel.steps[-1].detail["steps"][1]["detail"]["detector"] == "fasttext"
    with pytest.raises(ConfigError, match="lang_detector=gcld3 but gcld3 is not installed"):
        run_selection(meta, SelectRequest(preset="laion2b", preset_options={"lang_detector": "gcld3"}))
