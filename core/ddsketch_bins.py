"""Vectorised DDSketch bins: the `ddsketch` package's LogarithmicMapping keys, computed on numpy columns.

The package is the reference (same gamma, same keys, same quantile rule); it works one value at a time,
which is too slow on the hot path, so the mapping is re-expressed here on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
GAMMA: float = _MAPPING.gamma
_MULTIPLIER: float = _MAPPING._multiplier  # log2(value) * multiplier = log_gamma(value)
MIN_INDEXABLE: float = _MAPPING.min_possible

# Bin codes pack (sign, key) into one non-negative int so (slot, code) pairs sort and merge as one int64.
KEY_OFFSET = 1 << 17  # |key| < 36_000 for every finite double at 1 % accuracy
NEG_BASE = 1 << 18
ZERO_CODE = 1 << 19
CODE_BITS = 20


def keys_of(magnitudes: np.ndarray) -> np.ndarray:
    """DDSketch keys of positive magnitudes: ceil(log_gamma(x)), as int64."""
    return np.ceil(np.log2(magnitudes) * _MULTIPLIER).astype(np.int64)


def value_of(keys: np.ndarray | int) -> np.ndarray | float:
    """The representative value of a key (within the relative accuracy of every value in its bin)."""
    return np.power(2.0, np.asarray(keys, dtype=np.float64) / _MULTIPLIER) * (2.0 / (1.0 + GAMMA))


def codes_of(values: np.ndarray) -> np.ndarray:
    """Bin code of each value: positive keys, negative keys (of -value) and the zero bin, in one int64."""
    mag = np.abs(values)
    codes = np.full(values.shape, ZERO_CODE, dtype=np.int64)
    nonzero = mag >= MIN_INDEXABLE
    if nonzero.any():
        k = keys_of(mag[nonzero]) + KEY_OFFSET
        codes[nonzero] = np.where(values[nonzero] < 0, k + NEG_BASE, k)
    return codes


def decode_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, negative, zero) of bin codes: each code's DDSketch key (of the value's magnitude), which codes are
    negative bins and which the zero bin (whose key means nothing). The one inverse of `codes_of`."""
    neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
    zero = codes == ZERO_CODE
    return np.where(neg, codes - NEG_BASE, codes) - KEY_OFFSET, neg, zero


@dataclass(frozen=True)
class Bins:
    """The bins of one sketch, split as `SketchBins` carries them on the wire."""

    keys: np.ndarray
    counts: np.ndarray
    neg_keys: np.ndarray
    neg_counts: np.ndarray
    zero: int

    @classmethod
    def from_codes(cls, codes: np.ndarray, counts: np.ndarray) -> Bins:
        """`codes` sorted ascending and unique (as `np.unique` returns them)."""
        pos = codes < NEG_BASE
        neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
        zero = int(counts[codes == ZERO_CODE].sum())
        return cls(codes[pos] - KEY_OFFSET, counts[pos], codes[neg] - NEG_BASE - KEY_OFFSET, counts[neg], zero)

    def total(self) -> int:
        return int(self.counts.sum() + self.neg_counts.sum()) + self.zero

    def quantile(self, q: float) -> float:
        """DDSketch's rule: the value at rank q*(n-1), walking negative bins (largest magnitude first),
        then zero, then positive bins."""
        n = self.total()
        if n == 0:
            return float("nan")
        rank = q * (n - 1)
        neg_total = int(self.neg_counts.sum())
        if rank < neg_total:
            # negative keys ascending = magnitudes ascending = values descending; walk from most negative
            order = np.argsort(self.neg_keys)[::-1]
            cum = np.cumsum(self.neg_counts[order])
            i = int(np.searchsorted(cum, rank, side="right"))
            return -float(value_of(int(self.neg_keys[order][min(i, len(order) - 1)])))
        if rank < neg_total + self.zero:
            return 0.0
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank - neg_total - self.zero, side="right"))
        return float(value_of(int(self.keys[min(i, len(self.keys) - 1)])))
