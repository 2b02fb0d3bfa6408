"""Helpers shared by the tests: small PyAV videos and tiny training runs."""

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_frames(path: Path, frames: Iterable[np.ndarray], fps: float, size=(32, 32)) -> Path:
    """Encode uint8 RGB frames of ``size`` (H, W) as an mpeg4 file at near-lossless quality."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        s.height, s.width, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"qscale": "2"}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# A training clip small enough for 2-epoch runs in tests.
TINY_CLIP = {
    "num_frames": 4,
    "sampling_rate": 2,
    "crop_size": 32,
    "train_scale": [32, 36],
    "test_scale": 32,
    "hflip": False,
}


def tiny_run_settings(scene: Path, **changes) -> dict:
    """Keyword arguments of ``vmp.experiment.train_run`` for an x3d_tiny VMP run on ``scene``."""
    settings = dict(
        dataset="synth_gym",
        dataset_format="synthmotion",
        data_root=str(scene),
        split="1",
        backbone="x3d_tiny",
        variant="vmp",
        lambda_reg=2.5,
        seed=0,
        clip=TINY_CLIP,
        optim={"epochs": 2, "batch_size": 4},
        progress_bar=False,
    )
    return settings | changes
