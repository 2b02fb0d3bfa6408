"""Decoded clips per second: ClipDataset against plain PyAV and pytorchvideo on the same frames.

Generates small 64x64 videos, then times, for the same T + 1 frame indices of every video:
  plain PyAV     open, decode forward to the last needed frame, RGB-convert the needed frames
  pytorchvideo   EncodedVideo.from_path(decoder="pyav").get_clip(window) and index the frames
  ClipDataset    test view (centre window, resize, centre crop, float) and a training clip

Each route's rate comes from its fastest of --repeats interleaved passes over all videos.

Usage: python benchmarks/loader_vs_pyav.py [--videos 8] [--frames 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch

from vmp.data.clips import ClipDataset, ClipSpec, frame_indices


def make_videos(folder: Path, count: int, frames: int, size: int = 64, fps: int = 30) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for v in range(count):
        path = folder / f"video_{v}.mp4"
        with av.open(str(path), "w") as c:
            s = c.add_stream("mpeg4", rate=Fraction(fps))
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            for k in range(frames):
                img = np.roll(base, k, axis=1)  # moving texture, so frames differ
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        paths.append(str(path))
    return paths


def centre_indices(num_source: int, fps: float, spec: ClipSpec) -> list[int]:
    _, starts = frame_indices(num_source, fps, spec)
    return frame_indices(num_source, fps, spec, round((starts - 1) * 0.5))[0]


def plain_pyav(path: str, spec: ClipSpec) -> np.ndarray:
    with av.open(path) as c:
        s = c.streams.video[0]
        idx = centre_indices(s.frames, float(s.average_rate), spec)
        need, got = set(idx), {}
        for k, frame in enumerate(c.decode(s)):
            if k in need:
                got[k] = frame.to_ndarray(format="rgb24")
            if k >= idx[-1]:
                break
    return np.stack([got[k] for k in idx])


def via_pytorchvideo(path: str, spec: ClipSpec) -> torch.Tensor:
    from pytorchvideo.data.encoded_video import EncodedVideo

    video = EncodedVideo.from_path(path, decoder="pyav", decode_audio=False)
    with av.open(path) as c:
        s = c.streams.video[0]
        fps, n = float(s.average_rate), s.frames
    idx = centre_indices(n, fps, spec)
    clip = video.get_clip(idx[0] / fps, (idx[-1] + 1) / fps)["video"]  # (3, frames, H, W)
    video.close()
    return clip[:, [k - idx[0] for k in idx]]


def best_rates(routes: dict, repeats: int) -> dict[str, float]:
    """Clips/s of each route from its fastest pass; passes of the routes interleave, so load
    from other processes hits all routes alike."""
    best = dict.fromkeys(routes, float("inf"))
    for fn, items in routes.values():
        fn(items[0])  # warm-up
    for _ in range(repeats):
        for name, (fn, items) in routes.items():
            start = time.perf_counter()
            for it in items:
                fn(it)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(routes[name][1]) / t for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = ClipSpec(
        num_frames=8, sampling_rate=2, crop_size=48, train_scale=(48, 60), test_scale=48
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, args.frames)
        table = pd.DataFrame({"path": paths, "label": range(len(paths))})
        test_set = ClipDataset(table, spec, train=False)
        train_set = ClipDataset(table, spec, train=True)
        # Same frames from every route.
        ref = plain_pyav(paths[0], spec)
        ptv = via_pytorchvideo(paths[0], spec).permute(1, 2, 3, 0).numpy()
        assert np.abs(ref.astype(float) - ptv).max() <= 1, "pytorchvideo decoded other frames"
        videos = list(range(len(paths)))
        results = best_rates(
            {
                "plain PyAV (frames only)": (lambda p: plain_pyav(p, spec), paths),
                "pytorchvideo get_clip": (lambda p: via_pytorchvideo(p, spec), paths),
                "ClipDataset test view": (test_set.__getitem__, videos),
                "ClipDataset train clip": (train_set.__getitem__, videos),
            },
            args.repeats,
        )
    base = results["plain PyAV (frames only)"]
    print(
        f"{args.videos} videos x {args.frames} frames, 64x64 mpeg4; clips of {spec.clip_frames} frames"
    )
    print(f"{'route':28s} {'clips/s':>9s} {'vs plain PyAV':>14s}")
    for name, value in results.items():
        print(f"{name:28s} {value:9.1f} {value / base:13.2f}x")


if __name__ == "__main__":
    main()
