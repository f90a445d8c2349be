"""Configs are bounded data (issue 10 item 4): alias bombs, huge files, deep nesting and huge values are
refused quickly, in one short message, with exit 2."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading

import pytest

from altsift.config import MAX_CONFIG_BYTES, build_config, load_config_tree, parse_set, safe_yaml_load
from altsift.errors import ConfigError


def billion_laughs(levels: int = 9) -> str:
    """The classic: 9 lists of 9 aliases of the level below, 9**9 (387M) strings once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for ch in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{ch}: &{ch} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = ch
    lines += [f"inputs: *{prev}", f"run_dir: *{prev}"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_fast_small_and_with_exit_2(tmp_path):
    """Reproduced: this file used 12.5 GB RSS and printed 2 GB to stderr."""
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(billion_laughs())
    limit = 2 * 2**30  # address space: the old code dies here instead of taking the machine

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as fo, open(err, "w") as fe:
        p = subprocess.Popen(
            [sys.executable, "-m", "altsift", "run", str(cfg)], stdout=fo, stderr=fe, preexec_fn=cap
        )
        timer = threading.Timer(120, p.kill)
        timer.start()
        _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS, not the test session's
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
    stderr = err.read_text()
    assert p.returncode == 2, stderr[:2000]
    assert "alias expansion" in stderr and "Traceback" not in stderr
    assert len(stderr) < 500 and stderr.count("\n") == 1 and out.read_text() == ""
    assert usage.ru_maxrss < 500 * 1024  # KiB; a fresh interpreter with altsift's imports is ~130 MB


def test_expansion_depth_size_and_recursion_limits():
    with pytest.raises(ConfigError, match="alias expansion"):
        safe_yaml_load(billion_laughs(6))  # 9**6 = 531441 values
    assert len(safe_yaml_load(billion_laughs(4))["inputs"]) == 9  # 6561 values: fine
    merged = safe_yaml_load("base: &b {batch_size: 8}\nscore: {<<: *b, decode_threads: 2}\n")
    assert merged["score"] == {"batch_size": 8, "decode_threads": 2}  # merge keys still work
    with pytest.raises(ConfigError, match="nested"):
        safe_yaml_load("[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="recursive alias"):
        safe_yaml_load("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="larger than"):
        safe_yaml_load("x: " + "a" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="not valid YAML"):
        safe_yaml_load("a: [1, 2")
    with pytest.raises(ConfigError, match="refused"):
        parse_set(["score.batch_size=" + "[" * 5000])


def test_big_config_file_is_refused_without_reading_it_all(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("inputs: [" + ", ".join(["x"] * 400_000) + "]\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config_tree(p)


def test_echoed_values_are_truncated_in_every_message():
    huge = "z" * 200_000
    for tree in (
        {"score": {"batch_size": huge}},
        {"signals": [huge, {"a": [huge] * 100}]},
        {huge: {"x": 1}},
        {"basic": {"min_words": [huge] * 1000}},
        {"basic": huge},
    ):
        with pytest.raises(ConfigError) as ei:
            build_config(tree)
        assert len(str(ei.value)) < 1500, str(ei.value)[:300]
    with pytest.raises(ConfigError) as ei:
        parse_set([huge])
    assert len(str(ei.value)) < 200


def test_an_integer_past_pythons_digit_limit_is_a_config_error(tmp_path):
    """Found by review: 5,000 digits in a config or --set ended as "internal error" (exit 1)."""
    big = "9" * 5000
    with pytest.raises(ConfigError, match="cannot be read"):
        safe_yaml_load(f"score: {{batch_size: {big}}}", "config")
    with pytest.raises(ConfigError, match="cannot be read"):
        parse_set([f"score.batch_size={big}"])
