"""Signal ``caption``: model path (tiny BLIP) and the from_file path (CSV / parquet)."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from altsift.errors import ConfigError
from altsift.signals.caption import CaptionSignal, load_caption_file
from altsift.signals.registry import get_signal
from helpers_captioner import make_tiny_blip, tiny_images


def _batch(uids, images, status=None):
    n = len(uids)
    return {
        "uid": list(uids),
        "key": [f"k{i}" for i in range(n)],
        "shard": ["00000"] * n,
        "text": ["t"] * n,
        "status": status or ["ok"] * n,
        "error": [None] * n,
        "image": list(images),
        "json": [{}] * n,
        "original_width": [32] * n,
        "original_height": [32] * n,
    }


@pytest.fixture(scope="module")
def blip(tmp_path_factory):
    return str(make_tiny_blip(tmp_path_factory.mktemp("sig") / "blip"))


def test_registered():
    assert get_signal("caption") is CaptionSignal


def test_model_path_outputs_and_seeding(blip):
    sig = CaptionSignal(
        {
            "model": blip,
            "device": "cpu",
            "num_return_sequences": 2,
            "top_k": 20,
            "max_new_tokens": 5,
            "min_new_tokens": 2,
            "batch_size": 2,
        }
    )
    assert sig.needs_image is True
    ims = tiny_images(5)
    ims[2] = None
    out = sig(_batch([f"u{i}" for i in range(5)], ims, ["ok", "ok", "ok", "decode_error", "ok"]))
    lists, first = out["synthetic_captions"], out["synthetic_caption"]
    assert len(lists) == len(first) == 5
    assert lists[2] is None and lists[3] is None and first[2] is None and first[3] is None
    for i in (0, 1, 4):
        assert len(lists[i]) == 2 and first[i] == lists[i][0]
    # seeds come from uid (and the global seed): the same uid alone in another batch -> same captions
    alone = sig(_batch(["u4"], [ims[4]]))
    assert alone["synthetic_captions"][0] == lists[4]
    other = CaptionSignal({**sig.options.model_dump(), "seed": 1})
    assert other(_batch(["u4"], [ims[4]]))["synthetic_captions"][0] != lists[4]


def test_from_file_csv_released_form(tmp_path, caplog):
    # uid + caption, one row per caption (the shape of thaottn/DataComp_medium_pool_BLIP2_captions)
    p = tmp_path / "caps.csv"
    pd.DataFrame({"uid": ["a", "b", "a"], "caption": ["a dog", "a cat", "a brown dog"]}).to_csv(
        p, index=False
    )
    sig = CaptionSignal({"from_file": str(p)})
    assert sig.needs_image is False and sig.captioner is None
    # the runner probes needs_image on an instance built without __init__ (pipeline/plan.py)
    from altsift.pipeline.plan import SignalPlan

    assert SignalPlan("caption", CaptionSignal, sig.options).needs_image is False
    assert SignalPlan("caption", CaptionSignal, CaptionSignal.Options()).needs_image is True
    with caplog.at_level(logging.WARNING):
        out = sig(_batch(["a", "b", "zz", "a"], [None] * 4, ["ok", "ok", "ok", "bad"]))
    assert out["synthetic_captions"] == [["a dog", "a brown dog"], ["a cat"], None, None]
    assert out["synthetic_caption"] == ["a dog", "a cat", None, None]
    assert sig.n_missing == 1 and "1 of 3 rows have no caption" in caplog.text


def test_from_file_parquet_lists_and_variants(tmp_path):
    p = tmp_path / "caps.parquet"
    pd.DataFrame({"uid": ["x", "y"], "captions": [["one", "two"], []]}).to_parquet(p)
    out = CaptionSignal({"from_file": str(p)})(_batch(["y", "x"], [None, None]))
    assert out["synthetic_captions"] == [None, ["one", "two"]]
    # column variants: key / blip2_caption, and explicit columns; glob over several files
    q = tmp_path / "part_1.csv"
    pd.DataFrame({"key": ["k0"], "blip2_caption": ["v1"], "other": ["z"]}).to_csv(q, index=False)
    pd.DataFrame({"key": ["k1"], "blip2_caption": ["v2"], "other": ["w"]}).to_csv(
        tmp_path / "part_2.csv", index=False
    )
    sig = CaptionSignal({"from_file": str(tmp_path / "part_*.csv"), "match_on": "key"})
    assert sig(_batch(["u0", "u1"], [None, None]))["synthetic_caption"] == ["v1", "v2"]
    assert load_caption_file(str(q), "key", "other") == {"k0": ["z"]}
    with pytest.raises(ConfigError, match="no caption column 'nope'"):
        load_caption_file(str(q), caption_column="nope")
    with pytest.raises(ConfigError, match="no file matches"):
        load_caption_file(str(tmp_path / "missing*.csv"))


def test_uid_read_as_string(tmp_path):
    # DataComp uids are 32-hex strings; a numeric-looking uid must not become an int / float
    p = tmp_path / "c.csv"
    p.write_text("uid,caption\n00012,a\n")
    assert load_caption_file(str(p)) == {"00012": ["a"]}


def test_from_file_header_guessing_prefers_caption_over_alt_text(tmp_path):
    """``blip2-cap`` is found; a raw ``text`` column is never taken for the synthetic caption."""
    p = tmp_path / "meta.csv"
    pd.DataFrame({"uid": ["a"], "text": ["raw alt-text"], "blip2-cap": ["a dog on grass"]}).to_csv(
        p, index=False
    )
    assert load_caption_file(str(p)) == {"a": ["a dog on grass"]}
    only_text = tmp_path / "only_text.csv"
    pd.DataFrame({"uid": ["a"], "text": ["raw alt-text"]}).to_csv(only_text, index=False)
    with pytest.raises(ConfigError, match="cannot find a caption column"):
        load_caption_file(str(only_text))


def test_from_file_csv_list_column_is_parsed(tmp_path):
    p = tmp_path / "lists.csv"
    pd.DataFrame({"uid": ["a", "b"], "captions": [["one", "two"], ["three"]]}).to_csv(p, index=False)
    assert load_caption_file(str(p)) == {"a": ["one", "two"], "b": ["three"]}  # written as "['one', 'two']"
    q = tmp_path / "json_lists.csv"
    q.write_text('uid,captions\na,"[""x"", ""y""]"\n')
    assert load_caption_file(str(q)) == {"a": ["x", "y"]}


def test_edited_caption_file_is_read_again_on_rerun(tmp_path):
    import os

    from altsift.config import build_config
    from altsift.io.tables import load_pool
    from altsift.pipeline.score import score
    from helpers_shards import make_shards, uid_of

    shards = [str(p) for p in make_shards(tmp_path / "in", n_shards=2, per_shard=2)]
    caps = tmp_path / "caps.csv"
    pd.DataFrame({"uid": [uid_of(i) for i in range(4)], "caption": ["old"] * 4}).to_csv(caps, index=False)
    cfg = build_config(
        {"signals": ["caption"], "caption": {"from_file": str(caps)}, "score": {"progress": False}}
    )
    score(shards, tmp_path / "run", cfg.signals, cfg)
    assert score(shards, tmp_path / "run", cfg.signals, cfg).shards_skipped == 2  # unchanged: resumed
    pd.DataFrame({"uid": [uid_of(i) for i in range(4)], "caption": ["new"] * 4}).to_csv(caps, index=False)
    st = caps.stat()
    os.utime(caps, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a clearly later mtime
    s = score(shards, tmp_path / "run", cfg.signals, cfg)
    assert s.shards_skipped == 0
    assert set(load_pool(tmp_path / "run")["synthetic_caption"]) == {"new"}
