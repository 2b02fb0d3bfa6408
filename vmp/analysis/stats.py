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

from collections.abc import Iterable, Mapping, Sequence

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


def _welch_satterthwaite(parts: Sequence[float], dfs: Sequence[float]) -> float:
    """Degrees of freedom of a sum of variance parts, each estimated with ``dfs`` degrees."""
    return sum(parts) ** 2 / sum(part**2 / df for part, df in zip(parts, dfs, strict=True))


def stratified_interval(
    strata: Sequence[tuple[float, Iterable[float]]], level: float = LEVEL
) -> dict[str, float | int]:
    """The post-stratified mean of strata with known weights, its interval and test of mean 0.

    ``strata``: (weight w_s, values) per stratum, the weights summing to 1 (each stratum's share
    of the population, known in advance). The mean is sum w_s mean_s, its standard error
    sqrt(sum w_s^2 sd_s^2 / n_s); the Student-t interval and the two-sided p use the
    Welch-Satterthwaite degrees of freedom; ``sds`` lists each stratum's sd. A stratum with fewer
    than 2 values has no sd: then every value but ``n`` and ``sds`` is NaN. With no spread at all the interval is the mean itself and p is
    1 at a mean of 0, else 0.
    """
    groups = [(float(w), np.asarray(list(v), dtype=float)) for w, v in strata]
    if not np.isclose(sum(w for w, _ in groups), 1.0):
        raise ValueError(f"stratified_interval: weights sum to {sum(w for w, _ in groups)}, not 1")
    n = sum(len(x) for _, x in groups)
    sds = [float(x.std(ddof=1)) if len(x) >= 2 else np.nan for _, x in groups]
    nan = {"mean": np.nan, "se": np.nan, "df": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    if any(len(x) < 2 for _, x in groups):
        return nan | {"n": n, "sds": sds}
    mean = float(sum(w * x.mean() for w, x in groups))
    parts = [w**2 * x.var(ddof=1) / len(x) for w, x in groups]
    se = float(np.sqrt(sum(parts)))
    if se == 0:
        return {"mean": mean, "se": 0.0, "df": np.nan, "low": mean, "high": mean, "n": n} | {
            "p": 1.0 if mean == 0 else 0.0,
            "sds": sds,
        }
    df = _welch_satterthwaite(parts, [len(x) - 1 for _, x in groups])
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return {"mean": mean, "se": se, "df": float(df), "low": mean - half, "high": mean + half} | {
        "p": p,
        "n": n,
        "sds": sds,
    }


def stratified_replicates_needed(
    strata: Mapping[str, tuple[float, float]], half_width: float, level: float = LEVEL
) -> float:
    """Smallest n whose post-stratified interval has half-width <= ``half_width`` when the n
    replicates fall into the strata in proportion to their weights.

    ``strata``: name -> (weight, sd within the stratum). NaN when a stratum's sd is unknown.
    """
    if not all(np.isfinite(sd) for _, sd in strata.values()):
        return np.nan
    n = max(int(np.ceil(2 / w)) for w, _ in strata.values())
    while True:
        parts = [w * sd**2 / n for w, sd in strata.values()]
        if sum(parts) == 0:
            return n
        df = _welch_satterthwaite(parts, [max(w * n - 1, 1) for w, _ in strata.values()])
        if stats.t.ppf(0.5 + level / 2, df) * np.sqrt(sum(parts)) <= half_width:
            return n
        n += 1


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
