"""Statistics of paired comparisons: intervals, tests, Holm's correction, verdicts.

Every comparison in the tables is a mean over replicate pairs (a +VMP run minus its partner run
of the same replicate) with a Student-t interval. For scores bounded to [0, 1] (shares,
precision, recall, variation; their differences to [-1, 1]) the interval is intersected with
that range: the true mean lies in it, so the intersection covers it exactly as often as the
t-interval does, and a table never shows a recall of -110%. (A percentile bootstrap would stay
in range too, but with 3 replicates it cannot reach past the values seen and covers far less
than 95%.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95


def t_interval(
    values: Iterable[float],
    level: float = LEVEL,
    bounds: tuple[float, float] | None = None,
) -> dict[str, float | int]:
    """Mean, sample sd (ddof=1), Student-t interval of the mean and n of ``values``.

    ``bounds`` (low, high): the range the mean cannot leave (e.g. (0, 1) for a share); the
    interval is intersected with it. With n < 2 the sd and the interval are NaN; with n = 0 the
    mean is NaN too.
    """
    x = np.asarray(list(values), dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else np.nan
    if n < 2:
        return {"mean": mean, "sd": np.nan, "low": np.nan, "high": np.nan, "n": n}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "sd": sd, "low": low, "high": high, "n": n}


def t_test_p(values: Iterable[float]) -> float:
    """Two-sided p-value of a one-sample t-test of mean 0; NaN with fewer than 2 values.

    All values equal: p is 1 if they are 0, else 0 (the t statistic is infinite).
    """
    x = np.asarray(list(values), dtype=float)
    if len(x) < 2:
        return np.nan
    if np.ptp(x) == 0:
        return 1.0 if x[0] == 0 else 0.0
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), NaN entries left out and kept NaN.

    The k-th smallest of m p-values is multiplied by m - k + 1; adjusted values are made
    monotone (never below an earlier one) and capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def verdict(low: float, high: float, n: int) -> str | float:
    """Verdict of an interval: "gain" above 0, "loss" below 0, "n.s." otherwise; NaN if n = 0.

    With a single pair (n = 1) there is no interval: "n.s.".
    """
    if n == 0:
        return np.nan
    if n >= 2 and low > 0:
        return "gain"
    if n >= 2 and high < 0:
        return "loss"
    return "n.s."


def significance_verdict(mean: float, p_adjusted: float, alpha: float = 1 - LEVEL) -> str | float:
    """ "gain" / "loss" where the (adjusted) p-value is below ``alpha``, by the mean's sign;
    "n.s." otherwise; NaN without a p-value."""
    if np.isnan(p_adjusted):
        return np.nan
    if p_adjusted >= alpha:
        return "n.s."
    return "gain" if mean > 0 else "loss"


def replicates_needed(sd: float, half_width: float, level: float = LEVEL) -> int:
    """Smallest n whose Student-t interval of a mean has half-width <= ``half_width`` at ``sd``."""
    if not np.isfinite(sd) or sd <= 0:
        return 2
    n = 2
    while stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) > half_width:
        n += 1
    return n
