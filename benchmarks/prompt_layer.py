"""Time and memory of the motion prompt layer against a plain copy of its input.

Measures, in one run and interleaved (so load from other processes hits every variant alike):
``x.clone()``, forward+backward of an identity-like op (``x * 1``), and forward / forward+backward
of every implementation (eager, fused, compiled, native; on CUDA "native" runs "fused"; the
compile time of "compiled" and the build of "native", their first calls, are reported on their
own and not in the medians). Memory is reported as a multiple of one input's size:
bytes saved for backward (beyond the input and the parameters) and the peak extra memory of
forward+backward (CUDA: ``max_memory_allocated``; CPU: peak resident memory of a child process
whose allocator returns every large block to the OS, so the resident size follows live tensors).

Usage::

    python benchmarks/prompt_layer.py --batch 8 --frames 17 --size 112 --repeats 20 --threads 1

On a shared CPU, ``--threads 1`` gives far steadier medians than several threads. The last
lines put the goals in context: the bytes a one-pass kernel must move, and each implementation's
effective bandwidth as a share of the copy's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from vmp.layer.prompt import IMPLEMENTATIONS, MotionPromptLayer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=17, help="input frames T+1 (>= 2)")
    parser.add_argument("--size", type=int, default=112, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each variant")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--implementations",
        nargs="+",
        choices=IMPLEMENTATIONS,
        default=list(IMPLEMENTATIONS),
        help="implementations to measure (default: all)",
    )
    parser.add_argument("--child-memory", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.frames < 2 or args.batch < 1 or args.size < 1 or args.repeats < 1:
        parser.error("need --frames >= 2 and --batch, --size, --repeats >= 1")
    return args


def make_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input clip and the upstream gradients of prompts and attention."""
    gen = torch.Generator().manual_seed(args.seed)
    b, t1, s = args.batch, args.frames, args.size
    video = torch.rand(b, 3, t1, s, s, generator=gen)
    g_prompts = torch.randn(b, 3, t1 - 1, s, s, generator=gen)
    g_attention = torch.randn(b, t1 - 1, s, s, generator=gen)
    return tuple(t.to(args.device) for t in (video, g_prompts, g_attention))


def make_layer(implementation: str, device: str) -> MotionPromptLayer:
    torch.manual_seed(0)
    return MotionPromptLayer(implementation=implementation).to(device)


def forward_backward(layer: MotionPromptLayer, video, g_prompts, g_attention) -> None:
    layer.zero_grad(set_to_none=True)
    video.grad = None
    prompts, attention = layer(video)
    torch.autograd.backward([prompts, attention], [g_prompts, g_attention])


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]
) -> dict[str, list[float]]:
    """Seconds per call of each function, running them round-robin ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def saved_bytes(layer: MotionPromptLayer, video: torch.Tensor) -> int:
    """Bytes of tensors saved for backward, not counting the input's or parameters' storage."""
    exclude = {video.untyped_storage().data_ptr()}
    exclude |= {p.untyped_storage().data_ptr() for p in layer.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in exclude:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(video)
    del out
    return sum(storages.values())


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_extra_bytes(
    args: argparse.Namespace, implementation: str, video_grad: bool
) -> tuple[int, int]:
    """Peak extra memory of one forward+backward and the bytes of its outputs and input grad."""
    video, g_prompts, g_attention = make_inputs(args)
    video.requires_grad_(video_grad)
    layer = make_layer(implementation, args.device)
    forward_backward(layer, video, g_prompts, g_attention)  # warm-up: lazy init, kernels
    unavoidable = (g_prompts.numel() + g_attention.numel()) * video.element_size()
    if video_grad:
        unavoidable += video.numel() * video.element_size()
    video.grad = None
    gc.collect()
    if args.device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        forward_backward(layer, video, g_prompts, g_attention)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base, unavoidable
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM to the current RSS
        f.write("5")
    base = _rss_kib("VmRSS")
    forward_backward(layer, video, g_prompts, g_attention)
    return (_rss_kib("VmHWM") - base) * 1024, unavoidable


def cpu_memory_in_child(args: argparse.Namespace, implementation: str) -> dict[str, list[int]]:
    """Run ``peak_extra_bytes`` in a child whose malloc unmaps every block over 64 KiB."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--child-memory", implementation]
    cmd += ["--batch", str(args.batch), "--frames", str(args.frames), "--size", str(args.size)]
    cmd += ["--threads", str(args.threads), "--seed", str(args.seed)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_report(args: argparse.Namespace, implementation: str) -> dict[str, list[int]]:
    return {
        "video_grad": list(peak_extra_bytes(args, implementation, True)),
        "params_only": list(peak_extra_bytes(args, implementation, False)),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available; use --device cpu")
    if args.child_memory:
        print(json.dumps(memory_report(args, args.child_memory)))
        return

    video, g_prompts, g_attention = make_inputs(args)
    video.requires_grad_(True)
    g_video = torch.randn_like(video)
    frozen = video.detach()
    impls = args.implementations
    layers = {impl: make_layer(impl, args.device) for impl in impls}
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def identity_fb() -> None:
        video.grad = None
        (video * 1.0).backward(g_video)

    def forward_only(layer: MotionPromptLayer) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return layer(video)

        return run

    fns: dict[str, Callable[[], object]] = {
        "copy (x.clone())": lambda: video.detach().clone(),
        "identity fwd+bwd (x * 1)": identity_fb,
    }
    for impl, layer in layers.items():
        fns[f"{impl} forward (no_grad)"] = forward_only(layer)
        fns[f"{impl} forward+backward"] = lambda layer=layer: forward_backward(
            layer, video, g_prompts, g_attention
        )
        # The usual training case: the clip comes from the loader and needs no gradient.
        fns[f"{impl} fwd+bwd (m, n only)"] = lambda layer=layer: forward_backward(
            layer, frozen, g_prompts, g_attention
        )
    # The first call of each variant compiles ("compiled") or warms up; time it on its own.
    first_call: dict[str, float] = {}
    for name, fn in fns.items():
        sync()
        start = time.perf_counter()
        fn()
        sync()
        first_call[name] = time.perf_counter() - start
    times = time_interleaved(fns, args.repeats, sync)
    med = {name: statistics.median(ts) for name, ts in times.items()}

    input_bytes = video.numel() * video.element_size()
    print(
        f"input {tuple(video.shape)} float32 = {input_bytes / 2**20:.1f} MiB on {args.device}, "
        f"{torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats"
    )
    print(f"{'variant':34s} {'median ms':>10s} {'min ms':>9s} {'first call ms':>14s}")
    for name, ts in times.items():
        print(
            f"{name:34s} {med[name] * 1e3:10.2f} {min(ts) * 1e3:9.2f} "
            f"{first_call[name] * 1e3:14.1f}"
        )
    copy = med["copy (x.clone())"]
    for impl in impls:
        for mode in ("forward (no_grad)", "forward+backward", "fwd+bwd (m, n only)"):
            print(f"ratio {impl} {mode} / copy: {med[f'{impl} {mode}'] / copy:.2f}")
    for slow, fast in (("eager", "fused"), ("fused", "compiled"), ("fused", "native")):
        if slow not in impls or fast not in impls:
            continue
        for mode in ("forward (no_grad)", "forward+backward", "fwd+bwd (m, n only)"):
            ratio = med[f"{slow} {mode}"] / med[f"{fast} {mode}"]
            print(f"ratio {slow} / {fast} {mode}: {ratio:.2f}")
    if "compiled" in impls:
        compile_s = sum(
            first_call[f"compiled {mode}"]
            for mode in ("forward (no_grad)", "forward+backward", "fwd+bwd (m, n only)")
        )
        print(f"compiled: first calls (compilation of 3 graphs) took {compile_s:.1f} s in all")

    print("memory, in input sizes:")
    for impl, layer in layers.items():
        saved = saved_bytes(layer, video) / input_bytes
        if args.device == "cuda":
            report = memory_report(args, impl)
        else:
            report = cpu_memory_in_child(args, impl)
        parts = [f"{impl:5s} saved for backward {saved:.2f}"]
        for mode, (peak, unavoidable) in report.items():
            parts.append(
                f"{mode}: peak extra {peak / input_bytes:.2f} "
                f"(outputs+input grad {unavoidable / input_bytes:.2f}, "
                f"rest {(peak - unavoidable) / input_bytes:.2f})"
            )
        print("; ".join(parts))
    best = min(impls, key=lambda i: med[f"{i} forward+backward"])
    for impl in [i for i in ("fused", "compiled", "native") if i in impls]:
        ratio = med[f"{impl} forward+backward"] / copy
        print(
            f"goal fwd+bwd <= 3x copy: {impl} {ratio:.2f}x -> {'met' if ratio <= 3 else 'NOT met'}"
        )
    print(f"fastest fwd+bwd here: {best}")
    # Bytes a one-pass kernel must move: read the clip and write prompts + attention, then read
    # the clip and both upstream gradients and write the clip's gradient; a copy moves 2 inputs.
    moved = 2 * input_bytes + 2 * (g_prompts.nbytes + g_attention.nbytes) + input_bytes
    print(
        f"bytes moved by fwd+bwd: {moved / input_bytes:.2f} input sizes, so even at the copy's "
        f"bandwidth fwd+bwd takes {moved / (2 * input_bytes):.2f}x a copy"
    )
    goal = " (goal >= 50% on a GPU)" if args.device == "cuda" else ""
    for impl in impls:
        bandwidth = moved / med[f"{impl} forward+backward"]
        print(
            f"{impl} fwd+bwd bandwidth {bandwidth / 1e9:.1f} GB/s = "
            f"{bandwidth / (2 * input_bytes / copy):.0%} of copy{goal}"
        )


if __name__ == "__main__":
    main()
