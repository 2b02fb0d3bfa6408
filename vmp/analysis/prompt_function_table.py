"""The paper's alternative prompt functions (Fig. 3) against the learnable sigmoid, measured.

Every run of the comparison (config ``prompt_functions``) is paired with the sigmoid +VMP run of
Table 1 with the same dataset, split, backbone and seed: same data, same pre-trained start, same
seed for everything the prompt function does not change. Per dataset and prompt function the
table gives the mean top-1 and attention scores (:mod:`vmp.analysis.attention`) and the paired
difference to the sigmoid with a 95% Student-t interval over the pairs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vmp.analysis.attention import SCORES, score_run
from vmp.analysis.tables import paired_against, paired_cell
from vmp.io import write_csv, write_text
from vmp.training.record import RUN_KEYS, read_metrics

METRICS = ("top1", *SCORES)
REFERENCE = "vmp"  # the learnable sigmoid


def score_runs(runs: dict[str, str | None]) -> pd.DataFrame:
    """One row per run (run folder -> its SynthMotion scene folder, or None for a dataset without
    ground truth): settings, test top-1 and the attention scores of its prompt layer."""
    rows = []
    for run_dir, data_root in runs.items():
        metrics = read_metrics(run_dir)
        if data_root is None:
            scores = {k: metrics["settings"][k] for k in RUN_KEYS}
        else:
            (scores,) = score_run(run_dir, data_root)  # single-pathway backbones: one layer
        rows.append(scores | {"top1": metrics["top1"] / 100})
    return pd.DataFrame(rows).reindex(columns=[*RUN_KEYS, *METRICS])


def compare(rows: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, backbone and prompt function (variant): pairs, the mean of every metric, and
    for the alternatives the mean paired difference to the sigmoid with its interval and the
    top-1 verdict (:func:`vmp.analysis.tables.paired_against`). Top-1 is a fraction like the shares, so
    every difference and its interval lie in [-1, 1].
    """
    return paired_against(
        rows,
        "variant",
        REFERENCE,
        pair=["split", "seed"],
        groups=["dataset", "backbone"],
        metrics=METRICS,
        bounds=(-1.0, 1.0),
    )


def write_tables(rows: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>_runs.csv`` (one row per run), ``<prefix>.csv`` (the comparison) and
    ``<prefix>.md`` (value and paired difference to the sigmoid [interval], in %)."""
    prefix = Path(prefix)
    shown = summary[["dataset", "backbone", "variant", "pairs"]].copy()
    shown["variant"] = shown["variant"].str.removeprefix("vmp_").replace({REFERENCE: "sigmoid"})
    for metric in ("top1", "object_share", "background_share", "precision", "recall", "variation"):
        shown[metric.replace("_", " ")] = [
            paired_cell(row, metric, show_delta=row["variant"] != REFERENCE)
            for _, row in summary.iterrows()
        ]
    shown["top-1 vs sigmoid"] = summary["verdict"].fillna("").to_numpy()
    note = (
        "\n\nPrompt function in front of the backbone (sigmoid: the learnable slope and shift of "
        "the +VMP rows of Table 1; gamma, maxexp, sigme, asinhe: the paper's Fig. 3, each with a "
        "learnable eta). Top-1, shares, precision and recall in %; variation as Eq. 6. Each value "
        "is the mean over replicates; in brackets the mean paired difference to the sigmoid run of "
        "the same dataset, split and seed with a 95% Student-t interval.\n"
    )
    return [
        write_csv(prefix.with_name(prefix.name + "_runs.csv"), rows),
        write_csv(prefix.with_suffix(".csv"), summary),
        write_text(prefix.with_suffix(".md"), shown.to_markdown(index=False) + note),
    ]
