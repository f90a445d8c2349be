"""Faiss k-means for embedding pools: train on a sample, optional PCA, assign everything in batches.

Used by the DataComp ``image_based`` preset (K=100000, 20 iterations, L2 training, assignment by
argmax inner product) and by the parrot cluster analysis (PCA to 256-d, k=4000; the paper used scikit-learn's
IncrementalPCA, here faiss's ``PCAMatrix``: the same projection, one dependency fewer).

    km = fit_kmeans(x, k=1000, niter=20, sample_ratio=0.3, pca_dim=None, seed=0)
    labels = km.assign(x)                    # int64 (n,), -1 for rows with NaN
    km.save("centroids.npz"); km = KMeansModel.load("centroids.npz")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Metric = Literal["ip", "l2"]


@dataclass
class KMeansModel:
    """Centroids (in the possibly PCA-reduced space) plus the optional PCA projection."""

    centroids: np.ndarray
    metric: Metric = "ip"
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the PCA projection (identity without PCA); float32, C-contiguous."""
        x = np.asarray(x, dtype=np.float32)
        if self.pca_components is not None:
            x = (x - self.pca_mean) @ self.pca_components.T
        return np.ascontiguousarray(x, dtype=np.float32)

    def assign(self, x: np.ndarray, batch_size: int = 65536, progress: bool = False) -> np.ndarray:
        """Nearest centroid per row (``metric='ip'``: argmax inner product, as DataComp); NaN rows -> -1."""
        import faiss
        from tqdm import tqdm

        c = np.ascontiguousarray(self.centroids, dtype=np.float32)
        index = faiss.IndexFlatIP(c.shape[1]) if self.metric == "ip" else faiss.IndexFlatL2(c.shape[1])
        index.add(c)
        x = np.asarray(x)
        out = np.full(len(x), -1, dtype=np.int64)
        with tqdm(total=len(x), unit="row", desc="assign", disable=not progress) as bar:
            for i in range(0, len(x), batch_size):
                xb = self.transform(x[i : i + batch_size])
                ok = ~np.isnan(xb).any(axis=1)
                if ok.any():
                    _, lab = index.search(np.ascontiguousarray(xb[ok]), 1)
                    out[i : i + batch_size][ok] = lab[:, 0]
                bar.update(len(xb))
        return out

    def save(self, path: str | Path) -> None:
        arrs = {"centroids": self.centroids, "metric": np.array(self.metric)}
        if self.pca_components is not None:
            arrs |= {"pca_mean": self.pca_mean, "pca_components": self.pca_components}
        np.savez(path, **arrs)

    @classmethod
    def load(cls, path: str | Path) -> KMeansModel:
        z = np.load(path)
        return cls(
            centroids=z["centroids"],
            metric=str(z["metric"]),
            pca_mean=z.get("pca_mean"),
            pca_components=z.get("pca_components"),
        )


def fit_kmeans(
    x: np.ndarray,
    k: int,
    niter: int = 20,
    sample_ratio: float = 1.0,
    pca_dim: int | None = None,
    metric: Metric = "ip",
    seed: int = 0,
    nredo: int = 1,
    spherical: bool = False,
    max_points_per_centroid: int = 10_000_000,
    min_points_per_centroid: int = 1,
    verbose: bool = False,
) -> KMeansModel:
    """Train faiss k-means (L2 objective; ``spherical`` re-normalises centroids) on a random sample.

    ``sample_ratio`` of the non-NaN rows (at least ``k``) is used for training, as DataComp's
    ``image_based_clustering.py``; ``pca_dim`` fits a PCA (faiss ``PCAMatrix``) on that sample first.
    ``metric`` only sets how :meth:`KMeansModel.assign` assigns points afterwards.
    """
    import faiss

    x = np.asarray(x)
    valid = np.flatnonzero(~np.isnan(x).any(axis=1))
    if len(valid) < k:
        raise ValueError(f"k-means with k={k} needs at least {k} embeddings, got {len(valid)}")
    rng = np.random.default_rng(seed)
    n_train = max(k, int(round(len(valid) * sample_ratio)))
    idx = np.sort(rng.choice(valid, size=min(n_train, len(valid)), replace=False))
    train = np.ascontiguousarray(x[idx], dtype=np.float32)
    model = KMeansModel(centroids=np.zeros((0, train.shape[1]), np.float32), metric=metric)
    if pca_dim is not None and pca_dim < train.shape[1]:
        # faiss's PCA (exact, from the covariance of the training sample) instead of scikit-learn's
        # IncrementalPCA: same subspace and mean, and faiss is already needed for k-means.
        pca = faiss.PCAMatrix(train.shape[1], pca_dim)
        pca.train(train)
        model.pca_mean = faiss.vector_to_array(pca.mean).astype(np.float32)
        model.pca_components = (
            faiss.vector_to_array(pca.A).reshape(-1, train.shape[1])[:pca_dim].astype(np.float32)
        )
        train = model.transform(train)
    km = faiss.Kmeans(
        train.shape[1],
        k,
        niter=niter,
        nredo=nredo,
        seed=seed,
        spherical=spherical,
        verbose=verbose,
        max_points_per_centroid=max_points_per_centroid,
        min_points_per_centroid=min_points_per_centroid,
    )
    km.train(train)
    model.centroids = np.asarray(km.centroids, dtype=np.float32)
    return model
