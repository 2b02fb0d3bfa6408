"""Measure SynthMotion generation speed: clips/s per preset and the share of time spent encoding.

Usage:
    python benchmarks/synth_speed.py                      # all four presets at their defaults
    python benchmarks/synth_speed.py --scenes synth_gym --videos-per-class 5
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from vmp.data.synth import SCENES, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    parser.add_argument("--videos-per-class", type=int, help="override the preset's value")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    overrides = {}
    if args.videos_per_class is not None:
        overrides["videos_per_class"] = args.videos_per_class

    print(f"{'scene':16} {'clips':>6} {'seconds':>8} {'clips/s':>8} {'render':>7} {'encode':>7}")
    total_clips, start = 0, time.perf_counter()
    for name in args.scenes:
        with tempfile.TemporaryDirectory() as root:
            manifest = generate(root, name, seed=args.seed, **overrides)
            clips = manifest.path.nunique()
            info = json.loads((Path(root) / "generation.json").read_text())
        busy = info["render_seconds"] + info["encode_seconds"]
        print(
            f"{name:16} {clips:6d} {info['seconds']:8.1f} {info['clips_per_second']:8.1f}"
            f" {info['render_seconds'] / busy:7.0%} {info['encode_seconds'] / busy:7.0%}"
        )
        total_clips += clips
    seconds = time.perf_counter() - start
    print(f"{'all':16} {total_clips:6d} {seconds:8.1f} {total_clips / seconds:8.1f}")


if __name__ == "__main__":
    main()
