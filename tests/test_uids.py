import numpy as np
import pytest

from altsift.errors import ConfigError
from altsift.io.uids import (
    UID_DTYPE,
    array_to_uids,
    contains,
    derive_uid,
    is_valid_uid,
    load_subset,
    save_subset,
    uids_to_array,
)

UIDS = [
    "ffffffffffffffff0000000000000001",
    "0000000000000000ffffffffffffffff",
    "00000000000000010000000000000000",
    "7f3a9c0d2b1e4f5a6b7c8d9e0f1a2b3c",
]


def test_round_trip_and_sorted(tmp_path):
    p = tmp_path / "s.npy"
    arr = save_subset(p, UIDS)
    loaded = np.load(p)
    assert loaded.dtype == UID_DTYPE == np.dtype("u8,u8")
    assert sorted(array_to_uids(loaded)) == sorted(UIDS)
    # lexicographic order of (high, low) equals the order of the hex strings
    assert array_to_uids(loaded) == sorted(UIDS)
    pairs = list(zip(loaded["f0"].tolist(), loaded["f1"].tolist(), strict=True))
    assert pairs == sorted(pairs)
    assert np.array_equal(arr, loaded)


def test_split_in_two_u64():
    a = uids_to_array(["0123456789abcdef fedcba9876543210".replace(" ", "")])
    assert int(a["f0"][0]) == 0x0123456789ABCDEF
    assert int(a["f1"][0]) == 0xFEDCBA9876543210


def test_searchsorted_lookup_like_resharder(tmp_path):
    p = tmp_path / "s.npy"
    save_subset(p, UIDS[:2])
    sub = load_subset(p)
    got = contains(sub, UIDS)
    assert got.tolist() == [True, True, False, False]
    # the resharder's own formulation on a single key
    q = uids_to_array([UIDS[1]], sort=False)[0]
    assert np.searchsorted(sub, q, "left") != np.searchsorted(sub, q, "right")


def test_load_rejects_wrong_dtype(tmp_path):
    p = tmp_path / "bad.npy"
    np.save(p, np.arange(3))
    with pytest.raises(ConfigError, match="u8,u8"):
        load_subset(p)


def test_load_rejects_unsorted_subset(tmp_path):
    arr = uids_to_array(UIDS, sort=True)
    assert len(arr) >= 2
    p = tmp_path / "unsorted.npy"
    np.save(p, arr[::-1].copy())
    with pytest.raises(ConfigError, match="not sorted"):
        load_subset(p)
    same_hi = np.array([(5, 2), (5, 1)], dtype="u8,u8")  # equal high words: the low word decides
    np.save(p, same_hi)
    with pytest.raises(ConfigError, match="not sorted"):
        load_subset(p)
    np.save(p, np.sort(same_hi))
    assert len(load_subset(p)) == 2


def test_derived_uid_is_stable_and_valid():
    assert derive_uid("00000", "000000001") == derive_uid("00000", "000000001")
    assert derive_uid("00000", "000000001") != derive_uid("00001", "000000001")
    assert is_valid_uid(derive_uid("a", "b"))
