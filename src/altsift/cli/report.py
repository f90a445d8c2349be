"""``altsift report``: what a run holds and what a selection kept, and why."""

from __future__ import annotations

from pathlib import Path

import typer

from altsift.cli import app


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (or a folder of DataComp metadata parquet)."),
    subset: Path | None = typer.Option(
        None,
        "--subset",
        help="Selection to explain: its .npy or .json (default RUN_DIR/subset.json if present).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Markdown file to write (default RUN_DIR/report.md); report.json goes beside it.",
    ),
) -> None:
    """Summarise a run: statuses, every signal column, the selection funnel and samples each step removed.

    Reads only the score tables and the selection JSON, so it takes seconds. Example:
      altsift report RUN --subset RUN/subset.npy
    """
    from altsift.report.summary import write_report

    typer.echo(str(write_report(run_dir, subset, out)))
