"""SynthMotion's ground truth: per-frame masks of the class object and the distractors, and the
camera path, stored beside each video (``<name>.masks.npz``)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from vmp.io import atomic_path


class SceneLayers(NamedTuple):
    """What a rendered clip is made of, per frame.

    Attributes:
        object: (T, H, W) float32 in [0, 1], visible coverage of the class-defining object
            (its anti-aliased alpha, less what distractors drawn in front of it hide).
        distractors: (T, H, W) float32 in [0, 1], visible coverage of all distractors.
        camera: (T, 2) float32, the camera's offset in pixels (x, y) from its first position's
            corner of the canvas; the background moves on screen by minus its change.
    """

    object: np.ndarray
    distractors: np.ndarray
    camera: np.ndarray


MASKS_SUFFIX = ".masks.npz"


def masks_path(video: str | Path) -> Path:
    """Where the ground truth of a SynthMotion video lives: beside it, ``<name>.masks.npz``."""
    video = Path(video)
    return video.with_name(video.stem + MASKS_SUFFIX)


def write_masks(path: str | Path, layers: SceneLayers) -> None:
    """Store layers compactly: object and distractor masks (coverage >= 0.5) as packed bits."""
    shape = np.array(layers.object.shape)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            shape=shape,
            object=np.packbits(layers.object >= 0.5),
            distractors=np.packbits(layers.distractors >= 0.5),
            camera=layers.camera.astype(np.float32),
        )


def read_masks(path: str | Path) -> SceneLayers:
    """Read :func:`write_masks`' file: boolean (T, H, W) masks and the (T, 2) camera path."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no ground-truth masks; SynthMotion writes them beside each video since "
            "December 2026: regenerate the scene (delete its folder and rerun the synth_data rule)"
        )
    with np.load(path) as data:
        shape = tuple(int(n) for n in data["shape"])

        def unpack(key: str) -> np.ndarray:
            bits = np.unpackbits(data[key], count=int(np.prod(shape)))
            return bits.reshape(shape).astype(bool)

        return SceneLayers(unpack("object"), unpack("distractors"), data["camera"])
