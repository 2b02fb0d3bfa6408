"""Metrics, Table 1 aggregation and the workflow's run matrix, on hand-made numbers."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from vmp.analysis.tables import (
    _latex,
    attach_published,
    display_table,
    load_runs,
    paired_differences,
    pretraining_comparison,
    significant,
    summarise,
    write_pretraining,
    write_table1,
)
from vmp.analysis.timing import fixed_costs, rule_times
from vmp.training.metrics import aggregate_views, classification_metrics
from vmp.workflow.config import ConfigError, check_config, nested_update, validate_config
from vmp.workflow.matrix import run_matrix, training_jobs

ROOT = Path(__file__).resolve().parents[1]


def test_aggregate_views_averages_softmax_per_video():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6]])
    labels = torch.tensor([0, 0, 1, 1])
    index = torch.tensor([5, 5, 2, 2])
    scores, video_labels = aggregate_views(probs, labels, index)
    assert torch.allclose(scores, torch.tensor([[0.3, 0.7], [0.6, 0.4]]))
    assert video_labels.tolist() == [1, 0]


def test_aggregate_views_rejects_inconsistent_labels():
    with pytest.raises(ValueError, match="video 3"):
        aggregate_views(torch.ones(2, 2) / 2, torch.tensor([0, 1]), torch.tensor([3, 3]))


def test_classification_metrics_closed_form():
    # 3 videos, 6 classes: video 0 correct, video 1 second-best, video 2 ranked last.
    scores = torch.tensor(
        [
            [0.50, 0.10, 0.10, 0.10, 0.10, 0.10],
            [0.40, 0.30, 0.10, 0.10, 0.05, 0.05],
            [0.30, 0.25, 0.20, 0.15, 0.10, 0.00],
        ]
    )
    labels = torch.tensor([0, 1, 5])
    m = classification_metrics(scores, labels)
    assert m["top1"] == pytest.approx(100 / 3)
    assert m["top5"] == pytest.approx(200 / 3)
    # per class accuracy over present classes 0, 1, 5: 1, 0, 0
    assert m["mean_class_accuracy"] == pytest.approx(100 / 3)
    assert m["num_videos"] == 3


def test_top5_is_none_with_five_classes_or_fewer():
    m = classification_metrics(torch.eye(3), torch.arange(3))
    assert m["top5"] is None and m["top1"] == 100.0 and m["mean_average_precision"] == 100.0


def _write_run(tmp_path, dataset, split, variant, seed, top1, lam=2.5, backbone="x3d_tiny"):
    path = tmp_path / f"{dataset}-{split}-{backbone}-{variant}-{seed}.json"
    settings = dict(dataset=dataset, split=split, backbone=backbone, variant=variant, seed=seed)
    settings["arch"] = backbone.removesuffix("_scratch")
    settings["lambda"] = 0.0 if variant == "baseline" else lam
    metrics = dict(
        top1=top1, top5=top1 + 10, mean_average_precision=top1 - 5, mean_class_accuracy=top1
    )
    path.write_text(
        json.dumps(metrics | {"settings": settings, "prompt": {"slope": 11.0, "shift": -0.5}})
    )
    return path


@pytest.fixture
def runs(tmp_path):
    values = {
        ("1", "baseline"): [60, 64],
        ("1", "vmp"): [70, 72],
        ("2", "baseline"): [50, 50],
        ("2", "vmp"): [54, 58],
    }
    paths = [
        _write_run(tmp_path, "synth_hmdb", split, variant, seed, top1)
        for (split, variant), tops in values.items()
        for seed, top1 in enumerate(tops)
    ]
    return load_runs(paths)


def test_summarise_mean_std_delta_and_split_mean(runs):
    table = summarise(runs).set_index(["split", "variant"])
    assert table.loc[("1", "baseline"), "top1_mean"] == 62
    assert table.loc[("1", "baseline"), "top1_std"] == pytest.approx(2**0.5 * 2)
    assert table.loc[("1", "vmp"), "delta_top1"] == 9
    assert table.loc[("2", "vmp"), "delta_top1"] == 6
    assert table.loc[("mean", "vmp"), "top1_mean"] == pytest.approx((71 + 56) / 2)
    assert table.loc[("mean", "vmp"), "delta_top1"] == pytest.approx(7.5)
    assert table.loc[("1", "baseline"), "seeds"] == 2


def test_published_values_and_written_files(runs, tmp_path):
    published = pd.read_csv("config/published/table1.csv", dtype={"split": str})
    table = attach_published(
        summarise(runs), published, {"synth_hmdb": "hmdb51"}, {"x3d_tiny": "x3d"}
    )
    row = table.set_index(["split", "variant"]).loc[("1", "vmp")]
    assert row["published_top1"] == 75.8 and row["published_delta_top1"] == pytest.approx(0.8)
    mean = table.set_index(["split", "variant"]).loc[("mean", "baseline")]
    assert mean["published_top1"] == pytest.approx((75.0 + 72.6 + 73.4) / 3)
    shown = display_table(table)
    assert "71.0 ± 1.4" in shown["top-1"].tolist()
    files = write_table1(table, tmp_path / "tables" / "table1")
    assert [f.suffix for f in files] == [".csv", ".md", ".tex"]
    assert "| synth_hmdb" in files[1].read_text() and "71.0 ± 1.4" in files[1].read_text()
    assert len(pd.read_csv(files[0])) == len(table)


# Student-t quantiles t(0.975, df) for df = 1, 2, 3 (closed-form checks of the intervals).
T975 = {1: 12.706204736174707, 2: 4.302652729749464, 3: 3.182446305284263}


def _paired_runs(tmp_path, cells):
    """Write runs from {(dataset, backbone, split): {variant: {seed: top1}}}; load them."""
    paths = [
        _write_run(tmp_path, dataset, split, variant, seed, top1, backbone=backbone)
        for (dataset, backbone, split), variants in cells.items()
        for variant, tops in variants.items()
        for seed, top1 in tops.items()
    ]
    return load_runs(paths)


@pytest.fixture
def paired(tmp_path):
    """Four cells with known paired differences (one with an unpaired seed)."""
    return _paired_runs(
        tmp_path,
        {
            # diffs [2, 4, 6]: 4 +- t(2) * 2 / sqrt(3), n.s.; vmp seed 3 has no baseline
            ("synth_gym", "x3d_tiny", "1"): {
                "baseline": {0: 50, 1: 60, 2: 70},
                "vmp": {0: 52, 1: 64, 2: 76, 3: 99},
            },
            # diffs [-3, -4, -5]: -4 +- t(2) / sqrt(3), loss
            ("synth_gym", "c2d_tiny", "1"): {
                "baseline": {0: 50, 1: 50, 2: 50},
                "vmp": {0: 47, 1: 46, 2: 45},
            },
            # one seed per split, split diffs [3, 4, 5]: mean split 4 +- t(2) / sqrt(3), gain
            **{
                ("synth_hmdb", "x3d_tiny", split): {"baseline": {0: 40}, "vmp": {0: 40 + d}}
                for split, d in (("1", 3), ("2", 4), ("3", 5))
            },
            # two seeds per split: split diffs mean([2, 4]) = 3, mean([5, 5]) = 5, [1] = 1
            # (split 3's baseline seed 1 has no +VMP partner); mean split: 3 +- t(2) * 2 / sqrt(3)
            ("synth_hmdb", "c2d_tiny", "1"): {
                "baseline": {0: 30, 1: 30},
                "vmp": {0: 32, 1: 34},
            },
            ("synth_hmdb", "c2d_tiny", "2"): {
                "baseline": {0: 30, 1: 31},
                "vmp": {0: 35, 1: 36},
            },
            ("synth_hmdb", "c2d_tiny", "3"): {
                "baseline": {0: 30, 1: 20},
                "vmp": {0: 31},
            },
        },
    )


def _row(table, dataset, backbone, split, variant="vmp"):
    return table.set_index(["dataset", "backbone", "split", "variant"]).loc[
        (dataset, backbone, split, variant)
    ]


def test_paired_difference_closed_form(paired):
    table = summarise(paired)
    row = _row(table, "synth_gym", "x3d_tiny", "1")
    half = T975[2] * 2 / math.sqrt(3)
    assert row["delta_top1"] == pytest.approx(4)
    assert row["delta_sd"] == pytest.approx(2)
    assert row["delta_ci_low"] == pytest.approx(4 - half)
    assert row["delta_ci_high"] == pytest.approx(4 + half)
    assert (row["pairs"], row["unpaired"], row["unadjusted_call"]) == (3, 1, "n.s.")
    # the unpaired seed 3 counts in the +VMP mean, not in the paired difference
    assert row["top1_mean"] == pytest.approx((52 + 64 + 76 + 99) / 4)
    loss = _row(table, "synth_gym", "c2d_tiny", "1")
    assert loss["delta_top1"] == pytest.approx(-4)
    assert loss["delta_ci_high"] == pytest.approx(-4 + T975[2] / math.sqrt(3))
    assert (loss["pairs"], loss["unpaired"], loss["unadjusted_call"]) == (3, 0, "loss")
    baseline = _row(table, "synth_gym", "x3d_tiny", "1", "baseline")
    assert baseline[["delta_top1", "delta_ci_low", "delta_ci_high"]].isna().all()
    assert pd.isna(baseline["pairs"]) and pd.isna(baseline["unadjusted_call"])


def test_paired_difference_of_multi_split_datasets(paired):
    table = summarise(paired)
    mean = _row(table, "synth_hmdb", "x3d_tiny", "mean")
    assert mean["delta_top1"] == pytest.approx(4)
    assert mean["delta_ci_low"] == pytest.approx(4 - T975[2] / math.sqrt(3))
    assert (mean["pairs"], mean["unadjusted_call"]) == (3, "gain")
    one = _row(table, "synth_hmdb", "x3d_tiny", "2")  # a single pair: no interval
    assert one["delta_top1"] == 4 and one["pairs"] == 1 and one["unadjusted_call"] == "n.s."
    assert pd.isna(one["delta_ci_low"]) and pd.isna(one["delta_ci_high"])
    seeds = _row(table, "synth_hmdb", "c2d_tiny", "mean")
    assert seeds["delta_top1"] == pytest.approx(3)  # splits' paired means 3, 5 and 1
    assert seeds["delta_sd"] == pytest.approx(2)
    assert seeds["delta_ci_high"] == pytest.approx(3 + T975[2] * 2 / math.sqrt(3))
    assert (seeds["pairs"], seeds["unpaired"], seeds["unadjusted_call"]) == (3, 1, "n.s.")
    split3 = _row(table, "synth_hmdb", "c2d_tiny", "3")
    assert (split3["delta_top1"], split3["pairs"], split3["unpaired"]) == (1, 1, 1)
    split1 = _row(table, "synth_hmdb", "c2d_tiny", "1")
    assert split1["delta_ci_low"] == pytest.approx(3 - T975[1] * math.sqrt(2) / math.sqrt(2))


def test_equal_paired_differences_are_zero_variance_not_a_gain(tmp_path):
    """Three pairs that all differ by +2: the interval has width 0, and the call says why."""
    runs = _paired_runs(
        tmp_path,
        {
            ("synth_gym", "x3d_tiny", "1"): {
                "baseline": {0: 50, 1: 60, 2: 70},
                "vmp": {0: 52, 1: 62, 2: 72},
                "vmp_oracle": {0: 60, 1: 70, 2: 81},
            }
        },
    )
    table = summarise(runs)
    row = _row(table, "synth_gym", "x3d_tiny", "1")
    assert (row["delta_top1"], row["delta_sd"], row["unadjusted_call"]) == (2, 0, "zero variance")
    # the oracle (a positive control) is Table 1's last row of its cell
    assert list(table["variant"]) == ["baseline", "vmp", "vmp_oracle"]
    assert _row(table, "synth_gym", "x3d_tiny", "1", "vmp_oracle")["unadjusted_call"] == "gain"


def test_paired_differences_without_baseline_and_with_duplicates(tmp_path):
    runs = _paired_runs(tmp_path, {("synth_gym", "x3d_tiny", "1"): {"vmp": {0: 50, 1: 60}}})
    row = paired_differences(runs).iloc[0]
    assert row["pairs"] == 0 and row["unpaired"] == 2
    assert pd.isna(row["delta_top1"]) and pd.isna(row["unadjusted_call"])
    twice = pd.concat([runs, runs.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="several runs share"):
        paired_differences(twice)


def test_written_tables_round_and_leave_baseline_rows_empty(paired, tmp_path):
    published = pd.read_csv("config/published/table1.csv", dtype={"split": str})
    table = attach_published(
        summarise(paired), published, {"synth_hmdb": "hmdb51"}, {"x3d_tiny": "x3d"}
    )
    csv, md, tex = write_table1(table, tmp_path / "table1")
    shown = display_table(table)
    base = shown[shown["variant"] == "baseline"]
    for column in ("Δ top-1", "95% CI", "pairs", "unadjusted call", "paper Δ"):
        assert (base[column] == "").all(), column
    lines = md.read_text().splitlines()
    baseline_lines = [ln for ln in lines if "| baseline" in ln]
    assert len(baseline_lines) == len(base) > 0
    assert not any("-0" in ln or "+0.0" in ln for ln in baseline_lines)
    gym = shown[(shown["dataset"] == "synth_gym") & (shown["backbone"] == "x3d_tiny")].iloc[1]
    half = T975[2] * 2 / math.sqrt(3)
    assert (gym["Δ top-1"], gym["95% CI"], gym["pairs"]) == (
        "+4.0",
        f"[{4 - half:+.1f}, +{4 + half:.1f}]",
        "3",
    )
    written = pd.read_csv(csv, dtype={"split": str})
    assert written["delta_top1"].isna().sum() == (table["variant"] == "baseline").sum()
    loss = written.set_index(["dataset", "backbone", "split", "variant"]).loc[
        ("synth_gym", "c2d_tiny", "1", "vmp")
    ]
    assert loss["delta_ci_high"] == float(f"{-4 + T975[2] / math.sqrt(3):.6g}")
    assert loss["unadjusted_call"] == "loss" and loss["pairs"] == 3
    assert "verdict" not in written and "| unadjusted call " in lines[0]
    assert "not corrected for the many rows" in md.read_text()
    text = tex.read_text()
    assert text.startswith("\\begin{tabular}") and "\\toprule" in text
    assert r"$\pm$" in text and r"$\Delta$" in text and "±" not in text and "Δ" not in text
    assert "x3d\\_tiny" in text and "95\\% CI" in text


def test_csv_drops_float32_noise(tmp_path):
    paths = [
        _write_run(tmp_path, "synth_gym", "1", "baseline", 0, 25.00000074505806),
        _write_run(tmp_path, "synth_gym", "1", "vmp", 0, 30.0),
    ]
    csv = write_table1(summarise(load_runs(paths)), tmp_path / "table1")[0]
    text = csv.read_text()
    assert "25.0," in text and "25.000001" not in text  # the mean
    assert ",5.0," in text and "4.999999" not in text  # the paired difference
    assert (
        significant(33.06666564941406) == 33.0667 and significant(-0.000123456789) == -0.000123457
    )
    assert str(significant(-1e-12 * 0)) == "0.0" and math.isnan(significant(float("nan")))


def test_latex_escapes_and_uses_math_for_signs():
    shown = pd.DataFrame(
        {
            "dataset": ["a_b & c"],
            "95% CI": ["[-1.5, +2.0]"],
            "Δ top-1": ["-0.3"],
            "top-1": ["1.0 ± 0.5"],
            "note": ["#1 x-2"],
        }
    )
    tex = _latex(shown)
    assert r"a\_b \& c" in tex and r"95\% CI" in tex and r"\#1 x-2" in tex
    assert r"[$-$1.5, +2.0]" in tex and r"$\Delta$ top-1" in tex and r"1.0 $\pm$ 0.5" in tex
    assert r"$-$0.3" in tex and tex.isascii()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not found: install texlive-latex-base and texlive-latex-recommended "
    "(booktabs) to compile table1.tex",
)
def test_table1_tex_compiles_with_pdflatex(paired, tmp_path):
    published = pd.read_csv("config/published/table1.csv", dtype={"split": str})
    table = attach_published(
        summarise(paired), published, {"synth_hmdb": "hmdb51"}, {"x3d_tiny": "x3d"}
    )
    tex = write_table1(table, tmp_path / "table1")[2]
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{pdflscape}\n"
        "\\begin{document}\n\\begin{landscape}\n\\tiny\n\\input{table1.tex}\n"
        "\\end{landscape}\n\\end{document}\n"
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"
    assert "x3d_tiny" not in tex.read_text() and "x3d\\_tiny" in tex.read_text()


@pytest.fixture
def scratch(tmp_path):
    """i3d_tiny fine-tuned from its checkpoint and from scratch on one- and three-split datasets."""
    gym = {
        "i3d_tiny": ({0: 60, 1: 60, 2: 60}, {0: 61, 1: 62, 2: 63}),  # diffs [1, 2, 3]
        "i3d_tiny_scratch": ({0: 30, 1: 31, 2: 32}, {0: 35, 1: 37, 2: 39}),  # diffs [5, 6, 7]
    }
    hmdb = {
        "i3d_tiny": ([50, 50, 50], [51, 52, 53]),
        "i3d_tiny_scratch": ([20, 22, 24], [22, 25, 28]),
    }
    cells = {
        ("synth_gym", b, "1"): {"baseline": base, "vmp": vmp} for b, (base, vmp) in gym.items()
    }
    for backbone, (base, vmp) in hmdb.items():
        for split, b, v in zip("123", base, vmp, strict=True):
            cells[("synth_hmdb", backbone, split)] = {"baseline": {0: b}, "vmp": {0: v}}
    return _paired_runs(tmp_path, cells)


def test_pretraining_comparison(scratch, tmp_path):
    table = summarise(scratch)
    pairs = {"i3d_tiny_scratch": "i3d_tiny"}
    comparison = pretraining_comparison(table, pairs).set_index("dataset")
    gym = comparison.loc["synth_gym"]
    assert (gym["split"], gym["variant"], gym["pretrained"], gym["scratch"]) == (
        "1",
        "vmp",
        "i3d_tiny",
        "i3d_tiny_scratch",
    )
    assert (gym["baseline_top1_pretrained"], gym["baseline_top1_scratch"]) == (60, 31)
    assert (gym["delta_top1_pretrained"], gym["delta_top1_scratch"]) == (2, 6)
    assert gym["delta_ci_low_scratch"] == pytest.approx(6 - T975[2] / math.sqrt(3))
    assert (gym["unadjusted_call_pretrained"], gym["unadjusted_call_scratch"]) == ("n.s.", "gain")
    assert gym["gain_difference"] == 4
    hmdb = comparison.loc["synth_hmdb"]
    assert hmdb["split"] == "mean" and hmdb["pairs_scratch"] == 3
    assert (hmdb["baseline_top1_pretrained"], hmdb["baseline_top1_scratch"]) == (50, 22)
    assert hmdb["gain_difference"] == pytest.approx(3 - 2)
    csv, md = write_pretraining(comparison.reset_index(), tmp_path / "table1")
    assert (csv.name, md.name) == ("table1_pretraining.csv", "table1_pretraining.md")
    assert len(pd.read_csv(csv)) == 2
    assert "+6.0 [+3.5, +8.5] gain" in md.read_text()
    # pairs whose backbones have no runs give an empty table and a note saying why
    assert pretraining_comparison(table, {"c2d_tiny_scratch": "c2d_tiny"}).empty
    csv, md = write_pretraining(pretraining_comparison(table, {}), tmp_path / "t1", "none here")
    assert md.read_text() == "No pre-training comparison: none here.\n"
    assert pd.read_csv(csv).empty


def _table1_notebook(tmp_path):
    path = tmp_path / "table1.ipynb"
    source = Path(__file__).resolve().parents[1] / "notebooks" / "table1.py"
    subprocess.run(
        ["jupytext", "--to", "ipynb", "-o", str(path), str(source)],
        check=True,
        capture_output=True,
    )
    return path


def test_table1_notebook_writes_every_table(scratch, tmp_path):
    import papermill

    notebook = _table1_notebook(tmp_path)
    assert list(papermill.inspect_notebook(str(notebook))) == [
        "metrics",
        "published",
        "paper_names",
        "out_prefix",
        "states_prefix",
        "scratch_pairs",
    ]
    prefix = tmp_path / "tables" / "table1"
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "out.ipynb"),
        parameters={
            "metrics": sorted(str(p) for p in tmp_path.glob("*.json")),
            "out_prefix": str(prefix),
            "states_prefix": str(prefix.with_name("prompt_states")),
            "scratch_pairs": {"i3d_tiny_scratch": "i3d_tiny"},
        },
        kernel_name="python3",
        progress_bar=False,
    )
    names = sorted(p.name for p in prefix.parent.iterdir())
    assert names == sorted(
        f"{name}.{ext}"
        for name, exts in (
            ("table1", ("csv", "md", "tex")),
            ("table1_verdict", ("csv", "md")),
            ("table1_strata", ("csv", "md")),
            ("table1_pretraining", ("csv", "md")),
            ("prompt_states", ("csv", "md")),
            ("prompt_states_runs", ("csv",)),
        )
        for ext in exts
    )
    assert len(pd.read_csv(f"{prefix}_pretraining.csv")) == 2


def test_nested_update_keeps_base():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert nested_update(base, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    assert base["a"]["b"] == 1


def _config(**changes):
    config = {
        "datasets": {"synth_gym": {"format": "synthmotion", "scene": "synth_gym", "splits": ["1"]}},
        "backbones": {"x3d_tiny": {"variants": ["baseline", "vmp"]}},
        "seeds": [0, 1],
        "lambda": 2.5,
        "ablation": {
            "dataset": "synth_gym",
            "split": "1",
            "backbone": "x3d_tiny",
            "variant": "vmp",
            "lambdas": [0, 2.5],
            "seeds": [0],
        },
    }
    return nested_update(config, changes)


def test_run_matrix_shares_runs_between_table_and_ablation():
    runs = run_matrix(_config())
    assert len(runs) == 2 * 2 + 1  # table: 2 variants x 2 seeds; ablation adds lambda 0 only
    shared = [r for r in runs if r["table"] and r["ablation"]]
    assert [(r["variant"], r["lambda"], r["seed"]) for r in shared] == [("vmp", 2.5, 0)]
    assert all(r["lambda"] == 0.0 for r in runs if r["variant"] == "baseline")


def test_a_backbone_s_seeds_replace_the_global_ones_for_its_table_rows_only():
    config = _config(
        datasets={
            "synth_hmdb": {
                "format": "synthmotion",
                "scene": "synth_hmdb",
                "splits": ["1", "2"],
                "seeds": [0],
            }
        },
        backbones={
            "x3d_tiny": {"variants": ["baseline", "vmp"]},
            "c2d_tiny": {"variants": ["baseline", "vmp"], "seeds": [0, 1, 2, 3]},
        },
    )
    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    smoke["backbones"]["x3d_tiny"]["seeds"] = [0, 1, 2, 3]
    validate_config(smoke, ROOT / "config" / "schema.yaml")  # a key of the schema
    seeds = {}
    for run in run_matrix(config):
        key = (run["dataset"], run["backbone"], run["variant"], run["table"])
        seeds.setdefault(key, set()).add((run["split"], run["seed"]))
    assert seeds[("synth_gym", "c2d_tiny", "baseline", True)] == {("1", s) for s in range(4)}
    assert seeds[("synth_gym", "x3d_tiny", "baseline", True)] == {("1", 0), ("1", 1)}
    # the dataset's own seeds win: its splits are the replicates
    hmdb = {("1", 0), ("2", 0)}
    assert seeds[("synth_hmdb", "c2d_tiny", "vmp", True)] == hmdb
    # the ablation keeps its own seeds (x3d_tiny's vmp at lambda 0, seed 0)
    assert seeds[("synth_gym", "x3d_tiny", "vmp", False)] == {("1", 0)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"backbones": {"resnet_imaginary": {"variants": ["baseline"]}}},
            "backbones: unknown value 'resnet_imaginary'",
        ),
        (
            {"backbones": {"x3d_tiny": {"variants": ["vmp_slow"]}}},
            "backbones.x3d_tiny.variants: unknown value 'vmp_slow'",
        ),
        (
            {"datasets": {"synth_gym": {"scene": "synth_moon"}}},
            "datasets.synth_gym.scene: unknown value 'synth_moon'",
        ),
        ({"ablation": {"split": "7"}}, "ablation.split: unknown value '7'; allowed: 1"),
        (
            {"pretrain": {"dataset": "kinetics", "checkpoints": {}}},
            "pretrain.checkpoints: no checkpoint for x3d_tiny",
        ),
    ],
)
def test_check_config_names_key_and_allowed_values(changes, message):
    config = _config(**changes)
    if "resnet_imaginary" in str(changes):
        config["backbones"].pop("x3d_tiny")
        config["ablation"] = None
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_config(config)


def test_run_matrix_adds_the_prompt_function_comparison_outside_table_1():
    config = _config(
        prompt_functions={"backbone": "x3d_tiny", "variants": ["vmp_gamma", "vmp_sigme"]}
    )
    check_config(config)
    runs = run_matrix(config)
    compared = [r for r in runs if r["prompt_functions"]]
    assert sorted((r["variant"], r["seed"]) for r in compared) == [
        ("vmp_gamma", 0),
        ("vmp_gamma", 1),
        ("vmp_sigme", 0),
        ("vmp_sigme", 1),
    ]
    assert all(r["lambda"] == 2.5 and not r["table"] and not r["ablation"] for r in compared)
    assert len(runs) == 2 * 2 + 1 + 4


def test_run_matrix_places_the_layer_on_every_backbone_with_a_sigmoid_variant():
    config = _config(
        backbones={
            "x3d_tiny": {"variants": ["baseline", "vmp"], "lambda": 1.0},
            "slowfast_tiny": {"variants": ["baseline", "vmp_both"]},
            "c2d_tiny": {"variants": ["baseline", "vmp_gate"]},  # no paper-start partner
        },
        placement={"dataset": "synth_gym", "variant": "vmp_normalized"},
    )
    check_config(config)
    placed = [r for r in run_matrix(config) if r["placement"]]
    assert sorted((r["backbone"], r["lambda"], r["seed"]) for r in placed) == [
        ("slowfast_tiny", 2.5, 0),
        ("slowfast_tiny", 2.5, 1),
        ("x3d_tiny", 1.0, 0),
        ("x3d_tiny", 1.0, 1),
    ]
    assert all(r["variant"] == "vmp_normalized" and not r["table"] for r in placed)
    config["placement"]["dataset"] = "synth_moon"
    with pytest.raises(ConfigError, match="placement.dataset: unknown value 'synth_moon'"):
        check_config(config)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"prompt_functions": {"backbone": "x3d_tiny", "variants": ["vmp_fast"]}},
            "prompt_functions.variants: unknown value 'vmp_fast'; allowed: vmp_gamma, vmp_maxexp",
        ),
        (
            {
                "backbones": {"x3d_tiny": {"variants": ["baseline"]}},
                "prompt_functions": {"backbone": "x3d_tiny", "variants": ["vmp_gamma"]},
            },
            "prompt_functions.backbone: x3d_tiny has no `vmp` variant",
        ),
    ],
)
def test_check_config_prompt_functions(changes, message):
    config = _config(**changes)
    config["ablation"] = None
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        check_config(config)


def test_run_matrix_takes_a_dataset_s_own_seeds():
    config = _config()
    config["datasets"]["synth_gym"]["seeds"] = [7]
    runs = run_matrix(config)
    assert {r["seed"] for r in runs if r["table"]} == {7}
    assert {r["seed"] for r in runs if r["ablation"]} == {0}


def test_backbones_trained_from_scratch_need_no_checkpoint():
    config = nested_update(_config(), {"pretrain": {"dataset": "kinetics", "checkpoints": {}}})
    config["backbones"]["x3d_tiny"]["pretrained"] = False
    check_config(config)  # no "no checkpoint for x3d_tiny"


def test_rule_times_sum_snakemake_benchmarks_per_rule(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {"runs/a/1/x/vmp/lambda~2.5.tsv": (30.0, 25.0), "runs/b.tsv": (10.0, 8.0)}
    jobs |= {"synth_data/synth_gym.tsv": (5.0, 4.0)}
    for name, (wall, cpu) in jobs.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{wall}\t0:00:{wall:02.0f}\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    table = rule_times(tmp_path).set_index("rule")
    assert list(table.index) == ["finetune", "synth_data", "all"]
    assert table.loc["finetune", ["jobs", "wall_s", "median_s", "max_s", "cpu_s"]].tolist() == [
        2,
        40.0,
        20.0,
        30.0,
        33.0,
    ]
    assert table.loc["all", "wall_s"] == 45.0 and table.loc["all", "jobs"] == 3
    with pytest.raises(FileNotFoundError, match="no Snakemake benchmark files"):
        rule_times(tmp_path / "empty")


def test_fixed_costs_are_job_wall_time_less_the_runs_training_and_test(tmp_path):
    """A job found by its benchmark and its notebook's runs, wherever the relative out_dir of the
    workflow pointed (the tree was copied under tmp_path)."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    results = tmp_path / "results"
    cell_parameters = {"dataset": "synth_gym", "split": "1", "backbone": "x3d_tiny"}
    jobs = {
        "synth_gym/1/x3d_tiny": (60.0, [(20.0, 1.0), (15.0, 0.5)]),
        "synth_gym/1/x3d_tiny/ablation": (9.0, [(4.0, 1.0)]),
    }
    for job, (wall, runs) in jobs.items():
        tsv = results / "benchmarks/runs" / f"{job}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(header + f"{wall}\t0:01:00\t1\t1\t1\t1\t0\t0\t50\t{wall}\n")
        params = []
        lam = 0.0 if job.endswith("ablation") else 2.5
        for seed, (train, test) in enumerate(runs):
            out_dir = f"results/runs/synth_gym/1/x3d_tiny/vmp/lambda~{lam:g}/seed~{seed}"
            record = tmp_path / out_dir / "metrics.json"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"train_seconds": train, "test_seconds": test}))
            params.append({"variant": "vmp", "lambda_reg": lam, "seed": seed, "out_dir": out_dir})
        notebook = results / "runs" / job / "train.ipynb"
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text(
            json.dumps(
                {"metadata": {"papermill": {"parameters": {"runs": params} | cell_parameters}}}
            )
        )
    table = fixed_costs(results).set_index("job")
    assert table.loc["synth_gym/1/x3d_tiny"].tolist() == [2, 60.0, 36.5, 23.5]
    assert table.loc["synth_gym/1/x3d_tiny/ablation"].tolist() == [1, 9.0, 5.0, 4.0]
    with pytest.raises(FileNotFoundError, match="no fine-tuning job benchmarks"):
        fixed_costs(tmp_path / "empty")


def test_a_table1_cell_is_one_job_and_the_ablation_and_placement_have_their_own():
    config = _config()
    config["datasets"]["synth_hmdb"] = config["datasets"]["synth_gym"] | {
        "splits": ["1", "2"],
        "seeds": [0],
    }
    jobs = training_jobs(run_matrix(config))
    names = lambda job: [(r["variant"], r["lambda"], r["seed"]) for r in jobs[job]]  # noqa: E731
    # baseline and every variant of the cell, each seed, in the order the profile lists them
    assert names("synth_gym/1/x3d_tiny") == [
        ("baseline", 0.0, 0),
        ("baseline", 0.0, 1),
        ("vmp", 2.5, 0),
        ("vmp", 2.5, 1),
    ]
    assert names("synth_gym/1/x3d_tiny/ablation") == [("vmp", 0.0, 0)]  # its other lambda only
    assert names("synth_hmdb/2/x3d_tiny") == [("baseline", 0.0, 0), ("vmp", 2.5, 0)]
    assert sum(map(len, jobs.values())) == len(run_matrix(config))  # every run in one job
