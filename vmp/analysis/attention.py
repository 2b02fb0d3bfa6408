"""Attention measured against SynthMotion's ground truth: where the prompt layer looks.

The layer's map A_t (t = 0 .. T-1) weighs the difference of frames t and t+1, so what moves for
the class in A_t is the class object in frame t or in frame t+1: its *motion region*. Per clip:

* ``object_share``, ``distractor_share``, ``background_share``: the attention mass on the motion
  region, on the distractors' (outside the motion region) and on the rest; they sum to 1.
* ``precision``, ``recall``: of the thresholded map (A >= threshold) against the motion region.
* ``variation``: Eq. 6's temporal variation of the map (mean of (A_{t+1} - A_t)^2).

Masks come from :class:`vmp.data.clips.ClipDataset` with ``masks=True`` (soft after resizing; a pixel
belongs to a region where its mask is at least 0.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from vmp.analysis.stats import t_interval
from vmp.analysis.tables import paired_against, paired_cell, score_format
from vmp.data.clips import ClipDataset, ClipSpec, load_decoded, make_loader
from vmp.data.official import load_splits
from vmp.io import write_csv, write_text
from vmp.layer.prompt import temporal_variation
from vmp.training.record import RUN_KEYS, load_model, read_metrics

SCORES = (
    "object_share",
    "distractor_share",
    "background_share",
    "precision",
    "recall",
    "variation",
)


def motion_regions(object_mask: Tensor, distractor_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean (N, T, H, W) regions of T+1-frame masks (N, T+1, H, W): the class object in frame t
    or t+1, and the distractors in frame t or t+1 outside the object's region."""
    obj = object_mask >= 0.5
    distractor = distractor_mask >= 0.5
    region = obj[:, 1:] | obj[:, :-1]
    return region, (distractor[:, 1:] | distractor[:, :-1]) & ~region


def attention_scores(
    attention: Tensor, object_mask: Tensor, distractor_mask: Tensor, threshold: float = 0.5
) -> dict[str, Tensor]:
    """Per-clip scores (each a (N,) tensor, see the module doc) of attention maps (N, T, H, W).

    Precision is NaN for a clip whose map is nowhere above ``threshold``, recall for a clip whose
    object is nowhere in frame.
    """
    if attention.dim() != 4 or object_mask.shape != distractor_mask.shape:
        raise ValueError(
            f"attention_scores: attention {tuple(attention.shape)} must be (N, T, H, W) and the "
            f"masks {tuple(object_mask.shape)}, {tuple(distractor_mask.shape)} both (N, T+1, H, W)"
        )
    n, t, h, w = attention.shape
    if tuple(object_mask.shape) != (n, t + 1, h, w):
        raise ValueError(
            f"attention_scores: masks {tuple(object_mask.shape)} do not fit attention "
            f"{tuple(attention.shape)}; expected ({n}, {t + 1}, {h}, {w})"
        )
    region, distractor = motion_regions(object_mask, distractor_mask)
    a = attention.float()
    mass = a.sum((1, 2, 3)).clamp_min(1e-12)
    object_share = (a * region).sum((1, 2, 3)) / mass
    distractor_share = (a * distractor).sum((1, 2, 3)) / mass
    above = a >= threshold
    hits = (above & region).sum((1, 2, 3)).float()
    return {
        "object_share": object_share,
        "distractor_share": distractor_share,
        "background_share": 1 - object_share - distractor_share,
        "precision": hits / above.sum((1, 2, 3)).float(),
        "recall": hits / region.sum((1, 2, 3)).float(),
        "variation": temporal_variation(a, reduction="none"),
    }


@torch.no_grad()
def score_model(
    model: torch.nn.Module, batches: Iterable[dict], device: torch.device | str = "cpu"
) -> dict[str, dict[str, float]]:
    """Mean scores over all clips of ``batches`` (items of a ``masks=True`` ClipDataset) for each
    prompt layer of a :class:`vmp.models.VideoClassifier`: pathway -> score -> mean (NaNs, see
    :func:`attention_scores`, left out of the mean). Empty for a model without prompts."""
    names = list(getattr(model, "prompt_layers", {}))
    if not names:
        return {}
    strides = {p.name: p.stride for p in model.pathways}
    model.eval().to(device)
    sums = {name: {k: 0.0 for k in SCORES} for name in names}
    counts = {name: {k: 0 for k in SCORES} for name in names}
    for batch in batches:
        out = model(batch["video"].to(device))
        for name, attention in zip(names, out.attentions, strict=True):
            step = strides[name]
            scores = attention_scores(
                attention.cpu(),
                batch["object_mask"][:, ::step],
                batch["distractor_mask"][:, ::step],
            )
            for key, values in scores.items():
                finite = values[torch.isfinite(values)]
                sums[name][key] += float(finite.sum())
                counts[name][key] += len(finite)
    return {
        name: {
            k: sums[name][k] / counts[name][k] if counts[name][k] else float("nan") for k in SCORES
        }
        for name in names
    }


def score_run(run_dir: str | Path, data_root: str | Path, batch_size: int = 32) -> list[dict]:
    """Scores of a finished +VMP SynthMotion run on its test clips, one row per prompt layer
    (dataset, split, backbone, variant, lambda, seed, pathway and the mean of each score)."""
    settings = read_metrics(run_dir)["settings"]
    spec = ClipSpec.from_config(settings["clip"]).single_view()
    test = load_splits("synthmotion", data_root, str(settings["split"]))["test"]
    model = load_model(run_dir)
    data = ClipDataset(
        test,
        spec,
        train=False,
        masks=True,
        cache_frames=True,
        decoded=load_decoded(data_root),
        mask_channel=model.needs_masks,  # the oracle's map is the ground truth it is given
    )
    loader = make_loader(data, batch_size=batch_size, shuffle=False, num_workers=0, seed=0)
    return [
        {k: settings[k] for k in RUN_KEYS} | {"pathway": pathway} | scores
        for pathway, scores in score_model(model, loader).items()
    ]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t-interval over replicates (seeds, and splits) of every score, per dataset,
    backbone, variant, lambda and pathway; every score lies in [0, 1] and so does its interval
    (:func:`vmp.analysis.stats.t_interval` with bounds)."""
    groups = ["dataset", "backbone", "variant", "lambda", "pathway"]
    out = []
    for key, group in rows.groupby(groups, sort=True):
        row = dict(zip(groups, key, strict=True)) | {"replicates": len(group)}
        for score in SCORES:
            interval = t_interval(group[score].dropna(), bounds=(0.0, 1.0))
            row |= {
                f"{score}_mean": interval["mean"],
                f"{score}_ci_low": interval["low"],
                f"{score}_ci_high": interval["high"],
            }
        out.append(row)
    return pd.DataFrame(out)


def lambda_effects(rows: pd.DataFrame) -> pd.DataFrame:
    """Fig. 6's claim as numbers: every lambda against lambda 0, paired on split and seed, per
    dataset, backbone, variant and pathway that has lambda-0 runs (temporal variation first, so
    ``verdict`` says whether the regulariser made the attention steadier)."""
    groups = ["dataset", "backbone", "variant", "pathway"]
    with_zero = rows.groupby(groups)["lambda"].transform(lambda lam: (lam == 0).any())
    metrics = ["variation", *[s for s in SCORES if s != "variation"]]
    return paired_against(
        rows[with_zero],
        "lambda",
        0.0,
        pair=["split", "seed"],
        groups=groups,
        metrics=metrics,
        bounds=(-1.0, 1.0),
    )


def _lambda_markdown(effects: pd.DataFrame) -> str:
    shown = effects[["dataset", "backbone", "variant", "pathway", "lambda", "pairs"]].copy()
    for score in ("variation", "object_share", "recall", "precision"):
        shown[score.replace("_", " ")] = [
            paired_cell(
                row, score, show_delta=row["lambda"] != 0 and pd.notna(row[f"delta_{score}_low"])
            )
            for _, row in effects.iterrows()
        ]
    shown["variation vs lambda 0"] = effects["verdict"].fillna("").to_numpy()
    return (
        "\n\n### Every lambda against lambda 0 (Fig. 6)\n\n"
        + shown.to_markdown(index=False)
        + "\n\nMean over replicates; in brackets the mean paired difference to the lambda-0 run "
        "of the same split and seed with a 95% Student-t interval cut to [-1, 1]; 'loss' in the "
        "last column: "
        "the regulariser lowered the temporal variation significantly.\n"
    )


def write_tables(rows: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """``<prefix>_runs.csv`` (one row per run and prompt layer), ``<prefix>.csv`` (the summary),
    ``<prefix>_lambda.csv`` (:func:`lambda_effects`, empty without lambda-0 runs) and
    ``<prefix>.md`` (the summary as mean [interval], in %, then the lambda effects)."""
    prefix = Path(prefix)
    shown = summary[["dataset", "backbone", "variant", "lambda", "pathway", "replicates"]].copy()
    for score in SCORES:
        scale, form = score_format(score)
        mean, low, high = (
            summary[f"{score}_{part}"] * scale for part in ("mean", "ci_low", "ci_high")
        )
        shown[score.replace("_", " ")] = [
            form.format(m) + (f" [{form.format(lo)}, {form.format(hi)}]" if pd.notna(lo) else "")
            for m, lo, hi in zip(mean, low, high, strict=True)
        ]
    note = (
        "\n\nShares, precision and recall in %; variation as Eq. 6 (mean of (A_{t+1} - A_t)^2). "
        "Mean over replicates (seeds; splits for multi-split scenes) with a 95% Student-t "
        "interval, cut to the score's range [0, 1] (vmp.analysis.stats). The motion region of map t is the class object in frame t or t+1; distractor "
        "pixels inside it count for the object.\n"
    )
    effects = lambda_effects(rows) if (rows["lambda"] == 0).any() else pd.DataFrame()
    return [
        write_csv(prefix.with_name(prefix.name + "_runs.csv"), rows),
        write_csv(prefix.with_suffix(".csv"), summary),
        write_csv(prefix.with_name(prefix.name + "_lambda.csv"), effects),
        write_text(
            prefix.with_suffix(".md"),
            shown.to_markdown(index=False)
            + note
            + (_lambda_markdown(effects) if len(effects) else ""),
        ),
    ]
