"""The statistics of deploy verification, standard library only: a one-sided two-proportion z-test,
a one-sided Mann-Whitney U test on binned samples, and Prometheus's ``histogram_quantile``."""

from __future__ import annotations

import math
from collections.abc import Sequence


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """One-sided two-proportion z-test (pooled) of H1: x1/n1 > x2/n2. Returns (z, p-value)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one observation")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0  # both all-success (or all-failure): no evidence of a difference
    z = (x1 / n1 - x2 / n2) / se
    return z, normal_sf(z)


def mann_whitney_binned(candidate: Sequence[int], baseline: Sequence[int]) -> tuple[float, float, float]:
    """One-sided Mann-Whitney U test of H1: candidate values tend to be larger, on binned samples.

    ``candidate[i]`` and ``baseline[i]`` count the observations in the i-th ordered bin (a histogram's
    buckets); observations in one bin are ties. U counts the (candidate, baseline) pairs where the
    candidate is larger, ties counting a half; normal approximation with the tie correction and a
    continuity correction. Returns (U, z, p-value).
    """
    if len(candidate) != len(baseline):
        raise ValueError("the samples must have the same bins")
    n1, n2 = sum(candidate), sum(baseline)
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one observation")
    u = 0.0
    below = 0
    for c, b in zip(candidate, baseline, strict=True):
        u += c * (below + b / 2)
        below += b
    total = n1 + n2
    ties = sum((c + b) ** 3 - (c + b) for c, b in zip(candidate, baseline, strict=True))
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1))) if total > 1 else 0.0
    if variance <= 0:
        return u, 0.0, 1.0  # every observation in one bin: no evidence either way
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return u, z, normal_sf(z)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` on cumulative ``(le, count)`` pairs (sorted, +Inf last)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # the highest finite bound, as Prometheus answers
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def bin_counts(cumulative: Sequence[tuple[float, float]]) -> list[int]:
    """Per-bucket counts (rounded) from cumulative ``(le, count)`` pairs."""
    counts, previous = [], 0.0
    for _, count in cumulative:
        counts.append(max(0, round(count - previous)))
        previous = max(previous, count)
    return counts
