"""Where a workflow run's time went: Snakemake's per-job benchmark files summed per rule."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vmp.training.record import run_name

# Benchmark folders named after what they hold rather than after their rule.
FOLDER_RULES = {"runs": "finetune"}


def _benchmark_record(tsv: Path) -> pd.Series:
    """The last (latest) measurement in one of Snakemake's benchmark files."""
    return pd.read_csv(tsv, sep="\t").iloc[-1]


def rule_times(benchmarks: str | Path) -> pd.DataFrame:
    """One row per rule (the first folder below ``benchmarks``), from every job's ``.tsv`` file.

    Columns: jobs, wall_s (sum of the jobs' wall times), median_s and max_s (per job) and cpu_s
    (sum of CPU times). Jobs run side by side, so wall_s adds up to more than the run's wall time.
    The last row, ``all``, sums every rule.
    """
    root = Path(benchmarks)
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        record = _benchmark_record(tsv)
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


def fixed_costs(results: str | Path) -> pd.DataFrame:
    """Per fine-tuning job of a finished results folder: its wall time (Snakemake's benchmark) less
    the training and test seconds its runs' records report, i.e. what a job pays outside its runs'
    optimiser steps and test passes (kernel start, imports, data and model set-up, precise BN,
    plots, keeping the records).

    A job is found by its benchmark ``benchmarks/runs/<job>.tsv`` and its executed notebook
    ``runs/<job>/train.ipynb``, whose papermill parameters list its runs. A run restored from a
    kept record counts its first training's seconds, so only trees trained from nothing give a
    job's true fixed cost. Columns: job, runs, wall_s, train_test_s, fixed_s.
    """
    root = Path(results)
    benchmarks = root / "benchmarks" / "runs"
    rows = []
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        job = tsv.relative_to(benchmarks).with_suffix("").as_posix()
        notebook = root / "runs" / job / "train.ipynb"
        params = json.loads(notebook.read_text())["metadata"]["papermill"]["parameters"]
        work = 0.0
        for run in params["runs"]:
            # the run's folder below this results folder, wherever the workflow's (relative)
            # out_dir pointed when it ran
            name = run_name(
                params["dataset"],
                params["split"],
                params["backbone"],
                run["variant"],
                run["lambda_reg"],
                run["seed"],
            )
            metrics = json.loads((root / "runs" / name / "metrics.json").read_text())
            work += metrics["train_seconds"] + metrics["test_seconds"]
        wall = float(_benchmark_record(tsv)["s"])
        rows.append({"job": job, "runs": len(params["runs"]), "wall_s": wall, "train_test_s": work})
    if not rows:
        raise FileNotFoundError(f"no fine-tuning job benchmarks (*.tsv) under {benchmarks}")
    table = pd.DataFrame(rows)
    table["fixed_s"] = table["wall_s"] - table["train_test_s"]
    return table.round(1)
