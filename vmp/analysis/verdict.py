"""The verdict on the prompt layer: paired differences per backbone and variant, overall, by the
layer's start, and what the layers did while training.

A *replicate* is (dataset, split, backbone, seed): it draws its own head, prompt layers and
sample order, shared by all its variants (``vmp.training.run.derived_seed``). So every +VMP run
has a baseline partner, and a run of another start or placement (``SIGMOID_ALTERNATIVES``) also has a
partner with the paper's sigmoid layer, in the same replicate::

    runs (tables.load_runs) --paired_runs--> one row per +VMP run: delta to its partners,
        start and end state of its layers
      --verdict_summary--> per (backbone, variant): mean delta, t-interval over its replicates,
                           p-value, Holm over the rows compared; overall per family: clustered
                           paper-start rows also start-adjusted (post-stratified, see below)
      --start_strata-->    the same by the layer's state at the start (fixed before training)
    metrics --prompt_states--> per layer: a, b, static attention at the start and the end

The overall interval of a family treats a replicate of a backbone as one cluster: its runs
share draws (SlowFast's three pathway variants are averaged within the cluster), while
replicates draw independently.

Start-adjusted rows. Under the paper's start a layer draws n ~ Normal(1e-5, 1); whether it starts
closing (b0 > 0: a static pixel's attention below 0.5) is a coin flip fixed before training, and
the paired difference depends on it far more than on anything else. With 9 replicates the number
of closing starts varies from backbone to backbone (binomial), and that count alone moves a
backbone's mean by many points. The start-adjusted row weighs the two strata by their known
shares instead of by their counts: share of closing starts w = 1 - (1 - P(n > 0))^k for a run of k
layers (SlowFast's vmp_both: the most closing of its two layers), mean
w mean_closing + (1 - w) mean_opening, interval with Welch-Satterthwaite degrees of freedom
(``vmp.analysis.stats.stratified_interval``). Its target is the same as the plain mean's (the
difference expected under the paper's random start, over this backbone's scenes), without the
count's noise.

The oracle (a positive control, not a method). ``vmp_oracle`` weighs the frames by the scene's
ground-truth attention instead of a learned one: what a perfect prompt could give. Where its
runs exist the table adds, after every row above (those never include it, so they and their
Holm blocks stay as they were):

    oracle vs baseline        per backbone, and overall clustered by replicate (own Holm blocks)
    family vs oracle          each +VMP run minus the oracle run of its replicate, per backbone
                              and variant and overall per family (paper start, identity, gate)
    share of the oracle gain  where the oracle's gain over the baseline is significant (Holm):
                              mean(run - baseline) / mean(oracle - baseline) over the replicates,
                              with Fieller's interval (``vmp.analysis.stats.fieller_interval``)

Each row also carries its minimal detectable effect (``mde``: the true difference its test finds
with 80% power, ``vmp.analysis.stats.minimal_detectable_effect``) beside its half-width, and the
interval's upper end, so that an "n.s." reads "no gain larger than the upper end; one of the MDE
would have been found 4 times in 5".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vmp.analysis.stats import (
    fieller_interval,
    holm,
    minimal_detectable_effect,
    replicates_needed,
    significance_verdict,
    stratified_interval,
    stratified_replicates_needed,
    t_interval,
    t_test_p,
)
from vmp.analysis.tables import blank_if_na, interval_text, markdown_table, rounded, signed
from vmp.io import write_csv, write_text
from vmp.names import (
    PAPER_INIT_MEAN,
    PAPER_INIT_STD,
    PAPER_VARIANTS,
    SIGMOID_ALTERNATIVES,
    sigmoid_variant,
)
from vmp.training.record import RUN_KEYS, read_metrics

REPLICATE = ["dataset", "split", "backbone", "seed"]
FAMILIES = {
    "paper (vmp, vmp_slow, vmp_fast, vmp_both)": PAPER_VARIANTS,
    "identity start (not in the paper)": ("vmp_identity",),
    "gate (not in the paper)": ("vmp_gate",),
    "released placement (normalised frames)": ("vmp_normalized",),
}
# The positive control: ground-truth attention in place of a learned one. Named here until
# vmp.names lists it with the other variants.
ORACLE = "vmp_oracle"
ORACLE_FAMILY = "oracle: ground truth, not a method"
# The families set beside the oracle (the prompt layers that learn their attention).
ORACLE_COMPARED = {f: FAMILIES[f] for f in list(FAMILIES)[:3]}
AGAINST_ORACLE = "oracle"
SHARE = "share of the oracle's gain"
STATES = ("closed", "between", "open")
GOAL_HALF_WIDTH = 5.0
ADJUSTED = "baseline, start-adjusted"


def paired_runs(runs: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """One row per +VMP run with a baseline partner in its replicate.

    Columns: the replicate keys, ``variant``, ``lambda``, ``delta`` (run minus baseline
    ``metric``), ``delta_sigmoid`` (run minus the paper-start sigmoid run, ``vmp`` or SlowFast's
    ``vmp_both``, of the replicate; for ``SIGMOID_ALTERNATIVES`` only), and the run's ``start_state``,
    ``end_state``, ``start_gain``, ``end_gain`` and number of prompt ``layers``; then
    ``delta_oracle`` (run minus the replicate's ``ORACLE`` run; NaN for the oracle itself and
    without one) and ``oracle_gain`` (the replicate's oracle minus its baseline).

    Raises:
        ValueError: two runs share their replicate and variant (pass one lambda per variant,
            as Table 1's runs are).
    """
    duplicated = runs.duplicated([*REPLICATE, "variant"], keep=False)
    if duplicated.any():
        raise ValueError(
            "paired_runs: several runs share (dataset, split, backbone, seed, variant): "
            + ", ".join(sorted(set(runs.loc[duplicated, "path"].astype(str))))
        )
    runs = runs.set_index(REPLICATE)
    base = runs[runs["variant"] == "baseline"][metric]
    treated = runs[runs["variant"] != "baseline"]
    common = treated.index.isin(base.index)
    treated = treated[common]
    out = treated[["variant", "lambda", "arch", metric]].copy()
    out["delta"] = treated[metric] - base.reindex(treated.index).to_numpy()
    partner = treated["arch"].map(sigmoid_variant)
    sigmoid = treated.loc[treated["variant"] == partner, metric].reindex(treated.index)
    is_alternative = treated["variant"].isin(SIGMOID_ALTERNATIVES).to_numpy()
    out["delta_sigmoid"] = np.where(is_alternative, treated[metric] - sigmoid.to_numpy(), np.nan)
    for column in ("start_state", "end_state", "start_gain", "end_gain", "layers"):
        out[column] = treated[column]
    oracle = runs[runs["variant"] == ORACLE][metric].reindex(treated.index).to_numpy()
    is_oracle = (treated["variant"] == ORACLE).to_numpy()
    out["delta_oracle"] = np.where(is_oracle, np.nan, treated[metric].to_numpy() - oracle)
    out["oracle_gain"] = oracle - base.reindex(treated.index).to_numpy()
    return out.reset_index()


def _comparison(deltas: pd.Series) -> dict[str, Any]:
    ci = t_interval(deltas.dropna())
    paired = ci["n"] >= 2
    se, df = (ci["sd"] / np.sqrt(ci["n"]), float(ci["n"] - 1)) if paired else (np.nan, np.nan)
    return {
        "pairs": ci["n"],
        "delta_top1": ci["mean"],
        "delta_sd": ci["sd"],
        "delta_ci_low": ci["low"],
        "delta_ci_high": ci["high"],
        "half_width": (ci["high"] - ci["low"]) / 2,
        "mde": minimal_detectable_effect(se, df),
        "se": se,
        "df": df,
        "needed": replicates_needed(ci["sd"], GOAL_HALF_WIDTH) if paired else np.nan,
        "p": t_test_p(deltas.dropna()),
    }


def closing_share(layers: int) -> float:
    """The share of runs with ``layers`` paper-start layers whose most closing layer starts closing
    (b0 > 0, i.e. n0 > 0 for n0 ~ Normal(PAPER_INIT_MEAN, PAPER_INIT_STD))."""
    opening = stats.norm.cdf(-PAPER_INIT_MEAN / PAPER_INIT_STD)
    return float(1 - opening**layers)


def _start_adjusted(group: pd.DataFrame) -> dict[str, Any]:
    """The paired differences of one backbone's paper-start variant, post-stratified on whether
    the run's layers start closing (static gain below 0.5: b0 > 0), by the strata's known shares."""
    layers = group["layers"].unique()
    if len(layers) != 1:
        raise ValueError(
            f"start-adjusted comparison: runs with {sorted(layers)} prompt layers mixed"
        )
    share = closing_share(int(layers[0]))
    closing = (group["start_gain"] < 0.5).to_numpy()
    strata = [(share, group["delta"][closing]), (1 - share, group["delta"][~closing])]
    ci = stratified_interval(strata)
    weighted_sds = {
        name: (w, sd)
        for name, (w, _), sd in zip(("closing", "opening"), strata, ci["sds"], strict=True)
    }
    return {
        "pairs": ci["n"],
        "delta_top1": ci["mean"],
        "delta_sd": np.nan,
        "delta_ci_low": ci["low"],
        "delta_ci_high": ci["high"],
        "half_width": (ci["high"] - ci["low"]) / 2,
        "mde": minimal_detectable_effect(ci["se"], ci["df"]),
        "se": ci["se"],
        "df": ci["df"],
        "needed": stratified_replicates_needed(weighted_sds, GOAL_HALF_WIDTH),
        "p": ci["p"],
        "closing_starts": int(closing.sum()),
        "closing_share": share,
    }


def _with_holm(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    adjusted = holm([r["p"] for r in rows])
    for row, p in zip(rows, adjusted, strict=True):
        row["p_holm"] = p
        row["holm_verdict"] = significance_verdict(row["delta_top1"], p, se=row["se"])
    return rows


def _share(group: pd.DataFrame) -> dict[str, Any]:
    """The share of the oracle's gain a run recovers: the ratio of the mean paired ``delta`` to
    the mean ``oracle_gain`` over the rows (replicates or clusters) having both, with Fieller's
    interval."""
    both = group[["delta", "oracle_gain"]].dropna()
    ratio = fieller_interval(both["delta"], both["oracle_gain"])
    return {
        "pairs": ratio["n"],
        "share": ratio["ratio"],
        "share_ci_low": ratio["low"],
        "share_ci_high": ratio["high"],
        "share_g": ratio["g"],
    }


def _oracle_sections(pairs: pd.DataFrame) -> list[dict[str, Any]]:
    """The oracle's rows (module docstring); none without oracle runs."""
    oracle = pairs[pairs["variant"] == ORACLE]
    if oracle.empty:
        return []
    per_backbone = _with_holm(
        [
            {"backbone": backbone, "variant": ORACLE, "against": "baseline"}
            | _comparison(group["delta"])
            for backbone, group in oracle.groupby("backbone", sort=False)
        ]
    )
    clusters = oracle.groupby(REPLICATE)["delta"].mean()
    overall = _with_holm(
        [
            {"backbone": "all", "variant": ORACLE_FAMILY, "against": "baseline"}
            | _comparison(clusters)
        ]
    )
    variants = [v for family in ORACLE_COMPARED.values() for v in family]
    compared = pairs[pairs["variant"].isin(variants) & pairs["delta_oracle"].notna()]
    by_variant = compared.groupby(["backbone", "variant"], sort=False)
    families = {
        family: compared[compared["variant"].isin(members)]
        for family, members in ORACLE_COMPARED.items()
        if compared["variant"].isin(members).any()
    }
    sections = per_backbone + overall
    sections += _with_holm(
        [
            {"backbone": backbone, "variant": variant, "against": AGAINST_ORACLE}
            | _comparison(group["delta_oracle"])
            for (backbone, variant), group in by_variant
        ]
    )
    sections += _with_holm(
        [
            {"backbone": "all", "variant": family, "against": AGAINST_ORACLE}
            | _comparison(members.groupby(REPLICATE)["delta_oracle"].mean())
            for family, members in families.items()
        ]
    )
    gained = {r["backbone"] for r in per_backbone if r["holm_verdict"] == "gain"}
    sections += [
        {"backbone": backbone, "variant": variant, "against": SHARE} | _share(group)
        for (backbone, variant), group in by_variant
        if backbone in gained
    ]
    if overall[0]["holm_verdict"] == "gain":
        sections += [
            {"backbone": "all", "variant": family, "against": SHARE}
            | _share(members.groupby(REPLICATE)[["delta", "oracle_gain"]].mean())
            for family, members in families.items()
        ]
    return sections


def verdict_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per backbone and variant, and overall per family, the paired top-1 differences.

    ``pairs`` is :func:`paired_runs`' output. Sections:

    - ``backbone`` x variant against ``baseline``: mean over the replicates' paired
      differences, Student-t interval over replicates, two-sided t-test p;
    - ``backbone`` x alternative against ``sigmoid`` (the paper-start layer of the replicate);
    - ``backbone`` x paper-start variant against ``baseline, start-adjusted``: the same
      differences as in the first section, post-stratified on the start (module docstring),
      with ``closing_starts`` (runs that started closing) and ``closing_share`` (the weight);
    - ``all`` x family against ``baseline`` and ``sigmoid``: clustered by replicate (each
      (dataset, split, backbone, seed) contributes the mean of its runs in the family), the
      interval over the clusters;
    - where ``ORACLE`` runs exist, the oracle's sections (module docstring): its rows against
      ``baseline``, the families against ``oracle``, and the ``share of the oracle's gain``
      (``share``, ``share_ci_low``, ``share_ci_high``: Fieller's interval, infinite where
      unbounded; ``share_g``: Fieller's g; no p-value, no verdict).

    Beside each interval: ``mde``, the minimal detectable effect at 80% power from the row's
    standard error ``se`` and degrees of freedom ``df`` (n - 1; Welch-Satterthwaite's for the
    start-adjusted rows). ``p_holm`` is Holm's adjustment over the rows of one section and
    reference (the variants compared; the oracle's rows are sections of their own), and
    ``holm_verdict`` is "gain"/"loss" where it is below 0.05, else "n.s.", and "zero variance"
    where the paired differences are all equal (no test: p is NaN).
    """
    methods = pairs[pairs["variant"] != ORACLE]
    sections = []
    for against, column in (("baseline", "delta"), ("sigmoid", "delta_sigmoid")):
        rows = []
        for (backbone, variant), group in methods.groupby(["backbone", "variant"], sort=False):
            if group[column].notna().any():
                rows.append(
                    {"backbone": backbone, "variant": variant, "against": against}
                    | _comparison(group[column])
                )
        sections += _with_holm(rows)
    adjusted = pairs[pairs["variant"].isin(PAPER_VARIANTS)]
    sections += _with_holm(
        [
            {"backbone": backbone, "variant": variant, "against": ADJUSTED} | _start_adjusted(group)
            for (backbone, variant), group in adjusted.groupby(["backbone", "variant"], sort=False)
        ]
    )
    for against, column in (("baseline", "delta"), ("sigmoid", "delta_sigmoid")):
        rows = []
        for family, variants in FAMILIES.items():
            members = pairs[pairs["variant"].isin(variants) & pairs[column].notna()]
            if members.empty:
                continue
            clusters = members.groupby(REPLICATE)[column].mean()
            rows.append(
                {"backbone": "all", "variant": family, "against": against} | _comparison(clusters)
            )
        sections += _with_holm(rows)
    sections += _oracle_sections(pairs)
    return pd.DataFrame(sections)


STRATA_COLUMNS = [
    "family",
    "start_state",
    "runs",
    "clusters",
    "delta_top1",
    "delta_ci_low",
    "delta_ci_high",
    *(f"ended_{s}" for s in STATES),
    "changed",
]


def start_strata(pairs: pd.DataFrame) -> pd.DataFrame:
    """The paired difference to the baseline per family and the layer's start state.

    The start state (closed, between, open: the most closing layer's static gain, see
    ``vmp.analysis.tables.run_state``) is fixed before training, so it is a fair covariate. Per row:
    pairs, mean difference with a t-interval clustered by replicate, how many runs ended in each
    state, and how many changed state.
    """
    rows = []
    for family, variants in FAMILIES.items():
        members = pairs[pairs["variant"].isin(variants)]
        for state in STATES:
            group = members[members["start_state"] == state]
            if group.empty:
                continue
            ci = t_interval(group.groupby(REPLICATE)["delta"].mean())
            ended = group["end_state"].value_counts()
            rows.append(
                {
                    "family": family,
                    "start_state": state,
                    "runs": len(group),
                    "clusters": ci["n"],
                    "delta_top1": ci["mean"],
                    "delta_ci_low": ci["low"],
                    "delta_ci_high": ci["high"],
                }
                | {f"ended_{s}": int(ended.get(s, 0)) for s in STATES}
                | {"changed": int((group["end_state"] != state).sum())}
            )
    return pd.DataFrame(rows, columns=STRATA_COLUMNS)


# --- the prompt layers' start and end ---------------------------------------------------------

LAYER_FIELDS = ("slope", "shift", "gate", "static_attention", "static_gain", "state")


def _layers(prompt: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Layer suffix ("" for a single layer, "slow", "fast") -> that layer's recorded values."""
    suffixes = [k[len("static_gain") :] for k in prompt if k.startswith("static_gain")]
    return {
        s.lstrip("_"): {f: prompt.get(f"{f}{s}", np.nan) for f in LAYER_FIELDS} for s in suffixes
    }


STATE_KEYS = [*RUN_KEYS, "layer"]
STATE_COLUMNS = [
    *STATE_KEYS,
    *(f"{when}_{f}" for when in ("start", "end") for f in LAYER_FIELDS),
    "changed",
    "shift_moved",
]


def prompt_states(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per prompt layer of every run (runs without one give none): its parameters at
    the start and the end, its state at each, whether it changed, how far its shift b moved."""
    rows = []
    for path in paths:
        metrics = read_metrics(path)
        settings = metrics["settings"]
        start, end = _layers(metrics.get("prompt_start", {})), _layers(metrics.get("prompt", {}))
        for layer, values in end.items():
            first = start.get(layer, {})
            rows.append(
                {k: settings[k] for k in STATE_KEYS[:5]}
                | {"seed": int(settings["seed"]), "layer": layer or "-"}
                | {f"start_{f}": first.get(f, np.nan) for f in LAYER_FIELDS}
                | {f"end_{f}": values[f] for f in LAYER_FIELDS}
            )
    frame = pd.DataFrame(rows, columns=STATE_COLUMNS[:-2])
    frame["changed"] = frame["start_state"] != frame["end_state"]
    frame["shift_moved"] = (frame["end_shift"] - frame["start_shift"]).abs()
    return frame


def _counts(states: pd.Series) -> str:
    counts = states.value_counts()
    return " / ".join(str(int(counts.get(s, 0))) for s in STATES)


STATE_SUMMARY = [
    "backbone",
    "variant",
    "layer",
    "runs",
    "start closed / between / open",
    "end closed / between / open",
    "changed",
    "shift_moved_median",
    "shift_moved_max",
    "end_gate_mean",
]


def summarise_states(layers: pd.DataFrame) -> pd.DataFrame:
    """Per backbone, variant and layer: runs, start and end states (closed / between / open
    counts), how many changed state, how far b moved (median, max), the mean end gate."""
    rows = []
    for key, group in layers.groupby(["backbone", "variant", "layer"], sort=False):
        rows.append(
            dict(zip(("backbone", "variant", "layer"), key, strict=True))
            | {
                "runs": len(group),
                "start closed / between / open": _counts(group["start_state"]),
                "end closed / between / open": _counts(group["end_state"]),
                "changed": int(group["changed"].sum()),
                "shift_moved_median": group["shift_moved"].median(),
                "shift_moved_max": group["shift_moved"].max(),
                "end_gate_mean": group["end_gate"].mean(),
            }
        )
    return pd.DataFrame(rows, columns=STATE_SUMMARY)


# --- files ------------------------------------------------------------------------------------


def _delta_cells(frame: pd.DataFrame) -> dict[str, object]:
    """The "mean Δ top-1" and "95% CI" columns of a display table, from ``delta_top1``,
    ``delta_ci_low`` and ``delta_ci_high``."""
    return {
        "mean Δ top-1": frame["delta_top1"].map(signed),
        "95% CI": [
            interval_text(lo, hi)
            for lo, hi in zip(frame["delta_ci_low"], frame["delta_ci_high"], strict=True)
        ],
    }


def _one_decimal(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.1f}"


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def share_text(share: float, low: float, high: float) -> str:
    """``42% [12%, 80%]``; ``42% [unbounded]`` where Fieller's set is unbounded; "" for NaN."""
    if pd.isna(share):
        return ""
    if pd.isna(low) or pd.isna(high):
        return _percent(share)
    if np.isinf(low) or np.isinf(high):
        return f"{_percent(share)} [unbounded]"
    return f"{_percent(share)} [{_percent(low)}, {_percent(high)}]"


def display_verdict(summary: pd.DataFrame) -> pd.DataFrame:
    """Human-readable verdict (1 decimal; p-values with 2 significant digits); with oracle runs
    also the share of the oracle's gain (% of it, with its 95% interval)."""
    shown = pd.DataFrame(
        {
            "backbone": summary["backbone"],
            "variant": summary["variant"],
            "against": summary["against"],
            "pairs": summary["pairs"],
            **_delta_cells(summary),
            "upper end": summary["delta_ci_high"].map(signed),
            "± half-width": summary["half_width"].map(_one_decimal),
            "MDE (80%)": summary["mde"].map(_one_decimal),
            f"pairs for ±{GOAL_HALF_WIDTH:g}": summary["needed"].map(
                lambda v: "" if pd.isna(v) else str(int(v))
            ),
            "p (Holm)": summary["p_holm"].map(lambda v: "" if pd.isna(v) else f"{v:.2g}"),
            "Holm verdict": summary["holm_verdict"].map(blank_if_na),
        }
    )
    if "share" in summary:
        shown["share of the oracle's gain"] = [
            share_text(*values)
            for values in zip(
                summary["share"], summary["share_ci_low"], summary["share_ci_high"], strict=True
            )
        ]
    return shown


VERDICT_NOTE = (
    "A replicate is (dataset, split, backbone, seed): it draws its own head, prompt layers and "
    "sample order, shared by all its variants. Δ = +VMP minus its partner's top-1 in the same "
    "replicate: the baseline ('against baseline'), or the paper-start sigmoid layer, vmp or "
    "SlowFast's vmp_both ('against sigmoid'). Per backbone: mean over its replicates (all "
    "scenes) with a 95% Student-t interval and a two-sided t-test; 'all': per family, each "
    "replicate of a backbone is one cluster (the mean of its runs in the family; SlowFast's "
    "three pathway variants share their replicate's draws), interval and test over the "
    "clusters. 'baseline, start-adjusted': the paper-start rows again, post-stratified on the "
    "start: the mean difference of the runs whose layer started closing (b0 > 0, a static "
    "pixel's attention below 0.5) and of the others, weighted by the known shares of the two "
    "starts under the paper's Normal(1e-5, 1) draw (1/2; 3/4 closing for SlowFast's two layers) "
    "instead of by how many of the replicates drew each; Welch-Satterthwaite t-interval. "
    "p (Holm): Holm's adjustment over the rows of one block (same 'backbone' kind and "
    "'against'); Holm verdict 'gain'/'loss' where it is below 0.05, else 'n.s.', and 'zero "
    "variance' where all the paired differences are equal (no t-test: no p). (Table 1's "
    "'unadjusted call' is each row's own interval, not corrected for the many rows.) Upper end: "
    "the 95% interval's upper end U, so a row reads 'no gain larger than U points'. MDE (80%): "
    "the smallest true difference the row's two-sided t-test at 0.05 finds with 80% power, from "
    "the row's own standard error and degrees of freedom (n - 1; Welch-Satterthwaite for the "
    "start-adjusted rows), exact from the noncentral t. Goal: half-width at "
    f"most {GOAL_HALF_WIDTH:g} points per backbone; 'pairs for ±{GOAL_HALF_WIDTH:g}': how many "
    "replicates (clusters) the row's measured sd would need for that half-width."
)
ORACLE_NOTE = (
    f"Oracle ({ORACLE}; {ORACLE_FAMILY}): the frames weighted by the scene's ground-truth "
    "attention, a positive control. Its rows against the baseline are Holm blocks of their own "
    "(per backbone; overall clustered by replicate), and no other block counts it. 'against "
    "oracle': each +VMP run minus the oracle run of its replicate (per backbone and variant; "
    "overall per family, clustered by replicate). 'share of the oracle's gain', only where the "
    "oracle's gain over the baseline is significant (Holm): mean(run - baseline) / mean(oracle - "
    "baseline) over the replicates (clusters) with both, with Fieller's 95% interval (the ratios "
    "R that a paired t-test of (run - baseline) - R (oracle - baseline) does not reject; "
    "'unbounded' where the oracle's gain on those replicates is itself not significant)."
)


def _write_table(frame: pd.DataFrame, shown: pd.DataFrame, stem: Path, note: str) -> list[Path]:
    """``<stem>.csv`` (the numbers, 6 significant digits) and ``<stem>.md`` (``shown`` and the
    method as a footnote)."""
    return [
        write_csv(stem.with_name(stem.name + ".csv"), rounded(frame)),
        write_text(stem.with_name(stem.name + ".md"), markdown_table(shown) + f"\n\n{note}\n"),
    ]


def write_verdict(summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>_verdict.csv`` and ``<prefix>_verdict.md`` (with the method as footnote)."""
    stem = Path(prefix).with_name(Path(prefix).name + "_verdict")
    oracle = (summary["variant"] == ORACLE).any()
    note = f"{VERDICT_NOTE}\n\n{ORACLE_NOTE}" if oracle else VERDICT_NOTE
    return _write_table(summary, display_verdict(summary), stem, note)


def display_strata(strata: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "family": strata["family"],
            "start state": strata["start_state"],
            "runs": strata["runs"],
            **_delta_cells(strata),
            "ended closed / between / open": [
                f"{c} / {b} / {o}"
                for c, b, o in zip(
                    strata["ended_closed"],
                    strata["ended_between"],
                    strata["ended_open"],
                    strict=True,
                )
            ],
            "changed state": strata["changed"],
        }
    )


STRATA_NOTE = (
    "Δ = +VMP minus baseline top-1 of the same replicate, by the state of the run's most closing "
    "prompt layer at the start: a static pixel's gain (its attention sigmoid(-a b), times the "
    "gate for gated layers) below 0.1 'closed', above 0.9 'open', else 'between'. Fixed before "
    "training, so a fair covariate. 95% Student-t interval over replicates (clusters)."
)

STATES_NOTE = (
    "One row per backbone, variant and prompt layer ('-': the run's only layer) over its runs "
    "(every scene, replicate and lambda): the layer's state at the start and the end (closed / "
    "between / open counts: a static pixel's gain below 0.1, between, above 0.9), how many "
    "changed state, how far the shift b moved (median and max of |b_end - b_start|), the mean "
    "gate at the end (gated layers). prompt_states_runs.csv has a, b, the gate, the static "
    "attention and gain of every layer at the start and the end."
)


def write_strata(strata: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>_strata.csv`` and ``<prefix>_strata.md``."""
    stem = Path(prefix).with_name(Path(prefix).name + "_strata")
    return _write_table(strata, display_strata(strata), stem, STRATA_NOTE)


def write_states(layers: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>.csv`` (per backbone, variant, layer), ``<prefix>.md`` and ``<prefix>_runs.csv``
    (per run and layer)."""
    prefix = Path(prefix)
    shown = summary.assign(
        **{
            "|Δb| median [max]": [
                f"{m:.3f} [{x:.3f}]"
                for m, x in zip(
                    summary["shift_moved_median"], summary["shift_moved_max"], strict=True
                )
            ],
            "end gate": summary["end_gate_mean"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
        }
    ).drop(columns=["shift_moved_median", "shift_moved_max", "end_gate_mean"])
    return [
        *_write_table(summary, shown, prefix, STATES_NOTE),
        write_csv(prefix.with_name(prefix.name + "_runs.csv"), rounded(layers)),
    ]
