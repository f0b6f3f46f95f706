"""Identifiers as the source systems make them, vectorised.

CRM: Salesforce-style 18-character ids (3-character object prefix, 12 base-62 characters, and
the 3-character case-safety suffix Salesforce computes from the upper-case letters). ERP:
numeric document and customer numbers with leading zeros.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_SUFFIX = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", dtype=np.uint8)


def increasing_counters(rng: np.random.Generator, n: int, start: int, max_step: int) -> np.ndarray:
    """Strictly increasing numbers with random gaps, like ids handed out over time."""
    return start + np.cumsum(rng.integers(1, max_step + 1, size=n, dtype=np.int64))


def salesforce_ids(prefix: str, counters: np.ndarray, pod: str = "5J") -> np.ndarray:
    """18-character ids: prefix (3) + pod (2) + base-62 counter (10) + case-safety suffix (3)."""
    if len(prefix) != 3 or len(pod) != 2:
        raise ValueError("prefix has 3 characters and pod 2")
    n = len(counters)
    chars = np.empty((n, 18), dtype=np.uint8)
    chars[:, 0:3] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    chars[:, 3:5] = np.frombuffer(pod.encode(), dtype=np.uint8)
    value = np.asarray(counters, dtype=np.int64).copy()
    for position in range(14, 4, -1):
        chars[:, position] = _BASE62[value % 62]
        value //= 62
    upper = (chars[:, :15] >= ord("A")) & (chars[:, :15] <= ord("Z"))
    weights = 1 << np.arange(5)
    for block in range(3):
        bits = (upper[:, block * 5 : block * 5 + 5] * weights).sum(axis=1)
        chars[:, 15 + block] = _SUFFIX[bits]
    return chars.view("S18").ravel().astype("U18")


def padded_numbers(values: np.ndarray, width: int = 10) -> pa.Array:
    """Zero-padded numeric ids as an Arrow string array (no Python objects: for big tables)."""
    return pc.utf8_lpad(pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string()), width, "0")


def erp_numbers(values: np.ndarray, width: int = 10) -> np.ndarray:
    """Zero-padded numeric ids (customer numbers keep their leading zeros)."""
    return np.asarray(padded_numbers(values, width).to_numpy(zero_copy_only=False), dtype=object)
