"""Sources re-encoded once at a small size: ``python -m vmp.data.resize SRC DST --short-side 256``.

A 720p FineGym element costs the loader several times a 256-pixel one, every epoch; re-encoded
once (H.264 with frequent keyframes, tuned to decode fast) it is read at 3x the clips per second
(benchmarks/loader_gpu_feed.py). ``prepare_data`` calls :func:`resize_video` for every whole
video larger than a dataset's ``short_side``; segments are cut at that size already.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import av

from vmp.io import atomic_path

log = logging.getLogger(__name__)


def check_not_empty(path: str | Path) -> None:
    """Raise a clear error for a zero-byte file (PyAV says "Invalid data found ...")."""
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file (0 bytes)")


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def resize_video(
    src: str | Path, dst: str | Path, short_side: int = 256, *, crf: int = 18, gop: int = 16
) -> bool:
    """Re-encode ``src`` with its short side scaled to ``short_side`` into ``dst``; True if it did.

    A video whose short side is already ``short_side`` or less is copied unchanged (False). The
    frames keep their timestamps and rate, so frame indices, ``start_sec``/``end_sec`` segments
    and manifests stay valid; audio is dropped (clips are video only). H.264 (libx264, CRF
    ``crf``: visually lossless at 18; falls back to mpeg4) with a keyframe every ``gop`` frames,
    so a training clip's seek decodes at most ``gop`` frames before its first one, and x264's
    ``fastdecode`` tuning (no CABAC or deblocking: 2.6x faster to decode, files 8% larger on the
    benchmark's footage). Scaling is
    FFmpeg's area average (no aliasing when shrinking 720p to 256).
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"resize_video: source and destination are the same file ({src})")
    check_not_empty(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        h, w = stream.codec_context.height, stream.codec_context.width
        if min(h, w) <= short_side:
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            return False
        scale = short_side / min(h, w)
        size = (_even(w * scale), _even(h * scale))
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        with (
            atomic_path(dst) as tmp,
            av.open(str(tmp), "w", format=_MUXERS.get(dst.suffix.lower(), "mp4")) as out,
        ):
            rate = stream.average_rate or stream.guessed_rate
            o = out.add_stream(codec, rate=rate)
            o.width, o.height, o.pix_fmt = size[0], size[1], "yuv420p"
            o.time_base = stream.time_base
            o.codec_context.time_base = stream.time_base
            o.options = (
                {
                    "crf": str(crf),
                    "preset": "medium",
                    "g": str(gop),
                    "bf": "0",
                    "tune": "fastdecode",
                }
                if codec == "libx264"
                else {"qscale": "2", "g": str(gop)}
            )
            for frame in inp.decode(stream):
                small = frame.reformat(*size, format="yuv420p", interpolation="AREA")
                small.pts, small.time_base = frame.pts, frame.time_base
                for packet in o.encode(small):
                    out.mux(packet)
            for packet in o.encode():
                out.mux(packet)
    return True


def resize_tree(
    src: str | Path, dst: str | Path, short_side: int = 256, **options
) -> dict[str, int]:
    """:func:`resize_video` for a video or every video under a folder (mirrored into ``dst``);
    other files of the folder (manifest.csv, lists) are copied, so ``dst`` is a dataset root
    like ``src``. Files already in ``dst`` and newer than their source are kept.
    Returns counts: resized, copied (small enough videos and other files), kept."""
    src, dst = Path(src), Path(dst)
    pairs = (
        [(src, dst)]
        if src.is_file()
        else [(p, dst / p.relative_to(src)) for p in sorted(src.rglob("*")) if p.is_file()]
    )
    counts = {"resized": 0, "copied": 0, "kept": 0}
    for a, b in pairs:
        if b.exists() and b.stat().st_mtime >= a.stat().st_mtime:
            counts["kept"] += 1
        elif a.suffix.lower() in VIDEO_SUFFIXES and a.stat().st_size > 0:
            counts["resized" if resize_video(a, b, short_side, **options) else "copied"] += 1
            log.info("%s -> %s", a, b)
        else:
            b.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(b) as tmp:
                shutil.copyfile(a, tmp)
            counts["copied"] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m vmp.data.resize", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "src", help="a video, or a folder (every video under it; other files copied)"
    )
    parser.add_argument("dst", help="the output video, or folder (mirrors src)")
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--crf", type=int, default=18, help="libx264 quality (lower: better)")
    parser.add_argument("--gop", type=int, default=16, help="frames between keyframes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    counts = resize_tree(args.src, args.dst, args.short_side, crf=args.crf, gop=args.gop)
    print(", ".join(f"{v} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
