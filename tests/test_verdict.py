"""The verdict on the prompt layer (vmp.analysis.verdict) and its statistics (vmp.analysis.stats), on hand-made runs."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vmp.analysis.stats import (
    holm,
    replicates_needed,
    significance_verdict,
    stratified_interval,
    stratified_replicates_needed,
    t_interval,
    t_test_p,
)
from vmp.analysis.tables import load_runs, run_state
from vmp.analysis.verdict import (
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


def test_t_interval_cut_to_bounds_and_closed_form():
    ci = t_interval([0.0, 0.5, 1.0])
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert (ci["low"], ci["high"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert ci["low"] < 0 and ci["high"] > 1
    bounded = t_interval([0.0, 0.5, 1.0], bounds=(0.0, 1.0))
    assert (bounded["low"], bounded["high"], bounded["mean"]) == (0.0, 1.0, 0.5)
    assert np.isnan(t_interval([1.0], bounds=(0, 1))["low"])


def test_t_test_p_and_holm():
    assert t_test_p([1.0, 2.0, 3.0]) == pytest.approx(stats.ttest_1samp([1, 2, 3], 0).pvalue)
    assert (t_test_p([0.0, 0.0]), t_test_p([2.0, 2.0]), np.isnan(t_test_p([1.0]))) == (
        1.0,
        0.0,
        True,
    )
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


def test_replicates_needed_for_a_half_width():
    n = replicates_needed(10.0, 5.0)
    half = lambda k: stats.t.ppf(0.975, k - 1) * 10 / math.sqrt(k)  # noqa: E731
    assert half(n) <= 5 < half(n - 1)
    assert n == 18


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
    flat = stratified_interval([(0.5, [0, 0]), (0.5, [2, 2])])
    assert (flat["low"], flat["high"], flat["p"]) == (1.0, 1.0, 0.0)
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
    gate = row.loc[("x3d_tiny", "vmp_gate", "sigmoid")]
    assert (gate["pairs"], gate["delta_top1"], gate["p"]) == (6, 2.0, 0.0)
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
