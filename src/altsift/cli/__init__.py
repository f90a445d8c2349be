"""The ``altsift`` command line: score once, select many times, export.

Errors end a command with one line on stderr and a documented exit code (:mod:`altsift.errors`):
usage errors (unknown command or option, a missing or malformed value) exit 2 with a hint to the
command's ``--help``; :class:`~altsift.errors.AltsiftError` exits with its own code; a full disk, a
read-only folder or a refused permission exit 4; Ctrl-C exits 130; anything else is a bug: a short
message and exit 1 (the traceback with ``-v``). The handling lives in :class:`AltsiftGroup.main`, so the
console script, ``python -m altsift`` and typer's ``CliRunner`` behave the same.
"""

from __future__ import annotations

import errno
import importlib
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from altsift.cli import output
from altsift.errors import AltsiftError, ExitCode, missing_dependency

try:  # typer >= 0.20 vendors click; older typer uses click itself
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_exc  # type: ignore[no-redef]

MAX_MESSAGE_CHARS = 2000  # an error line never echoes more than this (inputs can be huge)

#: OSError numbers that mean "the machine refused" (exit 4) and "that path is wrong" (exit 2)
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.EMFILE,
    errno.ENFILE,
    errno.EFBIG,
}
PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG}


def _one_line(msg: str) -> str:
    msg = " ".join(str(msg).split())
    if len(msg) > MAX_MESSAGE_CHARS:
        msg = msg[:MAX_MESSAGE_CHARS] + f"... ({len(msg) - MAX_MESSAGE_CHARS} more characters)"
    return msg


def _fail(msg: str, code: int, **extra: Any) -> int:
    """Print one error line (and a JSON object under --json); return the exit code."""
    line = _one_line(msg)
    typer.echo(f"error: {line}", err=True)
    if output.STATE.json:
        output.emit_json({"ok": False, "error": line, "exit_code": int(code), **extra})
    return int(code)


def _usage_hint(e: Exception) -> str:
    ctx = getattr(e, "ctx", None)
    return f" (see '{ctx.command_path} --help')" if ctx is not None else " (see 'altsift --help')"


def handle_exception(e: BaseException) -> int:
    """Map an exception raised by a command to a printed line and an exit code."""
    if isinstance(e, _click_exc.NoArgsIsHelpError):
        typer.echo(e.format_message(), err=True)
        return int(ExitCode.USAGE)
    if isinstance(e, _click_exc.UsageError):
        return _fail(e.format_message() + _usage_hint(e), ExitCode.USAGE)
    if isinstance(e, _click_exc.ClickException):  # e.g. FileError
        return _fail(e.format_message(), ExitCode.USAGE)
    if isinstance(e, AltsiftError):
        summary = getattr(e, "summary", None)
        return _fail(str(e), e.exit_code, **({"summary": summary} if isinstance(summary, dict) else {}))
    if isinstance(e, KeyboardInterrupt | typer.Abort):
        typer.echo("interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    missing = missing_dependency(e)
    if missing is not None:
        return _fail(str(missing), missing.exit_code)
    if isinstance(e, MemoryError):
        return _fail("out of memory", ExitCode.ENVIRONMENT)
    if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS | PATH_ERRNOS:
        where = f": {e.filename}" if e.filename else ""
        code = ExitCode.ENVIRONMENT if e.errno in ENVIRONMENT_ERRNOS else ExitCode.USAGE
        return _fail(f"{e.strerror or e}{where}", code)
    # anything else is a bug in altsift (or an unexpected library failure): say so, briefly
    if output.STATE.verbose:
        traceback.print_exception(e, file=sys.stderr)
    hint = "" if output.STATE.verbose else " Rerun with -v for the traceback."
    return _fail(
        f"internal error: {type(e).__name__}: {e}. This is a bug in altsift, please report it with the "
        f"command and the output of -v.{hint}",
        ExitCode.INTERNAL,
    )


class AltsiftGroup(TyperGroup):
    """The top-level group: runs a command and turns every exception into one line + an exit code."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        output.reset()
        try:
            rv = super().main(
                args=args, prog_name="altsift", complete_var=complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else 0  # typer returns Exit codes (e.g. 130) in this mode
            if code == ExitCode.INTERRUPTED:
                typer.echo("interrupted", err=True)
        except SystemExit:
            raise
        except typer.Exit as e:
            code = e.exit_code
        except BaseException as e:  # noqa: BLE001 - every error ends as one line and a code
            try:
                code = handle_exception(e)
            except Exception:  # noqa: BLE001 - the handler must never hide the original error
                traceback.print_exception(e, file=sys.stderr)
                code = int(ExitCode.INTERNAL)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=AltsiftGroup,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Curate image-text datasets (LAION / DataComp pools) for CLIP training.\n\n"
        "Work in three steps: 'altsift score' computes signals per shard into RUN_DIR/scores/*.parquet "
        "(resumable); 'altsift select' chooses a subset from those tables in seconds (thresholds, "
        "pool-wide top fractions, fusion, presets, caption mixing) and writes a DataComp uid .npy; "
        "'altsift export' reshards the subset into webdataset tars. 'altsift run CONFIG.yaml' does all "
        "three from one file, 'altsift demo' runs the bundled example.\n\n"
        "Exit codes: 0 ok, 1 internal error (a bug), 2 usage/config/model error, 3 incomplete (some "
        "shards or samples failed; rerun to retry), 4 environment (disk full, read-only, permission), "
        "130 interrupted."
    ),
)


def _version(value: bool) -> None:
    if value:
        from altsift import __version__

        typer.echo(f"altsift {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only; no progress bars."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs; tracebacks of internal errors."),
    json_: bool = typer.Option(
        False, "--json", help="Machine-readable JSON summary on stdout (logs on stderr)."
    ),
) -> None:
    output.set_flags(quiet, verbose, json_)


# Sub-command modules; each adds its commands to ``app`` on import.
_COMMAND_MODULES = (
    "altsift.cli.core",
    "altsift.cli.analysis",
    "altsift.cli.bench",
    "altsift.cli.report",
)


def _load_commands() -> None:
    for m in _COMMAND_MODULES:
        try:
            importlib.import_module(m)
        except ModuleNotFoundError as e:
            if e.name is None or not e.name.startswith("altsift.cli"):
                raise


_load_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``altsift``); exits with the documented code."""
    app(args=argv, prog_name="altsift")
