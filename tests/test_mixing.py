"""Raw / synthetic caption mixing presets on hand-built pools."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from altsift.errors import ConfigError
from altsift.select.base import Pool, get_preset


def _pool() -> Pool:
    # 10 rows; raw scores 0.10 .. 0.37 (row 9 best); synthetic scores chosen by hand
    raw = [0.10, 0.13, 0.16, 0.19, 0.22, 0.25, 0.28, 0.31, 0.34, 0.37]
    syn = [0.40, 0.05, 0.35, np.nan, 0.20, 0.33, 0.50, 0.10, 0.30, 0.36]
    syn_text = [f"s{i}" for i in range(10)]
    syn_text[3] = None  # no synthetic caption for row 3
    df = pd.DataFrame(
        {
            "uid": [f"u{i}" for i in range(10)],
            "text": [f"r{i}" for i in range(10)],
            "clip_score": raw,
            "clip_score_synthetic": syn,
            "synthetic_caption": syn_text,
        }
    )
    return Pool(df=df)


def _apply(name, **opts):
    sel = get_preset(name)(opts).apply(_pool())
    cap, src = sel.columns["caption"], sel.columns["caption_source"]
    kept = {int(i): (cap[i], src[i]) for i in np.flatnonzero(sel.mask)}
    assert all(cap[i] is None and src[i] is None for i in np.flatnonzero(~sel.mask))
    return kept


def test_raw_top():
    # get_threshold(raw, 0.3) = sorted desc [int(10*0.3)=3] = 0.28 -> rows 6..9
    assert _apply("mix_raw_top") == {i: (f"r{i}", "raw") for i in (6, 7, 8, 9)}
    assert _apply("mix_raw_top", fraction=0.1) == {9: ("r9", "raw"), 8: ("r8", "raw")}


def test_synthetic_top():
    # syn desc: .50 .40 .36 .35 .33 .30 ...; row 3 (no synthetic caption) is not part of N = 9,
    # fraction .5 -> index int(4.5) = 4 -> threshold .33 -> rows 6, 0, 9, 2, 5
    assert _apply("mix_synthetic_top") == {i: (f"s{i}", "synthetic") for i in (0, 2, 5, 6, 9)}
    assert set(_apply("mix_synthetic_top", fraction=0.6)) == {0, 2, 5, 6, 8, 9}


def test_raw_top_synthetic_rest():
    kept = _apply("mix_raw_top_synthetic_rest")
    assert {i for i, (_, s) in kept.items() if s == "raw"} == {6, 7, 8, 9}
    # every other row gets its synthetic caption, except row 3 which has none
    assert {i: c for i, (c, s) in kept.items() if s == "synthetic"} == {i: f"s{i}" for i in (0, 1, 2, 4, 5)}


def test_raw_top_synthetic_rest_filtered_uses_the_same_threshold():
    kept = _apply("mix_raw_top_synthetic_rest_filtered")
    # threshold 0.28 from the raw top 30%; replaced rows need syn >= 0.28: rows 0 (.40), 2 (.35), 5 (.33)
    assert kept == {
        6: ("r6", "raw"),
        7: ("r7", "raw"),
        8: ("r8", "raw"),
        9: ("r9", "raw"),
        0: ("s0", "synthetic"),
        2: ("s2", "synthetic"),
        5: ("s5", "synthetic"),
    }


def test_replace_below():
    kept = _apply("mix_replace_below", threshold=0.2)
    assert {i for i, (_, s) in kept.items() if s == "raw"} == {4, 5, 6, 7, 8, 9}
    assert {i for i, (_, s) in kept.items() if s == "synthetic"} == {0, 1, 2}
    kept = _apply("mix_replace_below", threshold=0.2, filter_synthetic=True)
    assert {i for i, (_, s) in kept.items() if s == "synthetic"} == {0, 2}
    # default: t from the pool-wide 30% threshold -> same split as mix_raw_top_synthetic_rest
    assert _apply("mix_replace_below") == _apply("mix_raw_top_synthetic_rest")


def test_best_of():
    kept = _apply("mix_best_of", threshold=0.3)
    # best per row: 0 s.40, 1 r.13, 2 s.35, 3 r.19, 4 r.22, 5 s.33, 6 s.50, 7 r.31, 8 r.34, 9 r.37 (tie-free)
    assert kept == {
        0: ("s0", "synthetic"),
        2: ("s2", "synthetic"),
        5: ("s5", "synthetic"),
        6: ("s6", "synthetic"),
        7: ("r7", "raw"),
        8: ("r8", "raw"),
        9: ("r9", "raw"),
    }
    # fraction 0.3: best desc .50 .40 .37 .35 -> threshold .35 -> rows 6, 0, 9, 2
    assert set(_apply("mix_best_of")) == {0, 2, 6, 9}


def test_custom_columns_and_errors():
    pool = _pool()
    pool.set_column("clip_l14", pool.numeric("clip_score")[::-1])
    sel = get_preset("mix_raw_top")({"raw_score": "clip_l14", "fraction": 0.1}).apply(pool)
    assert set(np.flatnonzero(sel.mask)) == {0, 1}
    with pytest.raises(ConfigError, match="nope"):
        get_preset("mix_raw_top")({"raw_score": "nope"}).apply(pool)
    with pytest.raises(ValueError):
        get_preset("mix_raw_top")({"fraction": 1.5})
    assert get_preset("mix_best_of")().needed_columns() == (
        "clip_score",
        "text",
        "clip_score_synthetic",
        "synthetic_caption",
    )


def test_list_valued_score_column_is_a_clear_error():
    from altsift.select.base import require_column

    df = pd.DataFrame({"s": [[0.1, 0.2], None], "ok": [0.5, None]})
    with pytest.raises(ConfigError, match="holds lists"):
        require_column(df, "s")
    assert require_column(df, "ok")[0] == 0.5
    pool = Pool(df)  # the lazy pool says the same from the arrow type, before reading anything
    with pytest.raises(ConfigError, match="holds lists"):
        pool.numeric("s")
