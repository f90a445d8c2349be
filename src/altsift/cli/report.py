"""``altsift report`` and ``altsift stats``: what a run holds, what selections kept, and why."""

from __future__ import annotations

from pathlib import Path

import typer

from altsift.cli import app, output
from altsift.errors import ConfigError


def _scatter(spec: str | None) -> tuple[str, str] | None:
    if spec is None:
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--scatter expects two columns as X,Y, got '{spec}'")
    return parts[0], parts[1]


@app.command()
@output.command
def report(
    run_dir: Path = typer.Argument(..., help="A run directory (or a folder of DataComp metadata parquet)."),
    subset: list[Path] | None = typer.Option(
        None,
        "--subset",
        metavar="SUBSET.npy",
        help="Selection to explain: its .npy or .json; repeat to compare two subsets side by side "
        "(default RUN_DIR/subset.npy if present).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="report.html (the visual report) or report.md (text; report.json goes beside it). "
        "Default: both, as RUN_DIR/report.html and RUN_DIR/report.md.",
    ),
    scatter: str | None = typer.Option(None, "--scatter", help="Two columns for the scatter plot: X,Y."),
    per_grid: int = typer.Option(12, "--per-grid", min=1, max=100, help="Thumbnails per grid."),
    max_thumbs: int = typer.Option(600, "--max-thumbs", min=0, help="Thumbnails in the whole page."),
    no_images: bool = typer.Option(False, "--no-images", help="Do not read the shards (no thumbnails)."),
) -> dict:
    """Report on a run: statuses, signal histograms (kept vs dropped, thresholds drawn), the selection
    funnel, thumbnails of top / bottom / borderline samples and of what each step removed, Parrot
    statistics with OCR boxes, clusters, and two subsets side by side.

    The HTML page is one self-contained file that opens offline.

    \b
    Examples:
      altsift report RUN                                   # RUN/report.html + RUN/report.md
      altsift report RUN --subset A.npy --subset B.npy -o compare.html
    """
    subsets = list(subset or [])
    if not subsets and (run_dir / "subset.npy").is_file():
        subsets = [run_dir / "subset.npy"]
    base = run_dir if run_dir.is_dir() else run_dir.parent
    if out is not None and out.suffix not in (".html", ".htm", ".md"):
        raise ConfigError(f"--out must end with .html or .md, got {out}")
    from altsift import api

    written: dict[str, str] = {}
    if out is None or out.suffix == ".md":
        written["markdown"] = str(api.report(run_dir, subsets[:1], out or base / "report.md"))
        output.result(written["markdown"])
    if out is None or out.suffix in (".html", ".htm"):
        path = api.report(
            run_dir,
            subsets,
            out or base / "report.html",
            images=not no_images,
            progress=output.progress_enabled(),
            scatter=_scatter(scatter),
            per_grid=per_grid,
            max_thumbs=max_thumbs,
        )
        written["html"] = str(path)
        output.result(written["html"])
    return written


@app.command()
@output.command
def stats(
    run_dir: Path = typer.Argument(..., help="A run scored with the 'ocr' and 'parrot' signals."),
    subset: list[Path] | None = typer.Option(
        None,
        "--subset",
        metavar="SUBSET.npy",
        help="Also give caption statistics (trigrams, nouns, CLIP score) for these subsets.",
    ),
) -> dict:
    """Dataset statistics: Parrot's Table 1 (share of images with text, CoTR over all images and over
    images with text, exact and fuzzy, fully / partly spotted captions, CoTR distribution) and, with
    --subset, Nguyen et al.'s caption statistics per subset.
    """
    from altsift.report.stats import parrot_stats, parrot_stats_lines

    st = parrot_stats(run_dir)
    caps = None
    if subset:
        from altsift.report.subsets import PoolView, caption_stats

        caps = caption_stats(PoolView(run_dir, list(subset)))
    if st is None and caps is None:
        raise ConfigError(
            f"{run_dir} has no 'has_text' column: score with the 'ocr' and 'parrot' signals "
            "(altsift score ... -s ocr,parrot), or pass --subset for caption statistics"
        )
    if output.STATE.json:  # --json: the dict below is the whole output
        return {"parrot": st, "captions": caps}
    lines: list[str] = []
    if st is not None:
        lines += ["Parrot statistics (Lin et al., Table 1)", *parrot_stats_lines(st)]
    if caps is not None:
        lines += ["", f"Captions used (distinct counts on {caps['sample']:,} captions per row)"]
        lines.append(
            f"{'':<32} {'rows':>10} {'trigrams':>10} {'nouns':>8} {'mean CLIP':>10} {'synthetic':>10}"
        )
        for r in caps["rows"]:
            clip = "–" if r["mean_clip"] is None else f"{r['mean_clip']:.4f}"
            syn = "–" if r["synthetic_share"] is None else f"{100 * r['synthetic_share']:.1f}%"
            lines.append(
                f"{r['label'][:32]:<32} {r['rows']:>10,} {r['unique_trigrams']:>10,} {r['unique_nouns']:>8,} "
                f"{clip:>10} {syn:>10}"
            )
    output.result("\n".join(lines))
    return {"parrot": st, "captions": caps}
