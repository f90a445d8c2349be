"""The ``altsift`` command line: score once, select many times, export."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from altsift.errors import AltsiftError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help=(
        "Curate image-text datasets (LAION / DataComp pools) for CLIP training.\n\n"
        "Work in three steps: 'altsift score' computes signals per shard into RUN_DIR/scores/*.parquet "
        "(resumable); 'altsift select' chooses a subset from those tables in seconds (thresholds, "
        "pool-wide top fractions, fusion, presets, caption mixing) and writes a DataComp uid .npy; "
        "'altsift export' reshards the subset into webdataset tars. 'altsift run CONFIG.yaml' does all "
        "three from one file, 'altsift demo' runs the bundled example."
    ),
)

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


def main() -> None:
    """Entry point: run the app, turning AltsiftError into one clear line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _load_commands()
    try:
        app(standalone_mode=False)
    except AltsiftError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(int(e.exit_code))
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
