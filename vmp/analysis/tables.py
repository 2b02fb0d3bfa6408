"""Table 1: reproduced accuracies (mean +- std over seeds) beside the published ones.

Each +VMP row also carries the paired difference to its baseline: replicate r of +VMP minus
replicate r of the baseline of the same (dataset, split, backbone), a replicate being a seed of a
split. Its 95% t-interval gives the row's unadjusted call ("gain", "loss", "n.s." or "zero
variance"; each row on its own, not corrected for the many rows: the Holm-adjusted verdict is
``vmp.analysis.verdict``'s, and the two are named apart). For the ``mean`` split
of a multi-split dataset the replicates are the splits (the paired difference of a split is the
mean over its paired seeds); ``vmp.analysis.verdict`` pools them per backbone and overall;
``pretraining_comparison`` sets the +VMP gain of a backbone trained from scratch beside the gain of
the same architecture fine-tuned from its pre-trained checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vmp.analysis.stats import ZERO_VARIANCE, t_interval, verdict
from vmp.io import write_csv, write_text
from vmp.training.record import RUN_KEYS, read_metrics

KEYS = list(RUN_KEYS[:4])  # a row of Table 1: dataset, split, backbone, variant
METRICS = {
    "top1": "top1",
    "top5": "top5",
    "mean_average_precision": "map",
    "mean_class_accuracy": "mca",
}
VARIANT_ORDER = [
    "baseline",
    "vmp",
    "vmp_slow",
    "vmp_fast",
    "vmp_both",
    "vmp_identity",
    "vmp_gate",
    "vmp_normalized",
    "vmp_oracle",  # the positive control (ground-truth attention), last
]
# Each row's own call from its interval, unadjusted for the many rows (not the verdict table's
# Holm-adjusted "holm_verdict").
CALL = "unadjusted_call"
PAIRED = ["delta_top1", "delta_sd", "delta_ci_low", "delta_ci_high", "pairs", "unpaired", CALL]
CALLS = ["gain", "loss", "n.s.", ZERO_VARIANCE]
# CSV numbers keep 6 significant digits: metrics are computed in float32 (7.2 significant digits,
# fewer after a subtraction), so 25.00000074505806 is 25 and 30 - 25.00000074505806 is 5.
CSV_DIGITS = 6
PAIRED_NOTE = (
    "Δ = mean over replicate pairs of +VMP minus baseline top-1 (same dataset, split, backbone and "
    "seed; for the 'mean' split the replicates are the splits, each the mean over its paired "
    "seeds); 95% CI = Student-t interval over the pairs (mean ± t(0.975, n-1)·sd/√n, sd with "
    "ddof=1); unadjusted call: 'gain' if the interval lies above 0, 'loss' if below 0, 'n.s.' "
    "otherwise or with fewer than 2 pairs (no interval), 'zero variance' where all the pairs' "
    "differences are equal; each row on its own, not corrected for the many rows (the "
    "Holm-adjusted verdict is in table1_verdict). Runs without a partner are left out "
    "('unpaired' in the CSV)."
)


def run_state(prompt: Mapping[str, Any]) -> tuple[float, str | float]:
    """(gain, state) of a run's most closing prompt layer: the smallest ``static_gain`` over its
    layers and that layer's ``state`` (see ``vmp.training.fit.prompt_state``); NaNs without layers."""
    gains = {k[len("static_gain") :]: v for k, v in prompt.items() if k.startswith("static_gain")}
    if not gains:
        return np.nan, np.nan
    suffix = min(gains, key=gains.get)
    return float(gains[suffix]), prompt[f"state{suffix}"]


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run: its identity (from the run's settings), its test metrics, its prompt
    layers' parameters at the end (``prompt_*``) and at the start (``start_*``), and the state of
    its most closing layer at the start and the end (``start_gain``, ``start_state``,
    ``end_gain``, ``end_state``; see :func:`run_state`) and its number of prompt ``layers``."""
    rows = []
    for path in paths:
        metrics = read_metrics(path)
        settings = metrics["settings"]
        start, end = metrics.get("prompt_start", {}), metrics.get("prompt", {})
        rows.append(
            {key: str(settings[key]) for key in KEYS}
            | {"arch": settings.get("arch") or settings["backbone"]}
            | {"lambda": float(settings["lambda"]), "seed": int(settings["seed"])}
            | {short: metrics.get(name) for name, short in METRICS.items()}
            | {f"prompt_{k}": v for k, v in end.items()}
            | {f"start_{k}": v for k, v in start.items()}
            | {"layers": sum(k.startswith("static_gain") for k in start)}
            | dict(zip(("start_gain", "start_state"), run_state(start), strict=True))
            | dict(zip(("end_gain", "end_state"), run_state(end), strict=True))
            | {"path": str(path)}
        )
    if not rows:
        raise ValueError("no metrics.json files were given")
    return pd.DataFrame(rows).astype({short: float for short in METRICS.values()})


# --- paired differences -----------------------------------------------------------------------


def _paired_row(diffs: list[float], unpaired: int) -> dict:
    ci = t_interval(diffs)
    return {
        "delta_top1": ci["mean"],
        "delta_sd": ci["sd"],
        "delta_ci_low": ci["low"],
        "delta_ci_high": ci["high"],
        "pairs": ci["n"],
        "unpaired": unpaired,
        CALL: verdict(ci["low"], ci["high"], ci["n"]),
    }


def paired_differences(runs: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """Paired +VMP minus baseline differences of ``metric`` per +VMP row of Table 1.

    Replicate (split, seed) of a +VMP variant is paired with the baseline run of the same dataset,
    split, backbone and seed; runs of either side without a partner are counted in ``unpaired``
    and otherwise ignored. One row per (dataset, split, backbone, +VMP variant) with columns
    ``PAIRED``; for a variant run on several splits also a ``mean`` split row whose replicates are
    the splits (split k contributes the mean of its paired differences; n = splits with a pair).
    The columns keep the name ``delta_top1`` etc. whatever ``metric`` is.

    Raises:
        ValueError: two runs share (dataset, split, backbone, variant, seed).
    """
    dup = runs.duplicated(KEYS + ["seed"], keep=False)
    if dup.any():
        raise ValueError(
            "paired_differences: several runs share (dataset, split, backbone, variant, seed): "
            + ", ".join(sorted({str(tuple(k)) for k in runs.loc[dup, KEYS + ["seed"]].to_numpy()}))
            + " (pass only Table 1 runs: one run per seed of each row)"
        )
    by_row = {key: g.set_index("seed")[metric] for key, g in runs.groupby(KEYS, sort=False)}
    none = pd.Series(dtype=float)
    rows = []
    treated = runs[runs["variant"] != "baseline"]
    for (dataset, backbone, variant), group in treated.groupby(
        ["dataset", "backbone", "variant"], sort=False
    ):
        split_means, unpaired_total = [], 0
        splits = list(dict.fromkeys(group["split"]))
        for split in splits:
            vmp = by_row[(dataset, split, backbone, variant)]
            base = by_row.get((dataset, split, backbone, "baseline"), none)
            seeds = sorted(set(vmp.index) & set(base.index))
            unpaired = len(set(vmp.index) ^ set(base.index))
            diffs = [float(vmp.loc[s] - base.loc[s]) for s in seeds]
            rows.append(
                {"dataset": dataset, "split": split, "backbone": backbone, "variant": variant}
                | _paired_row(diffs, unpaired)
            )
            unpaired_total += unpaired
            if diffs:
                split_means.append(float(np.mean(diffs)))
        if len(splits) > 1:
            rows.append(
                {"dataset": dataset, "split": "mean", "backbone": backbone, "variant": variant}
                | _paired_row(split_means, unpaired_total)
            )
    frame = pd.DataFrame(rows, columns=KEYS + PAIRED)
    floats = {c: float for c in PAIRED if c.startswith("delta_")}
    return frame.astype(floats | {"pairs": "Int64", "unpaired": "Int64", CALL: object})


# --- Table 1 ----------------------------------------------------------------------------------


def score_format(metric: str) -> tuple[float, str]:
    """(scale, format) a score is shown with: temporal variation as it is, the rest in %."""
    return (1, "{:.3g}") if metric == "variation" else (100, "{:.1f}")


def paired_cell(row: Mapping, metric: str, show_delta: bool = True) -> str:
    """``value (delta [low, high])`` of a :func:`paired_against` row, scaled by
    :func:`score_format`; ``value (delta)`` without an interval, ``value`` alone without
    ``show_delta``."""
    scale, form = score_format(metric)
    cell = form.format(row[metric] * scale)
    if not show_delta:
        return cell
    mean, low, high = (row[f"delta_{metric}{part}"] * scale for part in ("", "_low", "_high"))
    interval = f" [{form.format(low)}, {form.format(high)}]" if pd.notna(low) else ""
    return f"{cell} ({form.format(mean)}{interval})"


def paired_against(
    rows: pd.DataFrame,
    column: str,
    reference: object,
    *,
    pair: list[str],
    groups: list[str],
    metrics: Iterable[str],
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Each level of ``column`` against its ``reference`` level, paired on the ``pair`` keys.

    One row per ``groups`` x level: ``pairs``, the mean of every metric over the level's runs,
    and for the other levels ``delta_<metric>`` (mean over pairs of the run minus its reference
    partner, the one with equal ``groups`` and ``pair`` keys) with ``delta_<metric>_low/_high``
    (95% Student-t interval, intersected with ``bounds``: the range a difference of the
    metrics cannot leave, e.g. (-1, 1) for fractions) and ``verdict`` of the first metric. Runs without a partner are
    left out of the differences. The reference level comes first in each group.

    Raises:
        ValueError: two reference runs share their group and pair keys.
    """
    metrics = list(metrics)
    keys = groups + pair
    base = rows[rows[column] == reference].set_index(keys)
    if base.index.has_duplicates:
        raise ValueError(
            f"paired_against: several {column}={reference} runs share " + ", ".join(keys)
        )
    out = []
    for key, group in rows.groupby([*groups, column], sort=True):
        level = key[-1]
        row = dict(zip([*groups, column], key, strict=True))
        group = group.set_index(keys)
        common = group.index.intersection(base.index)
        row["pairs"] = len(common) if level != reference else len(group)
        for metric in metrics:
            row[metric] = group[metric].mean()
            if level == reference:
                continue
            interval = t_interval(
                (group.loc[common, metric] - base.loc[common, metric]).dropna(), bounds=bounds
            )
            row |= {
                f"delta_{metric}": interval["mean"],
                f"delta_{metric}_low": interval["low"],
                f"delta_{metric}_high": interval["high"],
            }
        if level != reference:
            first = metrics[0]
            row["verdict"] = verdict(
                row[f"delta_{first}_low"], row[f"delta_{first}_high"], row["pairs"]
            )
        out.append(row)
    table = pd.DataFrame(out)
    later = table[column] != reference
    return (
        table.assign(_later=later).sort_values([*groups, "_later", column]).drop(columns="_later")
    )


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of every metric per (dataset, split, backbone, variant).

    Datasets with several splits also get a ``mean`` split: the mean over splits of the per-split
    means (the paper's protocol for HMDB-51); its std is the mean of the per-split stds. +VMP rows
    get the paired top-1 difference to their baseline (``paired_differences``); baseline rows
    have NaN there.
    """
    grouped = runs.groupby(KEYS, sort=False)
    table = grouped.agg(
        seeds=("seed", "nunique"),
        **{f"{m}_mean": (m, "mean") for m in METRICS.values()},
        **{
            f"{m}_std": (m, lambda s: s.std(ddof=1) if s.count() > 1 else np.nan)
            for m in METRICS.values()
        },
    ).reset_index()
    multi = table.groupby(["dataset", "backbone", "variant"], sort=False).filter(
        lambda g: g["split"].nunique() > 1
    )
    if not multi.empty:
        means = (
            multi.groupby(["dataset", "backbone", "variant"], sort=False)
            .agg(
                {c: "mean" for c in multi.columns if c.endswith(("_mean", "_std"))}
                | {"seeds": "min"}
            )
            .reset_index()
            .assign(split="mean")
        )
        table = pd.concat([table, means], ignore_index=True)
    table = table.merge(paired_differences(runs), on=KEYS, how="left")
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return table.sort_values(
        ["dataset", "backbone", "split", "variant"],
        key=lambda col: col.map(order) if col.name == "variant" else col,
        kind="stable",
    ).reset_index(drop=True)


def attach_published(
    table: pd.DataFrame,
    published: pd.DataFrame,
    datasets: dict[str, str | None],
    backbones: dict[str, str | None],
    pretrain: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Add the published top-1/top-5 of the real dataset and backbone each row stands for.

    ``datasets`` and ``backbones`` map our names to the paper's (a SynthMotion scene to the dataset it
    mirrors, a tiny backbone to its full-size family); rows without a counterpart get NaN, and so
    does the published delta of baseline rows. Numbers on SynthMotion are not comparable in value with the published ones: they show the paper's direction.
    """
    pretrain = pretrain or {}
    wide = published.pivot_table(
        index=["dataset", "split", "backbone", "pretrain", "variant"],
        columns="metric",
        values="value",
    )
    paper_split = {"finegym": "gym99", "mpii_cooking2": "test"}

    def lookup(dataset, split, backbone, init, variant) -> pd.Series:
        """Published metrics of one row; the mean over splits 1-3 for the 'mean' split."""
        splits = ("1", "2", "3") if split == "mean" else (split,)
        found = [
            wide.loc[key]
            for s in splits
            if (key := (dataset, s, backbone, init, variant)) in wide.index
        ]
        return pd.concat(found, axis=1).mean(axis=1) if found else pd.Series(dtype=float)

    rows = []
    for row in table.itertuples():
        dataset, backbone = datasets.get(row.dataset), backbones.get(row.backbone)
        key = (
            dataset,
            paper_split.get(dataset, row.split),
            backbone,
            pretrain.get(row.backbone, "k400"),
        )
        found, base = lookup(*key, row.variant), lookup(*key, "baseline")
        rows.append(
            {
                "paper_dataset": dataset,
                "paper_backbone": backbone,
                "published_top1": found.get("top1", np.nan),
                "published_top5": found.get("top5", np.nan),
                "published_delta_top1": np.nan
                if row.variant == "baseline"
                else found.get("top1", np.nan) - base.get("top1", np.nan),
            }
        )
    return pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)


# --- formatting -------------------------------------------------------------------------------


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def signed(value: float) -> str:
    """``+1.2`` / ``-1.2``; "0.0" for values that round to zero (never "-0.0" or "+0.0"); "" for NaN."""
    if pd.isna(value):
        return ""
    return "0.0" if round(float(value), 1) == 0 else f"{value:+.1f}"


def interval_text(low: float, high: float) -> str:
    return "" if pd.isna(low) or pd.isna(high) else f"[{signed(low)}, {signed(high)}]"


def _count(value) -> str:
    return "" if pd.isna(value) else str(int(value))


def blank_if_na(value) -> str:
    return "" if pd.isna(value) else str(value)


def significant(value: float, digits: int = CSV_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (NaN stays NaN, -0.0 becomes 0.0)."""
    return value if pd.isna(value) else float(f"{value:.{digits}g}") + 0.0


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Floats rounded to ``CSV_DIGITS`` significant digits, for CSV files."""
    floats = frame.select_dtypes(include="floating").columns
    return frame.assign(**{c: frame[c].map(significant) for c in floats})


def _latex(shown: pd.DataFrame) -> str:
    """Booktabs tabular of a display table that compiles with pdflatex (ASCII only).

    ``escape=True`` escapes ``_ % & # $ { } ~ ^ \\``; ± and Δ become ``$\\pm$`` and ``$\\Delta$``,
    and the minus sign of a number ``$-$`` (a hyphen otherwise).
    """
    tex = shown.to_latex(index=False, escape=True)
    tex = tex.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")
    return re.sub(r"(?<![\w.])-(?=\d)", r"$-$", tex)


def markdown_table(shown: pd.DataFrame) -> str:
    """Markdown of a display table, cells as formatted (no reparsing: keeps "+1.0", "4.0")."""
    return shown.to_markdown(index=False, disable_numparse=True)


def _with_suffix(prefix: str | Path, suffix: str) -> Path:
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + suffix)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable Table 1: mean ± std, paired gains over the baseline, published values."""
    n = len(table)
    missing = pd.Series([np.nan] * n, index=table.index)
    return pd.DataFrame(
        {
            "dataset": table["dataset"],
            "split": table["split"],
            "backbone": table["backbone"],
            "variant": table["variant"],
            "seeds": table["seeds"],
            "top-1": [
                _pm(m, s) for m, s in zip(table["top1_mean"], table["top1_std"], strict=True)
            ],
            "Δ top-1": table["delta_top1"].map(signed),
            "95% CI": [
                interval_text(lo, hi)
                for lo, hi in zip(table["delta_ci_low"], table["delta_ci_high"], strict=True)
            ],
            "pairs": table["pairs"].map(_count),
            "unadjusted call": table[CALL].map(blank_if_na),
            "top-5": [
                _pm(m, s) for m, s in zip(table["top5_mean"], table["top5_std"], strict=True)
            ],
            "mAP": [_pm(m, s) for m, s in zip(table["map_mean"], table["map_std"], strict=True)],
            "paper top-1": table.get("published_top1", missing).map(
                lambda v: "-" if pd.isna(v) else f"{v:.1f}"
            ),
            "paper Δ": table.get("published_delta_top1", missing).map(signed),
        }
    )


def write_table1(table: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """Write ``<prefix>.csv`` (all numbers), ``<prefix>.md`` and ``<prefix>.tex`` (formatted)."""
    prefix = Path(prefix)
    shown = display_table(table)
    note = (
        "Top-1/top-5/mAP in %, mean ± sample std over seeds (for 'mean' splits: mean over splits "
        f"of the per-split means and stds). {PAIRED_NOTE} 'paper' columns: published numbers on "
        "the real dataset and full-size backbone each row stands for."
    )
    return [
        write_csv(prefix.with_suffix(".csv"), rounded(table)),
        write_text(prefix.with_suffix(".md"), markdown_table(shown) + f"\n\n{note}\n"),
        write_text(prefix.with_suffix(".tex"), _latex(shown)),
    ]


# --- pre-trained vs scratch -------------------------------------------------------------------

PRETRAINING_COLUMNS = [
    "dataset",
    "split",
    "variant",
    "pretrained",
    "scratch",
    "baseline_top1_pretrained",
    "baseline_top1_std_pretrained",
    "baseline_top1_scratch",
    "baseline_top1_std_scratch",
    *(f"{c}_{side}" for side in ("pretrained", "scratch") for c in PAIRED if c != "delta_sd"),
    "gain_difference",
]


def _shared_split(table: pd.DataFrame, dataset: str, backbones: list[str]) -> str | None:
    """The split that stands for ``dataset`` for all ``backbones``: "mean" if all have it."""
    shared = None
    for backbone in backbones:
        splits = set(
            table.loc[(table["dataset"] == dataset) & (table["backbone"] == backbone), "split"]
        )
        shared = splits if shared is None else shared & splits
    if not shared:
        return None
    return "mean" if "mean" in shared else sorted(shared)[0]


def pretraining_comparison(table: pd.DataFrame, scratch_pairs: Mapping[str, str]) -> pd.DataFrame:
    """+VMP gains of backbones trained from scratch beside those of their pre-trained twins.

    ``scratch_pairs`` maps a scratch backbone to its pre-trained counterpart (same architecture),
    e.g. {"i3d_tiny_scratch": "i3d_tiny"}. One row per (dataset, +VMP variant, pair) where both
    backbones have the variant and a baseline, on the ``mean`` split of multi-split datasets:
    baseline top-1 mean ± std of each, the paired +VMP difference with its 95% interval, pairs,
    unpaired and unadjusted call of each (suffix ``_pretrained`` / ``_scratch``), and ``gain_difference``
    = gain from scratch minus gain from the pre-trained checkpoint (no interval: the two
    backbones' runs are not paired).
    """
    indexed = table.set_index(KEYS)
    rows = []
    for scratch, pretrained in scratch_pairs.items():
        for dataset in dict.fromkeys(table["dataset"]):
            split = _shared_split(table, dataset, [scratch, pretrained])
            if split is None:
                continue
            sides = {"pretrained": pretrained, "scratch": scratch}
            if any((dataset, split, b, "baseline") not in indexed.index for b in sides.values()):
                continue
            variants = [
                v
                for v in VARIANT_ORDER[1:] + sorted(set(table["variant"]) - set(VARIANT_ORDER))
                if all((dataset, split, b, v) in indexed.index for b in sides.values())
            ]
            for variant in variants:
                row = {
                    "dataset": dataset,
                    "split": split,
                    "variant": variant,
                    "pretrained": pretrained,
                    "scratch": scratch,
                }
                for side, backbone in sides.items():
                    base = indexed.loc[(dataset, split, backbone, "baseline")]
                    vmp = indexed.loc[(dataset, split, backbone, variant)]
                    row[f"baseline_top1_{side}"] = base["top1_mean"]
                    row[f"baseline_top1_std_{side}"] = base["top1_std"]
                    row |= {f"{c}_{side}": vmp[c] for c in PAIRED if c != "delta_sd"}
                row["gain_difference"] = row["delta_top1_scratch"] - row["delta_top1_pretrained"]
                rows.append(row)
    frame = pd.DataFrame(rows, columns=PRETRAINING_COLUMNS)
    return frame.astype(
        {f"{c}_{s}": "Int64" for c in ("pairs", "unpaired") for s in ("pretrained", "scratch")}
    )


def display_pretraining(comparison: pd.DataFrame) -> pd.DataFrame:
    """Human-readable pre-trained vs scratch table (1 decimal)."""

    def gain(side: str) -> list[str]:
        return [
            " ".join(filter(None, [signed(d), interval_text(lo, hi), blank_if_na(v)]))
            for d, lo, hi, v in zip(
                comparison[f"delta_top1_{side}"],
                comparison[f"delta_ci_low_{side}"],
                comparison[f"delta_ci_high_{side}"],
                comparison[f"{CALL}_{side}"],
                strict=True,
            )
        ]

    def baseline(side: str) -> list[str]:
        return [
            _pm(m, s)
            for m, s in zip(
                comparison[f"baseline_top1_{side}"],
                comparison[f"baseline_top1_std_{side}"],
                strict=True,
            )
        ]

    return pd.DataFrame(
        {
            "dataset": comparison["dataset"],
            "split": comparison["split"],
            "variant": comparison["variant"],
            "pre-trained": comparison["pretrained"],
            "scratch": comparison["scratch"],
            "baseline top-1 (pre-trained)": baseline("pretrained"),
            "baseline top-1 (scratch)": baseline("scratch"),
            "Δ VMP (pre-trained)": gain("pretrained"),
            "Δ VMP (scratch)": gain("scratch"),
            "Δ scratch - Δ pre-trained": comparison["gain_difference"].map(signed),
        }
    )


PRETRAINING_NOTE = (
    "Top-1 in %. Baseline top-1: mean ± sample std over seeds ('mean' split: mean over splits). "
    "Δ VMP: paired +VMP minus baseline top-1 of that backbone with its 95% t-interval over "
    "replicate pairs and unadjusted call, as in Table 1. Last column: the gain from scratch minus the gain "
    "from the pre-trained checkpoint (positive: the motion prompt helps more without "
    "pre-training); no interval, since the two backbones' runs are not paired."
)


def write_pretraining(
    comparison: pd.DataFrame, prefix: str | Path, empty_reason: str | None = None
) -> list[Path]:
    """Write ``<prefix>_pretraining.csv`` and ``<prefix>_pretraining.md``.

    An empty ``comparison`` gives a header-only CSV and a one-line md saying why
    (``empty_reason``), so that the files always exist.
    """
    csv, md = _with_suffix(prefix, "_pretraining.csv"), _with_suffix(prefix, "_pretraining.md")
    if comparison.empty:
        reason = empty_reason or "no backbone is trained both from scratch and pre-trained"
        return [
            write_csv(csv, comparison),
            write_text(md, f"No pre-training comparison: {reason}.\n"),
        ]
    shown = display_pretraining(comparison)
    return [
        write_csv(csv, rounded(comparison)),
        write_text(md, markdown_table(shown) + f"\n\n{PRETRAINING_NOTE}\n"),
    ]
