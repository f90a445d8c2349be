"""Preset ``sieve``: SIEVE ``generic_filter`` fusion semantics on hand-built pools."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from altsift.errors import ConfigError
from altsift.select.base import Pool, get_preset
from altsift.select.sieve_fusion import SieveFusion


def generic_filter_reference(df: pd.DataFrame, keys, weights, fraction) -> np.ndarray:
    """SIEVE ``load_uids_generic_filter`` (+ helper) re-typed with pandas: returns the keep mask."""
    assert sum(weights) == 1.0
    w = None
    for key, wt in zip(keys, weights, strict=True):
        lo, hi = df[key].min(), df[key].max()
        part = wt * ((df[key] - lo) / (hi - lo))
        w = part if w is None else w + part
    sorted_df = -np.sort(-w.values)
    threshold = sorted_df[int(len(w) * fraction)]
    return (w >= threshold).to_numpy()


def test_hand_computed_example():
    df = pd.DataFrame(
        {
            "sieve_score": [0.1, 0.5, 0.3, 0.9, 0.7],
            "clip_score": [0.2, 0.2, 0.4, 0.3, 0.1],
            "uid": list("abcde"),
        }
    )
    # normalised: sieve [0, .5, .25, 1, .75], clip [1/3, 1/3, 1, 2/3, 0]
    # fused = [.1667, .4167, .625, .8333, .375]; fraction .4 -> sorted_desc[int(5 * .4) = 2] = .4167, keep >=
    sel = SieveFusion({"fraction": 0.4}).apply(Pool(df))
    assert sel.mask.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(sel.columns["sieve_fused"], [1 / 6, 5 / 12, 0.625, 5 / 6, 0.375])
    assert sel.steps[0].kept_alone == 3 and sel.steps[0].detail["threshold"] == pytest.approx(5 / 12)
    # SIEVE alone: sieve_score's order only
    alone = SieveFusion({"weights": {"sieve_score": 1.0}, "fraction": 0.4}).apply(Pool(df))
    assert alone.mask.tolist() == [False, True, False, True, True]  # threshold = sorted [.9,.7,.5][2] = .5


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.25, 0.75), (1.0, 0.0)])
def test_matches_sieve_generic_filter(fraction, weights):
    rng = np.random.default_rng(int(fraction * 100) + int(weights[0] * 10))
    n = 2000
    df = pd.DataFrame(
        {
            "sieve_score": rng.normal(0.4, 0.15, n),
            "clip_score": rng.normal(0.3, 0.05, n),
            "shard": rng.integers(0, 4, n),
        }
    )
    df.loc[rng.integers(0, n, 50), "sieve_score"] = 0.0  # SIEVE's empty-caption zeros: ties
    ref = generic_filter_reference(df, ["sieve_score", "clip_score"], list(weights), fraction)
    opts = {"weights": {"sieve_score": weights[0], "clip_score": weights[1]}, "fraction": fraction}
    sel = get_preset("sieve")(opts).apply(Pool(df))
    assert sel.mask.dtype == bool and sel.mask.tolist() == ref.tolist()
    assert abs(sel.n_selected - (int(n * fraction) + 1)) <= 2  # SIEVE keeps ranks 0..int(N*f), ties aside


def test_pool_wide_not_per_shard():
    """Normalisation and threshold use the whole pool: per-shard selection would differ."""
    df = pd.DataFrame(
        {
            "sieve_score": [0.1, 0.2, 0.3, 0.4, 0.7, 0.8, 0.9, 1.0],
            "clip_score": [0.1, 0.2, 0.3, 0.4, 0.7, 0.8, 0.9, 1.0],
            "shard": [0] * 4 + [1] * 4,
        }
    )
    sel = SieveFusion({"fraction": 0.25}).apply(Pool(df))
    assert sel.mask.tolist() == [False] * 5 + [True] * 3
    per_shard = np.concatenate(
        [
            SieveFusion({"fraction": 0.25}).apply(Pool(g.reset_index(drop=True))).mask
            for _, g in df.groupby("shard")
        ]
    )
    assert per_shard.tolist() != sel.mask.tolist()


def test_missing_scores_are_never_kept():
    df = pd.DataFrame({"sieve_score": [0.9, None, 0.1, 0.5], "clip_score": [0.1, 0.9, np.nan, 0.5]})
    sel = SieveFusion({"fraction": 1.0}).apply(Pool(df))
    assert sel.mask.tolist() == [True, False, False, True]


def test_options_and_errors():
    assert SieveFusion().options.weights == {"sieve_score": 0.5, "clip_score": 0.5}
    assert SieveFusion().options.fraction == 0.2
    assert SieveFusion({"weights": {"a": 0.7, "b": 0.3}}).needed_columns() == ("a", "b")
    with pytest.raises(ValidationError, match="sum to 1"):
        SieveFusion({"weights": {"sieve_score": 0.5, "clip_score": 0.6}})
    with pytest.raises(ValidationError):
        SieveFusion({"fraction": 0.0})
    with pytest.raises(ValidationError):
        SieveFusion({"bogus": 1})
    df = pd.DataFrame({"sieve_score": [0.1, 0.2], "clip_l14_similarity_score": [0.3, 0.1]})
    with pytest.raises(ConfigError, match="clip_score.*clip_l14_similarity_score"):
        SieveFusion().apply(Pool(df))
    # DataComp metadata column names work through the weights
    sel = SieveFusion(
        {"weights": {"sieve_score": 0.5, "clip_l14_similarity_score": 0.5}, "fraction": 0.5}
    ).apply(Pool(df))
    assert sel.mask.tolist() == [True, True]
    empty = SieveFusion({"weights": {"sieve_score": 1.0}}).apply(Pool(df.iloc[:0]))
    assert empty.mask.shape == (0,)


def test_preset_equals_generic_fuse_through_select(tmp_path):
    """``select --preset sieve`` == ``select --fuse ... --top-fraction fused=0.2`` == SIEVE, on a 2-file pool."""
    from altsift.select.core import SelectRequest, run_selection

    rng = np.random.default_rng(7)
    frames = []
    for shard in range(2):
        n = 300 + 100 * shard
        df = pd.DataFrame(
            {
                "uid": [f"{shard:08x}{i:024x}" for i in range(n)],
                "sieve_score": rng.uniform(0, 1, n).round(3),
                "clip_score": rng.normal(0.3 + 0.05 * shard, 0.04, n),
            }
        )
        df.to_parquet(tmp_path / f"{shard:08d}.parquet")
        frames.append(df)
    full = pd.concat(frames, ignore_index=True)
    _, by_preset = run_selection(tmp_path, SelectRequest(preset="sieve"))
    _, by_fuse = run_selection(
        tmp_path, SelectRequest(fuse={"sieve_score": 0.5, "clip_score": 0.5}, top_fraction={"fused": 0.2})
    )
    ref = generic_filter_reference(full, ["sieve_score", "clip_score"], [0.5, 0.5], 0.2)
    assert by_preset.mask.tolist() == ref.tolist() == by_fuse.mask.tolist()
    assert by_preset.n_selected == int(len(full) * 0.2) + 1
    fused = by_preset.columns["sieve_fused"]
    assert fused[ref].min() > fused[~ref].max()  # kept rows are exactly the top of the fused score


def test_fusion_normalises_over_the_rows_it_ranks():
    """Issue 14 item 3: with different nulls per column, min-max uses the rows where every fused column is
    present - the same rows the top fraction counts - so a row that is never ranked cannot stretch the scale."""
    df = pd.DataFrame({"sieve_score": [0.0, 0.5, 1.0, 10.0], "clip_score": [0.1, 0.2, 0.3, np.nan]})
    sel = SieveFusion({"fraction": 0.5}).apply(Pool(df))
    np.testing.assert_allclose(sel.columns["sieve_fused"], [0.0, 0.5, 1.0, np.nan])  # not [0, .275, .55, nan]
    step = sel.steps[0]
    assert step.detail["rows_with_all_columns"] == 3 and step.detail["sieve_score_max"] == 1.0
    # N = 3 complete rows: int(3 * 0.5) = 1 -> threshold 0.5 -> rows 1, 2
    assert sel.mask.tolist() == [False, True, True, False] and step.threshold == 0.5
    from altsift.select.base import fuse

    np.testing.assert_allclose(fuse(df, {"sieve_score": 0.5, "clip_score": 0.5}), [0.0, 0.5, 1.0, np.nan])
