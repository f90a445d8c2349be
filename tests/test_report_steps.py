"""Selection steps as the report reads them (structured and older summaries), and small helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from altsift.io.uids import contains, uids_to_array
from altsift.report.html import _k_smallest
from altsift.report.steps import compare, cuts, parse_step, parse_steps, replay_step, step_columns
from altsift.report.subsets import member

IDENT = frozenset({"uid", "text", "status"})


def test_structured_fields_are_used_as_given():
    s = parse_step(
        {"name": "anything at all", "kind": "threshold", "column": "clip_score", "op": ">", "threshold": 0.28,
         "fraction": None, "kept_alone": 5, "kept_cumulative": 4, "detail": {}}
    )  # fmt: skip
    assert (s.kind, s.column, s.op, s.threshold, s.structured) == ("threshold", "clip_score", ">", 0.28, True)
    w = parse_step({"name": "where x", "kind": "where", "column": None, "detail": {"expr": "a > 1 and b"}})
    assert w.expr == "a > 1 and b" and w.column is None  # a structured where is never parsed from its name


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ({"name": "status == 'ok'"}, ("status", None, None, None)),
        ({"name": "first occurrence of uid"}, ("dedup", None, None, None)),
        ({"name": "where lang_score >= 0.5"}, ("where", "lang_score", ">=", 0.5)),
        ({"name": "where basic_pass"}, ("where", None, None, None)),
        ({"name": "top 0.3 of clip_score (pool-wide)", "detail": {"threshold": 0.31, "fraction": 0.3}},
         ("top_fraction", "clip_score", ">=", 0.31)),
        ({"name": "fuse {'a': 0.5, 'b': 0.5} -> fused", "detail": {"weights": {"a": 0.5, "b": 0.5}}},
         ("fuse", "fused", None, None)),
        ({"name": "preset datacomp_basic"}, ("preset", None, None, None)),
        # preset sub-steps written by older versions
        ({"name": "clip_score > 0.28"}, ("threshold", "clip_score", ">", 0.28)),
        ({"name": "clip_score >= 0.281: raw", "detail": {"threshold": 0.28123}},
         ("threshold", "clip_score", ">=", 0.28123)),
        ({"name": "clip_score", "detail": {"column": "clip_l14", "threshold": 0.3}},
         ("threshold", "clip_l14", ">=", 0.3)),
    ],
)  # fmt: skip
def test_older_summaries_are_read_from_their_names(raw, want):
    s = parse_step({"kept_alone": 1, "kept_cumulative": 1, **raw})
    assert (s.kind, s.column, s.op, s.threshold) == want and not s.structured


def test_cuts_include_nested_preset_steps_once():
    sel = {
        "steps": [
            {"name": "where a >= 1", "kept_alone": 3, "kept_cumulative": 3},
            {"name": "preset p", "kept_alone": 2, "kept_cumulative": 2, "detail": {"steps": [
                {"name": "a >= 1", "kept_alone": 3, "kept_cumulative": 3},
                {"name": "b < 2.5", "kept_alone": 2, "kept_cumulative": 2}]}},
        ]
    }  # fmt: skip
    got = [(c.column, c.op, c.value) for c in cuts(parse_steps(sel))]
    assert got == [("a", ">=", 1.0), ("b", "<", 2.5)]


def test_replay_uses_column_op_threshold_and_nan_never_passes(tmp_path):
    df = pd.DataFrame(
        {"uid": ["u1", "u2", "u2", "u4"], "status": ["ok", "ok", "ok", "bad"], "s": [0.1, np.nan, 0.5, 0.9]}
    )
    mask = np.ones(4, bool)
    st = parse_step({"name": "x", "kind": "threshold", "column": "s", "op": "<", "threshold": 0.6})
    m, alone = replay_step(st, df, mask, False, None)
    assert m.tolist() == [True, False, True, False] and alone == 2
    assert replay_step(parse_step({"name": "s", "kind": "status"}), df, mask, False, None)[0].tolist() == [
        True, True, True, False
    ]  # fmt: skip
    assert replay_step(parse_step({"name": "d", "kind": "dedup"}), df, mask, False, None)[0].tolist() == [
        True, True, False, True
    ]  # fmt: skip
    top = parse_step(
        {"name": "t", "kind": "top_fraction", "column": "s", "fraction": 0.5}
    )  # no threshold given
    assert replay_step(top, df, mask, False, None)[0].tolist() == [False, False, True, True]
    assert replay_step(parse_step({"name": "?", "kind": "subset"}), df, mask, False, None) == (None, None)
    assert compare(np.array([1.0, np.nan]), "!=", 2.0).tolist() == [True, False]
    with pytest.raises(ValueError):
        compare(np.array([1.0]), "=~", 1.0)
    where = parse_step({"name": "where s >= 0.5 and status == 'ok'"})
    assert step_columns(where, ["s", "status", "ss"], IDENT) == ["s", "status"]


def test_member_matches_datacomp_membership():
    rng = np.random.default_rng(0)
    for _ in range(20):  # few distinct high halves: the shared-prefix path is exercised too
        u = [f"{rng.integers(0, 3):016x}{rng.integers(0, 40):016x}" for _ in range(200)]
        sub, q = uids_to_array(u[:70]), uids_to_array(u, sort=False)
        assert (member(sub, q) == contains(sub, u)).all()
    hashed = [f"{x:032x}" for x in rng.integers(0, 2**62, 500)]
    sub = uids_to_array(hashed[::3])
    assert member(sub, uids_to_array(hashed, sort=False)).sum() == len(set(hashed[::3]))


def test_k_smallest_is_a_stable_partial_sort():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n, k = int(rng.integers(1, 50)), int(rng.integers(1, 15))
        key = rng.integers(0, 4, n).astype(float)
        assert _k_smallest(key, k).tolist() == np.lexsort((np.arange(n), key))[:k].tolist()
