"""The ``--where`` language: what it admits, SQL null semantics, and the refusals (issue 10 item 1)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from altsift.errors import ConfigError
from altsift.select.expr import FUNCTIONS, check_where_syntax, compile_where

T = pa.table(
    {
        "clip_score": [0.1, 0.3, None, 0.5, float("nan")],
        "basic_pass": [True, False, True, None, True],
        "lang": ["en", "de", "en", None, "en"],
        "text": ["a b", "c", "dd ee", "x", None],
        "n": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "weird name": [1.0, 2.0, 3.0, 4.0, 5.0],
        "ocr_strings": pa.array([["a"], [], None, ["b", "c"], ["x"]]),
        "all_null": pa.nulls(5),
    }
)
TYPES = {f.name: f.type for f in T.schema}


def ev(expr: str) -> list[int]:
    return compile_where(expr, TYPES).evaluate_table(T).astype(int).tolist()


@pytest.mark.parametrize(
    "expr, want",
    [
        # the forms in tests, configs and docs before the language existed
        ("basic_pass", [1, 0, 1, 0, 1]),
        ("clip_score >= 0.28 and lang == 'en'", [0, 0, 0, 0, 0]),
        ("basic_pass & (clip_score > 0.3)", [0, 0, 0, 0, 0]),
        ("basic_pass & clip_score > 0.05", [1, 0, 0, 0, 0]),  # & binds like 'and' (as pandas.eval)
        ("clip_score >= 0.1 or status_like_col_absent_ok", None),
        # comparisons, chains, nulls
        ("0.2 < clip_score <= 0.5", [0, 1, 0, 1, 0]),
        ("clip_score != 0.3", [1, 0, 0, 1, 0]),  # null and NaN compare as null -> not selected
        ("not clip_score > 0.2", [1, 0, 0, 0, 0]),
        ("clip_score is null", [0, 0, 1, 0, 1]),
        ("clip_score is not null", [1, 1, 0, 1, 0]),
        ("text is None", [0, 0, 0, 0, 1]),
        ("isnull(lang) or basic_pass", [1, 0, 1, 1, 1]),
        ("notnull(lang) and not basic_pass", [0, 1, 0, 0, 0]),
        ("~basic_pass", [0, 1, 0, 0, 0]),
        ("basic_pass | n > 3", [1, 0, 1, 1, 1]),
        ("basic_pass == true", [1, 0, 1, 0, 1]),
        # lists
        ("lang in ['en', 'fr']", [1, 0, 1, 0, 1]),
        ("lang not in ['en']", [0, 1, 0, 0, 0]),  # null lang: unknown -> not selected
        ("n in [1, -2, 3.0]", [1, 0, 1, 0, 0]),
        # arithmetic and functions
        ("n ** 2 > 4", [0, 0, 1, 1, 1]),
        ("n / 2 >= 1.5", [0, 0, 1, 1, 1]),  # true division
        ("-n < -3", [0, 0, 0, 1, 1]),
        ("abs(-n) > 2", [0, 0, 1, 1, 1]),
        ("log(n) > 0.5 and log10(n) < 0.65 and sqrt(n) >= 1", [0, 1, 1, 1, 0]),
        ("coalesce(clip_score, 0) >= 0", [1, 1, 1, 1, 1]),
        ("min(n, 3) == 3 and max(n, 4) == 4", [0, 0, 1, 1, 0]),
        ("lower(lang) == 'en' and upper(lang) == 'EN'", [1, 0, 1, 0, 1]),
        ("length(text) > 2 or len(ocr_strings) >= 2", [1, 0, 1, 1, 0]),
        ("contains(text, 'b') or startswith(text, 'x') or endswith(text, 'e')", [1, 0, 1, 1, 0]),
        ("col('weird name') > 2", [0, 0, 1, 1, 1]),
        ("all_null > 3 or all_null is null", [1, 1, 1, 1, 1]),
        ("true", [1, 1, 1, 1, 1]),
        ("1 > 2", [0, 0, 0, 0, 0]),
        ("n / 0 > 1", [1, 1, 1, 1, 1]),  # float division: inf, no error
        ("2 ** 10000 > 1", [1, 1, 1, 1, 1]),  # float power: inf, bounded time
    ],
)
def test_admitted_expressions(expr, want):
    if want is None:
        with pytest.raises(ConfigError, match="unknown column 'status_like_col_absent_ok'"):
            ev(expr)
        return
    assert ev(expr) == want


def test_reads_only_named_columns():
    assert compile_where("basic_pass & (clip_score > 0.3)", TYPES).columns == ("basic_pass", "clip_score")
    assert compile_where("col('weird name') > 1 and lang in ['en']", TYPES).columns == ("weird name", "lang")
    assert compile_where("true", TYPES).columns == ()


REFUSED = [
    # the issue's reproductions: arbitrary code through pandas.eval
    ("basic_pass & (@pd.io.common.os.system('id > pwned.txt') == 0)", "syntax error"),
    ("text.to_csv('any/file')", "attribute access is not allowed: '.to_csv'"),
    ("clip_scor > 0.3", r"unknown column 'clip_scor' \(did you mean clip_score\?\)"),
    ("system('ls')", "unknown function 'system'"),
    ("__import__('os').system('id')", "attribute access is not allowed: '.system'"),
    ("__import__('os')", "unknown function '__import__'"),
    ("basic_pass.__class__.__mro__", "attribute access is not allowed"),
    ("().__class__", "attribute access is not allowed"),
    ("open('x', 'w')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("[x for x in text]", "comprehensions are not allowed"),
    ("{x: 1 for x in text}", "comprehensions are not allowed"),
    ("(x for x in text)", "comprehensions are not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("f'{text}' == 'a'", "f-strings are not allowed"),
    ("(x := 1)", "assignment"),
    ("text[0] == 'a'", "indexing is not allowed"),
    ("abs(*n)", r"\* unpacking is not allowed"),
    ("1 if basic_pass else 0", "conditional expressions"),
    ("{'a': 1}", "dictionaries are not allowed"),
    ("b'abc' == text", "bytes literals are not allowed"),
    ("1j > 0", "complex literals are not allowed"),
    ("n % 2 == 0", "operator '%' is not supported"),
    ("n // 2 == 0", "operator '//' is not supported"),
    ("n << 2 == 0", "operator '<<' is not supported"),
    ("abs(x=1)", "no keyword arguments"),
    ("contains(text, lang)", "must be text in quotes"),
    ("col(lang) > 1", r"col\(\) takes one column name in quotes"),
    ("clip_score", "gives numbers, not true/false"),
    ("text", "gives text, not true/false"),
    ("text > 3", "cannot compare text with numbers"),
    ("clip_score == null", "is never true: write 'x is null'"),
    ("'a' in text", "'in' needs a list"),
    ("lang in [1, 'a']", "this list holds numbers"),
    ("basic_pass > false", "compare only with == or !="),
    ("clip_score and basic_pass", "expected true/false here, got numbers"),
    ("99999999999999999999 > 1", "integer too large"),
    ("basic_pass and", "syntax error"),
    ("'abc", "unexpected character"),
    ("x $ y", r"unexpected character '\$'"),
    ("(basic_pass", "unbalanced brackets"),
    ("ocr_strings == 'a'", "cannot compare lists with text"),
    ("sqrt(lang) > 1", r"sqrt\(\) applies to numbers"),
    ("", "empty expression"),
    ("(" * 300 + "basic_pass" + ")" * 300, "nested"),
    ("not " * 900 + "basic_pass", "too (deeply|large|long)"),
    ("a" * 5000, "too long"),
    ("n > " + "+".join(["1"] * 1500), "too (deeply|large|long)"),
    ("n > " + "+".join(["1"] * 60), "nested too deeply"),
]


@pytest.mark.parametrize("expr, msg", REFUSED)
def test_refused_expressions_name_the_offending_part(expr, msg):
    with pytest.raises(ConfigError, match=msg):
        compile_where(expr, TYPES)


def test_errors_point_at_the_offending_part():
    with pytest.raises(ConfigError) as e:
        compile_where("basic_pass and text.to_csv('any/file')", TYPES)
    lines = str(e.value).splitlines()
    assert lines[1].strip() == "basic_pass and text.to_csv('any/file')"
    caret = lines[2]
    assert caret.index("^") - 2 == len("basic_pass and text") and caret.count("^") == len(".to_csv")
    with pytest.raises(ConfigError) as e:  # positions survive the & -> and rewrite
        compile_where("basic_pass & (clip_scor > 1)", TYPES)
    lines = str(e.value).splitlines()
    assert lines[2].index("^") - 2 == len("basic_pass & (") and lines[2].count("^") == len("clip_scor")


def test_syntax_check_without_a_pool():
    check_where_syntax("clip_score >= 0.28 and lang == 'en'")
    check_where_syntax("anything_goes > 1 or contains(x, 'y')")  # columns are checked later, on the pool
    with pytest.raises(ConfigError, match="attribute access"):
        check_where_syntax("text.to_csv('x')")


def test_function_list_is_short_and_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "select.md").read_text()
    for name in FUNCTIONS:
        assert f"`{name}(" in doc, name


@pytest.mark.parametrize(
    "where",
    ["basic_pass & (@pd.io.common.os.system('touch pwned.txt') == 0)", "text.to_csv('pwned.txt')"],
)
def test_cli_and_config_refuse_the_issue_payloads(tmp_path, monkeypatch, capsys, where):
    """From the command line and from ``where:`` in a YAML run config: exit 2, nothing written, nothing run."""
    import pandas as pd

    from helpers_select import cli, uid

    monkeypatch.chdir(tmp_path)
    meta = tmp_path / "meta"
    meta.mkdir()
    pd.DataFrame(
        {"uid": [uid(i) for i in range(4)], "text": list("abcd"), "basic_pass": [True] * 4}
    ).to_parquet(meta / "0.parquet")
    code, _, err = cli(capsys, "select", meta, "--where", where, "--out", tmp_path / "s.npy")
    assert code == 2 and "Traceback" not in err, err
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "s.npy").exists()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"inputs: [{tmp_path / 'none.tar'}]\nrun_dir: {tmp_path / 'run'}\nselect:\n  where: [{where!r}]\n"
    )
    code, _, err = cli(capsys, "run", cfg)
    assert code == 2 and "select.where" in err and "Traceback" not in err, err
    assert not (tmp_path / "pwned.txt").exists() and not (tmp_path / "run").exists()  # refused before scoring
