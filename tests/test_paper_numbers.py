"""Numbers from the papers and their code that can be reproduced without model weights.

Every number carries its source. Commits: mlfoundations/datacomp@4a8df19, facebookresearch/SIEVE@042705a.
Papers: DataComp (Gadre et al. 2023, arXiv 2304.14108), SIEVE (Mahmoud et al., CVPR 2024),
Nguyen et al. 2023 (arXiv 2307.10350). Tests that already cover a rule elsewhere are not repeated here:
CoTR Algorithm 1 (test_parrot_cotr.py), SIEVE's substring masking and fusion (test_sieve.py,
test_sieve_fusion.py), small hand-built mixing pools (test_mixing.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from altsift.select.base import Pool, get_preset
from altsift.signals.sieve import REMOVE_PHRASES, REMOVE_PHRASES_LONG, sieve_caption_defaults


def _select(name: str, df: pd.DataFrame, **opts):
    return get_preset(name)(opts).apply(Pool(df=df))


def datacomp_get_threshold(scores: np.ndarray, fraction: float) -> float:
    """datacomp@4a8df19 baselines/apply_filter.py get_threshold: n = int(len * fraction); -sort(-x)[n]."""
    n = int(len(scores) * fraction)
    return float(-np.sort(-scores)[n])


# DataComp Table 16 ([DC-paper] App., "CLIP score thresholds and the fraction of the pool they keep"),
# ViT-B/32 rows without the English filter: fraction kept -> threshold.
TABLE16_B32 = [
    (0.01, 0.384),
    (0.03, 0.358),
    (0.10, 0.325),
    (0.20, 0.300),
    (0.30, 0.281),
    (0.40, 0.263),
    (0.50, 0.247),
    (0.75, 0.215),
    (0.90, 0.193),
]
# same table, ViT-L/14 rows without the English filter
TABLE16_L14 = [
    (0.01, 0.364),
    (0.03, 0.334),
    (0.10, 0.295),
    (0.20, 0.266),
    (0.30, 0.243),
    (0.40, 0.222),
    (0.50, 0.203),
    (0.75, 0.160),
    (0.90, 0.129),
]


def pool_with_quantiles(table: list[tuple[float, float]], n: int) -> np.ndarray:
    """n scores whose descending rank k sits at the Table 16 threshold of fraction k/n (linear in between)."""
    fr, th = np.array([0.0] + [f for f, _ in table] + [1.0]), np.array([0.5] + [t for _, t in table] + [0.0])
    ranks = np.arange(n) / n
    return np.interp(ranks, fr, th)[np.random.default_rng(0).permutation(n)]


@pytest.mark.parametrize(("arch", "table"), [("b32", TABLE16_B32), ("l14", TABLE16_L14)])
def test_datacomp_table16_threshold_fraction_relation(arch, table):
    n = 20_000
    scores = pool_with_quantiles(table, n)
    df = pd.DataFrame({f"clip_{arch}_similarity_score": scores})
    for fraction, threshold in table:
        # fraction mode: the threshold at rank int(N * fraction) is the Table 16 threshold
        sel = _select("clip_score", df, arch=arch, fraction=fraction)
        t = sel.steps[0].detail["threshold"]
        assert t == datacomp_get_threshold(scores, fraction)
        assert t == pytest.approx(threshold, abs=1e-9)
        # keeping >= threshold keeps floor(N * fraction) + 1 rows (the pool has no ties here)
        assert sel.n_selected == int(n * fraction) + 1
        # threshold mode with the Table 16 value keeps the Table 16 fraction (+1 row)
        assert _select("clip_score", df, arch=arch, threshold=threshold).n_selected == int(n * fraction) + 1
    # [DC-paper] Table 3 vs Table 26: B/32 threshold 0.3 and B/32 top 20% name the same subset (Table 16 row)
    if arch == "b32":
        a = _select("clip_score", df, arch="b32", threshold=0.3).mask
        b = _select("clip_score", df, arch="b32", fraction=0.2).mask
        assert (a == b).all()


def test_datacomp_get_threshold_floor_and_ties():
    # N = 7, fraction 0.3: int(2.1) = 2 -> the 3rd highest score; every tie with it is kept as well
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.2, 0.1, 0.05])
    df = pd.DataFrame({"clip_score": scores})
    sel = _select("clip_score", df, fraction=0.3)
    assert sel.steps[0].detail["threshold"] == datacomp_get_threshold(scores, 0.3) == 0.5
    assert sel.mask.tolist() == [True, True, True, True, False, False, False]  # 4 rows, not round(2.1)
    # fraction 0.29 -> int(2.03) = 2 as well; 0.14 -> int(0.98) = 0 -> only the top row
    assert _select("clip_score", df, fraction=0.29).n_selected == 4
    assert _select("clip_score", df, fraction=0.14).n_selected == 1


def test_datacomp_basic_filter_on_crafted_captions():
    """datacomp@4a8df19 apply_filter.py load_uids_with_basic_filter_helper: fasttext lang == 'en',
    len(text.split()) > 2 and len(text) > 5, min(w, h) >= 200 and max/min <= 3.0."""
    from altsift.signals.basic import BasicSignal

    rows = [
        # text, (w, h), expected basic_pass
        ("a small red car parked on the street", (640, 480), True),
        ("vintage car", (640, 480), False),  # 2 words: not > 2
        ("a b c", (640, 480), False),  # 3 words but 5 chars: not > 5
        ("dog\tand\ncat on the sofa", (640, 480), True),  # split() splits on tabs and newlines too
        ("a small red car parked on the street", (200, 600), True),  # min side 200, ratio exactly 3.0
        ("a small red car parked on the street", (600, 200), True),
        ("a small red car parked on the street", (199, 500), False),  # min side < 200
        ("a small red car parked on the street", (200, 601), False),  # ratio 3.005 > 3.0
        ("ein kleines rotes Auto auf der Strasse", (640, 480), False),  # not English
    ]
    sig = BasicSignal()
    out = sig(
        {
            "text": [r[0] for r in rows],
            "status": ["ok"] * len(rows),
            "original_width": [r[1][0] for r in rows],
            "original_height": [r[1][1] for r in rows],
        }
    )
    assert out["caption_num_words"][:4] == [8, 2, 3, 6]
    assert out["caption_num_chars"][:4] == [36, 11, 5, 23]
    assert out["lang"][0] == "en" and out["lang"][-1] == "de"
    assert out["basic_pass"] == [r[2] for r in rows]


def test_sieve_phrase_lists_as_in_its_code():
    # SIEVE@042705a sentence_similarity_inference.py REMOVE_PHRASES (the list its remove_phrases uses)
    assert REMOVE_PHRASES == (
        "an image of",
        "a photo of",
        "stock photo",
        "photo stock",
        "a photo",
        "an image",
        "image",
        "photo",
    )
    # ... and REMOVE_PHRASES_LONG (defined, unused): 29 phrases in this order
    assert REMOVE_PHRASES_LONG == (
        "an image of",
        "a photo of",
        "an icon of",
        "an illustration of",
        "a template of",
        "a thumbnail of",
        "a vector of",
        "photo stock",
        "stock photo",
        "a photo",
        "an image",
        "an icon",
        "an illustration",
        "a template",
        "a thumbnail",
        "image",
        "photo",
        "icon",
        "illustration",
        "template",
        "vector",
        "thumbnail",
        "free",
        "print",
        "sale",
        "quot",
        "png",
        "jpeg",
        "jpg",
    )


def test_sieve_caption_lengths_count_the_prompt(tmp_path):
    """SIEVE@042705a BLIP/models/blip.py generate(sample=True, max_length=20, min_length=5) with the
    prompt 'a picture of ' fed as [DEC] a picture of (4 tokens): 1 to 16 new tokens per caption;
    webdataset_inference.py: 8 captions per image (num_return_sequences=8 in the patched generate)."""
    import torch

    from altsift.signals.caption import CaptionSignal
    from helpers_captioner import SEP, make_tiny_blip, tiny_images

    d = sieve_caption_defaults()
    assert (d["max_length"], d["min_length"], d["num_return_sequences"], d["top_p"]) == (20, 5, 8, 0.9)
    # image_size 32: the tiny tower's own size (the lengths do not depend on the image input)
    sig = CaptionSignal(
        {**d, "model": str(make_tiny_blip(tmp_path / "blip")), "device": "cpu", "image_size": 32}
    )
    lengths = []
    orig = sig.captioner.model.generate

    def spy(*a, **kw):
        seqs = orig(*a, **kw)
        assert kw["input_ids"].shape[1] == 5  # [CLS] a picture of [SEP]; BLIP drops [SEP] and swaps in [DEC]
        new = seqs[:, 4:]
        ends = [(row == SEP).nonzero() for row in new]
        lengths.extend(int(e[0]) + 1 if len(e) else new.shape[1] for e in ends)  # tokens incl. the [SEP]
        return seqs

    sig.captioner.model.generate = spy
    with torch.no_grad():
        caps = sig(
            {
                "uid": [f"u{i}" for i in range(4)],
                "status": ["ok"] * 4,
                "image": tiny_images(4),
                "text": ["x"] * 4,
            }
        )["synthetic_captions"]
    assert all(len(c) == 8 for c in caps) and len(lengths) == 32
    assert max(lengths) == 16 and min(lengths) >= 1  # max_length 20 - 4 prompt tokens; min_length 5 - 4


def test_nguyen_raw_top30_plus_synthetic70_arithmetic():
    """Nguyen et al. (papers.md 4.1, secondary source): 'Raw (top 30%) + BLIP2 (70%)' keeps every pair,
    30% with the raw caption; '(70%, filtered)' keeps a replaced pair only if its BLIP2 score passes the
    same threshold. Thresholds are DataComp's get_threshold over the pool."""
    rng = np.random.default_rng(1)
    n = 1000
    raw, syn = rng.uniform(0.1, 0.4, n), rng.uniform(0.1, 0.4, n)
    df = pd.DataFrame(
        {
            "uid": [f"u{i}" for i in range(n)],
            "text": [f"r{i}" for i in range(n)],
            "clip_score": raw,
            "clip_score_synthetic": syn,
            "synthetic_caption": [f"s{i}" for i in range(n)],
        }
    )
    t = datacomp_get_threshold(raw, 0.3)
    mix = _select("mix_raw_top_synthetic_rest", df)
    src = mix.columns["caption_source"]
    assert mix.n_selected == n  # 30% + 70% = the whole pool
    assert (src == "raw").sum() == int(n * 0.3) + 1 == 301 and (src == "synthetic").sum() == 699
    filt = _select("mix_raw_top_synthetic_rest_filtered", df)
    fsrc = filt.columns["caption_source"]
    assert (fsrc == "raw").sum() == 301
    assert (fsrc == "synthetic").sum() == int(((raw < t) & (syn >= t)).sum())
