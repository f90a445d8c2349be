"""DataComp uids: 32 lowercase hex digits (128 bits), stored in subsets as sorted ``u8,u8`` arrays."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from altsift.errors import ConfigError

UID_DTYPE = np.dtype("u8,u8")
_UID_RE = re.compile(r"^[0-9a-f]{32}$")


def is_valid_uid(uid: object) -> bool:
    """True for a 32-character lowercase hex string."""
    return isinstance(uid, str) and bool(_UID_RE.match(uid))


def normalize_uid(uid: object) -> str | None:
    """Lower-case a hex uid; None if it is not 32 hex digits."""
    if not isinstance(uid, str):
        return None
    u = uid.strip().lower()
    return u if _UID_RE.match(u) else None


def derive_uid(shard: str, key: str) -> str:
    """A stable uid for samples without one: md5 of ``shard/key`` (marked ``uid_derived``)."""
    return hashlib.md5(f"{shard}/{key}".encode()).hexdigest()


def uids_to_array(uids: Iterable[str], sort: bool = True) -> np.ndarray:
    """Hex uids -> structured ``u8,u8`` array (high 64 bits, low 64 bits), sorted like DataComp."""
    uids = list(uids)
    arr = np.empty(len(uids), dtype=UID_DTYPE)
    if uids:
        arr["f0"] = np.array([int(u[:16], 16) for u in uids], dtype=np.uint64)
        arr["f1"] = np.array([int(u[16:32], 16) for u in uids], dtype=np.uint64)
    if sort:
        arr.sort()
    return arr


def array_to_uids(arr: np.ndarray) -> list[str]:
    """Structured ``u8,u8`` array -> hex uids."""
    return [f"{int(a):016x}{int(b):016x}" for a, b in zip(arr["f0"], arr["f1"], strict=True)]


def save_subset(path: str | Path, uids: Iterable[str]) -> np.ndarray:
    """Write a DataComp subset file (sorted ``u8,u8`` .npy) atomically; returns the array."""
    arr = uids_to_array(uids, sort=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)
    return arr


def load_subset(path: str | Path) -> np.ndarray:
    """Read a subset .npy and check its dtype and order (lookups by ``np.searchsorted`` need it sorted)."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable .npy subset ({e})") from None
    if arr.dtype != UID_DTYPE:
        raise ConfigError(f"{path}: expected dtype u8,u8 (DataComp subset), got {arr.dtype}")
    arr = np.asarray(arr)
    if not is_sorted(arr):
        raise ConfigError(
            f"{path}: the uids are not sorted, so DataComp-style lookups would miss members; "
            "sort it with `np.save(path, np.sort(np.load(path)))`"
        )
    return arr


def is_sorted(arr: np.ndarray) -> bool:
    """Whether a ``u8,u8`` array is in ascending (hi, lo) order."""
    hi, lo = arr[arr.dtype.names[0]], arr[arr.dtype.names[1]]
    dh = hi[1:] < hi[:-1]
    return not bool(np.any(dh | ((hi[1:] == hi[:-1]) & (lo[1:] < lo[:-1]))))


def contains(subset: np.ndarray, uids: Iterable[str]) -> np.ndarray:
    """Membership test as DataComp's resharder does it: ``np.searchsorted`` on the sorted array."""
    q = uids_to_array(uids, sort=False)
    if subset.size == 0:
        return np.zeros(len(q), dtype=bool)
    left = np.searchsorted(subset, q, side="left")
    right = np.searchsorted(subset, q, side="right")
    return right > left
