"""The prompt-function comparison: pairing with the sigmoid runs and the tables it writes."""

import math

import pandas as pd
import pytest

from vmp.analysis.prompt_function_table import METRICS, compare, write_tables


def _rows():
    """Sigmoid and gamma runs of one dataset: seeds 0-2 paired, a gamma seed 3 without partner."""
    rows = []
    for variant, top1 in (("vmp", [0.50, 0.60, 0.70]), ("vmp_gamma", [0.40, 0.60, 0.50, 0.90])):
        for seed, value in enumerate(top1):
            row = {"dataset": "synth_gym", "split": "1", "backbone": "i3d_tiny", "seed": seed}
            row |= {"variant": variant, "lambda": 2.5} | {m: 0.25 for m in METRICS}
            rows.append(row | {"top1": value, "recall": 0.1 * seed})
    return pd.DataFrame(rows)


def test_alternatives_are_paired_with_the_sigmoid_run_of_the_same_seed():
    summary = compare(_rows()).set_index("variant")
    assert list(summary.index) == ["vmp", "vmp_gamma"]
    assert summary.loc["vmp", "pairs"] == 3 and summary.loc["vmp_gamma", "pairs"] == 3
    assert summary.loc["vmp", "top1"] == pytest.approx(0.6)
    assert summary.loc["vmp_gamma", "top1"] == pytest.approx(0.6)  # all four gamma runs
    # paired differences -0.1, 0.0, -0.2: mean -0.1, sd 0.1, t(0.975, 2) = 4.3027
    half = 4.302653 * 0.1 / math.sqrt(3)
    gamma = summary.loc["vmp_gamma"]
    assert gamma["delta_top1"] == pytest.approx(-0.1)
    assert gamma["delta_top1_low"] == pytest.approx(-0.1 - half, abs=1e-6)
    assert gamma["delta_top1_high"] == pytest.approx(-0.1 + half, abs=1e-6)
    assert gamma["verdict"] == "n.s."
    assert gamma["delta_recall"] == pytest.approx(0.0)  # same recall per seed on both sides
    assert pd.isna(summary.loc["vmp", "delta_top1"])


def test_two_sigmoid_runs_for_one_replicate_are_an_error():
    rows = _rows()
    rows = pd.concat([rows, rows[rows["variant"] == "vmp"].head(1)])
    with pytest.raises(
        ValueError, match="several variant=vmp runs share dataset, backbone, split, seed"
    ):
        compare(rows)


def test_tables_show_value_and_paired_difference_in_percent(tmp_path):
    rows = _rows()
    paths = write_tables(rows, compare(rows), tmp_path / "prompt_functions")
    assert [p.name for p in paths] == [
        "prompt_functions_runs.csv",
        "prompt_functions.csv",
        "prompt_functions.md",
    ]
    markdown = paths[2].read_text()
    sigmoid, gamma = (
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if "synth_gym" in line
    )
    assert sigmoid[2:5] == ["sigmoid", "3", "60.0"] and sigmoid[-1] == ""
    assert gamma[2:5] == ["gamma", "3", "60.0 (-10.0 [-34.8, 14.8])"] and gamma[-1] == "n.s."
    assert len(pd.read_csv(paths[0])) == 7
