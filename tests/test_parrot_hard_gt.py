"""Ground truth of the hard parrot benchmark (benchmarks/parrot_hard.py): cut words, text-free `none` sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "parrot_hard.py"
_spec = importlib.util.spec_from_file_location("parrot_hard", _PATH)
ph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ph)  # type: ignore[union-attr]

FONT = str(Path(__file__).resolve().parents[1] / "src" / "altsift" / "assets" / "fonts" / "DejaVuSans.ttf")


@pytest.mark.parametrize("stroke", [0, 2])
def test_word_masks_split_the_ink_word_by_word(stroke: int) -> None:
    text = "Hello brave new\nworld of text, ok\nlast"
    font = ImageFont.truetype(FONT, 23)
    masks = ph._word_masks(text, font, 23, (10, 5), (400, 120), stroke)
    assert len(masks) == len(text.split())
    full = Image.new("L", (400, 120))
    ImageDraw.Draw(full).multiline_text(
        (10, 5), text, font=font, fill=255, spacing=23 // 4, stroke_width=stroke
    )
    union = np.max([np.asarray(m) for m in masks], 0)
    assert np.array_equal(union, np.asarray(full))
    # each word has its own ink, left to right on a line
    lefts = [np.nonzero(np.asarray(m).any(0))[0].min() for m in masks[:3]]
    assert all(np.asarray(m).any() for m in masks) and lefts == sorted(lefts)


def test_words_cut_at_the_edge_do_not_count() -> None:
    words = ["Extraordinarily", "long", "captions", "overflow", "tiny", "thumbnails", "completely"]
    bg = Image.new("RGB", (70, 70), (120, 120, 120))
    img, rendered, cut = ph.render(bg, words, [FONT], np.random.default_rng(0))
    assert img.size == (70, 70)
    assert cut, "a caption at the minimum size cannot fit a 70 px image"
    # a region placed counts each word once, rendered or cut (a region with no free place is dropped)
    assert len(rendered + cut) == len(set(rendered + cut)) and set(rendered + cut) <= set(words)
    # a caption that fits loses nothing
    big = Image.new("RGB", (900, 700), (120, 120, 120))
    _, rendered, cut = ph.render(big, ["a", "cat"], [FONT], np.random.default_rng(3))
    assert cut == [] and rendered == ["a", "cat"]


def test_none_backgrounds_skip_photos_with_text_with_the_same_draws() -> None:
    photos = [np.full((80, 100, 3), i, np.uint8) for i in range(len(ph.PHOTOS))]
    text_idx = ph.PHOTOS.index(ph.TEXT_PHOTOS[0])
    seed = next(s for s in range(1000) if np.random.default_rng(s).integers(len(photos)) == text_idx)
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    im_text, drawn_a = ph._background(a, photos)
    im_free, drawn_b = ph._background(b, photos, text_free=True)
    assert drawn_a == drawn_b == text_idx
    assert np.asarray(im_text).max() == text_idx
    assert ph.PHOTOS[int(np.asarray(im_free).max())] not in ph.TEXT_PHOTOS
    assert im_text.size == im_free.size
    assert a.random() == b.random()  # the random stream stays aligned for every later image
