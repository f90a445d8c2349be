"""DataComp baseline presets against hand-computed cases (pool-wide semantics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from altsift.errors import ConfigError
from altsift.select.base import Pool, get_preset
from altsift.select.datacomp import fasttext_num_tokens
from altsift.select.wordnet import WordNet, parse_wnids


def _run(name, df, arrays=None, **opts):
    pool = Pool(df=df, array_loader=(arrays or {}).__getitem__)
    return get_preset(name)(opts).apply(pool)


def test_no_filter_and_basic_filter():
    df = pd.DataFrame({"basic_pass": [True, False, None, True]})
    assert _run("no_filter", df).mask.tolist() == [True] * 4
    assert _run("basic_filter", df).mask.tolist() == [True, False, False, True]
    with pytest.raises(ConfigError, match="basic_pass"):
        _run("basic_filter", pd.DataFrame({"x": [1]}))


def test_clip_score_threshold_and_pool_wide_fraction():
    # two "shards" concatenated; per-shard top-50% would keep 0.9, 0.8 | 0.5, 0.2 (4 rows)
    df = pd.DataFrame({"clip_score": [0.9, 0.8, 0.1, 0.5, 0.2, np.nan], "shard": ["a"] * 3 + ["b"] * 3})
    sel = _run("clip_score", df, fraction=0.5)
    # pool-wide: N=5 scored rows, int(5*0.5)=2 -> 3rd highest = 0.5 -> keep >= 0.5; NaN never kept
    assert sel.mask.tolist() == [True, True, False, True, False, False]
    assert sel.steps[0].detail["threshold"] == 0.5
    sel = _run("clip_score", df, fraction=0.2)  # int(1.0)=1 -> 0.8
    assert sel.mask.tolist() == [True, True, False, False, False, False]
    assert _run("clip_score", df, threshold=0.5).mask.tolist() == [True, True, False, True, False, False]
    with pytest.raises(ValueError, match="either threshold or fraction"):
        _run("clip_score", df, threshold=0.3, fraction=0.3)


def test_clip_score_arch_columns():
    df = pd.DataFrame({"clip_b32_similarity_score": [0.3, 0.2], "clip_l14_similarity_score": [0.1, 0.4]})
    assert _run("clip_score", df, arch="b32", threshold=0.25).mask.tolist() == [True, False]
    assert _run("clip_score", df, arch="l14", threshold=0.25).mask.tolist() == [False, True]
    ours = pd.DataFrame({"clip_score": [0.3, 0.2]})
    sel = _run("clip_score", ours, arch="l14", threshold=0.25)  # falls back to clip_score
    assert sel.mask.tolist() == [True, False] and sel.steps[0].detail["column"] == "clip_score"
    with pytest.raises(ConfigError, match="clip"):
        _run("clip_score", pd.DataFrame({"x": [1.0]}), threshold=0.1)


def test_laion2b():
    df = pd.DataFrame({"clip_score": [0.28, 0.279, 0.5, 0.9], "lang": ["en", "en", "de", None]})
    sel = _run("laion2b", df)
    assert sel.mask.tolist() == [True, False, False, False]
    assert [s.kind for s in sel.steps] == ["threshold", "where"] and sel.steps[0].kept_alone == 3
    assert (
        sel.steps[1].kept_alone == 2 and sel.steps[1].detail["detector"] == "fasttext"
    )  # no captions: lang column


def test_fasttext_tokens():
    assert fasttext_num_tokens("a dog") == 2 and fasttext_num_tokens("  dog  ") == 1
    assert fasttext_num_tokens("dog\n") == 2  # fasttext emits </s> for a newline
    assert fasttext_num_tokens("a\u00a0dog") == 1  # NBSP is not a fasttext separator


def test_wordnet_first_synsets_match_nltk():
    wn = WordNet.default()
    # values of nltk.corpus.wordnet.synsets(w)[0].offset() (WordNet 3.0)
    assert wn.first_offset("dog") == 2084071  # dog.n.01 = ImageNet n02084071
    assert wn.first_offset("Dogs") == 2084071  # lower-case + morphy 's'
    assert wn.first_offset("geese") == 1855672  # exception list: geese -> goose (n01855672)
    assert wn.first_offset("churches") == wn.first_offset("church")  # 'ches' -> 'ch'
    assert wn.first_offset("the") is None and wn.first_offset("xyzzy") is None
    assert wn.first_offset("was") == wn.first["n"]["wa"]  # noun morphy beats the verb 'be'
    assert wn.morphy("running", "v") == ["run"] and wn.morphy("better", "a") == ["better", "good", "well"]


def test_text_based(tmp_path):
    wnids = tmp_path / "wnids.txt"
    wnids.write_text("n02084071\nn01855672\n")
    assert parse_wnids(wnids.read_text().splitlines()) == {2084071, 1855672}
    df = pd.DataFrame(
        {
            "text": ["My two Dogs", "geese flying", "a cat", "dogs", "hund", None],
            "lang": ["en", "en", "en", "de", "en", "en"],
        }
    )
    sel = _run("text_based", df, synsets=str(wnids))
    assert sel.mask.tolist() == [True, True, False, False, False, False]


def _image_pool(rng):
    # 3 well separated directions; pool rows near them, reference embeddings near direction 0 only
    base = np.eye(3, 8, dtype=np.float32)
    emb = np.concatenate([base[i] + 0.01 * rng.normal(size=(4, 8)) for i in range(3)]).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[5] = np.nan  # a row without an embedding
    text = ["a photo of a dog"] * 12
    text[1] = "dog"  # fails the caption pre-filter
    lang = ["en"] * 12
    lang[2] = "fr"
    df = pd.DataFrame({"text": text, "lang": lang, "clip_score": np.linspace(0.1, 0.9, 12)})
    return df, emb, base


def test_image_based_with_given_centroids(tmp_path):
    df, emb, base = _image_pool(np.random.default_rng(0))
    np.save(tmp_path / "cent.npy", base)
    np.save(tmp_path / "ref.npy", base[[0, 0]] + 0.01)
    sel = _run("image_based", df, {"clip_image_emb": emb}, centroids=str(tmp_path / "cent.npy"),
               reference=str(tmp_path / "ref.npy"))  # fmt: skip
    assert sel.mask.tolist() == [True, False, False, True] + [False] * 8
    assert sel.steps[-1].detail["target_clusters"] == 1


def test_image_based_kmeans_on_pool_and_intersect(tmp_path):
    df, emb, base = _image_pool(np.random.default_rng(1))
    np.save(tmp_path / "ref.npy", base[[0, 2]])
    opts = {"reference": str(tmp_path / "ref.npy"), "k": 3, "niter": 20, "seed": 0}
    sel = _run("image_based", df, {"clip_image_emb": emb}, **opts)
    assert sel.mask.tolist() == [True, False, False, True, False, False, False, False, True, True, True, True]
    # CLIP top half first (rows 6..11 by the increasing score), then the image filter
    sel = _run("image_based_intersect_clip_score", df, {"clip_image_emb": emb}, fraction=0.5, **opts)
    assert sel.mask.tolist() == [False] * 8 + [True] * 4
    assert [s.name for s in sel.steps] == ["top 0.5 of clip_score", "caption_prefilter", "image_cluster"]
    assert sel.steps[0].kind == "top_fraction" and sel.steps[0].fraction == 0.5
    with pytest.raises(ConfigError, match="no arrays|'l14_img'"):
        get_preset("image_based")({**opts, "embeddings": "l14_img"}).apply(Pool(df=df))


def test_image_based_trains_kmeans_on_caption_filtered_rows(tmp_path, monkeypatch):
    import altsift.select.kmeans as cluster

    df, emb, base = _image_pool(np.random.default_rng(1))
    np.save(tmp_path / "ref.npy", base[[0, 2]])
    seen = {}
    real = cluster.fit_kmeans

    def spy(x, **kw):
        seen["n"] = len(x)
        return real(x, **kw)

    monkeypatch.setattr(cluster, "fit_kmeans", spy)
    opts = {"reference": str(tmp_path / "ref.npy"), "k": 3, "niter": 20, "seed": 0}
    _run("image_based", df, {"clip_image_emb": emb}, **opts)
    assert seen["n"] == 10  # rows 1 (one word) and 2 (French) fail the caption pre-filter, as in DataComp
    _run("image_based", df, {"clip_image_emb": emb}, train_on="all", **opts)
    assert seen["n"] == 12


def test_image_based_width_mismatch_is_a_clear_error(tmp_path):
    df, emb, base = _image_pool(np.random.default_rng(0))
    np.save(tmp_path / "ref768.npy", np.ones((2, 768), np.float32))
    with pytest.raises(ConfigError, match="8-d but reference .* 768-d"):
        _run("image_based", df, {"clip_image_emb": emb}, reference=str(tmp_path / "ref768.npy"), k=3)
    np.save(tmp_path / "ref.npy", base[[0]])
    np.save(tmp_path / "cent.npy", np.ones((3, 16), np.float32))
    with pytest.raises(ConfigError, match="centroids .* 16-d"):
        _run("image_based", df, {"clip_image_emb": emb}, reference=str(tmp_path / "ref.npy"),
             centroids=str(tmp_path / "cent.npy"))  # fmt: skip


def test_local_copy_of_a_datacomp_pickle_is_trusted(tmp_path, monkeypatch):
    import torch

    from altsift.models import assets

    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = tmp_path / "medium_centroids_l14.pt"
    torch.save(arr, p)  # a numpy array inside a torch file, as DataComp's centroid files are
    with pytest.raises(ConfigError, match="could not read"):
        assets.load_embeddings(str(p))  # unknown file: weights_only=True refuses the pickle
    monkeypatch.setitem(
        assets.DATACOMP_ASSETS, "medium_centroids", ("u/medium_centroids_l14.pt", assets.sha256(p))
    )
    np.testing.assert_array_equal(assets.load_embeddings(str(p)), arr)
