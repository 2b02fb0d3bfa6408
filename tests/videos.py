"""Writing small test videos with PyAV (shared by the data and dataset tests)."""

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
