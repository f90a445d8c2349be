"""DataComp uids: 32 lowercase hex digits (128 bits), stored in subsets as sorted ``u8,u8`` arrays."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------ vectorised (no Python strings)
def _pair_table() -> np.ndarray:
    """uint16 (two ASCII bytes, little-endian) -> the byte they spell in hex, or 0xFFFF if not hex."""
    lut = np.full(65536, 0xFFFF, dtype=np.uint16)
    digits = "0123456789abcdefABCDEF"
    for a in digits:
        for b in digits:
            lut[ord(a) | (ord(b) << 8)] = (int(a, 16) << 4) | int(b, 16)
    return lut


_PAIRS = _pair_table()
_HIGH_BYTES = np.uint64(0xFF00FF00FF00FF00)
_CHUNK = 32_768


def parse_hex_uids(arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrow string array of 32-hex-digit uids -> ``(hi, lo, valid)`` uint64/uint64/bool numpy arrays.

    Vectorised over the arrow data buffer (a 64K-entry table maps each pair of hex digits to its byte),
    no Python strings. Nulls and values that are not exactly 32 hex digits get ``valid=False`` (and
    hi = lo = 0). Upper-case digits parse like lower-case ones. ``hi``/``lo`` are DataComp's ``int(uid[:16], 16)`` /
    ``int(uid[16:32], 16)``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, dtype=bool)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        if pa.types.is_null(arr.type):
            return np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.zeros(n, dtype=bool)
        arr = pc.cast(arr, pa.string())
    lengths = pc.fill_null(pc.binary_length(arr), 0)
    valid = np.asarray(pc.equal(lengths, 32).to_numpy(zero_copy_only=False), dtype=bool)
    if not valid.all():
        arr = pc.if_else(pa.array(valid), arr, pa.scalar("0" * 32, arr.type))
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=off_type, count=n + 1 + arr.offset)[arr.offset :]
    raw = np.frombuffer(bufs[2], dtype=np.uint8, count=32 * n, offset=int(offsets[0]))
    pairs = (raw if int(offsets[0]) % 2 == 0 else raw.copy()).view("<u2").reshape(n, 16)
    out = np.empty((n, 2), dtype=">u8")  # the 16 bytes of each uid, big-endian halves
    out_bytes = out.view(np.uint8).reshape(n, 16)
    for s in range(0, n, _CHUNK):  # cache-sized blocks; one table lookup per two hex digits
        r = np.take(_PAIRS, pairs[s : s + _CHUNK])
        w = r.view("<u8").reshape(-1, 4)
        valid[s : s + _CHUNK] &= ((w[:, 0] | w[:, 1] | w[:, 2] | w[:, 3]) & _HIGH_BYTES) == 0
        out_bytes[s : s + _CHUNK] = r  # the low byte of each entry
    hi, lo = out[:, 0].astype(np.uint64), out[:, 1].astype(np.uint64)
    hi[~valid] = 0
    lo[~valid] = 0
    return hi, lo, valid


def format_hex_uids(hi: np.ndarray, lo: np.ndarray) -> Any:
    """``(hi, lo)`` uint64 arrays -> arrow string array of 32 lower-case hex digits (no Python strings)."""
    import pyarrow as pa

    n = len(hi)
    by = np.empty((n, 2), dtype=">u8")
    by[:, 0], by[:, 1] = hi, lo
    raw = by.view(np.uint8).reshape(n, 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 32), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))


def sort_pairs(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uid halves sorted as DataComp sorts subsets, by ``hi`` (one argsort) then by ``lo`` within the
    rare runs of equal ``hi`` (a lexsort on those rows only)."""
    order = np.argsort(hi)
    hs = hi[order]
    tie = np.flatnonzero(hs[1:] == hs[:-1])
    if tie.size:
        pos = np.union1d(tie, tie + 1)  # positions (in sorted order) of rows whose hi repeats
        sub = np.lexsort((lo[order[pos]], hs[pos]))  # hs[pos] is non-decreasing: permutes within runs only
        order[pos] = order[pos][sub]
    return hs, lo[order]


def pairs_to_subset(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Sorted DataComp subset array (``u8,u8``) from uid halves."""
    hs, ls = sort_pairs(hi, lo)
    arr = np.empty(len(hs), dtype=UID_DTYPE)
    arr["f0"], arr["f1"] = hs, ls
    return arr


def save_subset_array(path: str | Path, arr: np.ndarray) -> None:
    """Write a ``u8,u8`` subset array atomically."""
    save_subset_pairs(path, arr["f0"], arr["f1"])


def save_subset_pairs(path: str | Path, hi: np.ndarray, lo: np.ndarray, chunk: int = 1 << 20) -> None:
    """Write sorted uid halves as a DataComp subset ``.npy`` (dtype ``u8,u8``), atomically, in chunks
    (no whole structured copy in memory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npy")
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(UID_DTYPE),
                                                     "fortran_order": False, "shape": (len(hi),)})  # fmt: skip
            buf = np.empty(min(chunk, max(len(hi), 1)), dtype=UID_DTYPE)
            for s in range(0, len(hi), chunk):
                part = buf[: min(chunk, len(hi) - s)]
                part["f0"], part["f1"] = hi[s : s + chunk], lo[s : s + chunk]
                f.write(part.tobytes())
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_subset(path: str | Path) -> np.ndarray:
    """A subset ``.npy`` for combining with a selection: 1-D ``u8,u8`` (any order; sorted copy returned)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"{path}: subset file not found") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable .npy subset ({e})") from None
    if arr.dtype != UID_DTYPE:
        raise ConfigError(
            f"{path}: expected a DataComp subset (1-D array of dtype u8,u8), got dtype {arr.dtype} "
            f"with shape {arr.shape}"
        )
    if arr.ndim != 1:
        raise ConfigError(f"{path}: expected a 1-D array of uids (DataComp subset), got shape {arr.shape}")
    a = np.asarray(arr)
    order = np.lexsort((a["f1"], a["f0"]))
    return a[order]


def member_pairs(subset: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Which ``(hi, lo)`` uids are in ``subset`` (sorted ``u8,u8``), vectorised on uint64 halves."""
    n = len(hi)
    if subset.size == 0 or n == 0:
        return np.zeros(n, dtype=bool)
    shi, slo = np.ascontiguousarray(subset["f0"]), np.ascontiguousarray(subset["f1"])
    left = np.searchsorted(shi, hi, side="left")
    right = np.searchsorted(shi, hi, side="right")
    span = right - left
    out = np.zeros(n, dtype=bool)
    one = span == 1
    out[one] = slo[left[one]] == lo[one]
    many = np.flatnonzero(span > 1)  # the subset repeats this hi half: compare within the run
    for i in many.tolist():
        j = np.searchsorted(slo[left[i] : right[i]], lo[i])
        out[i] = j < span[i] and slo[left[i] + j] == lo[i]
    return out


def count_duplicates(subset: np.ndarray) -> int:
    """Entries of a sorted subset that repeat the previous one."""
    if subset.size < 2:
        return 0
    return int(
        np.count_nonzero((subset["f0"][1:] == subset["f0"][:-1]) & (subset["f1"][1:] == subset["f1"][:-1]))
    )
