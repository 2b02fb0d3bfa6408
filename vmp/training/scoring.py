"""The test pass: a trained model scored on every view of every video, outside the Trainer.

::

    loader of views (T temporal windows x S spatial crops per video, in the dataset's order)
        -> predict: model(clip).logits.softmax, under the run's precision (its autocast)
        -> aggregate_views: the softmax averaged over each video's views (vmp.training.metrics)
        -> score_videos: metrics (top-1, top-5, mean class accuracy, mAP),
                         one row per video (test_scores.csv), accuracy per class (per_class.csv)

:func:`vmp.training.fit.fit` runs it on the validation and test splits after training (in this
process alone, also after a DDP run) and :mod:`vmp.evaluate` on a finished run's ``model.pt``;
with the same model, views, data and precision both write the same numbers.
"""

from __future__ import annotations

import contextlib

import pandas as pd
import torch
from torch.utils.data import DataLoader

from vmp.training.metrics import (
    aggregate_views,
    classification_metrics,
    per_class_accuracy,
    video_scores,
)


def precision_context(precision: str | int, device: torch.device | str = "cpu"):
    """The autocast a Lightning ``precision`` runs a model's forward under, for the passes run
    outside the Trainer (precise BN, the final validation and test, ``vmp.evaluate``).

    ``16-mixed`` and ``bf16-mixed`` autocast to float16 or bfloat16 on ``device``'s type, as
    Lightning's ``MixedPrecision`` does; every other precision (``32-true``; the ``-true`` ones
    whose weights are already converted) runs as it is.
    """
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(
        {"16": "16-mixed", "bf16": "bf16-mixed"}.get(str(precision), str(precision))
    )
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` on ``device``, the copy overlapping the computation where it can."""
    # From page-locked memory (make_loader pins batches where CUDA is available) the copy
    # overlaps the computation; from pageable memory non_blocking is a plain copy.
    return tensor.to(device, non_blocking=True)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    precision: str | int = "32-true",
):
    """Softmax scores (float32), labels and video indices of every item (view) of ``loader``,
    the model run under ``precision`` (:func:`precision_context`)."""
    model.eval().to(device)
    probs, labels, index = [], [], []
    with precision_context(precision, device):
        for batch in loader:
            logits = model(to_device(batch["video"], device)).logits
            probs.append(logits.float().softmax(1).cpu())
            labels.append(batch["label"])
            index.append(batch["video_index"])
    return torch.cat(probs), torch.cat(labels), torch.cat(index)


def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device | str = "cpu",
    precision: str | int = "32-true",
) -> dict:
    """Multi-view evaluation: softmax averaged over each video's views, then the metrics."""
    scores, labels = aggregate_views(*predict(model, loader, device, precision))
    return classification_metrics(scores, labels)


def score_videos(
    model: torch.nn.Module,
    loader: DataLoader,
    videos: pd.DataFrame,
    device: torch.device | str = "cpu",
    precision: str | int = "32-true",
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Multi-view test of ``loader`` (a :class:`vmp.data.clips.ClipDataset` over the table
    ``videos``) under ``precision``: the metrics, one row per video
    (:func:`vmp.training.metrics.video_scores`) and the accuracy per class."""
    probs, labels, index = predict(model, loader, device, precision)
    scores, video_labels = aggregate_views(probs, labels, index)
    rows = videos.reset_index(drop=True).iloc[torch.unique(index, sorted=True).numpy()]
    table = video_scores(scores, video_labels, rows)
    names = (
        dict(zip(videos["label"].astype(int), videos["class_name"].astype(str), strict=True))
        if "class_name" in videos
        else None
    )
    return classification_metrics(scores, video_labels), table, per_class_accuracy(table, names)
