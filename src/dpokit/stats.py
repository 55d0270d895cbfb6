"""Confidence intervals dpokit reports: Student's t for means, Wilson's score interval for win rates.

Pure Python (no SciPy): the t distribution's central probability has a closed-form finite
series for integer degrees of freedom, which is all a sample of ``n`` pairs needs.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

CONFIDENCE = 0.95
Z_95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal."""


def _t_central_probability(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3/26.7.4).

    The closed-form finite series is exact for integer degrees of freedom, which is all a
    sample of ``n`` pairs needs (``df = n - 1``).
    """
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for j in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for j in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * j - 1) / (2 * j)
        total += term
    return sin * total


def t_quantile(confidence: float, df: int) -> float:
    """The ``t`` with ``P(|T| <= t) = confidence`` (e.g. 12.706 for 0.95, df 1; 1.96 as df grows)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while _t_central_probability(high, df) < confidence:
        low, high = high, high * 2
    for _ in range(80):
        mid = (low + high) / 2
        if _t_central_probability(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def mean_confidence_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[Optional[float], Optional[list[float]]]:
    """Sample mean and its two-sided Student-t interval ``[low, high]``.

    Returns ``(None, None)`` for no values and ``(mean, None)`` for one (no spread to estimate).
    """
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return mean, [mean - half, mean + half]


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n`` (``successes`` may be fractional)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs n > 0")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
