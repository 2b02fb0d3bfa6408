"""Decoders side by side: the loader's PyAV route against torchcodec, on the same footage.

Writes the footage of ``loader_gpu_feed.py`` (320x240 at 30 fps and 1280x720 at 25 fps, 4 s),
then per core (one torch thread, one FFmpeg thread) times the frames of SlowFast 32x2 training
clips (33 frames at rate 2, random start) and of a 10-window test video, decoded to uint8 RGB
by PyAV as ``vmp.data.clips`` does (forward decoding, one reformatter) and by torchcodec's
``VideoDecoder.get_frames_at``, and checks the frames are equal. torchcodec is not part of the
environment: it needs FFmpeg's shared libraries (Debian: ``apt-get install libavcodec59
libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8``) and
``pip install --no-deps torchcodec==0.14.0`` (the release for torch 2.14). Without it the script
says so and stops.

Usage: python benchmarks/decoders.py (pin it with ``taskset -c 0`` for per-core rates)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loader_gpu_feed as footage  # noqa: E402  (a sibling script)

from vmp.data.clips import open_video, to_rgb  # noqa: E402


def pyav_frames(path: str, indices: list[int]) -> np.ndarray:
    got = []
    with open_video(path, 1) as container:
        for k, frame in enumerate(container.decode(container.streams.video[0])):
            if k in indices:
                got.append(to_rgb(frame))
            if k >= indices[-1]:
                break
    return np.stack(got)


def rate(decode, path: str, windows: list[list[int]], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for window in windows:
            decode(path, window)
        best = min(best, (time.perf_counter() - started) / len(windows))
    return 1.0 / best


def main() -> None:
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, RuntimeError) as err:
        print(
            f"torchcodec is not usable here ({str(err).splitlines()[0]}); see this script's docstring"
        )
        return

    def torchcodec_frames(path: str, indices: list[int]) -> np.ndarray:
        decoder = VideoDecoder(
            path, dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="approximate"
        )
        return decoder.get_frames_at(indices).data.numpy()

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    print("source  decoder      train clips/s  test videos/s  (frames equal)")
    for name, size, fps in (("240p", (240, 320), 30), ("720p", (720, 1280), 25)):
        path = str(footage.write_footage(folder / f"{name}.mp4", size, fps, 4, 0))
        train = [sorted(footage.windows_of(path, 1, True, rng)[0]) for _ in range(6)]
        test = [sorted(set().union(*footage.windows_of(path, 10, False, rng)))]
        equal = np.array_equal(pyav_frames(path, test[0]), torchcodec_frames(path, test[0]))
        for label, decode in (("pyav", pyav_frames), ("torchcodec", torchcodec_frames)):
            print(
                f"{name:7s} {label:12s} {rate(decode, path, train):13.2f} "
                f"{rate(decode, path, test):14.2f}  ({equal})"
            )


if __name__ == "__main__":
    main()
