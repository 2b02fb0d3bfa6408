"""The verdict on the prompt layer (vmp.analysis.verdict) and its statistics (vmp.analysis.stats), on hand-made runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import vmp.names
from vmp.analysis.stats import (
    ZERO_VARIANCE,
    fieller_interval,
    holm,
    minimal_detectable_effect,
    replicates_needed,
    significance_verdict,
    stratified_interval,
    stratified_replicates_needed,
    t_interval,
    t_test_p,
    verdict,
)
from vmp.analysis.tables import load_runs, run_state
from vmp.analysis.verdict import (
    ORACLE,
    ORACLE_FAMILY,
    SHARE,
    closing_share,
    paired_runs,
    prompt_states,
    start_strata,
    summarise_states,
    verdict_summary,
    write_states,
    write_strata,
    write_verdict,
)


def _layer(gain, shift=0.0, slope=10.0, gate=None):
    state = "closed" if gain < 0.1 else "open" if gain > 0.9 else "between"
    values = {"slope": slope, "shift": shift, "static_attention": gain, "static_gain": gain}
    return values | {"state": state} | ({"gate": gate} if gate is not None else {})


def _suffixed(layers):
    """{"": layer} for one layer, {"slow": ..., "fast": ...} as prompt_state keys them."""
    if list(layers) == [""]:
        return layers[""]
    return {f"{k}_{name}": v for name, layer in layers.items() for k, v in layer.items()}


def _write(tmp_path, dataset, split, backbone, variant, seed, top1, start=None, end=None):
    arch = "slowfast_tiny" if backbone.startswith("slowfast") else backbone
    settings = dict(dataset=dataset, split=split, backbone=backbone, arch=arch, variant=variant)
    settings |= {"seed": seed, "lambda": 0.0 if variant == "baseline" else 2.5}
    metrics = {"top1": top1, "top5": top1, "mean_average_precision": top1}
    metrics |= {"mean_class_accuracy": top1, "settings": settings}
    if start is not None:
        metrics |= {"prompt_start": _suffixed(start), "prompt": _suffixed(end)}
    path = tmp_path / f"{dataset}-{split}-{backbone}-{variant}-{seed}.json"
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture
def experiment(tmp_path):
    """x3d_tiny on two scenes, 3 seeds each (diffs vmp [1..6], gate vs vmp +2 each), and a
    SlowFast replicate with two pathway variants and a gate."""
    paths = []
    closed, opened = _layer(0.05, shift=0.3), _layer(0.95, shift=-0.4)
    for i, (dataset, seed) in enumerate(
        (d, s) for d in ("synth_gym", "synth_cooking") for s in (0, 1, 2)
    ):
        paths.append(_write(tmp_path, dataset, "1", "x3d_tiny", "baseline", seed, 50.0))
        start = {"": closed if seed < 2 else opened}
        end = {"": opened if seed == 0 else start[""]}  # seed 0's layer opens
        paths.append(_write(tmp_path, dataset, "1", "x3d_tiny", "vmp", seed, 51.0 + i, start, end))
        gate = {"": _layer(1.0, shift=0.3, gate=0.0)}
        paths.append(
            _write(tmp_path, dataset, "1", "x3d_tiny", "vmp_gate", seed, 53.0 + i, gate, gate)
        )
    paths.append(_write(tmp_path, "synth_gym", "1", "slowfast_tiny", "baseline", 0, 40.0))
    both = {"slow": opened, "fast": closed}
    for variant, top1 in (("vmp_slow", 42.0), ("vmp_both", 30.0)):
        layers = {"": opened} if variant == "vmp_slow" else both
        paths.append(
            _write(tmp_path, "synth_gym", "1", "slowfast_tiny", variant, 0, top1, layers, layers)
        )
    paths.append(
        _write(tmp_path, "synth_gym", "1", "slowfast_tiny", "vmp_gate", 0, 41.0, both, both)
    )
    return paths


# Student-t quantile t(0.975, 2), as printed in textbook tables.
T975_2 = 4.302653


def test_t_interval_cut_to_bounds_and_closed_form():
    ci = t_interval([0.0, 0.5, 1.0])
    half = T975_2 * 0.5 / math.sqrt(3)
    assert (ci["low"], ci["high"]) == pytest.approx((0.5 - half, 0.5 + half))
    scipy_ci = stats.ttest_1samp([0.0, 0.5, 1.0], 0.0).confidence_interval(0.95)
    assert (ci["low"], ci["high"]) == pytest.approx((scipy_ci.low, scipy_ci.high))
    assert ci["low"] < 0 and ci["high"] > 1
    bounded = t_interval([0.0, 0.5, 1.0], bounds=(0.0, 1.0))
    assert (bounded["low"], bounded["high"], bounded["mean"]) == (0.0, 1.0, 0.5)
    assert np.isnan(t_interval([1.0], bounds=(0, 1))["low"])


def test_t_test_p_and_holm():
    assert t_test_p([1.0, 2.0, 3.0]) == pytest.approx(stats.ttest_1samp([1, 2, 3], 0).pvalue)
    # textbook: t = 2 / (1 / sqrt(3)) = 3.4641 on 2 df, two-sided p = 0.0742
    assert t_test_p([1.0, 2.0, 3.0]) == pytest.approx(0.0742, abs=1e-4)
    assert np.isnan(t_test_p([1.0]))
    # sorted 0.01, 0.02, 0.04 of m = 3: x3, x2 (then monotone), x1
    adjusted = holm([0.04, 0.01, np.nan, 0.02])
    assert adjusted[[1, 3, 0]] == pytest.approx([0.03, 0.04, 0.04])
    assert np.isnan(adjusted[2])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert (
        significance_verdict(2.0, 0.01),
        significance_verdict(-2.0, 0.01),
        significance_verdict(2.0, 0.2),
    ) == (
        "gain",
        "loss",
        "n.s.",
    )


def test_zero_variance_is_no_gain():
    """Equal differences have no t statistic: no p-value, and a verdict that says so."""
    for values in ([2.0, 2.0, 2.0], [0.0, 0.0], [0.1, 0.1, 0.1]):  # 0.1s: a mean off by 1 ulp
        assert np.isnan(t_test_p(values)), values
        ci = t_interval(values)
        assert ci["sd"] == 0 and ci["low"] == ci["high"] == ci["mean"]
        assert verdict(ci["low"], ci["high"], ci["n"]) == ZERO_VARIANCE
    assert significance_verdict(2.0, np.nan, se=0.0) == ZERO_VARIANCE
    assert np.isnan(significance_verdict(2.0, np.nan))  # no p-value for another reason: blank
    assert verdict(1.0, 1.0, 1) == "n.s."  # a single pair: no interval, not zero variance
    flat = stratified_interval([(0.5, [0, 0]), (0.5, [2, 2])])
    assert (flat["low"], flat["high"], flat["se"]) == (1.0, 1.0, 0.0)
    assert np.isnan(flat["p"]) and np.isnan(flat["df"])
    assert np.isnan(minimal_detectable_effect(0.0, 2))


def test_replicate_searches_reject_a_half_width_that_is_not_positive():
    strata = {"closing": (0.5, 18.0), "opening": (0.5, 1.0)}
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="positive"):
            replicates_needed(10.0, bad)
        with pytest.raises(ValueError, match="positive"):
            stratified_replicates_needed(strata, bad)


def test_replicates_needed_for_a_half_width():
    n = replicates_needed(10.0, 5.0)
    half = lambda k: stats.t.ppf(0.975, k - 1) * 10 / math.sqrt(k)  # noqa: E731
    assert half(n) <= 5 < half(n - 1)
    assert n == 18
    # the interval scipy computes for a sample of that size and sd is that short
    sample = np.array([-1.0, 1.0] * 9) * 10 * math.sqrt(17 / 18)  # n 18, sd exactly 10
    low, high = stats.ttest_1samp(sample, 0.0).confidence_interval(0.95)
    assert np.std(sample, ddof=1) == pytest.approx(10) and (high - low) / 2 <= 5


def test_stratified_interval_is_welch_for_two_halves():
    """With weights 1/2 and the second stratum negated, the post-stratified mean is half the
    difference of the two means and its test is Welch's two-sample t-test (scipy's)."""
    x, y = [1.0, 2.0, 3.0, 7.0], [10.0, 12.0, 11.5]
    ci = stratified_interval([(0.5, x), (0.5, [-v for v in y])])
    welch = stats.ttest_ind(x, y, equal_var=False)
    welch_ci = welch.confidence_interval(0.95)
    assert ci["p"] == pytest.approx(welch.pvalue)
    assert ci["df"] == pytest.approx(welch.df)
    assert (ci["low"], ci["high"]) == pytest.approx((welch_ci.low / 2, welch_ci.high / 2))


def test_stratified_interval_closed_form():
    ci = stratified_interval([(0.5, [1, 2, 3]), (0.5, [10, 12])])
    parts = [0.25 * 1 / 3, 0.25 * 2 / 2]  # w^2 sd^2 / n per stratum
    df = sum(parts) ** 2 / (parts[0] ** 2 / 2 + parts[1] ** 2 / 1)
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(parts))
    assert (ci["mean"], ci["n"]) == (6.5, 5)
    assert (ci["se"], ci["df"]) == pytest.approx((math.sqrt(sum(parts)), df))
    assert (ci["low"], ci["high"]) == pytest.approx((6.5 - half, 6.5 + half))
    assert ci["p"] == pytest.approx(2 * stats.t.sf(6.5 / math.sqrt(sum(parts)), df))
    # weights are the strata's shares, not their counts: 0.25 * 2 + 0.75 * 11
    assert stratified_interval([(0.25, [1, 2, 3]), (0.75, [10, 12])])["mean"] == 8.75
    one = stratified_interval([(0.5, [1, 2, 3]), (0.5, [10])])
    assert one["n"] == 4 and all(np.isnan(one[k]) for k in ("mean", "low", "high", "p"))
    with pytest.raises(ValueError, match="weights sum to 0.9"):
        stratified_interval([(0.5, [1, 2]), (0.4, [3, 4])])


def test_stratified_replicates_needed_for_a_half_width():
    strata = {"closing": (0.5, 18.0), "opening": (0.5, 1.0)}

    def half(n):
        parts = [w * sd**2 / n for w, sd in strata.values()]
        df = sum(parts) ** 2 / sum(
            p**2 / (w * n - 1) for p, (w, _) in zip(parts, strata.values(), strict=True)
        )
        return stats.t.ppf(0.975, df) * math.sqrt(sum(parts))

    n = stratified_replicates_needed(strata, 5.0)
    assert half(n) <= 5 < half(n - 1)
    assert np.isnan(stratified_replicates_needed({"a": (0.5, np.nan), "b": (0.5, 1.0)}, 5.0))


def test_minimal_detectable_effect_has_80_percent_power():
    """Anchors: simulated t-tests (scipy's) at the MDE reject 80% of the time; for large df it
    is the normal-theory (z(0.975) + z(0.8)) se = (1.959964 + 0.841621) se of the textbooks."""
    rng = np.random.default_rng(7)
    for n in (3, 6):
        mde = minimal_detectable_effect(2.0 / math.sqrt(n), n - 1)  # sd 2
        samples = rng.normal(mde, 2.0, size=(40_000, n))
        power = np.mean(stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05)
        assert power == pytest.approx(0.80, abs=0.01), n
    assert minimal_detectable_effect(1.0, 1e7) == pytest.approx(2.801585, abs=1e-5)
    # the shortcut (t(0.975, 2) + t(0.8, 2)) se = 5.363 se promises power it does not have
    assert minimal_detectable_effect(1.0, 2) > T975_2 + 1.060660 + 0.2
    # Welch's fractional df lie between their neighbours; more se, proportionally more MDE
    assert minimal_detectable_effect(1.0, 2) > minimal_detectable_effect(1.0, 2.5)
    assert minimal_detectable_effect(1.0, 2.5) > minimal_detectable_effect(1.0, 3)
    assert minimal_detectable_effect(3.0, 4) == pytest.approx(3 * minimal_detectable_effect(1.0, 4))
    assert np.isnan(minimal_detectable_effect(np.nan, 4)) and np.isnan(
        minimal_detectable_effect(1, 0)
    )


def test_fieller_interval_inverts_the_paired_t_test():
    """Fieller's interval is the set of ratios R whose paired t-test of x - R y does not reject:
    scipy's p is exactly 0.05 at both ends and above it inside."""
    x = np.array([1.0, 3.0, 2.5, 4.0, 2.0, 3.5])
    y = np.array([10.0, 12.0, 9.0, 13.0, 11.0, 10.5])
    ci = fieller_interval(x, y)
    assert ci["ratio"] == pytest.approx(x.mean() / y.mean()) and ci["n"] == 6
    assert ci["low"] < ci["ratio"] < ci["high"]
    for end in (ci["low"], ci["high"]):
        assert stats.ttest_1samp(x - end * y, 0.0).pvalue == pytest.approx(0.05)
    assert stats.ttest_1samp(x - ci["ratio"] * y, 0.0).pvalue == pytest.approx(1.0)
    # bounded exactly when the denominator's own t-test rejects (g < 1)
    assert ci["g"] < 1 and stats.ttest_1samp(y, 0.0).pvalue < 0.05
    noisy = np.array([5.0, -4.0, 6.0, -3.0])
    assert stats.ttest_1samp(noisy, 0.0).pvalue > 0.05
    wide = fieller_interval([1.0, 2.0, 1.5, 1.0], noisy)
    assert wide["g"] >= 1 and (wide["low"], wide["high"]) == (-np.inf, np.inf)
    assert np.isnan(fieller_interval([1.0], [2.0])["low"])
    with pytest.raises(ValueError, match="3 numerators for 2"):
        fieller_interval([1, 2, 3], [1, 2])


def test_closing_share_of_the_paper_start():
    # n ~ Normal(1e-5, 1): b0 > 0 for half the layers; the most closing of two, 3 in 4
    assert closing_share(1) == pytest.approx(0.5, abs=1e-4)
    assert closing_share(2) == pytest.approx(0.75, abs=1e-4)


def test_run_state_is_the_most_closing_layer():
    assert run_state(_suffixed({"slow": _layer(0.95), "fast": _layer(0.05)})) == (0.05, "closed")
    assert run_state(_layer(0.5)) == (0.5, "between")
    assert all(pd.isna(v) for v in run_state({"slope": 10.0}))


def test_paired_runs_pair_with_the_baseline_and_the_sigmoid_layer(experiment):
    pairs = paired_runs(load_runs(experiment)).set_index(["backbone", "variant", "dataset", "seed"])
    pairs = pairs.sort_index()
    vmp = pairs.loc[("x3d_tiny", "vmp")]["delta"].to_numpy()
    assert sorted(vmp) == [1, 2, 3, 4, 5, 6]
    assert pairs.loc[("x3d_tiny", "vmp"), "delta_sigmoid"].isna().all()
    assert (pairs.loc[("x3d_tiny", "vmp_gate"), "delta_sigmoid"] == 2).all()
    # SlowFast's sigmoid partner is vmp_both: its gate 41 - 30
    assert pairs.loc[("slowfast_tiny", "vmp_gate", "synth_gym", 0), "delta_sigmoid"] == 11
    assert pairs.loc[("slowfast_tiny", "vmp_both", "synth_gym", 0), "start_state"] == "closed"
    seed0 = pairs.loc[("x3d_tiny", "vmp", "synth_gym", 0)]
    assert (seed0["start_state"], seed0["end_state"]) == ("closed", "open")


def test_paired_runs_reject_two_runs_of_one_replicate_and_variant(experiment):
    runs = load_runs(experiment)
    with pytest.raises(ValueError, match="several runs share"):
        paired_runs(pd.concat([runs, runs.iloc[[1]]]))


def test_verdict_per_backbone_overall_clusters_and_holm(experiment, tmp_path):
    summary = verdict_summary(paired_runs(load_runs(experiment)))
    row = summary.set_index(["backbone", "variant", "against"])
    x3d = row.loc[("x3d_tiny", "vmp", "baseline")]
    sd = np.std([1, 2, 3, 4, 5, 6], ddof=1)
    half = stats.t.ppf(0.975, 5) * sd / math.sqrt(6)
    assert (x3d["pairs"], x3d["delta_top1"]) == (6, 3.5)
    assert (x3d["delta_ci_low"], x3d["half_width"]) == pytest.approx((3.5 - half, half))
    assert x3d["needed"] == replicates_needed(sd, 5.0)
    assert (x3d["se"], x3d["df"]) == pytest.approx((sd / math.sqrt(6), 5))
    assert x3d["mde"] == pytest.approx(minimal_detectable_effect(sd / math.sqrt(6), 5))
    # every difference of the gate to the sigmoid layer is +2: zero variance, no p, no gain
    gate = row.loc[("x3d_tiny", "vmp_gate", "sigmoid")]
    assert (gate["pairs"], gate["delta_top1"], gate["holm_verdict"]) == (6, 2.0, ZERO_VARIANCE)
    assert np.isnan(gate["p"]) and np.isnan(gate["p_holm"]) and np.isnan(gate["mde"])
    # per-backbone rows against the baseline: Holm over x3d vmp, x3d gate, slowfast's three
    block = summary[(summary["backbone"] != "all") & (summary["against"] == "baseline")]
    assert len(block) == 5
    assert block["p_holm"].to_numpy() == pytest.approx(holm(block["p"].to_numpy()), nan_ok=True)
    # overall paper family: clusters = replicates; SlowFast's (vmp_slow 2, vmp_both -10) -> -4
    paper = row.loc[("all", "paper (vmp, vmp_slow, vmp_fast, vmp_both)", "baseline")]
    clusters = [1, 2, 3, 4, 5, 6, -4]
    assert (paper["pairs"], paper["delta_top1"]) == (7, pytest.approx(np.mean(clusters)))
    assert paper["p"] == pytest.approx(stats.ttest_1samp(clusters, 0).pvalue)
    # start-adjusted: x3d's closing starts (gain 0.05: seeds 0, 1) [1, 2, 4, 5], opening [3, 6]
    adjusted = row.loc[("x3d_tiny", "vmp", "baseline, start-adjusted")]
    expected = stratified_interval(
        [(closing_share(1), [1, 2, 4, 5]), (1 - closing_share(1), [3, 6])]
    )
    assert adjusted["delta_top1"] == pytest.approx(3.75, abs=1e-4)
    assert (adjusted["delta_ci_low"], adjusted["p"]) == pytest.approx(
        (expected["low"], expected["p"])
    )
    assert (adjusted["pairs"], adjusted["closing_starts"]) == (6, 4)
    # its MDE uses its own standard error and Welch-Satterthwaite df
    assert (adjusted["se"], adjusted["df"]) == pytest.approx((expected["se"], expected["df"]))
    assert adjusted["mde"] == pytest.approx(
        minimal_detectable_effect(expected["se"], expected["df"])
    )
    # SlowFast's single replicate: no sd in either stratum
    assert np.isnan(
        row.loc[("slowfast_tiny", "vmp_both", "baseline, start-adjusted"), "delta_top1"]
    )
    assert (
        "vmp_gate"
        not in summary.loc[summary["against"] == "baseline, start-adjusted", "variant"].values
    )
    csv, md = write_verdict(summary, tmp_path / "t" / "table1")
    assert (csv.name, md.name) == ("table1_verdict.csv", "table1_verdict.md")
    text = md.read_text()
    assert "| all" in text and "+3.5" in text and "Holm" in text and "pairs for ±5" in text
    assert "start-adjusted" in text and "+3.7" in text  # 3.749994: shares 0.500004 / 0.499996
    header = text.splitlines()[0]
    for column in ("upper end", "± half-width", "MDE (80%)", "Holm verdict"):
        assert f" {column} " in header, column
    assert "| verdict" not in header and "share" not in header and "Oracle" not in text
    line = next(
        ln for ln in text.splitlines() if ln.startswith("| x3d_tiny") and "| baseline " in ln
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5:9] == [
        f"[+{3.5 - half:.1f}, +{3.5 + half:.1f}]",
        f"+{3.5 + half:.1f}",  # the upper end: "no gain larger than 5.5"
        f"{half:.1f}",
        f"{x3d['mde']:.1f}",
    ]
    written = pd.read_csv(csv)
    assert {"mde", "se", "df", "holm_verdict"} <= set(written) and "verdict" not in written


def test_start_strata_split_by_the_state_before_training(experiment, tmp_path):
    strata = start_strata(paired_runs(load_runs(experiment))).set_index(["family", "start_state"])
    paper = "paper (vmp, vmp_slow, vmp_fast, vmp_both)"
    closed = strata.loc[(paper, "closed")]
    # x3d seeds 0 and 1 of both scenes (diffs 1, 2, 4, 5) and SlowFast's vmp_both (-10)
    assert (closed["runs"], closed["delta_top1"]) == (5, pytest.approx(np.mean([1, 2, 4, 5, -10])))
    assert (closed["ended_open"], closed["ended_closed"], closed["changed"]) == (2, 3, 2)
    opened = strata.loc[(paper, "open")]
    assert (opened["runs"], opened["changed"]) == (3, 0)
    assert strata.loc[("gate (not in the paper)", "open"), "runs"] == 6
    csv, md = write_strata(strata.reset_index(), tmp_path / "table1")
    assert csv.name == "table1_strata.csv" and "Fixed before training" in md.read_text()


def test_prompt_states_per_layer(experiment, tmp_path):
    layers = prompt_states(experiment)
    assert len(layers) == 6 + 6 + 1 + 2 + 2  # baselines have no layer
    fast = layers[(layers["variant"] == "vmp_both") & (layers["layer"] == "fast")].iloc[0]
    assert (fast["start_state"], fast["end_shift"], fast["changed"]) == ("closed", 0.3, False)
    opened = layers[(layers["variant"] == "vmp") & layers["changed"]]
    assert len(opened) == 2 and opened["shift_moved"].to_numpy() == pytest.approx([0.7, 0.7])
    summary = summarise_states(layers).set_index(["backbone", "variant", "layer"])
    x3d = summary.loc[("x3d_tiny", "vmp", "-")]
    assert x3d["start closed / between / open"] == "4 / 0 / 2"
    assert x3d["end closed / between / open"] == "2 / 0 / 4"
    assert (x3d["changed"], x3d["shift_moved_max"]) == (2, pytest.approx(0.7))
    assert summary.loc[("x3d_tiny", "vmp_gate", "-"), "end_gate_mean"] == 0.0
    csv, md, runs = write_states(layers, summary.reset_index(), tmp_path / "prompt_states")
    assert len(pd.read_csv(runs)) == len(layers)
    assert "0.000 [0.700]" in md.read_text()  # 4 of 6 x3d layers did not move


def test_prompt_states_without_prompt_layers(tmp_path):
    path = _write(tmp_path, "synth_gym", "1", "x3d_tiny", "baseline", 0, 50.0)
    layers = prompt_states([path])
    assert layers.empty and "start_shift" in layers
    assert summarise_states(layers).empty


def test_oracle_name_matches_vmp_names():
    """verdict.py names the oracle until vmp.names lists it; the two must agree."""
    assert getattr(vmp.names, "ORACLE_VARIANT", ORACLE) == ORACLE == "vmp_oracle"
    assert getattr(vmp.names, "ORACLE_LABEL", ORACLE_FAMILY) == ORACLE_FAMILY


# x3d's oracle gains over the baseline, per replicate (synth_gym seeds 0-2, synth_cooking 0-2);
# the experiment's vmp gains are 1..6 and its gate's 3..8.
ORACLE_GAINS = [10.0, 12.0, 11.0, 13.0, 9.0, 12.0]


@pytest.fixture
def with_oracle(experiment, tmp_path):
    """The experiment plus an oracle run in every replicate (SlowFast's: 50, its baseline 40)."""
    replicates = [(d, s) for d in ("synth_gym", "synth_cooking") for s in (0, 1, 2)]
    paths = [
        _write(tmp_path, dataset, "1", "x3d_tiny", ORACLE, seed, 50.0 + gain)
        for (dataset, seed), gain in zip(replicates, ORACLE_GAINS, strict=True)
    ]
    paths.append(_write(tmp_path, "synth_gym", "1", "slowfast_tiny", ORACLE, 0, 50.0))
    return experiment + paths


def test_oracle_rows_only_with_oracle_runs_and_leave_the_others_unchanged(
    experiment, with_oracle, tmp_path
):
    before = verdict_summary(paired_runs(load_runs(experiment)))
    assert ORACLE not in set(before["variant"]) and "share" not in before
    summary = verdict_summary(paired_runs(load_runs(with_oracle)))
    pd.testing.assert_frame_equal(summary.iloc[: len(before)][before.columns], before)
    rows = summary.iloc[len(before) :]
    row = rows.set_index(["backbone", "variant", "against"])

    # the oracle against the baseline: per backbone (own Holm block), overall by replicate
    x3d = row.loc[("x3d_tiny", ORACLE, "baseline")]
    assert (x3d["pairs"], x3d["delta_top1"]) == (6, pytest.approx(np.mean(ORACLE_GAINS)))
    assert x3d["p"] == pytest.approx(stats.ttest_1samp(ORACLE_GAINS, 0).pvalue)
    assert x3d["p_holm"] == x3d["p"] and x3d["holm_verdict"] == "gain"  # SlowFast: no p
    assert row.loc[("slowfast_tiny", ORACLE, "baseline"), "pairs"] == 1
    overall = row.loc[("all", ORACLE_FAMILY, "baseline")]
    clusters = [*ORACLE_GAINS, 10.0]
    assert overall["p"] == pytest.approx(stats.ttest_1samp(clusters, 0).pvalue)
    assert overall["holm_verdict"] == "gain"

    # each family against the oracle of its replicate
    vmp = np.arange(1.0, 7.0)
    against = row.loc[("x3d_tiny", "vmp", "oracle")]
    assert against["delta_top1"] == pytest.approx(np.mean(vmp - ORACLE_GAINS))
    assert against["p"] == pytest.approx(stats.ttest_1samp(vmp - ORACLE_GAINS, 0).pvalue)
    assert against["holm_verdict"] == "loss"
    paper = row.loc[("all", "paper (vmp, vmp_slow, vmp_fast, vmp_both)", "oracle")]
    # SlowFast's cluster: vmp_slow 42 and vmp_both 30 against its oracle 50: -8, -20 -> -14
    assert paper["delta_top1"] == pytest.approx(np.mean([*(vmp - ORACLE_GAINS), -14]))
    assert ("all", "released placement (normalised frames)", "oracle") not in row.index

    # the share of the oracle's gain: Fieller's interval over the replicates
    share = row.loc[("x3d_tiny", "vmp_gate", SHARE)]
    gate = np.arange(3.0, 9.0)
    assert share["share"] == pytest.approx(gate.mean() / np.mean(ORACLE_GAINS))
    for end in (share["share_ci_low"], share["share_ci_high"]):
        assert stats.ttest_1samp(gate - end * np.array(ORACLE_GAINS), 0).pvalue == pytest.approx(
            0.05
        )
    assert np.isnan(share["p"]) and pd.isna(share["holm_verdict"])
    # no SlowFast share: its single oracle replicate is no significant gain
    assert not ((rows["backbone"] == "slowfast_tiny") & (rows["against"] == SHARE)).any()
    family = row.loc[("all", "paper (vmp, vmp_slow, vmp_fast, vmp_both)", SHARE)]
    numerator = [*vmp, np.mean([2.0, -10.0])]
    assert family["share"] == pytest.approx(np.mean(numerator) / np.mean(clusters))
    assert family["pairs"] == 7

    csv, md = write_verdict(summary, tmp_path / "o" / "table1")
    text = md.read_text()
    assert "share of the oracle's gain" in text.splitlines()[0] and "Oracle (vmp_oracle" in text
    low, high = share["share_ci_low"], share["share_ci_high"]
    assert f"| {100 * share['share']:.0f}% [{100 * low:.0f}%, {100 * high:.0f}%] " in text
    assert len(pd.read_csv(csv)) == len(summary)


def test_oracle_share_only_where_its_gain_is_significant(experiment, tmp_path):
    """An oracle no better than the baseline gets its rows but no share (nothing to share)."""
    replicates = [(d, s) for d in ("synth_gym", "synth_cooking") for s in (0, 1, 2)]
    paths = [
        _write(tmp_path, dataset, "1", "x3d_tiny", ORACLE, seed, 50.0 + gain)
        for (dataset, seed), gain in zip(replicates, [3, -2, 1, -3, 2, -1], strict=True)
    ]
    summary = verdict_summary(paired_runs(load_runs(experiment + paths)))
    assert (summary["variant"] == ORACLE).sum() == 1
    assert SHARE not in set(summary["against"]) and "share" not in summary
