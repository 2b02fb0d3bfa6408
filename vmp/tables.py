"""Table 1: reproduced accuracies (mean +- std over seeds) beside the published ones."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from vmp.io import write_csv, write_text

KEYS = ["dataset", "split", "backbone", "variant"]
METRICS = {
    "top1": "top1",
    "top5": "top5",
    "mean_average_precision": "map",
    "mean_class_accuracy": "mca",
}


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run: its identity (from the run's settings) and its test metrics."""
    rows = []
    for path in paths:
        metrics = json.loads(Path(path).read_text())
        settings = metrics["settings"]
        rows.append(
            {key: str(settings[key]) for key in KEYS}
            | {"lambda": float(settings["lambda"]), "seed": int(settings["seed"])}
            | {short: metrics.get(name) for name, short in METRICS.items()}
            | {f"prompt_{k}": v for k, v in metrics.get("prompt", {}).items()}
            | {"path": str(path)}
        )
    if not rows:
        raise ValueError("no metrics.json files were given")
    return pd.DataFrame(rows).astype({short: float for short in METRICS.values()})


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds of every metric per (dataset, split, backbone, variant).

    Datasets with several splits also get a ``mean`` split: the mean over splits of the per-split
    means (the paper's protocol for HMDB-51); its std is the mean of the per-split stds.
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
    baseline = table[table["variant"] == "baseline"].set_index(["dataset", "split", "backbone"])[
        "top1_mean"
    ]
    keys = list(zip(table["dataset"], table["split"], table["backbone"], strict=True))
    table["delta_top1"] = table["top1_mean"].to_numpy() - baseline.reindex(keys).to_numpy()
    order = {v: i for i, v in enumerate(["baseline", "vmp", "vmp_slow", "vmp_fast", "vmp_both"])}
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
    mirrors, a tiny backbone to its full-size family); rows without a counterpart get NaN. Numbers on
    SynthMotion are not comparable in value with the published ones: they show the paper's direction.
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
                "published_delta_top1": found.get("top1", np.nan) - base.get("top1", np.nan),
            }
        )
    return pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def _signed(value: float) -> str:
    return "" if pd.isna(value) else f"{value:+.1f}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable Table 1: mean ± std, gains over the baseline, published values."""
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
            "Δ top-1": table["delta_top1"].map(_signed),
            "top-5": [
                _pm(m, s) for m, s in zip(table["top5_mean"], table["top5_std"], strict=True)
            ],
            "mAP": [_pm(m, s) for m, s in zip(table["map_mean"], table["map_std"], strict=True)],
            "paper top-1": table["published_top1"].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}"),
            "paper Δ": table["published_delta_top1"].map(_signed),
        }
    )


def write_table1(table: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """Write ``<prefix>.csv`` (all numbers), ``<prefix>.md`` and ``<prefix>.tex`` (formatted)."""
    prefix = Path(prefix)
    shown = display_table(table)
    note = (
        "Top-1/top-5/mAP in %, mean ± sample std over seeds; Δ = +VMP minus baseline. "
        "'paper' columns: published numbers on the real dataset and full-size backbone each row stands for."
    )
    return [
        write_csv(prefix.with_suffix(".csv"), table),
        write_text(prefix.with_suffix(".md"), shown.to_markdown(index=False) + f"\n\n{note}\n"),
        write_text(prefix.with_suffix(".tex"), shown.to_latex(index=False, escape=True)),
    ]
