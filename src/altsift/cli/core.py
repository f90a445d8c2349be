"""Core commands: score, select, export, run, demo, signals, presets.

export / run / demo / signals / presets are thin layers over :mod:`altsift.api` and adopt
:func:`altsift.cli.output.command` (``-q/-v/--json``, the summary dict they return becomes the JSON).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import typer

from altsift.cli import app, output
from altsift.config import apply_sets, build_config, load_config_tree, parse_set
from altsift.errors import ConfigError, IncompleteError

SET_HELP = (
    "Override any option as SECTION.KEY=VALUE, e.g. --set clip.model=/ckpt/clip --set clip.batch_size=64 "
    "--set score.decode_threads=4. Repeatable; values are parsed as YAML."
)


@app.command()
@output.command
def score(
    inputs: list[str] = typer.Argument(
        ..., help="Shards: paths, globs, brace patterns ('shards/{00000..00099}.tar') or folders."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run directory; scores go to OUT/scores/<shard>.parquet."
    ),
    signals: str | None = typer.Option(
        None,
        "--signals",
        "-s",
        help="Comma-separated signals, e.g. basic,clip,sieve (default: the config's `signals:`, else basic). Requirements are added.",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config with signal options (e.g. configs/sieve.yaml)."
    ),
    set_: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),
    retry_errors: bool = typer.Option(
        False,
        help="Retry what failed last time: re-read shards with read errors (e.g. truncated tars) and recompute signals on rows marked error_<signal>.",
    ),
    runner: str | None = typer.Option(None, help="local (default) or ray: run signals as Ray Data actors."),
) -> dict:
    """Score shards with signals; one parquet per shard. Rerun to resume, or add signals to an existing run.

    Every sample gets a row with a status ('ok' or an error code such as bad_image, missing_caption,
    duplicate_uid). Finished shards are skipped; signals already computed with the same options are kept.
    Exit codes: 0 done; 2 bad option or a model that does not load (nothing scored); 3 a shard failed
    (see OUT/score_summary.json, rerun to retry); 4 disk full, read-only or permission denied.
    """
    from altsift import api

    tree = load_config_tree(config)
    if signals is not None:
        tree["signals"] = [s.strip() for s in signals.split(",") if s.strip()]
    if runner:
        tree.setdefault("score", {})["runner"] = runner
    apply_sets(tree, parse_set(set_))
    if not output.progress_enabled():
        tree.setdefault("score", {})["progress"] = False
    cfg = build_config(tree, "config" if config is None else str(config))
    summary = api.score(list(inputs), out, config=cfg, retry_errors=retry_errors).last_score
    _print_score_summary(summary, out)
    if summary.incomplete:
        err = IncompleteError(
            f"{len(summary.shards_with_errors)} shard(s) incomplete (listed above and in {out}/score_summary.json); "
            "fix the cause and rerun (add --retry-errors to re-read shards with read errors and retry rows marked "
            "error_<signal>)"
        )
        err.summary = asdict(summary)  # type: ignore[attr-defined]  (the --json output keeps it)
        raise err
    return asdict(summary)


def _print_score_summary(summary, out: Path) -> None:
    output.result(
        f"scored {summary.samples_scored} samples in {summary.shards_scored} shards "
        f"({summary.shards_skipped} already done) in {summary.seconds:.1f}s -> {out}/scores"
    )
    if summary.status_counts:
        output.info("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.status_counts.items())))
    for shard, err in summary.shards_with_errors.items():
        output.result(f"shard {shard}: {err}")
    for shard in summary.tables_quarantined:
        output.result(
            f"shard {shard}: its table was corrupt; moved to {out}/scores/.corrupt/ and scored again"
        )
    r = summary.run
    if r and (r.get("shards", 0) != summary.shards_total or r.get("shards_failed")):
        output.info(
            f"run directory: {r['shards_done']} shard(s) done, {r['shards_failed']} failed, "
            f"{r['shards_pending']} pending, {r['rows']} rows"
        )


WHERE_HELP = (
    "Condition in altsift's expression language (docs/select.md): columns, numbers, 'text', comparisons, "
    "and/or/not (& | ~), 'x is null', 'lang in ['en', 'de']', functions abs log sqrt lower length "
    'contains ..., e.g. "basic_pass" or "clip_score >= 0.28 and lang == \'en\'". Repeatable (AND).'
)


@app.command()
@output.command
def select(
    run_dir: Path = typer.Argument(
        ..., help="A run directory, or a folder of DataComp metadata parquet (+ .npz)."
    ),
    where: list[str] | None = typer.Option(None, "--where", "-w", metavar="EXPR", help=WHERE_HELP),
    top_fraction: list[str] | None = typer.Option(
        None,
        "--top-fraction",
        "-t",
        metavar="COLUMN=F",
        help="COLUMN=F: keep the pool-wide top fraction F (DataComp get_threshold). Repeatable, one per column.",
    ),
    fuse: str | None = typer.Option(
        None,
        "--fuse",
        help="COL=W,COL=W: min-max normalise each column over the pool and sum with weights (sum 1) into column 'fused' (SIEVE).",
    ),
    preset: list[str] | None = typer.Option(
        None,
        "--preset",
        "-p",
        metavar="NAME",
        help="A named recipe: no_filter, basic_filter, clip_score, laion2b, text_based, image_based, sieve, mix_*, parrot_text_filter ... (see 'altsift presets'). Repeatable: several presets are AND-ed.",
    ),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        metavar="KEY=VALUE",
        help="Preset options as KEY=VALUE (one preset) or PRESET.KEY=VALUE, e.g. --set fraction=0.3, --set clip_score.arch=l14.",
    ),
    and_: list[Path] | None = typer.Option(
        None,
        "--and",
        metavar="SUBSET.npy",
        help="Keep only rows whose uid is in this subset .npy. Repeatable.",
    ),
    or_: list[Path] | None = typer.Option(
        None,
        "--or",
        metavar="SUBSET.npy",
        help="Also keep the (eligible) rows whose uid is in this subset .npy. Repeatable; applied last.",
    ),
    not_: list[Path] | None = typer.Option(
        None, "--not", metavar="SUBSET.npy", help="Drop rows whose uid is in this subset .npy. Repeatable."
    ),
    verdicts: bool = typer.Option(
        False,
        "--verdicts",
        help="Also write OUT.verdicts.parquet: uid + one true/false column per preset, for every pool row.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Subset .npy to write (default RUN_DIR/subset.npy, or ./subset.npy for metadata); a .json summary is written beside it.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing subset (and its .json / side files)."
    ),
) -> dict:
    """Choose a subset from score tables alone (no images, no models): conditions are AND-ed, pool-wide.

    Only the columns the conditions name are read. Every threshold is computed on the whole pool before
    any intersection.

    Examples:

    \b
      altsift select RUN --where basic_pass --top-fraction clip_score=0.3
      altsift select RUN --fuse sieve_score=0.5,clip_score=0.5 --top-fraction fused=0.2
      altsift select RUN --preset clip_score --set fraction=0.3
      altsift select RUN --preset clip_score --preset image_based --not RUN/seen.npy
    """
    from altsift.select.core import parse_pairs

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
            want = (
                f"PRESET.KEY=VALUE with PRESET one of {', '.join(names)}"
                if len(names) > 1
                else f"KEY=VALUE or {names[0]}.KEY=VALUE"
            )
            raise ConfigError(f"--set for select takes {want}, got {'.'.join(path)}")
    from altsift import api

    target = out or _default_subset(run_dir)
    sub = api.open_run(run_dir).select(
        where=list(where or []),
        top_fraction=parse_pairs(top_fraction, "--top-fraction"),
        fuse=parse_pairs([fuse] if fuse else [], "--fuse"),
        presets=opts,
        and_=list(and_ or []),
        or_=list(or_ or []),
        not_=list(not_ or []),
        verdicts=verdicts,
        out=target,
        overwrite=overwrite,
        progress=output.progress_enabled(),
    )
    return _select_done(sub.summary, target)


def _default_subset(run_dir: Path) -> Path:
    return run_dir / "subset.npy" if (run_dir / "scores").is_dir() else Path("subset.npy")


def _select_done(summary: dict, target: Path) -> dict:
    for s in summary["steps"]:
        alone = "" if s["kept_alone"] is None else f"kept {s['kept_alone']} alone, "
        output.info(f"  {s['name']}: {alone}{s['kept_cumulative']} so far")
    output.result(f"selected {summary['selected']} of {summary['pool_rows']} -> {target}")
    return summary


@app.command()
@output.command
def export(
    run_dir: Path = typer.Argument(..., help="The run directory that was scored."),
    subset: Path = typer.Option(
        ..., "--subset", help="A uid .npy from 'altsift select' (or any DataComp subset file)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        "--to",
        help="Output folder for the new shards ('--to' is the former name). Never the run directory or a folder holding input shards.",
    ),
    caption_column: str | None = typer.Option(
        None,
        "--caption-column",
        help="Column whose text becomes the .txt (e.g. 'caption' from a mixing preset); the original caption stays in the json.",
    ),
    shard_size: int = typer.Option(10_000, "--shard-size", min=1, help="Samples per output shard."),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace the files an earlier export listed in OUT/.altsift-export.json (and nothing else).",
    ),
    source_root: list[str] | None = typer.Option(
        None,
        "--source-root",
        metavar="OLD=NEW",
        help="OLD=NEW: read source shards recorded under path prefix OLD from NEW instead (shards moved since scoring). Repeatable.",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="The run's YAML config: its score.storage_options (object-store credentials, endpoint) and byte limits are used to read the source shards.",
    ),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        metavar="KEY=VALUE",
        help="KEY=VALUE over the config, e.g. score.storage_options.client_kwargs.endpoint_url=http://127.0.0.1:9000 (repeatable).",
    ),
) -> dict:
    """Reshard the selected samples into {:08d}.tar webdataset shards with the signal values in the json.

    Shards appear in OUT only once the whole export succeeded; an interrupted export leaves nothing half
    done (rerun it). Keys are escaped so webdataset reads back exactly the samples written; the json keeps
    the uid and the original key (source_key). Exit 3 when selected samples cannot be found.
    """
    from altsift import api
    from altsift.io.shards import ReadLimits

    tree = load_config_tree(config)
    apply_sets(tree, parse_set(set_))
    opts = build_config(tree, "config" if config is None else str(config)).score
    s = api.export(
        run_dir,
        subset,
        out,
        caption_column=caption_column,
        shard_size=shard_size,
        overwrite=overwrite,
        source_roots=source_root,
        progress=output.progress_enabled(),
        storage_options=opts.storage_options,
        limits=ReadLimits.from_options(opts),
    )
    output.result(f"wrote {s.written} samples in {len(s.shards)} shards to {out}")
    return s.to_dict()


def _abs(p: str) -> Path:
    """Relative paths in a config are relative to the current directory, like ``run_dir``."""
    return Path(p) if Path(p).is_absolute() else Path.cwd() / p


def _html_report(run_dir: Path, subset: Path, progress: bool) -> str | None:
    """The visual report beside report.md when the [report] extra is installed (else a note, not an error)."""
    from altsift import api

    try:
        import matplotlib  # noqa: F401 - the page's plots
    except ModuleNotFoundError as e:
        output.info(f"no report.html: {e.name} is not installed (pip install 'altsift[report]')")
        return None
    path = api.report(run_dir, subset, run_dir / "report.html", progress=progress)
    output.info(f"report -> {path}")
    return str(path)


def run_config(config: Path, set_: list[str] | None = None, progress: bool = True) -> dict:
    """Score, select, report and export as one config file says; returns a summary of each step.

    Everything that can be checked before scoring is: the config, the select section (expressions,
    presets and their options, the subset path), and the export folder (never one holding inputs).
    """
    from dataclasses import asdict

    from altsift import api
    from altsift.io.shards import ReadLimits, expand_inputs
    from altsift.pipeline.export import check_target, parse_source_roots, remap
    from altsift.select.core import check_output, make_preset, request_from_options

    tree = load_config_tree(config)
    apply_sets(tree, parse_set(set_))
    cfg = build_config(tree, str(config))
    if not cfg.inputs or not cfg.run_dir:
        raise ConfigError(f"{config}: 'inputs' and 'run_dir' are required for altsift run")
    if not progress:
        cfg.score.progress = False
    inputs = list(cfg.inputs)
    run_dir = _abs(cfg.run_dir)
    s = cfg.select
    req = request_from_options(s)  # a bad select section fails before any scoring
    for name, opts in req.all_presets().items():
        make_preset(name, opts)
    subset = _abs(s.out) if s.out else run_dir / "subset.npy"
    check_output(subset, None, s.overwrite)
    to = _abs(cfg.export.to) if cfg.export.to else None
    if to is not None:  # fail fast, before scoring: the export folder must not hold inputs or the run
        roots = parse_source_roots(cfg.export.source_roots)
        paths = expand_inputs(inputs, cfg.score.storage_options)  # absolute paths or URLs
        check_target(run_dir, to, [*paths, *(remap(p, roots) for p in paths)], overwrite=cfg.export.overwrite)
    run = api.score(inputs, run_dir, config=cfg)
    summary = run.last_score
    _print_score_summary(summary, run_dir)
    sel_summary = _select_done(
        run.select_request(req, out=subset, overwrite=s.overwrite, progress=progress).summary, subset
    )
    rep = api.report(run, subset, run_dir / "report.md")
    output.info(f"report -> {rep}")
    html = _html_report(run_dir, subset, progress)
    result = {
        "score": asdict(summary),
        "select": sel_summary,
        "report": str(rep),
        "report_html": html,
        "incomplete_shards": sorted(summary.shards_with_errors) if summary.incomplete else [],
    }
    if to is not None:
        e = api.export(
            run,
            subset,
            to,
            caption_column=cfg.export.caption_column,
            shard_size=cfg.export.shard_size,
            overwrite=cfg.export.overwrite,
            source_roots=cfg.export.source_roots,
            progress=progress,
            storage_options=cfg.score.storage_options,
            limits=ReadLimits.from_options(cfg.score),
        )
        output.info(f"exported {e.written} samples in {len(e.shards)} shards to {to}")
        result["export"] = e.to_dict()
    return result


@app.command()
@output.command
def run(
    config: Path = typer.Argument(
        ..., help="YAML config with inputs, run_dir, signals, select and export sections."
    ),
    set_: list[str] | None = typer.Option(None, "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> dict:
    """Score, select and export from one validated YAML file (e.g. configs/sieve.yaml; `altsift demo` writes another to OUT/demo.yaml)."""
    result = run_config(config, set_, progress=output.progress_enabled())
    sel = result["select"]
    output.result(
        f"selected {sel['selected']} of {sel['pool_rows']}"
        + (
            f"; exported {result['export']['written']} to {result['export']['out']}"
            if "export" in result
            else ""
        )
    )
    if result["incomplete_shards"]:  # selected and exported what was scored; say what is missing (exit 3)
        err = IncompleteError(
            f"{len(result['incomplete_shards'])} shard(s) incomplete ({', '.join(result['incomplete_shards'][:5])}); "
            "the selection and export cover the rest. Fix the cause and rerun the same command to complete them"
        )
        err.summary = result  # type: ignore[attr-defined]
        raise err
    return result


@app.command()
@output.command
def demo(
    out: Path = typer.Option(
        Path("demo_out"), "--out", "-o", help="Where the demo writes its run and exported shards."
    ),
) -> dict:
    """Run the bundled example: real photos + real LAION alt-texts (with a few broken samples)."""
    import shutil

    shards = resources.files("altsift") / "assets" / "demo"
    cfg_text = (shards / "demo.yaml").read_text()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "export"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    cfg = out / "demo.yaml"
    cfg.write_text(
        cfg_text.replace("@SHARDS@", str(Path(str(shards)) / "shards")).replace("@OUT@", str(out.resolve()))
    )
    result = run_config(cfg, progress=output.progress_enabled())
    summary = {
        "selected": result["select"]["selected"],
        "pool": result["select"]["pool_rows"],
        "run_dir": str(out / "run"),
        "export": result.get("export", {}).get("out"),
    }
    if result["incomplete_shards"]:  # the bundled truncated shard: expected, shown, not an error here
        output.info(
            f"(expected) the demo's deliberately damaged shard(s) {', '.join(result['incomplete_shards'])} "
            "are reported above: their readable samples are scored, the damage is recorded"
        )
    if not output.STATE.json:
        output.result(json.dumps(summary))
    return summary


def _fmt_default(opt: dict) -> str:
    if opt.get("required"):
        return "(required)"
    return repr(opt["default"])


@app.command("signals")
@output.command
def list_signals() -> dict:
    """List available signals: what each computes, its output columns, requirements and options with defaults."""
    from altsift.api import list_signals as catalogue

    sigs = catalogue()
    for name, info in sigs.items():
        output.result(f"{name}: {info['description']}")
        output.result(
            f"  columns: {', '.join(info['columns'])}"
            + (f"; requires: {', '.join(info['requires'])}" if info["requires"] else "")
        )
        for k, opt in info["options"].items():
            output.result(
                f"    {name}.{k} = {_fmt_default(opt)}"
                + (f"  # {opt['description']}" if opt["description"] else "")
            )
    return {"signals": sigs}


@app.command("presets")
@output.command
def list_presets() -> dict:
    """List selection presets: what each keeps and its options with defaults (set with --set KEY=VALUE)."""
    from altsift.api import list_presets as catalogue

    pre = catalogue()
    for name, info in pre.items():
        output.result(f"{name}: {info['description']}")
        for k, opt in info["options"].items():
            output.result(
                f"    {k} = {_fmt_default(opt)}" + (f"  # {opt['description']}" if opt["description"] else "")
            )
    return {"presets": pre}
