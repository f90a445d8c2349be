"""How commands talk: log levels, progress bars, human lines and the ``--json`` summary, in one place.

Global options (``altsift -q|-v|--json COMMAND``) and the same options after a command
(``altsift export ... --json``, added by :func:`command`) set one :data:`STATE`:

- ``-q/--quiet``: warnings and errors only, no progress bars, no detail lines (the result line stays).
- ``-v/--verbose``: debug logs, and the traceback of an internal error.
- ``--json``: stdout holds exactly one JSON object (the command's summary, or ``{"ok": false,
  "error": ..., "exit_code": ...}``); human lines and logs go to stderr.

A command adopts all of this with one decorator and by returning its summary dict::

    @app.command()
    @output.command
    def export(...) -> dict:
        output.info("detail line")           # stdout (stderr under --json); hidden by -q
        output.result("wrote 10 samples")    # the human summary line
        return {"written": 10}               # printed as JSON under --json
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

import typer

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass
class OutputState:
    quiet: bool = False
    verbose: bool = False
    json: bool = False

    @property
    def progress(self) -> bool:
        """Whether long steps show progress bars (off with ``-q``)."""
        return not self.quiet


STATE = OutputState()


def reset() -> None:
    """Back to defaults (each CLI invocation starts here; tests run several in one process)."""
    STATE.quiet = STATE.verbose = STATE.json = False
    configure_logging()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (pytest and CliRunner swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging() -> None:
    """altsift's loggers at INFO (WARNING with -q, DEBUG with -v) on stderr; other libraries at WARNING."""
    level = logging.DEBUG if STATE.verbose else logging.WARNING if STATE.quiet else logging.INFO
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(h)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("altsift").setLevel(level)


def set_flags(quiet: bool = False, verbose: bool = False, json_: bool = False) -> None:
    """Turn flags on (flags given globally and after the command add up)."""
    STATE.quiet |= quiet
    STATE.verbose |= verbose
    STATE.json |= json_
    if STATE.quiet and STATE.verbose:
        STATE.quiet = False  # -v wins: asking for more is the stronger wish
    configure_logging()


def progress_enabled() -> bool:
    return STATE.progress


def info(msg: str) -> None:
    """A detail line: stdout (stderr under --json), hidden by -q."""
    if not STATE.quiet:
        typer.echo(msg, err=STATE.json)


def result(msg: str) -> None:
    """The command's human summary line: stdout, or stderr under --json (where JSON is the result)."""
    typer.echo(msg, err=STATE.json)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        try:
            return _clean(v.item())
        except (TypeError, ValueError):
            return str(v)
    return v


def emit_json(obj: dict[str, Any]) -> None:
    """Write one JSON object to stdout (strict JSON: NaN/inf become null)."""
    sys.stdout.write(json.dumps(_clean(obj), default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


_FLAGS = (
    ("quiet", bool, typer.Option(False, "--quiet", "-q", help="Warnings and errors only; no progress bars.")),
    (
        "verbose",
        bool,
        typer.Option(False, "--verbose", "-v", help="Debug logs; tracebacks of internal errors."),
    ),
    (
        "json_",
        bool,
        typer.Option(
            False, "--json", help="Print a machine-readable JSON summary on stdout (logs on stderr)."
        ),
    ),
)


def command(func):
    """Give a command ``-q/-v/--json`` and print the dict it returns as JSON under ``--json``."""
    sig = inspect.signature(func, eval_str=True)
    params = list(sig.parameters.values())
    for name, ann, default in _FLAGS:
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        set_flags(kwargs.pop("quiet", False), kwargs.pop("verbose", False), kwargs.pop("json_", False))
        summary = func(*args, **kwargs)
        if STATE.json:
            emit_json({"ok": True, **(summary or {})})

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, "return": None}
    return wrapper
