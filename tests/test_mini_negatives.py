"""Hard negative captions for the mini CLIP (NegCLIP rules on the caption's words) and the loss using them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from altsift.mini import world as W
from altsift.mini.negatives import RULES, NegativeSampler, negative_candidates
from altsift.mini.networks import MiniConfig, Tokenizer, build_model
from altsift.mini.train import TrainConfig, train_clip

SMALL = {"width": 8, "embed_dim": 32, "text_width": 32, "text_ff": 64, "gru_hidden": 48}
TWO = "a big red circle and a small blue square on stripes"


def _diff(a: str, b: str) -> list[tuple[str, str]]:
    wa, wb = a.split(), b.split()
    assert len(wa) == len(wb)
    return [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]


def test_swaps_exchange_only_colour_or_shape_words():
    c = negative_candidates(TWO)
    assert set(c) == set(RULES)
    assert c["swap_colours"] == ["a big blue circle and a small red square on stripes"]
    assert c["swap_shapes"] == ["a big red square and a small blue circle on stripes"]


def test_replacements_change_one_colour_or_shape_word_into_another():
    c = negative_candidates(TWO)
    colours, shapes = set(W.COLOURS), set(W.SHAPES)
    assert len(c["replace_colour"]) == 2 * (len(colours) - 1) == len(set(c["replace_colour"]))
    assert len(c["replace_shape"]) == 2 * (len(shapes) - 1) == len(set(c["replace_shape"]))
    for neg in c["replace_colour"]:
        ((old, new),) = _diff(TWO, neg)
        assert old in colours and new in colours and old != new
    for neg in c["replace_shape"]:
        ((old, new),) = _diff(TWO, neg)
        assert old in shapes and new in shapes and old != new


def test_rules_that_do_not_apply_are_absent():
    one = negative_candidates("a small green star on noise")
    assert set(one) == {"replace_colour", "replace_shape"}  # one object: nothing to swap
    same = negative_candidates("a big red circle and a big red circle")
    assert set(same) == {"replace_colour", "replace_shape"}  # swapping equal words is no negative
    assert set(negative_candidates("a big red circle and a small red star")) == {
        "swap_shapes", "replace_colour", "replace_shape"}  # fmt: skip
    for text in ("buy zuze", "zuze logo", "dsc 6 6 4 6 image", "stock photo", ""):
        assert negative_candidates(text) == {}


def test_sampler_draws_one_valid_negative_per_caption_that_has_any_and_is_seeded():
    texts = [TWO, "buy zuze", "a small green star on noise", "stock photo"]
    idx = np.array([0, 1, 2, 3, 0])
    a = NegativeSampler(texts, seed=3).sample(idx)
    assert len(a) == 3  # captions 0, 2 and 0 again
    assert a[0] in sum(negative_candidates(TWO).values(), [])
    assert a[1] in sum(negative_candidates(texts[2]).values(), [])
    assert a[2] in sum(negative_candidates(TWO).values(), [])
    assert NegativeSampler(texts, seed=3).sample(idx) == a
    assert NegativeSampler(["buy zuze", "image"], seed=0).sample(np.array([0, 1])) == []
    # every rule that applies is drawn (rule first, then an outcome: the swaps are not drowned out)
    drawn = NegativeSampler([TWO], seed=0).sample(np.zeros(400, dtype=int))
    c = negative_candidates(TWO)
    counts = {r: sum(d in c[r] for d in drawn) for r in RULES}
    assert all(60 < n < 140 for n in counts.values()), counts


def _model():
    torch.manual_seed(0)
    return build_model(MiniConfig(kind="clip", **SMALL)).eval()


def test_loss_adds_negatives_as_image_to_text_columns_only():
    m = _model()
    tok = Tokenizer(m.cfg.vocab, m.cfg.max_len)
    x = torch.randn(3, 3, 48, 48)
    ids = torch.as_tensor(tok.encode([TWO, "a small green star on noise", "buy zuze"]))
    neg = torch.as_tensor(
        tok.encode(["a big blue circle and a small red square on stripes", "a small red star on noise"])
    )
    with torch.no_grad():
        img, txt, ntxt = m.encode_image(x), m.encode_text(ids), m.encode_text(neg)
        scale = m.logit_scale.exp()
        target = torch.arange(3)
        i2t = F.cross_entropy(scale * img @ torch.cat([txt, ntxt]).t(), target)
        t2i = F.cross_entropy(scale * txt @ img.t(), target)
        plain = (F.cross_entropy(scale * img @ txt.t(), target) + t2i) / 2
        assert m.loss(x, ids, neg).item() == pytest.approx(((i2t + t2i) / 2).item(), rel=1e-5)
        assert m.loss(x, ids).item() == pytest.approx(plain.item(), rel=1e-5)
        assert m.loss(x, ids, neg[:0]).item() == pytest.approx(plain.item(), rel=1e-5)
        # extra columns only add terms to the softmax: the loss grows
        assert m.loss(x, ids, neg).item() > plain.item()
        # a negative equal to a positive caption halves that image's probability at best
        dup = m.loss(x[:1], ids[:1], ids[:1]).item()
        assert dup == pytest.approx(math.log(2) / 2, abs=1e-5)  # t2i over one image is 0


def test_train_clip_with_hard_negatives_is_seeded_and_differs_from_plain():
    pool = W.make_pool(40, W.PRESET_SHARES["noisy"], seed=5)
    mcfg = MiniConfig(kind="clip", **SMALL)

    def run(hn: bool):
        return train_clip(
            pool.images, pool.texts, TrainConfig(steps=3, batch_size=16, seed=1, hard_negatives=hn), mcfg
        )

    a, b, plain = run(True), run(True), run(False)
    assert a.losses == b.losses
    assert a.losses[0] != pytest.approx(plain.losses[0])


def test_position_init_scale_makes_the_text_tower_see_word_order():
    """At the shipped init (0.02) a caption and its colour-swapped twin embed almost identically (the text
    tower starts as a bag of words); at 1.0, the scale of the token embeddings, order moves them apart
    hundreds of times more (what training then builds on)."""
    texts = [TWO, negative_candidates(TWO)["swap_colours"][0]]

    def cos(std: float) -> float:
        torch.manual_seed(0)
        m = build_model(MiniConfig(kind="clip", pos_init_std=std)).eval()
        with torch.no_grad():
            e = m.encode_text(torch.as_tensor(Tokenizer(m.cfg.vocab, m.cfg.max_len).encode(texts)))
        return float(e[0] @ e[1])

    assert MiniConfig().pos_init_std == 0.02  # the shipped checkpoints' init (train-models reproduces them)
    assert 1 - cos(1.0) > 100 * (1 - cos(0.02))  # measured: 0.0018 vs 0.0000035 at seed 0
