"""HF CLIP adapter: text cleaned as OpenAI CLIP / open_clip do, processor config read as transformers does,
texts encoded in length buckets."""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path

import ftfy
import numpy as np
import pandas as pd
import pytest
import regex
import torch
from PIL import Image

from altsift.errors import ModelNotFoundError
from altsift.models.base import ModelSpec
from altsift.models.hf_clip import HFCLIP, length_buckets, openai_clean
from helpers_clip import _bytes_to_unicode, make_tiny_clip, tiny_clip_vocab

DATA = Path(__file__).parent / "data" / "laion_alt_texts_200.parquet"
ENTITY = re.compile(r"&[#a-zA-Z0-9]+;")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tinyclip"))


@pytest.fixture(scope="module")
def alt_texts() -> list[str]:
    return pd.read_parquet(DATA)["TEXT"].astype(str).tolist()


class OpenClipTokenizer:
    """open_clip's ``SimpleTokenizer`` (clean='lower') as its code defines it, over the tiny test vocabulary.

    clean: ftfy.fix_text, html.unescape twice, strip, whitespace runs -> one space, lower case; split with
    the CLIP pattern; bytes -> unicode; BPE by merge rank; [sot] + ids + [eot], truncated to 77 with eot last.
    """

    PAT = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def __init__(self) -> None:
        self.vocab, merges = tiny_clip_vocab()
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = _bytes_to_unicode()

    def bpe(self, token: str) -> list[str]:
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in itertools.pairwise(word)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def __call__(self, text: str) -> list[int]:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = " ".join(text.split()).strip().lower()
        ids = [self.vocab["<|startoftext|>"]]
        for tok in self.PAT.findall(text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.vocab[t] for t in self.bpe(tok))
        ids.append(self.vocab["<|endoftext|>"])
        if len(ids) > 77:
            ids = ids[:77]
            ids[-1] = self.vocab["<|endoftext|>"]
        return ids


def test_html_entity_alt_texts_tokenize_as_open_clip(tiny_clip, alt_texts):
    entity = [t for t in alt_texts if ENTITY.search(t)]
    assert len(entity) == 2  # '&lt;i&gt;... &copy;' and '&quot;Keep Calm&quot;'
    ref = OpenClipTokenizer()
    cleaned = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu"))
    raw = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", options={"text_clean": "none"}))
    assert cleaned.text_clean == "openai" and raw.text_clean == "none"
    want = [ref(t) for t in alt_texts]
    assert cleaned.tokenize(alt_texts) == want  # all 200 real alt-texts, token for token
    before = raw.tokenize(alt_texts)
    differ = [t for t, a, b in zip(alt_texts, before, want, strict=True) if a != b]
    assert differ == entity  # the tokenizer alone encodes "&quot;" as "&", "quot", ";"
    # and the score follows: the entity text embeds like its unescaped form only when cleaned
    fixed = [html.unescape(t) for t in entity]
    np.testing.assert_allclose(cleaned.encode_texts(entity), raw.encode_texts(fixed), atol=1e-6)
    assert np.abs(raw.encode_texts(entity) - raw.encode_texts(fixed)).max() > 1e-3


def test_openai_clean_definition():
    assert (
        openai_clean("  &amp;amp;  Caf\u00c3\u00a9\tAU  LAIT ") == "& café au lait"
    )  # unescape x2, ftfy, ws
    assert openai_clean("\u201cquoted\u201d") == '"quoted"'  # ftfy uncurls quotes
    with pytest.raises(ValueError, match="text_clean"):
        from altsift.signals.registry import get_signal

        get_signal("clip").Options.model_validate({"text_clean": "nfc"})


def _saved_with_processor(tmp_path: Path) -> Path:
    """A tiny CLIP whose processor is saved by ``CLIPProcessor.save_pretrained`` (processor_config.json)."""
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    src = make_tiny_clip(tmp_path / "src")
    dst = tmp_path / "saved"
    CLIPModel.from_pretrained(src).save_pretrained(dst)
    vocab, merges = tiny_clip_vocab()
    ip = CLIPImageProcessorPil(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.25, 0.3],
        resample=Image.Resampling.BILINEAR,
    )
    CLIPProcessor(image_processor=ip, tokenizer=CLIPTokenizer(vocab=vocab, merges=merges)).save_pretrained(
        dst
    )
    return dst


def test_processor_config_json_is_read(tmp_path):
    from transformers import CLIPImageProcessorPil

    path = _saved_with_processor(tmp_path)
    assert (path / "processor_config.json").exists() and not (path / "preprocessor_config.json").exists()
    m = HFCLIP(ModelSpec(model=str(path), device="cpu"))
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(50, 90), (77, 41)]]
    ref = CLIPImageProcessorPil(
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.25, 0.3],
        resample=Image.Resampling.BILINEAR,
    )(ims, return_tensors="pt")["pixel_values"]
    assert torch.equal(m.preprocess(ims), ref)
    # the built-in CLIP defaults (what a missing config used to fall back to) give other pixels
    default = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    assert not torch.equal(default(ims, return_tensors="pt")["pixel_values"], ref)


def test_missing_processor_config_is_a_clear_error(tiny_clip, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_clip, bare)
    (bare / "preprocessor_config.json").unlink()
    with pytest.raises(ModelNotFoundError) as e:
        HFCLIP(ModelSpec(model=str(bare), device="cpu"))
    assert "preprocessor_config.json" in str(e.value) and "processor_config.json" in str(e.value)


def test_length_buckets_are_optimal_and_bounded():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n, cap, cost = int(rng.integers(1, 9)), int(rng.integers(1, 5)), float(rng.choice([0, 3, 50]))
        lengths = np.sort(rng.integers(2, 78, n))
        cuts = length_buckets(lengths, cap, cost)
        assert cuts[0][0] == 0 and cuts[-1][1] == n and all(b - a <= cap for a, b in cuts)
        assert all(cuts[k][1] == cuts[k + 1][0] for k in range(len(cuts) - 1))

        def total(cs, lengths=lengths, cost=cost):
            return sum((b - a) * lengths[b - 1] + cost for a, b in cs)

        best = min(  # brute force over every split of the sorted sequence
            total(list(itertools.pairwise((0, *mid, n))))
            for r in range(n)
            for mid in itertools.combinations(range(1, n), r)
            if all(b - a <= cap for a, b in itertools.pairwise((0, *mid, n)))
        )
        assert total(cuts) == pytest.approx(best)
    assert length_buckets(np.array([]), 4, 1.0) == []
    # cost 0: equal lengths together; huge cost: full chunks
    assert length_buckets(np.array([3, 3, 5, 9]), 8, 0.0) == [(0, 2), (2, 3), (3, 4)]
    assert length_buckets(np.array([3, 3, 5, 9]), 2, 1e9) == [(0, 2), (2, 4)]


def test_bucketed_text_encoding_equals_one_by_one_and_pads_less(tiny_clip, alt_texts):
    texts = alt_texts[:32]
    m = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", batch_size=16))
    got = m.encode_texts(texts)
    bucketed = m.last_padded_tokens
    ref = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", batch_size=1))  # no padding at all
    np.testing.assert_allclose(got, ref.encode_texts(texts), atol=2e-5)
    lengths = np.array([len(x) for x in m.tokenize(texts)])
    srt = np.sort(lengths)
    fixed = sum(len(srt[i : i + 16]) * srt[i : i + 16].max() for i in range(0, 32, 16))
    assert lengths.sum() <= bucketed < fixed
