"""Re-score a trained run without training: ``python -m vmp.evaluate RUN_DIR [--views TxS]``.

::

    RUN_DIR/metrics.json ("settings") -> model (model.pt, verified) + test split (its data root)
        -> multi-view test (T temporal windows x S spatial crops, default: the run's own)
        -> RUN_DIR/eval/views~TxS/{metrics.json, test_scores.csv, per_class.csv}

The run's own record is never touched. The model runs in the run's precision (the autocast of a
mixed precision, as its test did; ``--precision`` overrides it). With the run's own views, data
and precision the new top-1 equals the recorded one (tested), so this also checks that a run
folder still reproduces its number.
Runs made before ``dataset_format`` and ``data_root`` were recorded need ``--data-root`` and
``--dataset-format``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import torch

from vmp.data.clips import ClipDataset, ClipSpec, load_decoded, make_loader
from vmp.data.official import load_splits
from vmp.io import write_csv, write_json
from vmp.training.record import PER_CLASS, SCORES, load_model, read_metrics
from vmp.training.scoring import score_videos

log = logging.getLogger(__name__)


def parse_views(text: str) -> tuple[int, int]:
    """``"10x3"`` -> (10 temporal windows, 3 spatial crops)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(map(int, match.groups())) < 1:
        raise ValueError(f"--views {text!r}: write temporal x spatial views, e.g. 10x3 or 1x1")
    return int(match[1]), int(match[2])


def evaluate_run(
    run_dir: str | Path,
    *,
    views: tuple[int, int] | None = None,
    data_root: str | Path | None = None,
    dataset_format: str | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    num_workers: int = 0,
    precision: str | None = None,
) -> dict[str, Any]:
    """Test the trained model of ``run_dir`` again and write the results into ``out_dir``
    (default ``run_dir/eval/views~TxS``); returns the metrics. ``precision`` (a Lightning
    precision) defaults to the run's, from its execution record (32-true for runs made before)."""
    run_dir = Path(run_dir)
    recorded = read_metrics(run_dir)
    settings = recorded["settings"]
    data_root = data_root or settings.get("data_root")
    dataset_format = dataset_format or settings.get("dataset_format")
    if not data_root or not dataset_format:
        raise ValueError(
            f"{run_dir}/metrics.json does not record its data (a run made before they were "
            "recorded): pass --data-root and --dataset-format"
        )
    spec = ClipSpec.from_config(settings["clip"])
    if views is not None:
        spec = dataclasses.replace(spec, num_temporal_clips=views[0], num_spatial_crops=views[1])
    test = load_splits(dataset_format, data_root, str(settings["split"]))["test"]
    model = load_model(run_dir)
    data = ClipDataset(
        test,
        spec,
        train=False,
        cache_frames=False,
        decoded=load_decoded(data_root),
        mask_channel=model.needs_masks,  # an oracle run reads the ground truth with its frames
    )
    loader = make_loader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers, seed=0
    )
    precision = precision or recorded.get("execution", {}).get("precision", "32-true")
    metrics, scores, per_class = score_videos(model, loader, test, torch.device(device), precision)
    label = f"{spec.num_temporal_clips}x{spec.num_spatial_crops}"
    out_dir = Path(out_dir or run_dir / "eval" / f"views~{label}")
    metrics |= {
        "views": label,
        "precision": precision,
        "data_root": str(data_root),
        "run": str(run_dir),
        "recorded_top1": recorded.get("top1"),
    }
    write_csv(out_dir / SCORES, scores)
    write_csv(out_dir / PER_CLASS, per_class)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmp.evaluate",
        description="Re-score a trained run (its model.pt) on its test split, without training.",
    )
    parser.add_argument("run_dir", help="a finished run: results/runs/<cell>/seed~<s>")
    parser.add_argument(
        "--views", help="temporal x spatial test views, e.g. 10x3 (default: the run's)"
    )
    parser.add_argument("--data-root", help="the dataset's folder, if not the recorded one")
    parser.add_argument("--dataset-format", help="hmdb51, finegym, mpii_cooking2 or synthmotion")
    parser.add_argument("--out", help="output folder (default RUN_DIR/eval/views~TxS)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument(
        "--precision", help="Lightning precision, e.g. 32-true or 16-mixed (default: the run's)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        metrics = evaluate_run(
            args.run_dir,
            views=parse_views(args.views) if args.views else None,
            data_root=args.data_root,
            dataset_format=args.dataset_format,
            out_dir=args.out,
            batch_size=args.batch_size,
            device=args.device,
            num_workers=args.num_workers,
            precision=args.precision,
        )
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"python -m vmp.evaluate: {err}\n")
    shown = ("top1", "top5", "mean_class_accuracy", "mean_average_precision", "num_videos")
    print(
        f"{args.run_dir} ({metrics['views']} views): "
        + ", ".join(f"{k} {metrics[k]:.2f}" for k in shown if metrics.get(k) is not None)
        + f" (recorded top-1 {metrics['recorded_top1']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
