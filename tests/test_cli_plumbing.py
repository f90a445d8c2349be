"""The command line fits habits (issue 13 item 4): one-line usage errors with exit 2, --version, -q/-v,
--json on stdout with logs on stderr, honest exit codes for bugs and a refusing machine, real defaults in
`signals` / `presets`. Checked with typer's CliRunner and with real `python -m altsift` processes."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from altsift.cli import app
from altsift.config import build_config
from altsift.pipeline.score import score
from altsift.select.core import SelectRequest, run_selection, write_selection
from helpers_shards import make_shards

runner = CliRunner()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "altsift", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plumbing")
    shards = [str(p) for p in make_shards(tmp / "in", n_shards=2, per_shard=3)]
    c = build_config({"signals": ["basic"], "score": {"progress": False}})
    score(shards, tmp / "run", c.signals, c)
    df, sel = run_selection(tmp / "run", SelectRequest())
    write_selection(df, sel, tmp / "run" / "subset.npy", tmp / "run")
    return tmp / "run"


USAGE_ERRORS = [
    (["sel"], "No such command 'sel'. Did you mean 'select'?", "altsift --help"),
    (["score", "shards/"], "Missing option '--out'", "altsift score --help"),
    (
        ["export", "RUN", "--subset", "s.npy", "-o", "x", "--shard-size", "abc"],
        "--shard-size",
        "altsift export --help",
    ),
    (["select", "RUN", "--no-such-option"], "No such option: --no-such-option", "altsift select --help"),
    (["--no-such-global"], "No such option", "altsift --help"),
    (
        ["export", "RUN", "--subset", "s.npy", "-o", "x", "--shard-size", "0"],
        "--shard-size",
        "altsift export --help",
    ),
]


@pytest.mark.parametrize(("args", "message", "hint"), USAGE_ERRORS[:3])
def test_usage_errors_are_one_line_with_exit_2_in_a_real_process(args, message, hint):
    """Reproduced: a 40-75 line traceback with exit 1 (typer 0.29 vendors click, the handler never matched)."""
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and f"see '{hint}'" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize(("args", "message", "hint"), USAGE_ERRORS)
def test_usage_errors_through_clirunner(args, message, hint):
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert (
        res.stderr.strip().splitlines() == [res.stderr.strip()]
        and message in res.stderr
        and hint in res.stderr
    )


def test_version_from_package_metadata():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"altsift {version('altsift')}"
    res = runner.invoke(app, ["-V"])
    assert res.exit_code == 0 and version("altsift") in res.stdout
    import altsift

    assert altsift.__version__ == version("altsift")


def test_internal_error_is_short_and_says_bug_traceback_only_with_verbose(run_dir, monkeypatch, tmp_path):
    import altsift.api

    def boom(*a, **k):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(altsift.api, "export", boom)
    args = ["export", str(run_dir), "--subset", str(run_dir / "subset.npy"), "-o", str(tmp_path / "o")]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "RuntimeError: something unexpected" in res.stderr
    assert "this is a bug" in res.stderr.lower() and "-v" in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["-v", *args])
    assert res.exit_code == 1 and "Traceback (most recent call last)" in res.stderr and "boom" in res.stderr
    res = runner.invoke(app, [*args, "--verbose"])  # the flag after the command works too
    assert res.exit_code == 1 and "Traceback" in res.stderr


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/full/disk/00000000.tar"), 4),
        (OSError(errno.EROFS, "Read-only file system", "/ro/x"), 4),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), 4),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/some/dir"), 2),
        (KeyboardInterrupt(), 130),
    ],
)
def test_machine_refusals_map_to_documented_codes(run_dir, monkeypatch, tmp_path, err, code):
    import altsift.api

    def refuse(*a, **k):
        raise err

    monkeypatch.setattr(altsift.api, "export", refuse)
    res = runner.invoke(
        app, ["export", str(run_dir), "--subset", str(run_dir / "subset.npy"), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == code
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    if isinstance(err, OSError):
        assert err.strerror in res.stderr and err.filename in res.stderr


def test_environment_error_class_exits_4(run_dir, monkeypatch, tmp_path):
    import altsift.api
    from altsift.errors import EnvironmentIOError

    monkeypatch.setattr(
        altsift.api, "export", lambda *a, **k: (_ for _ in ()).throw(EnvironmentIOError("disk full"))
    )
    res = runner.invoke(
        app,
        [
            "--json",
            "export",
            str(run_dir),
            "--subset",
            str(run_dir / "subset.npy"),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 4 and json.loads(res.stdout) == {
        "ok": False,
        "error": "disk full",
        "exit_code": 4,
    }


def test_json_summary_on_stdout_logs_and_progress_on_stderr(run_dir, tmp_path):
    r = cli("export", run_dir, "--subset", run_dir / "subset.npy", "--to", tmp_path / "o", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # exactly one JSON document on stdout
    assert summary["ok"] is True and summary["written"] == 6 and summary["missing"] == 0
    assert "wrote 6 samples" in r.stderr and "sample" in r.stderr  # human line and progress bar: stderr
    res = runner.invoke(app, ["--json", "signals"])
    sigs = json.loads(res.stdout)["signals"]
    assert sigs["clip"]["options"]["extra_texts"]["default"] == {}  # a default_factory, called
    assert sigs["basic"]["options"]["min_words"] == {
        "default": 2,
        "description": sigs["basic"]["options"]["min_words"]["description"],
    }


def test_quiet_hides_logs_and_bars_verbose_shows_debug(run_dir, tmp_path):
    args = ["export", str(run_dir), "--subset", str(run_dir / "subset.npy"), "-o", str(tmp_path / "q")]
    res = runner.invoke(app, ["-q", *args])
    assert (
        res.exit_code == 0
        and res.stderr == ""
        and res.stdout == f"wrote 6 samples in 1 shards to {tmp_path / 'q'}\n"
    )
    res = runner.invoke(app, [*args, "--overwrite", "-v"])
    assert res.exit_code == 0 and "6/6" in res.stderr and "DEBUG" not in res.stdout


def test_signals_and_presets_list_real_defaults_and_whole_descriptions():
    """Reproduced: `PydanticUndefined` as a default and descriptions cut mid-sentence."""
    from altsift.select.base import available_presets
    from altsift.signals.registry import available_signals

    for cmd, registry in (("signals", available_signals()), ("presets", available_presets())):
        res = runner.invoke(app, [cmd])
        assert res.exit_code == 0, res.output
        assert "PydanticUndefined" not in res.stdout
        for name, cls in registry.items():
            first_paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
            assert f"{name}: {first_paragraph}\n" in res.stdout, name
    res = runner.invoke(app, ["signals"])
    assert "clip.extra_texts = {}" in res.stdout and "sieve.extra_phrases = []" in res.stdout


def test_every_command_takes_out_as_dash_o():
    """Consistent `-o/--out`; export keeps `--to` as an alias."""
    for cmd in ("score", "select", "export", "report", "demo", "probe"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "-o, --out" in res.stdout, cmd
    assert "--to" in runner.invoke(app, ["export", "--help"]).stdout


def test_a_missing_extra_names_the_pip_command(run_dir, monkeypatch, tmp_path):
    import altsift.api

    def needs_faiss(*a, **k):
        raise ModuleNotFoundError("No module named 'faiss'", name="faiss")

    monkeypatch.setattr(altsift.api, "export", needs_faiss)
    res = runner.invoke(
        app, ["export", str(run_dir), "--subset", str(run_dir / "subset.npy"), "-o", str(tmp_path / "o")]
    )
    assert (
        res.exit_code == 2 and "pip install 'altsift[cluster]'" in res.stderr and res.stderr.count("\n") == 1
    )


def test_score_adopts_quiet_and_json_and_run_exits_3_when_a_shard_is_incomplete(tmp_path):
    """`score -q` shows no progress bar, `--json` keeps the summary on an incomplete run (exit 3), and
    `altsift run` selects what was scored but still exits 3 when a shard is damaged; `demo` does not."""
    from importlib import resources

    shards = str(resources.files("altsift") / "assets" / "demo" / "shards")  # 00002.tar is truncated
    r = runner.invoke(app, ["-q", "score", shards, "-o", str(tmp_path / "r1"), "--json"])
    assert r.exit_code == 3
    got = json.loads(r.stdout)
    assert got["ok"] is False and got["exit_code"] == 3 and got["summary"]["shards_total"] == 3
    assert "shard/s" not in r.stderr and "samples_s=" not in r.stderr  # no tqdm bar under -q
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"inputs: ['{shards}']\nrun_dir: {tmp_path / 'r2'}\nsignals: [basic]\n"
        "select: {where: [basic_pass]}\n"
    )
    r = runner.invoke(app, ["run", str(cfg)])
    assert r.exit_code == 3 and "00002" in r.stderr
    assert (tmp_path / "r2" / "subset.npy").exists()  # the selection covers what was scored
    r = runner.invoke(app, ["-q", "demo", "-o", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.stderr
