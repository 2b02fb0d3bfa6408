"""Evaluation metrics: multi-view aggregation, top-k accuracy, mean class accuracy and mAP."""

from __future__ import annotations

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
