"""Where a workflow run's time went: Snakemake's per-job benchmark files summed per rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# Benchmark folders named after what they hold rather than after their rule.
FOLDER_RULES = {"runs": "finetune"}


def rule_times(benchmarks: str | Path) -> pd.DataFrame:
    """One row per rule (the first folder below ``benchmarks``), from every job's ``.tsv`` file.

    Columns: jobs, wall_s (sum of the jobs' wall times), median_s and max_s (per job) and cpu_s
    (sum of CPU times). Jobs run side by side, so wall_s adds up to more than the run's wall time.
    The last row, ``all``, sums every rule.
    """
    root = Path(benchmarks)
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        record = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append(
            {
                "rule": FOLDER_RULES.get(folder := tsv.relative_to(root).parts[0], folder),
                "s": float(record["s"]),
                "cpu_s": float(record.get("cpu_time", float("nan"))),
            }
        )
    if not rows:
        raise FileNotFoundError(f"no Snakemake benchmark files (*.tsv) under {root}")
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("s", "size"),
        wall_s=("s", "sum"),
        median_s=("s", "median"),
        max_s=("s", "max"),
        cpu_s=("cpu_s", "sum"),
    )
    table = table.sort_values("wall_s", ascending=False)
    total = pd.DataFrame(
        {
            "jobs": [len(jobs)],
            "wall_s": [jobs["s"].sum()],
            "median_s": [jobs["s"].median()],
            "max_s": [jobs["s"].max()],
            "cpu_s": [jobs["cpu_s"].sum()],
        },
        index=["all"],
    )
    return pd.concat([table, total]).rename_axis("rule").reset_index().round(1)
