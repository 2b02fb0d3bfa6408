"""Statistics of paired comparisons: intervals, tests, Holm's correction, verdicts.

Every comparison in the tables is a mean over replicate pairs (a +VMP run minus its partner run
of the same replicate) with a Student-t interval. For scores bounded to [0, 1] (shares,
precision, recall, variation; their differences to [-1, 1]) the interval is intersected with
that range: the true mean lies in it, so the intersection covers it exactly as often as the
t-interval does, and a table never shows a recall of -110%. (A percentile bootstrap would stay
in range too, but with 3 replicates it cannot reach past the values seen and covers far less
than 95%.)

Differences that are all equal (sd 0) have no t statistic (0/0 or c/0): their p-value is NaN
and their verdict ``ZERO_VARIANCE``, never a gain, a loss or "n.s.".

Beside each interval, :func:`minimal_detectable_effect`: the smallest true difference the row's
test would find with 80% power, from the row's own standard error and degrees of freedom. A null
result then reads "no gain larger than the interval's upper end, and a gain of the MDE would have
been found 4 times in 5".

The share of a positive control's gain that a method recovers (a ratio of two paired means) has
Fieller's interval (:func:`fieller_interval`); see there for why not a cluster bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95
POWER = 0.8
ZERO_VARIANCE = "zero variance"


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
    sd = _sd(x)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "sd": sd, "low": low, "high": high, "n": n}


def _sd(x: np.ndarray) -> float:
    """Sample sd (ddof=1); exactly 0 for equal values (their float mean may differ from them in
    the last bit, which would leave an sd of 1e-17 and an infinite t statistic)."""
    return 0.0 if np.ptp(x) == 0 else float(x.std(ddof=1))


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
    than 2 values has no sd: then every value but ``n`` and ``sds`` is NaN. With no spread at all
    (se 0) the interval is the mean itself and p and df are NaN: there is no t statistic.
    """
    groups = [(float(w), np.asarray(list(v), dtype=float)) for w, v in strata]
    if not np.isclose(sum(w for w, _ in groups), 1.0):
        raise ValueError(f"stratified_interval: weights sum to {sum(w for w, _ in groups)}, not 1")
    n = sum(len(x) for _, x in groups)
    sds = [_sd(x) if len(x) >= 2 else np.nan for _, x in groups]
    nan = {"mean": np.nan, "se": np.nan, "df": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
    if any(len(x) < 2 for _, x in groups):
        return nan | {"n": n, "sds": sds}
    mean = float(sum(w * x.mean() for w, x in groups))
    parts = [
        w**2 * (x.var(ddof=1) if sd > 0 else 0.0) / len(x)
        for (w, x), sd in zip(groups, sds, strict=True)
    ]
    se = float(np.sqrt(sum(parts)))
    if se == 0:
        return {"mean": mean, "se": 0.0, "df": np.nan, "low": mean, "high": mean, "n": n} | {
            "p": np.nan,
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

    Raises:
        ValueError: ``half_width`` is not a positive number (no n would reach it).
    """
    _require_positive(half_width)
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

    All values equal: NaN too. The t statistic is 0/0 or c/0; equal values say the variance is
    zero (or the runs did not differ at all), not that a difference is certain.
    """
    x = np.asarray(list(values), dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return np.nan
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

    With a single pair (n = 1) there is no interval: "n.s.". An interval of width 0 over n >= 2
    values (all equal: sd 0) is ``ZERO_VARIANCE``.
    """
    if n == 0:
        return np.nan
    if n >= 2 and low == high:
        return ZERO_VARIANCE
    if n >= 2 and low > 0:
        return "gain"
    if n >= 2 and high < 0:
        return "loss"
    return "n.s."


def significance_verdict(
    mean: float, p_adjusted: float, alpha: float = 1 - LEVEL, se: float = np.nan
) -> str | float:
    """ "gain" / "loss" where the (adjusted) p-value is below ``alpha``, by the mean's sign;
    "n.s." otherwise; ``ZERO_VARIANCE`` where the standard error ``se`` is 0 (no test); NaN
    without a p-value otherwise."""
    if se == 0:
        return ZERO_VARIANCE
    if np.isnan(p_adjusted):
        return np.nan
    if p_adjusted >= alpha:
        return "n.s."
    return "gain" if mean > 0 else "loss"


def _require_positive(half_width: float) -> None:
    if not (np.isfinite(half_width) and half_width > 0):
        raise ValueError(
            f"the target half-width must be a positive number, not {half_width!r}: "
            "no number of replicates reaches it"
        )


def replicates_needed(sd: float, half_width: float, level: float = LEVEL) -> int:
    """Smallest n whose Student-t interval of a mean has half-width <= ``half_width`` at ``sd``.

    Raises:
        ValueError: ``half_width`` is not a positive number (no n would reach it).
    """
    _require_positive(half_width)
    if not np.isfinite(sd) or sd <= 0:
        return 2
    n = 2
    while stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) > half_width:
        n += 1
    return n


def _t_test_power(effect: float, se: float, df: float, level: float = LEVEL) -> float:
    """Power of the two-sided t-test at ``level`` (both tails) for a true mean ``effect``."""
    critical = stats.t.ppf(0.5 + level / 2, df)
    shift = effect / se
    # The far tail underflows to NaN for a large noncentrality; it is 0 to double precision there.
    lower = float(np.nan_to_num(stats.nct.cdf(-critical, df, shift)))
    return float(stats.nct.sf(critical, df, shift)) + lower


def minimal_detectable_effect(
    se: float, df: float, level: float = LEVEL, power: float = POWER
) -> float:
    """The smallest true mean difference the two-sided t-test at ``level`` finds with ``power``.

    ``se``: the standard error of the mean difference (sd / sqrt(n) for paired differences, the
    post-stratified se for start-adjusted rows); ``df``: its degrees of freedom (n - 1, or
    Welch-Satterthwaite's). NaN where either is not finite or se is 0 (no test).

    Exact, from the noncentral t: the statistic of a true difference d follows t'(df, d / se),
    and the MDE is the d at which P(|t'| > t(1 - alpha/2, df)) = ``power``. The textbook
    shortcut (t(1 - alpha/2, df) + t(power, df)) * se shifts a central t instead, which is close
    only for large df: at 80% power it gives 5.36 se where 5.65 are needed at df 2 (its
    power: 77%), 3.49 for 3.51 at df 5, and agrees within 0.1% from df 20. Our rows have 2 to 9
    replicates per backbone (df 1 to 8) and Welch df that can be fractional and small, exactly
    where the shortcut promises power it does not have; scipy's noncentral t costs nothing here.
    """
    if not (np.isfinite(se) and np.isfinite(df) and se > 0 and df > 0):
        return np.nan
    critical = stats.t.ppf(0.5 + level / 2, df)
    high = (critical + stats.norm.ppf(power) + 1.0) * se
    while _t_test_power(high, se, df, level) < power:
        high *= 2
    return float(
        optimize.brentq(
            lambda d: _t_test_power(d, se, df, level) - power, 0.0, high, xtol=1e-10 * se
        )
    )


def fieller_interval(
    numerator: Iterable[float], denominator: Iterable[float], level: float = LEVEL
) -> dict[str, float | int]:
    """Fieller's interval of the ratio of two paired means, mean(x) / mean(y).

    ``numerator`` x_i and ``denominator`` y_i are paired (one cluster, e.g. a replicate, each).
    The interval is every R whose paired t-test of x_i - R y_i at ``level`` does not reject
    (Fieller 1954): R^2 (ybar^2 - t^2 v_yy) - 2 R (xbar ybar - t^2 v_xy) + xbar^2 - t^2 v_xx <= 0
    with v the (co)variances of the means and t = t(1 - alpha/2, n - 1). It is a bounded interval
    exactly when the denominator's own t-test rejects (g = t^2 v_yy / ybar^2 < 1); otherwise the
    set is unbounded and ``low``, ``high`` are -inf, inf. Returns ``ratio``, ``low``, ``high``,
    ``n`` and ``g``; NaNs with fewer than 2 pairs or a denominator mean of 0.

    Why not a cluster bootstrap (resample replicates, take percentiles of the ratio): with the
    3 to 9 replicates of a backbone the bootstrap distribution has few distinct values and
    its percentile interval is too short (the module docstring's argument for the t-interval),
    and a ratio's resamples explode whenever a resampled denominator comes near 0. Fieller's
    interval is the exact inversion of the same paired t-test the tables use, keeps the
    covariance of x and y within a replicate, and says honestly when the denominator is too
    uncertain for a bounded answer (the ratio is only asked where the denominator's gain is
    significant, so it is bounded there).
    """
    x = np.asarray(list(numerator), dtype=float)
    y = np.asarray(list(denominator), dtype=float)
    if len(x) != len(y):
        raise ValueError(f"fieller_interval: {len(x)} numerators for {len(y)} denominators")
    n = len(x)
    nan = {"ratio": np.nan, "low": np.nan, "high": np.nan, "n": n, "g": np.nan}
    if n < 2 or y.mean() == 0:
        return nan
    xbar, ybar = float(x.mean()), float(y.mean())
    cov = np.cov(x, y, ddof=1) / n
    v_xx, v_xy, v_yy = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    t2 = float(stats.t.ppf(0.5 + level / 2, n - 1)) ** 2
    a = ybar**2 - t2 * v_yy
    b = xbar * ybar - t2 * v_xy
    c = xbar**2 - t2 * v_xx
    g = t2 * v_yy / ybar**2
    out = {"ratio": xbar / ybar, "n": n, "g": g}
    if a <= 0:
        return out | {"low": -np.inf, "high": np.inf}
    root = np.sqrt(max(b**2 - a * c, 0.0))
    return out | {"low": (b - root) / a, "high": (b + root) / a}
