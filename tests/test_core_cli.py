"""Config validation, --set overrides and the command line."""

import json
import subprocess
import sys

import pytest

from altsift.config import apply_sets, build_config, parse_set
from altsift.errors import ConfigError
from helpers_shards import make_shards


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "altsift", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_set_parses_yaml_values_into_the_tree():
    tree = apply_sets(
        {}, parse_set(["basic.min_words=3", "score.batch_size=8", "basic.language=de", "select.where=[a, b]"])
    )
    assert tree == {
        "basic": {"min_words": 3, "language": "de"},
        "score": {"batch_size": 8},
        "select": {"where": ["a", "b"]},
    }
    cfg = build_config({**tree, "select": {}})
    assert cfg.signal_options("basic") == {"min_words": 3, "language": "de"}
    assert cfg.score.batch_size == 8


def test_bad_config_names_key_and_place():
    with pytest.raises(ConfigError, match=r"score.batch_size"):
        build_config({"score": {"batch_size": "many"}})
    with pytest.raises(ConfigError, match=r"unknown section 'clp'"):
        build_config({"clp": {"model": "x"}})
    with pytest.raises(ConfigError, match=r"in section 'basic'.*min_wordz"):
        build_config({"basic": {"min_wordz": 3}})
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        parse_set(["novalue"])


def test_cli_score_select_export_and_errors(tmp_path):
    make_shards(tmp_path / "in", n_shards=2, per_shard=4)
    r = cli(
        "score",
        tmp_path / "in" / "{00000..00001}.tar",
        "--out",
        tmp_path / "run",
        "--set",
        "basic.min_words=1",
    )
    assert r.returncode == 0, r.stderr
    assert "scored 8 samples in 2 shards" in r.stdout
    r = cli("score", tmp_path / "in", "--out", tmp_path / "run", "--set", "basic.min_words=1")
    assert "(2 already done)" in r.stdout  # same options: resumed, nothing recomputed
    r = cli("score", tmp_path / "in", "--out", tmp_path / "run")
    assert "scored 8 samples in 2 shards (0 already done)" in r.stdout  # other options: recomputed
    r = cli("select", tmp_path / "run", "--where", "basic_pass", "--top-fraction", "caption_num_chars=0.5")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "run" / "subset.json").read_text())
    assert info["pool_rows"] == 8
    r = cli("export", tmp_path / "run", "--subset", tmp_path / "run" / "subset.npy", "--to", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    # one clear line, exit code 2, no traceback
    r = cli("score", tmp_path / "missing.tar", "--out", tmp_path / "run2")
    assert r.returncode == 2 and "input not found" in r.stderr and "Traceback" not in r.stderr
    r = cli("score", tmp_path / "in", "--out", tmp_path / "run3", "--set", "basic.nope=1")
    assert r.returncode == 2 and "nope" in r.stderr
    r = cli("select", tmp_path / "run", "--top-fraction", "nope=0.1")
    assert r.returncode == 2 and "nope" in r.stderr


def test_help_teaches():
    r = cli("--help")
    assert r.returncode == 0 and "score" in r.stdout and "select" in r.stdout and "export" in r.stdout
    r = cli("select", "--help")
    assert "--top-fraction" in r.stdout and "pool" in r.stdout


def test_demo_runs(tmp_path):
    r = cli("demo", "--out", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["pool"] == 44 and 0 < out["selected"] < 44
    summary = json.loads((tmp_path / "demo" / "run" / "score_summary.json").read_text())
    for st in (
        "bad_image",
        "empty_image",
        "bad_utf8",
        "bad_json",
        "duplicate_uid",
        "missing_caption",
        "unsafe_path",
    ):
        assert summary["status_counts"].get(st, 0) >= 1, st
    assert list((tmp_path / "demo" / "export").glob("*.tar"))
