"""The test pass (vmp.training.scoring): views averaged per video, the per-video table and the
accuracy per class, in the run's precision; fit and vmp.evaluate use this one pass."""

import pandas as pd
import pytest
import torch

from vmp import evaluate as evaluate_command
from vmp.training import fit as fit_module
from vmp.training.fit import recompute_batchnorm
from vmp.training.metrics import aggregate_views, classification_metrics
from vmp.training.scoring import evaluate, precision_context, predict, score_videos


class Probe(torch.nn.Module):
    """A BatchNorm and a linear head over the clip's mean colour; notes whether autocast is on."""

    def __init__(self, seen: list[bool]):
        super().__init__()
        self.seen = seen
        self.norm, self.head = torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2)

    def forward(self, video):
        self.seen.append(torch.is_autocast_enabled("cpu"))
        pooled = self.norm(video.float().mean((2, 3, 4)))
        return type("Out", (), {"logits": self.head(pooled)})


class Lookup(torch.nn.Module):
    """Logits written in the clip: its first value says which row of ``logits`` to give."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, video):
        return type("Out", (), {"logits": self.logits[video[:, 0, 0, 0, 0].long()]})


def test_every_pass_after_training_runs_in_the_run_precision():
    """predict (validation, test, vmp.evaluate) and precise BN run under the run's autocast; in
    32-true, as before, under none; the scores come back in float32."""
    seen = []
    batches = [
        {
            "video": torch.rand(2, 3, 2, 4, 4),
            "label": torch.tensor([0, 1]),
            "video_index": torch.tensor([0, 1]),
        }
    ]
    for precision, autocast in (("32-true", False), ("bf16-mixed", True), ("16-mixed", True)):
        seen.clear()
        probs, _, _ = predict(Probe(seen), batches, precision=precision)
        recompute_batchnorm(Probe(seen), batches, precision=precision)
        assert seen == [autocast, autocast] and probs.dtype == torch.float32
    with precision_context("bf16-mixed", "cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision_context("16", "cpu"):  # Lightning's short name of 16-mixed
        assert torch.get_autocast_dtype("cpu") == torch.float16
    with precision_context("32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")


def test_score_videos_averages_each_videos_views_and_counts_each_class():
    """Three videos of two views each, the views of a video in different batches: the table has
    one row per video, in the test table's order, with the mean of its views' softmax scores."""
    logits = torch.tensor([[4.0, 0.0], [0.0, 1.0], [0.0, 4.0], [3.0, 0.0], [0.0, 2.0], [6.0, 0.0]])
    view_row = torch.arange(6).float()[:, None, None, None, None].expand(6, 3, 1, 1, 1)
    # the loader's order: every video's first view, then every second one; c's views disagree
    index = torch.tensor([0, 1, 2, 0, 1, 2])
    labels = torch.tensor([0, 1, 1, 0, 1, 1])
    batches = [
        {"video": view_row[i : i + 4], "label": labels[i : i + 4], "video_index": index[i : i + 4]}
        for i in (0, 4)
    ]
    videos = pd.DataFrame(
        {"path": ["a.mp4", "b.mp4", "c.mp4"], "label": [0, 1, 1], "class_name": ["x", "y", "y"]},
        index=[10, 11, 12],  # a test split's own index is not the video index
    )
    metrics, table, per_class = score_videos(Lookup(logits), batches, videos)
    expected = (logits.softmax(1)[:3] + logits.softmax(1)[3:]) / 2
    assert list(table["path"]) == ["a.mp4", "b.mp4", "c.mp4"]
    assert list(table["label"]) == [0, 1, 1]
    assert list(table["prediction"]) == expected.argmax(1).tolist() == [0, 1, 0]
    assert per_class.to_dict("list") == {
        "label": [0, 1],
        "class_name": ["x", "y"],
        "videos": [1, 2],
        "correct": [1, 1],
        "accuracy": [100.0, 50.0],
    }
    assert metrics == classification_metrics(expected, torch.tensor([0, 1, 1]))
    assert metrics == evaluate(Lookup(logits), batches)
    assert metrics["top1"] == pytest.approx(200 / 3)
    probs, _, views_index = predict(Lookup(logits), batches)
    assert torch.equal(aggregate_views(probs, labels, views_index)[0], expected)


def test_score_videos_without_class_names_names_the_classes_by_number():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    batches = [
        {
            "video": torch.arange(2).float()[:, None, None, None, None].expand(2, 3, 1, 1, 1),
            "label": torch.tensor([0, 1]),
            "video_index": torch.tensor([0, 1]),
        }
    ]
    videos = pd.DataFrame({"path": ["a.mp4", "b.mp4"], "label": [0, 1]})
    metrics, table, per_class = score_videos(Lookup(logits), batches, videos)
    assert metrics["top1"] == 100.0 and list(per_class["accuracy"]) == [100.0, 100.0]
    assert list(per_class["class_name"]) == ["0", "1"] and len(table) == 2


def test_fit_and_the_evaluate_command_use_this_one_test_pass():
    assert fit_module.score_videos is score_videos and fit_module.evaluate is evaluate
    assert evaluate_command.score_videos is score_videos
    assert not hasattr(fit_module, "predict")  # no second copy in fit
