"""``altsift cluster``: k-means over CLIP image embeddings of a run, ``cluster_id`` column, per-cluster stats.

Follows ``CLIP-Parrot-Bias:kmeans.py``: PCA 512 -> 256 (faiss ``PCAMatrix``; the paper: IncrementalPCA),
``faiss.Kmeans(256, 4000, niter=300,
nredo=10, seed=42)`` trained on a sample (the paper: LAION-400M) and used to assign every row (L2
nearest centroid, as ``kmeans.assign``). The k-means itself is :mod:`altsift.select.kmeans`.

Writes ``cluster_id`` into every score table (atomically), ``RUN_DIR/clusters/kmeans.npz`` (centroids +
PCA), ``RUN_DIR/clusters/stats.parquet`` and ``stats.md``: per cluster the size, share of images with
text, parrot rate (CoTR > 0), mean CoTR and mean CLIP score (columns present in the run only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from altsift.errors import ConfigError
from altsift.io.tables import add_pool_columns, list_tables, load_pool, load_pool_array
from altsift.select.kmeans import KMeansModel, fit_kmeans

log = logging.getLogger("altsift.cluster")

STAT_COLUMNS = {
    "has_text": "share_with_text",
    "is_parrot": "parrot_rate",
    "cotr": "mean_cotr",
    "clip_score": "mean_clip_score",
}


@dataclass
class ClusterResult:
    labels: np.ndarray
    stats: pd.DataFrame
    model: KMeansModel
    out_dir: Path


def cluster_stats(df: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """Per-cluster size and the means of ``STAT_COLUMNS`` present in ``df`` (NaN-aware), by mean CLIP score."""
    frame = pd.DataFrame({"cluster_id": labels})
    for col, name in STAT_COLUMNS.items():
        if col in df.columns:
            frame[name] = pd.to_numeric(df[col].astype("float64"), errors="coerce").to_numpy()
    g = frame[frame["cluster_id"] >= 0].groupby("cluster_id")
    stats = g.size().rename("size").to_frame()
    for name in STAT_COLUMNS.values():
        if name in frame.columns:
            stats[name] = g[name].mean()
    stats = stats.reset_index()
    sort = "mean_clip_score" if "mean_clip_score" in stats.columns else "size"
    return stats.sort_values(sort, ascending=False, ignore_index=True)


def stats_markdown(stats: pd.DataFrame, k: int, n: int, top: int = 20) -> str:
    cols = list(stats.columns)
    lines = [
        f"# Clusters: k={k}, {n} rows",
        "",
        f"Top {min(top, len(stats))} clusters by {'mean CLIP score' if 'mean_clip_score' in cols else 'size'}.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for _, r in stats.head(top).iterrows():
        lines.append(
            "| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |"
        )
    return "\n".join(lines) + "\n"


def run_cluster(
    run_dir: str | Path,
    k: int = 4000,
    niter: int = 300,
    nredo: int = 10,
    seed: int = 42,
    pca_dim: int | None = 256,
    sample_ratio: float = 1.0,
    embedding: str = "clip_image_emb",
    min_points_per_centroid: int = 1,
    max_points_per_centroid: int = 200_000,
    model_path: str | Path | None = None,
    progress: bool = False,
) -> ClusterResult:
    """Fit (or load ``model_path``) k-means, assign every row, write ``cluster_id`` and stats.

    ``progress``: log each stage and show a bar (in rows) while assigning."""
    run_dir = Path(run_dir)
    tables = list_tables(run_dir)
    if not tables:
        raise ConfigError(f"{run_dir} has no score tables (RUN_DIR/scores/*.parquet)")
    emb = load_pool_array(run_dir, embedding)
    if model_path is not None:
        model = KMeansModel.load(model_path)
    else:
        n_valid = int((~np.isnan(emb).any(axis=1)).sum())
        if n_valid < k:
            raise ConfigError(
                f"k={k} clusters need at least {k} embeddings; the run has {n_valid}. Use a smaller --k"
            )
        if progress:
            log.info(
                "training k-means: k=%d, %d iterations x %d restarts on %d of %d rows",
                k,
                niter,
                nredo,
                max(k, int(round(n_valid * sample_ratio))),
                len(emb),
            )
        model = fit_kmeans(
            emb,
            k=k,
            niter=niter,
            sample_ratio=sample_ratio,
            pca_dim=pca_dim if pca_dim and pca_dim < emb.shape[1] else None,
            metric="l2",
            seed=seed,
            nredo=nredo,
            min_points_per_centroid=min_points_per_centroid,
            max_points_per_centroid=max_points_per_centroid,
        )
    labels = model.assign(emb, progress=progress)
    if progress:
        log.info("writing cluster_id into %d score tables", len(tables))
    add_pool_columns(run_dir, {"cluster_id": labels})
    names = set(pq.read_schema(tables[0]).names)
    df = load_pool(run_dir, columns=[c for c in STAT_COLUMNS if c in names])
    stats = cluster_stats(df, labels)
    out = run_dir / "clusters"
    out.mkdir(exist_ok=True)
    model.save(out / "kmeans.npz")
    stats.to_parquet(out / "stats.parquet", index=False)
    (out / "stats.md").write_text(stats_markdown(stats, model.k, len(labels)))
    return ClusterResult(labels, stats, model, out)
