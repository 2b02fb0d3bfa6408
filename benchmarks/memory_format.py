"""Training step of each tiny CNN with Conv3d in NCDHW vs channels-last (NDHWC) layout, side by side.

    .venv/bin/python benchmarks/memory_format.py [--batch 32] [--size 32] [--repeats 5] [--threads 1]

Builds each model twice from the same seed, once as registered (`Backbone.channels_last`) and
once forced to the contiguous NCDHW layout, and prints the median step time (forward + backward
+ SGD, interleaved) of both, baseline and VMP variant, and their ratio. The registry keeps
channels-last where the ratio is above 1 on this CPU.
"""

from __future__ import annotations

import argparse

import torch
from model_step import median_times, step_fn

from vmp.models import create_model, sigmoid_variant, variant_options


def build(name: str, variant: str, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, 10, **variant_options(name, variant)).train()
    model.channels_last = channels_last
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.to(memory_format=layout)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="c2d_tiny,i3d_tiny,x3d_tiny,slowfast_tiny")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    video = torch.rand(args.batch, 3, 9, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    print(
        f"batch {args.batch}, 9 x {args.size}^2, {args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'model':15s} {'variant':9s} {'NCDHW ms':>9s} {'NDHWC ms':>9s} {'ratio':>6s}")
    for name in args.models.split(","):
        for variant in ("baseline", sigmoid_variant(name)):
            steps = [step_fn(build(name, variant, cl), video, labels) for cl in (False, True)]
            first, last = median_times(steps, args.repeats)
            print(
                f"{name:15s} {variant:9s} {first * 1e3:9.0f} {last * 1e3:9.0f} {first / last:6.2f}"
            )


if __name__ == "__main__":
    main()
