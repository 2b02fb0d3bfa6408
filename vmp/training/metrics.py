"""Evaluation metrics: multi-view aggregation, top-k accuracy, mean class accuracy, mAP, and the
per-video scores, per-class accuracy and confusion matrix every run keeps."""

from __future__ import annotations

import pandas as pd
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_average_precision,
)


def aggregate_views(
    probs: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the softmax scores of every view (temporal clip x spatial crop) of each video.

    Args:
        probs: (V, K) softmax scores, one row per view.
        labels: (V,) label of the video each view comes from.
        video_index: (V,) index of that video; views of one video share it.

    Returns:
        (N, K) averaged scores and (N,) labels, ordered by video index.
    """
    videos, inverse = torch.unique(video_index, sorted=True, return_inverse=True)
    summed = torch.zeros(len(videos), probs.shape[1], dtype=probs.dtype).index_add_(
        0, inverse, probs
    )
    counts = torch.bincount(inverse, minlength=len(videos)).to(probs.dtype)
    video_labels = torch.empty(len(videos), dtype=labels.dtype).scatter_(0, inverse, labels)
    mismatched = video_labels[inverse] != labels
    if mismatched.any():
        bad = int(video_index[mismatched][0])
        raise ValueError(
            f"views of video {bad} carry different labels; check the dataset's view order"
        )
    return summed / counts[:, None], video_labels


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, float | None]:
    """Top-1, top-5, mean class accuracy and mean average precision (macro over classes), in percent.

    Top-5 is None when there are 5 classes or fewer (it would be 100 by construction). Classes absent
    from ``labels`` are left out of the macro averages.
    """
    num_classes = scores.shape[1]
    present = torch.bincount(labels, minlength=num_classes) > 0

    def macro(per_class: torch.Tensor) -> float:
        return 100.0 * float(per_class[present].mean())

    top5 = None
    if num_classes > 5:
        top5 = 100.0 * float(
            multiclass_accuracy(scores, labels, num_classes, average="micro", top_k=5)
        )
    return {
        "top1": 100.0 * float(multiclass_accuracy(scores, labels, num_classes, average="micro")),
        "top5": top5,
        "mean_class_accuracy": macro(
            multiclass_accuracy(scores, labels, num_classes, average="none")
        ),
        "mean_average_precision": macro(
            multiclass_average_precision(scores, labels, num_classes, average="none")
        ),
        "num_videos": int(labels.numel()),
    }


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def video_scores(scores: torch.Tensor, labels: torch.Tensor, videos: pd.DataFrame) -> pd.DataFrame:
    """One row per test video: its path, label, predicted class and averaged softmax scores.

    ``videos`` holds the test table's rows of these videos (column ``path``), in the order of
    ``scores`` (:func:`aggregate_views` orders by video index). Scores stay float32, written as
    their shortest exact text, so every metric can be recomputed and runs ensembled.
    """
    table = pd.DataFrame(
        {
            "path": videos["path"].astype(str).to_numpy(),
            "label": labels.numpy(),
            "prediction": scores.argmax(1).numpy(),
        }
    )
    probabilities = pd.DataFrame(
        scores.float().numpy(), columns=[f"score_{k}" for k in range(scores.shape[1])]
    )
    return pd.concat([table, probabilities], axis=1)


def per_class_accuracy(
    table: pd.DataFrame, class_names: dict[int, str] | None = None
) -> pd.DataFrame:
    """Per class of a :func:`video_scores` table: its videos, those predicted right and the
    accuracy in percent (classes without a test video are left out)."""
    correct = table["prediction"] == table["label"]
    grouped = correct.groupby(table["label"])
    out = pd.DataFrame({"videos": grouped.size(), "correct": grouped.sum()})
    out["accuracy"] = 100.0 * out["correct"] / out["videos"]
    out.index.name = "label"
    out = out.reset_index()
    names = class_names or {}
    out.insert(1, "class_name", [names.get(int(k), str(k)) for k in out["label"]])
    return out


def scores_from_table(table: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """The (N, K) scores and (N,) labels of a :func:`video_scores` table, for
    :func:`classification_metrics` or an ensemble of runs."""
    columns = [c for c in table.columns if c.startswith("score_")]
    columns.sort(key=lambda c: int(c.removeprefix("score_")))
    return (
        torch.tensor(table[columns].to_numpy(), dtype=torch.float32),
        torch.tensor(table["label"].to_numpy(), dtype=torch.long),
    )
