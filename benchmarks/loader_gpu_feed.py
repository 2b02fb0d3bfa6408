"""Can the CPUs feed a GPU? SlowFast 32x2 clips per second per core: old loader, plain PyAV, new loader.

Writes realistic footage with PyAV (textured scene under a panning camera, a moving object,
sensor noise; H.264 through libx264 where PyAV has it, else mpeg4): 320x240 at 30 fps and
1280x720 at 25 fps, a few seconds each. Then times, in this one process pinned to one core (--all-cores: not
pinned) with one torch thread, for SlowFast-R50 32x2 at 224^2 (T + 1 = 33 frames at rate 2,
training scale 256-320, test scale 256, 10 x 3 views):

    training clips/s   random clip: decode, resize, crop, flip
    test videos/s      all 30 views of a video

for each source and route:

    old       the loader of ``--old-ref`` (float clips; each test view decodes the video again)
    pyav      plain PyAV: decode and RGB-convert the frames needed (no resize or crop): the floor
    new       vmp.data.clips.ClipDataset (uint8 clips; one decoding pass per test video)
    new 256   720p only: the new loader on the source resized once to a short side of 256
              (``python -m vmp.data.resize``; the time to resize is printed, paid once)

The old loader's views are checked to equal the new loader's (x 255) on every source. It ends with
the supply of a 16-core node (rate x 16) against an H100's appetite of about 200-350 SlowFast-R50
training clips/s (bf16), and the effect of FFmpeg's own threads (``decode_threads=0``).

Usage: python benchmarks/loader_gpu_feed.py [--seconds 4] [--videos 1] [--train-clips 6]
       [--repeats 3] [--old-ref 862d61a]     (default run: about 2-3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

from vmp.data.clips import ClipSpec, frame_indices
from vmp.data.resize import resize_video

ROOT = Path(__file__).resolve().parents[1]
SPEC = ClipSpec(
    num_frames=32,
    sampling_rate=2,
    crop_size=224,
    train_scale=(256, 320),
    test_scale=256,
    hflip=True,
    num_temporal_clips=10,
    num_spatial_crops=3,
)
SOURCES = {"240p": ((240, 320), 30), "720p": ((720, 1280), 25)}
H100_APPETITE = (200, 350)  # SlowFast-R50 8x8-ish training clips/s on one H100, bf16 (rough)


def write_footage(path: Path, size: tuple[int, int], fps: int, seconds: float, seed: int) -> Path:
    """A textured scene under a panning camera, a moving disc and sensor noise, as H.264."""
    h, w = size
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, h // 8 + 8, w // 8 + 8), dtype=np.float32))
    fine = torch.from_numpy(rng.random((1, 3, h // 2 + 32, w // 2 + 32), dtype=np.float32))
    up = lambda x, s: torch.nn.functional.interpolate(x, size=s, mode="bilinear")[0]  # noqa: E731
    scene = 0.65 * up(coarse, (h + 64, w + 64)) + 0.35 * up(fine, (h + 64, w + 64))
    scene = (scene.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    n = round(seconds * fps)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps))
        s.height, s.width, s.pix_fmt = h, w, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"} if codec == "libx264" else {"qscale": "4"}
        for k in range(n):
            dy, dx = round(32 + 24 * np.sin(k / 20)), round(32 + 30 * np.cos(k / 25))
            img = scene[dy : dy + h, dx : dx + w].copy()
            cy, cx, r = h * (0.3 + 0.4 * k / n), w * (0.2 + 0.6 * k / n), h / 8
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (230, 40, 40)
            noise = rng.integers(-4, 5, img.shape, dtype=np.int16)
            img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def old_loader(ref: str):
    """vmp/data.py as of git commit ``ref``, imported as a module (None without git history)."""
    try:
        text = subprocess.run(
            ["git", "show", f"{ref}:vmp/data.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    # Its one import that moved since (the masks, now vmp.data.masks: same functions).
    text = text.replace("from vmp.synth import masks_path", "from vmp.data.masks import masks_path")
    path = Path(tempfile.mkdtemp(prefix="vmp-old-loader-")) / "old_data.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("old_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def plain_pyav(path: str, windows: list[list[int]]) -> list[np.ndarray]:
    """Decode forward to the last needed frame; RGB-convert the needed ones (no resize, crop)."""
    need = set().union(*windows)
    got = []
    with av.open(path) as c:
        for k, frame in enumerate(c.decode(c.streams.video[0])):
            if k in need:
                got.append(frame.to_ndarray(format="rgb24"))
            if k >= max(need):
                break
    return got


def windows_of(path: str, views: int, train: bool, rng: np.random.Generator) -> list[list[int]]:
    with av.open(path) as c:
        s = c.streams.video[0]
        n, fps = s.frames, float(s.average_rate)
    _, starts = frame_indices(n, fps, SPEC)
    if train:
        return [frame_indices(n, fps, SPEC, int(rng.integers(starts)))[0]]
    pos = [round((starts - 1) * t / (views - 1)) for t in range(views)]
    return [frame_indices(n, fps, SPEC, p)[0] for p in pos]


def interleaved_rates(routes: dict[str, dict], repeats: int) -> dict[str, dict[str, float]]:
    """Items/s of each route's passes from its fastest of ``repeats``; the routes' passes
    interleave, so load from other processes on a shared machine hits all routes alike."""
    best = {(r, k): float("inf") for r, fns in routes.items() for k in ("train", "test")}
    for _ in range(repeats):
        for route, fns in routes.items():
            for kind in ("train", "test"):
                if fns.get(kind) is None or (kind == "test" and _ and fns.get("test_once")):
                    continue
                start = time.perf_counter()
                fns[kind]()
                best[route, kind] = min(best[route, kind], time.perf_counter() - start)
    return {
        route: {k: fns["count"][k] / best[route, k] or float("nan") for k in ("train", "test")}
        for route, fns in routes.items()
    }


def loader_route(module, paths: list[str], clips: int, threads: int | None = 1) -> dict:
    """Passes of training clips and test videos through one loader module (old vmp/data.py or vmp.data.clips)."""
    table = pd.DataFrame({"path": paths, "label": range(len(paths))})
    extra = {} if threads is None else {"decode_threads": threads}
    train = module.ClipDataset(table, SPEC, train=True, **extra)

    def train_pass():
        torch.manual_seed(0)
        for i in range(clips):
            train[i % len(paths)]

    def test_pass():
        test = module.ClipDataset(table, SPEC, train=False, **extra)  # nothing kept between passes
        for i in range(len(test)):
            test[i]

    train[0]  # warm-up
    views = module.ClipDataset(table, SPEC, train=False, **extra)
    return {
        "train": train_pass,
        "test": test_pass,
        "count": {"train": clips, "test": len(paths)},
        "views": [views[v]["video"] for v in (0, 4, SPEC.views - 1)],
    }


def pyav_route(paths: list[str], clips: int) -> dict:
    rng = np.random.default_rng(0)
    train_windows = [windows_of(paths[i % len(paths)], 1, True, rng) for i in range(clips)]
    test_windows = [windows_of(p, SPEC.num_temporal_clips, False, rng) for p in paths]

    def train_pass():
        for i, w in enumerate(train_windows):
            plain_pyav(paths[i % len(paths)], w)

    def test_pass():
        for p, w in zip(paths, test_windows, strict=True):
            plain_pyav(p, w)

    train_pass()  # warm-up
    return {"train": train_pass, "test": test_pass, "count": {"train": clips, "test": len(paths)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each video")
    parser.add_argument("--videos", type=int, default=1, help="videos per source")
    parser.add_argument("--train-clips", type=int, default=6, help="training clips per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes; the fastest counts")
    parser.add_argument("--old-ref", default="862d61a", help="git commit of the old loader")
    parser.add_argument("--skip-old-720p-test", action="store_true", help="it takes the longest")
    parser.add_argument(
        "--all-cores", action="store_true", help="do not pin the process to one core"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        # swscale (to_ndarray) and FFmpeg's threads would otherwise borrow idle cores
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import vmp.data.clips as new

    old = old_loader(args.old_ref)
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in open("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        "unknown CPU",
    )
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    print(
        f"CPU: {cpu}; one process pinned to {len(os.sched_getaffinity(0))} core(s), torch threads 1; {codec} footage"
    )
    print(
        f"SlowFast 32x2: clips of {SPEC.clip_frames} frames at rate {SPEC.sampling_rate}, "
        f"crop {SPEC.crop_size}, train scale {SPEC.train_scale}, test {SPEC.test_scale} x "
        f"{SPEC.num_temporal_clips}x{SPEC.num_spatial_crops} views"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="vmp-feed-") as tmp:
        for name, (size, fps) in SOURCES.items():
            started = time.perf_counter()
            paths = [
                str(write_footage(Path(tmp) / f"{name}_{v}.mp4", size, fps, args.seconds, v))
                for v in range(args.videos)
            ]
            print(
                f"\n{name}: {args.videos} x {args.seconds:g} s written in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            routes = {"pyav": pyav_route(paths, args.train_clips)}
            routes["new"] = loader_route(new, paths, args.train_clips)
            if old is not None:
                routes["old"] = loader_route(old, paths, args.train_clips, None)
                # the old 720p test pass is slow: once, or skipped
                routes["old"]["test_once"] = name == "720p"
                if name == "720p" and args.skip_old_720p_test:
                    routes["old"]["test"] = None
                same = all(
                    torch.equal(a, b.float().div_(255.0))
                    for a, b in zip(routes["old"]["views"], routes["new"]["views"], strict=True)
                )
                print(f"  old views == new views / 255: {same}")
                if not same:
                    raise SystemExit("the new loader's views differ from the old loader's")
            if name == "720p":
                small, started = [], time.perf_counter()
                for p in paths:
                    small.append(p.replace(".mp4", "_256.mp4"))
                    resize_video(p, small[-1], 256)
                once = (time.perf_counter() - started) / len(paths)
                print(f"  resized once to short side 256: {once:.1f} s per video")
                routes["new 256"] = loader_route(new, small, args.train_clips)
                routes["new, FFmpeg threads"] = loader_route(
                    new, paths, args.train_clips, threads=0
                )
            result = interleaved_rates(routes, args.repeats)
            for route, r in result.items():
                rows.append((name, route, r["train"], r["test"]))
                print(
                    f"  {route:8s} train {r['train']:7.2f} clips/s   test {r['test']:6.3f} videos/s",
                    flush=True,
                )
    print("\nper core (one process)          train clips/s   vs old   test videos/s   vs old")
    base = {(n, "train"): t for n, r, t, _ in rows if r == "old"} | {
        (n, "test"): v for n, r, _, v in rows if r == "old"
    }
    for name, route, tr, te in rows:
        ot, ov = base.get((name, "train"), float("nan")), base.get((name, "test"), float("nan"))
        print(f"{name:5s} {route:24s} {tr:14.2f} {tr / ot:8.2f}x {te:14.3f} {te / ov:8.2f}x")
    print(
        f"\nsupply of a 16-core node (rate x 16) vs an H100's appetite of {H100_APPETITE[0]}-{H100_APPETITE[1]} SlowFast-R50 clips/s:"
    )
    for name, route, tr, te in rows:
        if route in ("old", "new", "new 256"):
            print(
                f"  {name} {route:8s} {16 * tr:7.0f} training clips/s  ({16 * tr / H100_APPETITE[1]:.2f}-{16 * tr / H100_APPETITE[0]:.2f} of the appetite)   {16 * te * SPEC.views:7.0f} test views/s"
            )
    print(
        "\n'new, FFmpeg threads': decode_threads=0 (FFmpeg's frame threads); on one pinned core "
        "this shows their overhead, with --all-cores their gain for one process"
    )


if __name__ == "__main__":
    main()
