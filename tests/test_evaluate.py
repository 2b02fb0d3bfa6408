"""Per-video scores, per-class accuracy, TensorBoard events and re-scoring a trained run."""

import json
import shutil

import pandas as pd
import pytest
import torch
from helpers import TINY_CLIP, tiny_run_settings
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vmp import evaluate
from vmp.data.official import load_splits
from vmp.training.metrics import (
    classification_metrics,
    confusion_matrix,
    per_class_accuracy,
    scores_from_table,
    video_scores,
)
from vmp.training.record import DamagedRun, read_scores
from vmp.training.run import train_run


@pytest.fixture(scope="module")
def trained(tiny_scene, tmp_path_factory):
    """A finished 2-epoch run with 2 temporal test views (4 classes, 8 test videos)."""
    out = tmp_path_factory.mktemp("evaluate") / "run"
    metrics = train_run(
        **tiny_run_settings(
            tiny_scene,
            out_dir=str(out),
            clip=TINY_CLIP | {"num_temporal_clips": 2},
            optim={"epochs": 2, "batch_size": 4, "lr": 0.05},
        )
    )
    return out, metrics


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert torch.equal(confusion_matrix(predictions, labels, 3), expected)


def test_video_scores_and_per_class_accuracy_recompute_the_metrics():
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 1, 1, 2])
    table = video_scores(scores, labels, pd.DataFrame({"path": ["a", "b", "c", "d"]}))
    assert list(table["prediction"]) == [0, 1, 0, 2]
    back_scores, back_labels = scores_from_table(table)
    assert torch.equal(back_scores, scores) and torch.equal(back_labels, labels)
    per_class = per_class_accuracy(table, {0: "run", 1: "walk", 2: "jump"})
    assert per_class.to_dict("list") == {
        "label": [0, 1, 2],
        "class_name": ["run", "walk", "jump"],
        "videos": [1, 2, 1],
        "correct": [1, 1, 1],
        "accuracy": [100.0, 50.0, 100.0],
    }
    assert classification_metrics(scores, labels)["mean_class_accuracy"] == pytest.approx(
        per_class["accuracy"].mean()
    )


def test_a_run_keeps_its_per_video_scores_and_per_class_accuracy(trained):
    out, metrics = trained
    record = json.loads((out / "metrics.json").read_text())
    assert {"test_scores.csv", "per_class.csv"} <= set(record["files"])
    table = read_scores(out)
    assert len(table) == metrics["num_videos"] == 8
    assert table["path"].is_unique
    recomputed = classification_metrics(*scores_from_table(table))
    for key in ("top1", "mean_class_accuracy", "mean_average_precision"):
        assert recomputed[key] == pytest.approx(metrics[key], abs=1e-4)
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["videos"].sum() == 8
    assert 100 * per_class["correct"].sum() / 8 == pytest.approx(metrics["top1"])
    test = load_splits("synthmotion", record["settings"]["data_root"], "1")["test"]
    names = test.drop_duplicates("label").set_index("label")["class_name"]
    assert list(per_class["class_name"]) == [names[k] for k in per_class["label"]]
    assert record["settings"]["dataset_format"] == "synthmotion"


def test_a_changed_scores_file_is_caught(trained, tmp_path):

    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    text = (copy / "test_scores.csv").read_text()
    (copy / "test_scores.csv").write_text(text.replace("0.", "0.9", 1))
    with pytest.raises(DamagedRun, match="test_scores.csv"):
        read_scores(copy)


def test_tensorboard_events_hold_every_step_epoch_and_the_test(trained):
    out, metrics = trained
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "epoch/val_top1", "epoch/slope", "test/top1"} <= tags
    steps = [e.step for e in events.Scalars("train/loss")]
    per_epoch = metrics["settings"]["train_videos"] // 4  # batch 4, last partial batch dropped
    assert steps == list(range(2 * per_epoch))
    assert [e.value for e in events.Scalars("test/top1")] == [pytest.approx(metrics["top1"])]
    history = pd.read_csv(out / "history.csv")
    assert [e.value for e in events.Scalars("epoch/val_top1")] == pytest.approx(
        list(history["val_top1"])
    )


def test_evaluate_reproduces_the_recorded_top1_and_writes_beside_the_run(trained, capsys):
    out, metrics = trained
    record = (out / "metrics.json").read_bytes()
    assert evaluate.main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2x1 views" in printed and f"top1 {metrics['top1']:.2f}" in printed
    result = json.loads((out / "eval" / "views~2x1" / "metrics.json").read_text())
    assert result["top1"] == pytest.approx(metrics["top1"])
    assert result["precision"] == metrics["execution"]["precision"] == "32-true"  # the run's
    assert result["mean_average_precision"] == pytest.approx(metrics["mean_average_precision"])
    assert (out / "metrics.json").read_bytes() == record  # the run's record is untouched


def test_evaluate_with_other_views_writes_its_own_folder(trained):
    out, _ = trained
    result = evaluate.evaluate_run(out, views=(1, 1))
    assert result["views"] == "1x1" and result["num_videos"] == 8
    assert len(pd.read_csv(out / "eval" / "views~1x1" / "test_scores.csv")) == 8


def test_evaluate_rejects_bad_views_and_unrecorded_data(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate.main([str(trained[0]), "--views", "ten"])
    assert stop.value.code == 2
    assert "e.g. 10x3" in capsys.readouterr().err

    old = tmp_path / "old"
    shutil.copytree(trained[0], old)
    record = json.loads((old / "metrics.json").read_text())
    for key in ("data_root", "dataset_format"):
        del record["settings"][key]
    (old / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="pass --data-root and --dataset-format"):
        evaluate.evaluate_run(old)


def test_confusion_figure_counts_every_seed_video(trained, tmp_path):
    from vmp.analysis.figures import confusion_figure, save_figure

    out, metrics = trained
    figure = confusion_figure([out, out], title="two copies")
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (4, 4)
    assert image.sum(1).tolist() == pytest.approx([100.0] * 4)  # rows in % of their videos
    assert f"2 runs, 16 test videos, top-1 {metrics['top1']:.1f}" in figure.axes[0].get_title()
    (png,) = save_figure(figure, tmp_path / "confusion", formats=("png",))
    assert png.read_bytes().startswith(b"\x89PNG") and not (tmp_path / "confusion.pdf").exists()


def test_the_runs_model_scores_its_recorded_top1_in_its_precision(trained):
    """The test pass (vmp.training.scoring, as fit ran it) on the run's own model, test set and
    precision gives the top-1 the run recorded."""
    from vmp.data.clips import ClipDataset, ClipSpec, make_loader
    from vmp.training.record import load_model
    from vmp.training.scoring import evaluate as evaluate_loader

    out, metrics = trained
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    test = load_splits("synthmotion", settings["data_root"], "1")["test"]
    spec = ClipSpec.from_config(settings["clip"])
    loader = make_loader(
        ClipDataset(test, spec, train=False), batch_size=4, shuffle=False, num_workers=0, seed=0
    )
    scored = evaluate_loader(load_model(out), loader, precision=metrics["execution"]["precision"])
    assert scored["top1"] == metrics["top1"]
