"""The GPU check: the prompt layer against a copy, paper-size training steps, the smoke DAG on a GPU.

Four parts, each printed as it finishes (about 6-9 minutes on one recent GPU):

1. ``benchmarks/prompt_layer.py`` on a 8x3x17x224^2 clip: every implementation's forward and
   forward+backward time as a multiple of ``x.clone()`` and as a share of the copy's bandwidth.
2. One training step (SGD, cross-entropy) of each paper-size backbone without and with its prompt
   layer(s), in the paper profile's precision (``resources.precision`` of config/paper.yaml,
   "16-mixed": float16 autocast and a GradScaler, as Lightning runs it): milliseconds, the
   layer's share of the +VMP step, and peak memory per clip.
3. The smoke profile's DAG with ``accelerator: gpu`` and that precision, end to end.
4. The loader with real workers feeding SlowFast-R50 +VMP training steps (32x2 at 224^2, batch
   8, that precision) from 320x240 H.264 footage: data wait against step time per step, and
   clips/s.

    python benchmarks/gpu_check.py                          # on a CUDA machine
    python benchmarks/gpu_check.py --precision bf16-mixed   # another Lightning precision
    python benchmarks/gpu_check.py --dry      # CPU, tiny sizes, smoke DAG planned only (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import prompt_layer  # noqa: E402  (a sibling script)
from model_step import layer_fn, median_times  # noqa: E402

from vmp.data.clips import ClipDataset, ClipSpec, make_loader  # noqa: E402
from vmp.models import create_model, sigmoid_variant, variant_options  # noqa: E402

# (model, batch, frames T+1, size); the paper's clips per backbone.
PAPER_MODELS = [
    ("slowfast_r50", 4, 33, 224),
    ("c2d_r50", 8, 9, 224),
    ("i3d_r50", 8, 9, 224),
    ("x3d_m", 8, 17, 224),
    ("timesformer", 4, 9, 224),
]
DRY_MODELS = [(f"{name.split('_')[0]}_tiny", 2, 9, 32) for name, *_ in PAPER_MODELS]
# The paper profile's Lightning precision, and the autocast dtype each mixed precision runs.
PAPER_PRECISION = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())["resources"][
    "precision"
]
AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16, "32-true": None}


def synced(fn: Callable[[], None], device: str) -> Callable[[], None]:
    def run() -> None:
        fn()
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def autocast(device: str, precision: str):
    dtype = AUTOCAST_DTYPES[precision]
    if device == "cuda" and dtype is not None:
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def grad_scaler(device: str, precision: str) -> torch.amp.GradScaler:
    """Loss scaling as Lightning's "16-mixed" does it (a no-op for the other precisions)."""
    enabled = device == "cuda" and precision == "16-mixed" and torch.cuda.is_available()
    return torch.amp.GradScaler("cuda", enabled=enabled)


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    video: torch.Tensor,
    labels: torch.Tensor,
    device: str,
    precision: str,
) -> None:
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        loss = F.cross_entropy(model(video).logits, labels)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def training_step(
    model: torch.nn.Module, video: torch.Tensor, labels: torch.Tensor, device: str, precision: str
):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = grad_scaler(device, precision)

    def step() -> None:
        optimizer_step(model, optimizer, scaler, video, labels, device, precision)

    return synced(step, device)


def peak_mib_per_clip(step: Callable[[], None], batch: int, device: str) -> float:
    if device != "cuda":
        return float("nan")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    step()
    return torch.cuda.max_memory_allocated() / 2**20 / batch


def backbone_rows(models, device: str, repeats: int, precision: str) -> list[dict]:
    rows = []
    for name, batch, frames, size in models:
        torch.manual_seed(0)
        video = torch.rand(batch, 3, frames, size, size, device=device)
        labels = torch.randint(0, 10, (batch,), device=device)
        variant = sigmoid_variant(name)
        build = {"num_frames": frames - 1, "crop_size": size}
        base = create_model(name, 10, **build).to(device).train()
        vmp = create_model(name, 10, **build, **variant_options(name, variant)).to(device).train()
        steps = [
            training_step(base, video, labels, device, precision),
            training_step(vmp, video, labels, device, precision),
        ]
        layer = synced(layer_fn(vmp, video), device)
        t_base, t_vmp, t_layer = median_times([*steps, layer], repeats)
        rows.append(
            {
                "model": name,
                "variant": variant,
                "clip": f"{batch}x{frames}x{size}^2",
                "base_ms": 1e3 * t_base,
                "vmp_ms": 1e3 * t_vmp,
                "layer_share": t_layer / t_vmp,
                "base_mib": peak_mib_per_clip(steps[0], batch, device),
                "vmp_mib": peak_mib_per_clip(steps[1], batch, device),
            }
        )
        del base, vmp, steps
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def loader_feed(dry: bool, device: str, workdir: Path, steps: int, precision: str) -> str:
    """Train with ClipDataset's uint8 clips from DataLoader workers; time the wait for each batch
    (data) and the step that follows (host-to-device copy, forward, backward, update)."""
    from loader_gpu_feed import SPEC, write_footage

    if dry:
        name, batch, workers, size, fps, seconds, videos = "slowfast_tiny", 2, 2, (48, 64), 25, 2, 4
        spec = ClipSpec(num_frames=8, sampling_rate=2, crop_size=32, train_scale=(32, 40))
    else:
        name, batch, workers, size, fps, seconds, videos = (
            "slowfast_r50",
            8,
            15,
            (240, 320),
            30,
            6,
            16,
        )
        spec, workers = SPEC, max(1, min(workers, (os.cpu_count() or 2) - 1))
    paths = [
        str(write_footage(workdir / f"v{k}.mp4", size, fps, seconds, k)) for k in range(videos)
    ]
    paths = paths * (steps * batch // videos + 1)  # one epoch covers every step
    table = pd.DataFrame({"path": paths, "label": [k % 10 for k in range(len(paths))]})
    data = ClipDataset(table, spec, train=True)
    loader = make_loader(data, batch_size=batch, shuffle=True, num_workers=workers, seed=0)
    build = {"num_frames": spec.num_frames, "crop_size": spec.crop_size}
    model = create_model(name, 10, **build, **variant_options(name, sigmoid_variant(name)))
    model = model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = grad_scaler(device, precision)
    waits, times, batches = [], [], iter(loader)
    for _ in range(steps):
        start = time.perf_counter()
        item = next(batches)
        got = time.perf_counter()
        video = item["video"].to(device, non_blocking=True)  # uint8; the model divides by 255
        labels = item["label"].to(device, non_blocking=True)
        optimizer_step(model, optimizer, scaler, video, labels, device, precision)
        if device == "cuda":
            torch.cuda.synchronize()
        waits.append(got - start)
        times.append(time.perf_counter() - got)
    del batches
    skip = min(2, steps - 1)  # worker start-up and the first steps' allocations
    wait, step = sum(waits[skip:]) / len(waits[skip:]), sum(times[skip:]) / len(times[skip:])
    return (
        f"{name} {batch}x{spec.clip_frames}x{spec.crop_size}^2 from {size[1]}x{size[0]} footage, "
        f"{workers} workers, pin_memory={loader.pin_memory}, {precision}: data wait {1e3 * wait:.1f} ms/step, "
        f"step {1e3 * step:.1f} ms; fed {batch / (wait + step):.1f} clips/s, the steps alone "
        f"take {batch / step:.1f} clips/s ({wait / (wait + step):.0%} of the time waiting for data)"
    )


def smoke_dag(dry: bool, workdir: Path, precision: str) -> str:
    """Run (or with ``dry`` only plan) the smoke DAG with training on the GPU in ``precision``."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config |= {"results": str(workdir / "results"), "data_root": str(workdir / "data")}
    gpu = {"accelerator": "gpu", "precision": precision, "gpu": 1}
    config["resources"] = config.get("resources", {}) | gpu
    path = workdir / "smoke_gpu.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command = ["snakemake", "--cores", "4", "all", "--configfile", str(path)]
    if dry:
        command.insert(1, "-n")
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"smoke DAG failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    if dry:
        return f"smoke DAG with accelerator gpu, {precision}, planned ({' '.join(command)}): ok"
    table = (workdir / "results" / "tables" / "table1.md").read_text().splitlines()[:4]
    return f"smoke DAG on the GPU ({precision}): {seconds:.0f} s\n" + "\n".join(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry", action="store_true", help="CPU, tiny sizes, smoke DAG planned only"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--precision",
        default=PAPER_PRECISION,
        choices=sorted(AUTOCAST_DTYPES),
        help=f"Lightning precision of parts 2-4 (default: the paper profile's, {PAPER_PRECISION})",
    )
    args = parser.parse_args(argv)
    device = "cpu" if args.dry else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry for the CPU check of this script")
    repeats = 2 if args.dry else args.repeats
    if device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)

    print("\n== 1. prompt layer vs copy ==", flush=True)
    # --dry skips "compiled" (about a minute of compilation on CPU) and "native" (a C++ build).
    small = ["--batch", "2", "--frames", "5", "--size", "16", "--implementations", "eager", "fused"]
    prompt_layer.main([*(small if args.dry else []), "--device", device, "--repeats", str(repeats)])

    print(f"\n== 2. training step per backbone ({args.precision} on CUDA) ==", flush=True)
    rows = backbone_rows(DRY_MODELS if args.dry else PAPER_MODELS, device, repeats, args.precision)
    print(
        f"{'model':18}{'variant':10}{'clip':16}{'base ms':>9}{'vmp ms':>9}{'layer':>7}"
        f"{'base MiB/clip':>15}{'vmp MiB/clip':>14}"
    )
    for r in rows:
        print(
            f"{r['model']:18}{r['variant']:10}{r['clip']:16}{r['base_ms']:9.1f}{r['vmp_ms']:9.1f}"
            f"{r['layer_share']:7.1%}{r['base_mib']:15.0f}{r['vmp_mib']:14.0f}"
        )

    print("\n== 3. smoke DAG ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="vmp-gpu-check-") as tmp:
        print(smoke_dag(args.dry, Path(tmp), args.precision), flush=True)

    print("\n== 4. loader with workers feeding training steps ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="vmp-gpu-check-feed-") as tmp:
        steps = 6 if args.dry else 30
        print(loader_feed(args.dry, device, Path(tmp), steps, args.precision), flush=True)


if __name__ == "__main__":
    main()
