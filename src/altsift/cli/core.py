"""Core commands: score, select, export, run, demo, signals."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import typer

from altsift.cli import app
from altsift.config import apply_sets, build_config, load_config_tree, parse_set
from altsift.errors import ConfigError

SET_HELP = (
    "Override any option as SECTION.KEY=VALUE, e.g. --set clip.model=/ckpt/clip --set clip.batch_size=64 "
    "--set score.decode_threads=4. Repeatable; values are parsed as YAML."
)


@app.command()
def score(
    inputs: list[str] = typer.Argument(..., help="Shards: paths, globs, brace patterns ('shards/{00000..00099}.tar') or folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory; scores go to OUT/scores/<shard>.parquet."),
    signals: str | None = typer.Option(None, "--signals", "-s", help="Comma-separated signals, e.g. basic,clip,sieve (default: the config's `signals:`, else basic). Requirements are added."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config with signal options (e.g. configs/sieve.yaml)."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    retry_errors: bool = typer.Option(False, help="Re-read shards that failed to read last time (e.g. truncated tars)."),
    runner: str | None = typer.Option(None, help="local (default) or ray: run signals as Ray Data actors."),
) -> None:
    """Score shards with signals; one parquet per shard. Rerun to resume, or add signals to an existing run.

    Every sample gets a row with a status ('ok' or an error code such as bad_image, missing_caption,
    duplicate_uid). Finished shards are skipped; signals already computed with the same options are kept.
    """
    from altsift.pipeline.score import score as run_score

    tree = load_config_tree(config)
    if signals is not None:
        tree["signals"] = [s.strip() for s in signals.split(",") if s.strip()]
    if runner:
        tree.setdefault("score", {})["runner"] = runner
    apply_sets(tree, parse_set(set_))
    cfg = build_config(tree, "config" if config is None else str(config))
    summary = run_score(list(inputs), out, cfg.signals, cfg, retry_errors=retry_errors)
    _print_score_summary(summary, out)


def _print_score_summary(summary, out: Path) -> None:
    typer.echo(
        f"scored {summary.samples_scored} samples in {summary.shards_scored} shards "
        f"({summary.shards_skipped} already done) in {summary.seconds:.1f}s -> {out}/scores"
    )
    if summary.status_counts:
        typer.echo("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.status_counts.items())))
    for shard, err in summary.shards_with_errors.items():
        typer.echo(f"shard {shard}: {err}")


WHERE_HELP = (
    "Condition in altsift's expression language (docs/select.md): columns, numbers, 'text', comparisons, "
    "and/or/not (& | ~), 'x is null', 'lang in [\'en\', \'de\']', functions abs log sqrt lower length "
    "contains ..., e.g. \"basic_pass\" or \"clip_score >= 0.28 and lang == 'en'\". Repeatable (AND)."
)


@app.command()
def select(
    run_dir: Path = typer.Argument(..., help="A run directory, or a folder of DataComp metadata parquet (+ .npz)."),
    where: list[str] | None = typer.Option(None, "--where", "-w", help=WHERE_HELP),
    top_fraction: list[str] | None = typer.Option(None, "--top-fraction", "-t", help="COLUMN=F: keep the pool-wide top fraction F (DataComp get_threshold). Repeatable, one per column."),
    fuse: str | None = typer.Option(None, "--fuse", help="COL=W,COL=W: min-max normalise each column over the pool and sum with weights (sum 1) into column 'fused' (SIEVE)."),
    preset: list[str] | None = typer.Option(None, "--preset", "-p", help="A named recipe: no_filter, basic_filter, clip_score, laion2b, text_based, image_based, sieve, mix_*, parrot_text_filter ... (see 'altsift presets'). Repeatable: several presets are AND-ed."),
    set_: list[str] | None = typer.Option(None, "--set", help="Preset options as KEY=VALUE (one preset) or PRESET.KEY=VALUE, e.g. --set fraction=0.3, --set clip_score.arch=l14."),
    and_: list[Path] | None = typer.Option(None, "--and", help="Keep only rows whose uid is in this subset .npy. Repeatable."),
    or_: list[Path] | None = typer.Option(None, "--or", help="Also keep the (eligible) rows whose uid is in this subset .npy. Repeatable; applied last."),
    not_: list[Path] | None = typer.Option(None, "--not", help="Drop rows whose uid is in this subset .npy. Repeatable."),
    verdicts: bool = typer.Option(False, "--verdicts", help="Also write OUT.verdicts.parquet: uid + one true/false column per preset, for every pool row."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Subset .npy to write (default RUN_DIR/subset.npy, or ./subset.npy for metadata); a .json summary is written beside it."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing subset (and its .json / side files)."),
) -> None:
    """Choose a subset from score tables alone (no images, no models): conditions are AND-ed, pool-wide.

    Only the columns the conditions name are read. Every threshold is computed on the whole pool before
    any intersection.

    Examples:
      altsift select RUN --where basic_pass --top-fraction clip_score=0.3
      altsift select RUN --fuse sieve_score=0.5,clip_score=0.5 --top-fraction fused=0.2
      altsift select RUN --preset clip_score --set fraction=0.3
      altsift select RUN --preset clip_score --preset image_based --not RUN/seen.npy
    """
    from altsift.select.core import SelectRequest, parse_pairs

    names = list(dict.fromkeys(preset or []))
    if len(names) != len(preset or []):
        raise ConfigError("a --preset is given twice")
    opts: dict[str, dict] = {n: {} for n in names}
    for path, value in parse_set(set_):
        if len(path) == 2 and path[0] in opts:
            opts[path[0]][path[1]] = value
        elif len(path) == 1 and len(names) == 1:
            opts[names[0]][path[0]] = value
        elif not names:
            raise ConfigError("--set needs --preset (it sets the preset's options)")
        else:
            want = f"PRESET.KEY=VALUE with PRESET one of {', '.join(names)}" if len(names) > 1 else \
                f"KEY=VALUE or {names[0]}.KEY=VALUE"
            raise ConfigError(f"--set for select takes {want}, got {'.'.join(path)}")
    req = SelectRequest(
        where=list(where or []),
        top_fraction=parse_pairs(top_fraction, "--top-fraction"),
        fuse=parse_pairs([fuse] if fuse else [], "--fuse"),
        presets=opts,
        and_subsets=list(and_ or []),
        or_subsets=list(or_ or []),
        not_subsets=list(not_ or []),
        verdicts=verdicts,
    )
    _do_select(run_dir, req, out, overwrite=overwrite)


def _default_subset(run_dir: Path) -> Path:
    return run_dir / "subset.npy" if (run_dir / "scores").is_dir() else Path("subset.npy")


def _do_select(run_dir: Path, req, out: Path | None, overwrite: bool = False, progress: bool = True) -> dict:
    from altsift.select.core import check_output, run_selection, write_selection

    target = out or _default_subset(run_dir)
    pool, sel = run_selection(run_dir, req, progress=progress,
                              before_read=lambda p: check_output(target, p, overwrite))  # fmt: skip
    summary = write_selection(pool, sel, target, run_dir, overwrite=overwrite, request=req)
    for s in summary["steps"]:
        alone = "" if s["kept_alone"] is None else f"kept {s['kept_alone']} alone, "
        typer.echo(f"  {s['name']}: {alone}{s['kept_cumulative']} so far")
    typer.echo(f"selected {summary['selected']} of {summary['pool_rows']} -> {target}")
    return summary


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="The run directory that was scored."),
    subset: Path = typer.Option(..., "--subset", help="A uid .npy from 'altsift select' (or any DataComp subset file)."),
    to: Path = typer.Option(..., "--to", help="Empty output folder for the new shards."),
    caption_column: str | None = typer.Option(None, "--caption-column", help="Column whose text becomes the .txt (e.g. 'caption' from a mixing preset); the original caption stays in the json."),
    shard_size: int = typer.Option(10_000, "--shard-size", help="Samples per output shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the shards of an earlier export in --to."),
) -> None:
    """Reshard the selected samples into {:08d}.tar webdataset shards with the signal values in the json.

    Shards appear in --to only once the whole export succeeded; an interrupted export leaves nothing half
    done (rerun it).
    """
    from altsift.pipeline.export import export as run_export

    s = run_export(run_dir, subset, to, caption_column=caption_column, shard_size=shard_size, overwrite=overwrite)
    typer.echo(f"wrote {s.written} samples in {len(s.shards)} shards to {to}" + (f" ({s.missing} not found)" if s.missing else ""))


def run_config(config: Path, set_: list[str] | None = None) -> dict:
    """Score, select and export as one config file says."""
    from altsift.pipeline.export import export as run_export
    from altsift.pipeline.score import score as run_score
    from altsift.select.core import check_output, make_preset, request_from_options

    tree = load_config_tree(config)
    apply_sets(tree, parse_set(set_))
    cfg = build_config(tree, str(config))
    if not cfg.inputs or not cfg.run_dir:
        raise ConfigError(f"{config}: 'inputs' and 'run_dir' are required for altsift run")
    inputs = list(cfg.inputs)  # relative paths are relative to the current directory, like run_dir
    run_dir = Path(cfg.run_dir) if Path(cfg.run_dir).is_absolute() else Path.cwd() / cfg.run_dir
    s = cfg.select
    req = request_from_options(s)  # a bad select section fails before any scoring
    for name, opts in req.all_presets().items():
        make_preset(name, opts)
    subset = Path(s.out) if s.out else run_dir / "subset.npy"
    check_output(subset, None, s.overwrite)
    summary = run_score(inputs, run_dir, cfg.signals, cfg)
    _print_score_summary(summary, run_dir)
    sel = _do_select(run_dir, req, subset, overwrite=s.overwrite, progress=cfg.score.progress)
    from altsift.report.summary import write_report

    typer.echo(f"report -> {write_report(run_dir, subset, run_dir / 'report.md')}")
    result = {"score": summary.__dict__, "select": sel}
    if cfg.export.to:
        to = Path(cfg.export.to) if Path(cfg.export.to).is_absolute() else Path.cwd() / cfg.export.to
        e = run_export(run_dir, subset, to, caption_column=cfg.export.caption_column, shard_size=cfg.export.shard_size,
                       overwrite=cfg.export.overwrite)
        typer.echo(f"exported {e.written} samples in {len(e.shards)} shards to {to}")
        result["export"] = e.__dict__
    return result


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML config with inputs, run_dir, signals, select and export sections."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Score, select and export from one validated YAML file (e.g. configs/sieve.yaml; `altsift demo` writes another to OUT/demo.yaml)."""
    run_config(config, set_)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Where the demo writes its run and exported shards."),
) -> None:
    """Run the bundled example: real photos + real LAION alt-texts (with a few broken samples)."""
    import shutil

    shards = resources.files("altsift") / "assets" / "demo"
    cfg_text = (shards / "demo.yaml").read_text()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "export"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    cfg = out / "demo.yaml"
    cfg.write_text(cfg_text.replace("@SHARDS@", str(Path(str(shards)) / "shards")).replace("@OUT@", str(out.resolve())))
    result = run_config(cfg)
    typer.echo(json.dumps({"selected": result["select"]["selected"], "pool": result["select"]["pool_rows"]}))


@app.command("signals")
def list_signals() -> None:
    """List available signals, their output columns and options."""
    from altsift.pipeline.plan import SignalPlan
    from altsift.signals.registry import available_signals

    for name, cls in sorted(available_signals().items()):
        plan = SignalPlan(name, cls, cls.Options())
        typer.echo(f"{name}: columns {', '.join(plan.columns)}" + (f"; requires {', '.join(plan.requires)}" if plan.requires else ""))
        for k, f in cls.Options.model_fields.items():
            typer.echo(f"    {name}.{k} = {f.default!r}" + (f"  # {f.description}" if f.description else ""))


@app.command("presets")
def list_presets() -> None:
    """List selection presets and their options."""
    from altsift.select.base import available_presets

    for name, cls in sorted(available_presets().items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        typer.echo(f"{name}: {doc}")
        for k, f in cls.Options.model_fields.items():
            typer.echo(f"    {k} = {f.default!r}" + (f"  # {f.description}" if f.description else ""))
