"""Metrics, Table 1 aggregation and the workflow's run matrix, on hand-made numbers."""

import json

import pandas as pd
import pytest
import torch

from vmp.metrics import aggregate_views, classification_metrics
from vmp.tables import attach_published, display_table, load_runs, summarise, write_table1
from vmp.workflow import ConfigError, check_config, nested_update, run_matrix


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


def _write_run(tmp_path, dataset, split, variant, seed, top1, lam=2.5):
    path = tmp_path / f"{dataset}-{split}-{variant}-{seed}.json"
    settings = dict(dataset=dataset, split=split, backbone="x3d_tiny", variant=variant, seed=seed)
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
