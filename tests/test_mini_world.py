"""Mini world: deterministic generation, pool composition, ground truth, test sets, shards."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from altsift.mini import world as W


def test_pool_is_deterministic_and_seed_dependent():
    a, b, c = W.make_pool(120, seed=3), W.make_pool(120, seed=3), W.make_pool(120, seed=4)
    assert np.array_equal(a.images, b.images) and a.texts == b.texts and a.uids == b.uids
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (120, 48, 48, 3) and a.images.dtype == np.uint8
    assert all(len(u) == 32 and int(u, 16) >= 0 for u in a.uids) and len(set(a.uids)) == 120


def test_pool_kinds_follow_shares_and_ground_truth():
    p = W.make_pool(2000, W.PoolShares(0.5, 0.1, 0.1, 0.3), seed=0)
    kinds = np.array(p.kinds)
    assert abs((kinds == "parrot").mean() - 0.3) < 0.04 and abs((kinds == "faithful").mean() - 0.5) < 0.04
    for i in range(len(p)):
        if p.kinds[i] == "faithful":
            assert p.texts[i] == p.gt_captions[i]
            assert not p.words[i] or p.words[i] not in p.texts[i].split()
        elif p.kinds[i] == "parrot":
            assert p.words[i] and p.words[i] in p.texts[i].split()
            assert not set(p.texts[i].split()) & (set(W.COLOURS) | set(W.SHAPES))
    clean = W.make_pool(200, W.PRESET_SHARES["clean"], seed=1)
    assert set(clean.kinds) == {"faithful"}


def test_rendered_word_changes_only_the_strip():
    rng = np.random.default_rng(0)
    s = W.sample_scene(rng, n_objects=1, word="tazu")
    with_word = W.render(s)
    without = W.render(W.Scene(s.objects, s.background, s.bg_params, "", s.word_top, s.word_white, s.word_x))
    diff = np.abs(with_word.astype(int) - without.astype(int)).sum(-1) > 0
    assert diff.sum() > 20  # the word is drawn
    rows = np.flatnonzero(diff.any(1))
    assert rows.max() < W.STRIP + 2 or rows.min() > W.IMAGE_SIZE - W.STRIP - 3


def test_caption_orders_objects_left_to_right():
    rng = np.random.default_rng(1)
    s = W.sample_scene(
        rng, objects=[("circle", "red", "big"), ("star", "blue", "small")], word="", background="plain"
    )
    assert s.objects[0].cx < s.objects[1].cx
    assert s.caption() == "a big red circle and a small blue star"
    assert s.short_caption() == "a red circle and a blue star"


def test_tokenizer_splits_digits_and_vocab_covers_world():
    vocab = set(W.vocabulary())
    assert W.split_words("DSC 6646 image") == ["dsc", "6", "6", "4", "6", "image"]
    p = W.make_pool(300, seed=2)
    assert {w for t in p.texts for w in W.split_words(t)} <= vocab


def test_test_sets_are_clean_and_binding_is_a_swap():
    t = W.make_test_sets(n_zs=96, n_bind=20, n_ret=30)
    assert len(t.zs_classes) == 48 and t.zs_images.shape[0] == 96
    for true, swapped in zip(t.bind_true, t.bind_swapped, strict=True):
        a, b = true.split(" and "), swapped.split(" and ")
        assert (
            a[0].split()[3] == b[0].split()[3] and a[0].split()[2] == b[1].split()[2]
        )  # shapes stay, colours swap
        assert a[0].split()[2] != b[0].split()[2]
    assert "a big {} on stripes" in t.zs_templates and len(t.zs_templates) == 6
    assert not np.array_equal(t.zs_images, t.zs_word_images)
    probe = W.make_probe_set(10)
    assert probe.with_word.shape == probe.without_word.shape and all(probe.words)


@pytest.mark.parametrize("shard_size", [7])
def test_write_shards_img2dataset_layout(tmp_path, shard_size):
    from altsift.mini.bench import write_shards

    p = W.make_pool(10, seed=5)
    paths = write_shards(p, tmp_path, shard_size)
    assert [x.name for x in paths] == ["00000.tar", "00001.tar"]
    with tarfile.open(paths[0]) as tar:
        names = tar.getnames()
        assert names[:3] == ["000000000.png", "000000000.txt", "000000000.json"]
        meta = json.loads(tar.extractfile("000000000.json").read())
        img = Image.open(io.BytesIO(tar.extractfile("000000000.png").read()))
        assert tar.extractfile("000000000.txt").read().decode() == p.texts[0]
    assert meta["uid"] == p.uids[0] and meta["original_width"] == int(p.original_sizes[0, 0])
    assert np.array_equal(np.asarray(img), p.images[0])
