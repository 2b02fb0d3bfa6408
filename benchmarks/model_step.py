"""Time one training step (forward + backward + SGD) of each tiny backbone with and without prompts.

    .venv/bin/python benchmarks/model_step.py [--batch 8] [--size 48] [--repeats 5] [--threads 1]

Prints, per model, the median step time of the baseline and of the VMP variant (both pathways
for SlowFast), their ratio, and the prompt layer's share of the VMP step (the layer's own
forward + backward time on the same clip divided by the VMP step time) beside the whole
overhead (VMP - baseline) / VMP, which also holds the backbone's gradient with respect to its
input (the baseline's input needs none; column base+dx times a baseline step that computes
it too). X3D-S runs at a reduced
clip (8 x 64^2, batch 4) to show the paper-size model's CPU cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vmp.models import create_model, list_models, sigmoid_variant, variant_options


def median_times(fns: list[Callable[[], None]], repeats: int) -> list[float]:
    """Median wall time in seconds of each of `fns`, run interleaved after one warm-up each.

    Interleaving spreads load from other processes on a shared machine evenly over the fns.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def step_fn(
    model: torch.nn.Module, video: torch.Tensor, labels: torch.Tensor
) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(video).logits, labels).backward()
        optimizer.step()

    return step


def layer_fn(model: torch.nn.Module, video: torch.Tensor) -> Callable[[], None]:
    """Forward + backward of the prompt layers alone on the frames each one receives."""
    clips = {p.name: video[:, :, :: p.stride] for p in model.pathways}

    def run() -> None:
        total = 0.0
        for name, layer in model.prompt_layers.items():
            out = layer(clips[name])
            total = total + out.prompts.sum() + out.attention.sum()
        total.backward()

    return run


def measure(name: str, batch: int, size: int, repeats: int, **overrides) -> dict:
    torch.manual_seed(0)
    frames = overrides.get("num_frames", 8) + 1
    video = torch.rand(batch, 3, frames, size, size)
    labels = torch.randint(0, 10, (batch,))
    variant = sigmoid_variant(name)
    base = create_model(name, 10, crop_size=size, **overrides).train()
    vmp = create_model(name, 10, crop_size=size, **overrides, **variant_options(name, variant))
    vmp.training.fit()
    video_dx = video.clone().requires_grad_(True)  # baseline paying for d loss / d input too
    t_base, t_base_dx, t_vmp, t_layer = median_times(
        [
            step_fn(base, video, labels),
            step_fn(base, video_dx, labels),
            step_fn(vmp, video, labels),
            layer_fn(vmp, video),
        ],
        repeats,
    )
    return {
        "model": name,
        "variant": variant,
        "clip": f"{batch}x{frames}x{size}^2",
        "baseline_ms": 1e3 * t_base,
        "base_dx_ms": 1e3 * t_base_dx,
        "vmp_ms": 1e3 * t_vmp,
        "vmp/base": t_vmp / t_base,
        "layer_ms": 1e3 * t_layer,
        "layer_share": t_layer / t_vmp,
        "overhead": (t_vmp - t_base) / t_vmp,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="*_tiny", help="shell pattern over list_models()")
    parser.add_argument("--no-x3d-s", action="store_true", help="skip the reduced-size X3D-S row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = [measure(n, args.batch, args.size, args.repeats) for n in list_models(args.models)]
    if not args.no_x3d_s:
        rows.append(measure("x3d_s", 4, 64, args.repeats, num_frames=8))
    header = f"{'model':18}{'variant':10}{'clip':14}{'base ms':>9}{'base+dx':>9}{'vmp ms':>9}{'ratio':>7}{'layer ms':>10}{'share':>7}{'overhead':>10}"
    print(f"threads={args.threads}, median of {args.repeats} steps")
    print(header)
    for r in rows:
        print(
            f"{r['model']:18}{r['variant']:10}{r['clip']:14}{r['baseline_ms']:9.1f}{r['base_dx_ms']:9.1f}{r['vmp_ms']:9.1f}"
            f"{r['vmp/base']:7.2f}{r['layer_ms']:10.1f}{r['layer_share']:7.1%}{r['overhead']:10.1%}"
        )


if __name__ == "__main__":
    main()
