"""Paired significance tests for comparing two evaluations of the same samples.

- ``mcnemar_exact``: for binary outcomes (correct or not, refused or not). Only the discordant
  pairs carry information: ``b`` samples went wrong → right, ``c`` right → wrong. Under the null
  hypothesis (no difference) each discordant pair is a fair coin, so the two-sided p-value is
  ``min(1, 2 · P[Binomial(b + c, 1/2) ≤ min(b, c)])``, computed exactly (no chi-square
  approximation, which is poor for the small counts small suites give).
- ``paired_permutation``: for graded scores and per-sample NLL. The statistic is the absolute
  (optionally weighted) sum of the per-sample differences; under the null each difference is
  equally likely to have either sign. Exact over every sign pattern when at most
  ``EXACT_MAX`` differences are non-zero, otherwise a seeded Monte Carlo estimate with the
  ``(k + 1) / (N + 1)`` correction, so a p-value is never 0 and reruns agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["EXACT_MAX", "mcnemar_exact", "paired_permutation"]

EXACT_MAX = 16  # 2**16 sign patterns: exact enumeration stays well under a second
_CHUNK = 1000


def mcnemar_exact(wrong_to_right: int, right_to_wrong: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts; 1.0 when there are none."""
    n = wrong_to_right + right_to_wrong
    if n == 0:
        return 1.0
    k = min(wrong_to_right, right_to_wrong)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def paired_permutation(
    differences: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    resamples: int = 20_000,
    seed: int = 0,
) -> float:
    """Two-sided sign-flip permutation p-value for ``sum(w·d) == 0``; 1.0 with no differences."""
    d = np.asarray(differences, dtype=float)
    if weights is not None:
        d = d * np.asarray(weights, dtype=float)
    d = d[np.abs(d) > 1e-12]
    m = len(d)
    if m == 0:
        return 1.0
    observed = abs(d.sum()) - 1e-9 * (1 + abs(d).sum())  # ties count as "as extreme"
    if m <= EXACT_MAX:
        patterns = np.arange(2**m)[:, None] >> np.arange(m)[None, :] & 1
        sums = np.abs((patterns * 2 - 1) @ d)
        return float(np.mean(sums >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        signs = rng.integers(0, 2, size=(size, m)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d) >= observed))
    return (hits + 1) / (resamples + 1)
