"""Parrot-caption analysis commands: ``altsift probe`` (synthetic-text Sync. Score) and ``altsift cluster``."""

from __future__ import annotations

from pathlib import Path

import typer

from altsift.cli import app, output
from altsift.errors import ConfigError


@app.command()
def probe(
    model: str = typer.Option(
        "openai/clip-vit-base-patch32", "--model", "-m", help="CLIP checkpoint: hub id or local dir."
    ),
    backend: str = typer.Option("auto", help="image_text backend (auto, hf_clip, open_clip, ...)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32, fp16 or bf16."),
    batch_size: int = typer.Option(64, help="encoder batch size."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Run dir: probe with its caption and Co-Emb. n-gram vocabularies."
    ),
    texts: Path | None = typer.Option(None, "--texts", help="A text file, one probe text per line."),
    top: int = typer.Option(1000, help="Top n-grams of each vocabulary used as probe texts (paper: 400000)."),
    ngram_max: int = typer.Option(3, help="Longest n-gram counted."),
    font: Path | None = typer.Option(
        None, help="TrueType font (default: bundled DejaVuSans; the paper used Arial)."
    ),
    font_size: int = typer.Option(32, help="Font size in pixels (paper: 32)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for sync_scores.parquet, vocab.parquet, probe.md."
    ),
) -> None:
    """Synthetic-text probe: how strongly a CLIP model 'reads' rendered text (Sync. Score, Lin et al. 2023).

    Renders each text centred on 224x224 images in four styles and reports the mean cosine between each
    image and its own text. Texts come from --texts or the top n-grams of a run's captions and Co-Emb.
    text (needs the 'parrot' signal). Lower = less text-spotting bias.
    """
    import pandas as pd

    from altsift.analysis.probe import summary_markdown, sync_score, vocab_stats
    from altsift.models.base import ModelSpec, load_model

    vocabs: dict[str, list[str]] = {}
    vocab_df = None
    if texts is not None:
        if not texts.is_file():
            raise ConfigError(f"--texts file not found: {texts}")
        vocabs["texts"] = [t.strip() for t in texts.read_text().splitlines() if t.strip()]
    if run_dir is not None:
        from altsift.io.tables import load_pool

        df = load_pool(run_dir, columns=["text"])
        if "co_emb_text" not in df.columns:
            try:
                df["co_emb_text"] = load_pool(run_dir, columns=["co_emb_text"])["co_emb_text"]
            except ConfigError:
                typer.echo("no co_emb_text column (run the 'parrot' signal); using captions only", err=True)
        ok = df["status"] == "ok"
        vocab_df = vocab_stats(df[ok], ngram_max, top)
        for src, grp in vocab_df.groupby("source", sort=False):
            vocabs[f"{src}_vocab"] = grp["ngram"].tolist()
    vocabs = {k: v for k, v in vocabs.items() if v}
    if not vocabs:
        raise ConfigError("probe needs texts: pass --texts FILE and/or --run-dir RUN_DIR")
    spec = ModelSpec(model=model, backend=backend, device=device, precision=precision, batch_size=batch_size)
    encoder = load_model("image_text", spec, "hf_clip")
    rows, md = [], []
    for name, vocab in vocabs.items():
        res = sync_score(encoder, vocab, font=font, font_size=font_size)
        f = res.to_frame()
        f.insert(0, "vocab", name)
        f["n_texts"] = len(vocab)
        rows.append(f)
        md.append(summary_markdown(res, model, f"{name} ({len(vocab)} texts)"))
    report = "\n".join(md)
    typer.echo(report)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(rows, ignore_index=True).to_parquet(out / "sync_scores.parquet", index=False)
        (out / "probe.md").write_text(report)
        if vocab_df is not None:
            vocab_df.to_parquet(out / "vocab.parquet", index=False)
        typer.echo(f"wrote {out}/sync_scores.parquet and probe.md")


@app.command()
def cluster(
    run_dir: Path = typer.Argument(..., help="A scored run directory with arrays/clip_image_emb/*.npy."),
    k: int = typer.Option(4000, "--k", help="Number of clusters (paper: 4000)."),
    niter: int = typer.Option(300, help="k-means iterations (paper: 300)."),
    nredo: int = typer.Option(10, help="k-means restarts, best kept (paper: 10)."),
    seed: int = typer.Option(42, help="Random seed (paper: 42)."),
    pca_dim: int = typer.Option(
        256,
        help="PCA output dimension (paper: 512 -> 256 with IncrementalPCA; here faiss PCAMatrix); 0 disables PCA.",
    ),
    sample_ratio: float = typer.Option(1.0, help="Fraction of rows used to train (all rows are assigned)."),
    embedding: str = typer.Option("clip_image_emb", help="Array column holding the CLIP image embeddings."),
    min_points_per_centroid: int = typer.Option(
        1, help="faiss min points per centroid (paper: 10000 at LAION scale)."
    ),
    max_points_per_centroid: int = typer.Option(
        200_000, help="faiss max points per centroid (paper: 200000)."
    ),
    model_path: Path | None = typer.Option(
        None, "--model", help="Reuse centroids (+PCA) from a kmeans.npz instead of training."
    ),
) -> None:
    """K-means on CLIP image embeddings: adds 'cluster_id' to every score table and writes per-cluster stats.

    Stats (RUN_DIR/clusters/stats.parquet, stats.md): size, share with text, parrot rate, mean CoTR and
    mean CLIP score per cluster, for the columns the run has. 'cluster_id' feeds the parrot_text_filter dedup.
    """
    from altsift.analysis.clusters import run_cluster

    res = run_cluster(
        run_dir,
        k=k,
        niter=niter,
        nredo=nredo,
        seed=seed,
        pca_dim=pca_dim or None,
        sample_ratio=sample_ratio,
        embedding=embedding,
        min_points_per_centroid=min_points_per_centroid,
        max_points_per_centroid=max_points_per_centroid,
        model_path=model_path,
        progress=output.progress_enabled(),
    )
    typer.echo(
        f"assigned {len(res.labels)} rows to {res.model.k} clusters -> cluster_id; stats in {res.out_dir}"
    )
    typer.echo((res.out_dir / "stats.md").read_text())
