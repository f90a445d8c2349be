"""DataComp baseline assets: fetched once into a cache dir with sha256 verification, or local files.

URLs and sha256 sums are copied from ``mlfoundations/datacomp:baselines/utils.py`` (``download``).
The files themselves could not be fetched from this build environment, so the sums are DataComp's,
not re-computed here; a file whose sum does not match is rejected. Spec forms accepted by
:func:`resolve_asset`: a local path (used as is, no hash check) or ``datacomp:NAME``.
Cache: ``$ALTSIFT_CACHE_DIR/datacomp`` (default ``~/.cache/altsift/datacomp``); DataComp's own cache
``~/.cache/datacomp`` is looked in too. A local ``.pt`` whose sha256 is one of DataComp's is loaded as trusted
(those files are pickled and need ``weights_only=False``); any other ``.pt`` is loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from altsift.errors import ConfigError

_BASE = "https://github.com/sagadre/datacomp_baseline_assets/releases/download/v0.1.0-alpha/"
DATACOMP_ASSETS: dict[str, tuple[str, str]] = {
    "imagenet21k_wordnet_ids": (
        _BASE + "imagenet21k_wordnet_ids.txt",
        "66362bdedf36d933382edca5493fc562dcc17128ce36403c9e730a75f48cb2f2",
    ),
    **{
        f"in1k_clip_vit_l14_{i}": (_BASE + f"in1k_clip_vit_l14_{i}.pt", h)
        for i, h in enumerate(
            [
                "304990fd492f40ba90072b80af78d6e8edcab9d042476ef513e03441cf53743b",
                "72f008e6aa3bfb54174fa322963215337f843fc90fd642a9dccc815dd9e7ee76",
                "83c3cc6503b8a50a22cac7023ca6cd61b130ab9725db2a7519f1bec5cabf5493",
                "83faa289f847799ddcd438e5b74df1cb5973c345674896d10ba31ea48bc63804",
                "067a45f4a140a93371876510a2fd9198a89ac1d194ae4063a51b45a6da69cadf",
            ]
        )
    },
    "small_centroids": (
        _BASE + "small_centroids_l14.pt",
        "23c66a05e49ad77283c1e2b33355c7eb088ac332a944c97ff85d5dfd48a5b251",
    ),
    "medium_centroids": (
        _BASE + "medium_centroids_l14.pt",
        "028b1721b1d0f139c565b6b0ac99f8a1756f4bae89c36b0ec6d1c6ea9b6f112d",
    ),
    "large_centroids": (
        _BASE + "large_centroids_l14.pt",
        "04eeab1069d3540c246cf7ce69323147351a474017fc472e4c50a018ca32240b",
    ),
    "xlarge_centroids": (
        _BASE + "xlarge_centroids_l14.pt",
        "3f62e5f8ae3a715ce84e422846fcfce1536d184455ea234790c4a6465c4c6726",
    ),
}
#: where DataComp's own ``download`` caches these files (looked up too, never written)
DATACOMP_CACHE = Path("~/.cache/datacomp").expanduser()
# groups: one name standing for several files (concatenated in order)
ASSET_GROUPS = {"in1k_clip_vit_l14": [f"in1k_clip_vit_l14_{i}" for i in range(5)]}


def cache_dir() -> Path:
    return (
        Path(os.environ.get("ALTSIFT_CACHE_DIR", Path.home() / ".cache" / "altsift")).expanduser()
        / "datacomp"
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, root: Path | None = None, download: bool = True) -> Path:
    """Path of DataComp asset ``name`` in the cache, downloading and verifying it when needed."""
    if name not in DATACOMP_ASSETS:
        raise ConfigError(f"unknown DataComp asset '{name}'. Known: {', '.join(sorted(DATACOMP_ASSETS))}")
    url, digest = DATACOMP_ASSETS[name]
    root = root or cache_dir()
    target = root / Path(url).name
    if target.is_file() and sha256(target) == digest:
        return target
    theirs = DATACOMP_CACHE / Path(url).name  # already fetched by DataComp's own baselines/utils.py
    if theirs.is_file() and sha256(theirs) == digest:
        return theirs
    hint = (
        f"download {url} (sha256 {digest}) on a machine with internet access and place it at {target}, "
        "or pass a local file path instead of 'datacomp:...'"
    )
    if target.exists():
        raise ConfigError(f"{target} exists but its sha256 does not match DataComp's; {hint}")
    if not download:
        raise ConfigError(f"DataComp asset '{name}' is not in the cache; {hint}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"could not download DataComp asset '{name}' ({e}); {hint}") from None
    if sha256(tmp) != digest:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"downloaded '{name}' but its sha256 does not match; {hint}")
    tmp.replace(target)
    return target


def resolve_asset(spec: str) -> list[tuple[Path, bool]]:
    """``datacomp:NAME`` or a local path -> [(path, verified)] (a group yields several files)."""
    if spec.startswith("datacomp:"):
        name = spec.split(":", 1)[1]
        return [(fetch(n), True) for n in ASSET_GROUPS.get(name, [name])]
    p = Path(spec).expanduser()
    if not p.exists():
        raise ConfigError(f"file not found: {p}")
    # a local copy of a DataComp asset (e.g. its pickled centroid .pt) is as trusted as a fetched one
    known = p.suffix == ".pt" and p.is_file() and sha256(p) in {d for _, d in DATACOMP_ASSETS.values()}
    return [(p, known)]


def load_embeddings(spec: str | list[str]) -> np.ndarray:
    """Load a float32 (n, d) array from ``.npy`` / ``.npz`` / ``.pt`` file(s) (``datacomp:`` specs allowed).

    ``.pt`` holds a tensor or array, or a dict with ``image_features`` (DataComp's IN1k files). Files
    that are not sha256-verified are loaded with ``torch.load(weights_only=True)``.
    """
    specs = [spec] if isinstance(spec, str) else list(spec)
    arrs = [_load_one(p, ok) for s in specs for p, ok in resolve_asset(s)]
    return np.concatenate(arrs).astype(np.float32, copy=False)


def _load_one(path: Path, verified: bool) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".npz":
        z = np.load(path)
        return z[z.files[0]]
    import torch

    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=not verified)
    except Exception as e:
        raise ConfigError(
            f"could not read {path} as a tensor file ({e}); save it as .npy instead (np.save), or use the "
            "file exactly as DataComp published it (its sha256 marks it as trusted)"
        ) from None
    if isinstance(obj, dict):
        obj = obj.get("image_features", next(iter(obj.values())))
    return (
        obj.float().numpy() if hasattr(obj, "numpy") and not isinstance(obj, np.ndarray) else np.asarray(obj)
    )


def load_wnids(spec: str) -> list[str]:
    """Lines of a wnid list (``datacomp:imagenet21k_wordnet_ids`` or a local text file)."""
    (path, _), *_ = resolve_asset(spec)
    return path.read_text().split()
