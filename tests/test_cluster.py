"""altsift.select.kmeans: faiss k-means training on a sample, PCA, batched assignment, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from altsift.select.kmeans import KMeansModel, fit_kmeans


def _blobs(seed=0, n=60, d=16, k=4):
    rng = np.random.default_rng(seed)
    centers = np.eye(k, d, dtype=np.float32) * 10
    x = np.concatenate([c + rng.normal(size=(n, d)).astype(np.float32) * 0.1 for c in centers])
    return x, np.repeat(np.arange(k), n)


def _pure(labels, truth):
    """Each true group maps to exactly one cluster and groups do not share clusters."""
    groups = [set(labels[truth == g]) for g in np.unique(truth)]
    return all(len(g) == 1 for g in groups) and len(set().union(*groups)) == len(groups)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_kmeans_recovers_blobs_and_batches(metric):
    x, truth = _blobs()
    km = fit_kmeans(x, 4, niter=20, sample_ratio=0.5, metric=metric, nredo=5, seed=0)
    assert km.centroids.shape == (4, 16)
    lab = km.assign(x, batch_size=7)
    assert _pure(lab, truth)
    np.testing.assert_array_equal(lab, km.assign(x))
    if metric == "ip":  # DataComp: argmax of the inner product with the centroids
        np.testing.assert_array_equal(lab, np.argmax(x @ km.centroids.T, axis=1))


def test_kmeans_pca_nan_and_roundtrip(tmp_path):
    x, truth = _blobs(1)
    x[5] = np.nan
    km = fit_kmeans(x, 4, pca_dim=3, nredo=5, metric="l2")
    assert km.centroids.shape == (4, 3) and km.pca_components.shape == (3, 16)
    lab = km.assign(x)
    assert lab[5] == -1 and _pure(np.delete(lab, 5), np.delete(truth, 5))
    km.save(tmp_path / "km.npz")
    km2 = KMeansModel.load(tmp_path / "km.npz")
    np.testing.assert_array_equal(km2.assign(x), lab)
    with pytest.raises(ValueError, match="at least 500"):
        fit_kmeans(x[:10], 500)
