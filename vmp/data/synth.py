"""SynthMotion: a seeded, procedurally generated action benchmark whose classes differ only in motion.

Each clip shows one main object that moves with the class's motion pattern. Everything else is
random and independent of the class: the object's shape, colours, texture and size, a cluttered
textured background, distractor objects with their own random drift, camera pan and jitter,
illumination flicker and sensor noise. A classifier can only succeed by reading motion::

    rng --> background canvas --camera crop--> frames --+--> flicker, noise --> uint8 (T, H, W, 3)
        --> pattern path (pos, angle, scale) --object--+
        --> distractor drift --------------------------+

The classes of a scene are the first ``classes`` patterns of ``MOTION_PATTERNS`` starting at
``first_pattern``. The target scenes (``synth_cooking``, ``synth_gym``, ``synth_hmdb``) use
patterns 0-9; the pretraining source ``synth_kinetics`` (stand-in for Kinetics-400) uses its own,
disjoint patterns 10-29, so fine-tuning measures transfer of motion features, not recall of
classes seen in pretraining.

Direction matters: ``translate_left`` mirrored is ``translate_right`` and ``rotate_cw`` mirrored
is ``rotate_ccw``, so horizontal-flip augmentation would corrupt labels. The data pipeline
disables flips for SynthMotion.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd

from vmp.data.masks import SceneLayers, masks_path, write_masks
from vmp.io import atomic_path, write_csv, write_text

MOTION_PATTERNS: tuple[str, ...] = (
    # Target scenes: patterns 0-9.
    "translate_left",
    "translate_right",
    "translate_up",
    "translate_down",
    "rotate_cw",
    "rotate_ccw",
    "zoom_in",
    "zoom_out",
    "oscillate_horizontal",
    "oscillate_vertical",
    # Pretraining source (synth_kinetics): patterns 10-29.
    "circle_cw",
    "circle_ccw",
    "diagonal_up_right",
    "diagonal_up_left",
    "diagonal_down_right",
    "diagonal_down_left",
    "move_then_stop",
    "stop_then_move",
    "move_and_return",
    "bounce",
    "zigzag",
    "pulse",
    "spin_oscillate",
    "still",
    "shake",
    "accelerate",
    "decelerate",
    "spiral_out",
    "figure_eight",
    "jump",
)

CAMERAS = ("static", "moving", "mixed")
SHAPES = ("disc", "square", "triangle", "ring", "cross", "diamond")
TEXTURES = ("stripes", "checker", "gradient", "noise")


@dataclass(frozen=True)
class SceneConfig:
    """One SynthMotion scene: what to generate and how hard it is.

    Attributes:
        name: Scene name, used in seeds, so equal configs with other names give other clips.
        classes: Number of classes, the patterns ``MOTION_PATTERNS[first_pattern:first_pattern+classes]``.
        videos_per_class: Videos generated per class.
        num_frames: Frames per video.
        size: Frame height and width in pixels (even, for yuv420p).
        fps: Frame rate written into the mp4.
        camera: "static", "moving" (pan + jitter) or "mixed" (each clip static or moving, 50/50).
        clutter: Background clutter in [0, 1]: number and contrast of background blobs.
        noise_std: Std of per-pixel Gaussian sensor noise, in units of full intensity.
        flicker: Std of the per-frame illumination gain around 1.
        distractors: Number of distractor objects with random, class-independent drift.
        splits: Number of train/val/test partitions of the same videos.
        test_fraction: Share of each class's videos in the test subset of every split.
        val_fraction: Share of each class's videos in the validation subset of every split
            (0: no validation subset). Settings are chosen on it, never on test.
        first_pattern: Index in ``MOTION_PATTERNS`` of the first class.
        pan: Largest camera pan over a clip, as a fraction of ``size`` (moving camera only).
        jitter: Std in pixels of the camera's hand-held jitter (moving camera only).
        crf: x264 constant rate factor (lower is better quality).
        object_size: Range of the main object's radius, as a fraction of ``size``.
        motion_scale: Factor on every pattern's displacement (travel, amplitude, radius of path).
        background_contrast: Factor on the background's deviation from its mean colour
            (1: as drawn; lower values make appearance a smaller share of the frames).
    """

    name: str
    classes: int
    videos_per_class: int
    num_frames: int = 32
    size: int = 64
    fps: int = 15
    camera: str = "static"
    clutter: float = 0.5
    noise_std: float = 0.02
    flicker: float = 0.03
    distractors: int = 1
    splits: int = 1
    test_fraction: float = 0.3
    val_fraction: float = 0.0
    first_pattern: int = 0
    pan: float = 0.25
    jitter: float = 0.6
    crf: int = 18
    object_size: tuple[float, float] = (0.1, 0.14)
    motion_scale: float = 1.0
    background_contrast: float = 1.0

    def __post_init__(self) -> None:
        def bad(field: str, fix: str) -> ValueError:
            value = getattr(self, field)
            return ValueError(f"SceneConfig {self.name!r}: {field}={value!r} is invalid; {fix}")

        n = len(MOTION_PATTERNS)
        if self.classes < 1 or self.first_pattern < 0 or self.first_pattern + self.classes > n:
            raise bad("classes", f"need 1 <= classes and first_pattern + classes <= {n}")
        if self.videos_per_class < 1:
            raise bad("videos_per_class", "use at least 1")
        if self.num_frames < 2:
            raise bad("num_frames", "use at least 2 frames")
        if self.size < 16 or self.size % 2:
            raise bad("size", "use an even size of at least 16 pixels")
        if self.fps < 1:
            raise bad("fps", "use a positive frame rate")
        if self.camera not in CAMERAS:
            raise bad("camera", f"use one of {CAMERAS}")
        if not 0.0 <= self.clutter <= 1.0:
            raise bad("clutter", "use a value in [0, 1]")
        for field in ("noise_std", "flicker", "pan", "jitter"):
            if getattr(self, field) < 0:
                raise bad(field, "use a non-negative value")
        if self.distractors < 0:
            raise bad("distractors", "use 0 or more")
        if self.splits < 1:
            raise bad("splits", "use at least 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise bad("test_fraction", "use a value strictly between 0 and 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad("val_fraction", "use a value in [0, 1)")
        if self.test_videos_per_class + self.val_videos_per_class >= self.videos_per_class:
            raise bad(
                "videos_per_class",
                f"with test_fraction={self.test_fraction} and val_fraction={self.val_fraction} "
                "no video is left for training; use more videos",
            )
        if not 0 <= self.crf <= 51:
            raise bad("crf", "use an x264 CRF in [0, 51]")
        lo, hi = self.object_size
        if not 0 < lo <= hi <= 0.4:
            raise bad("object_size", "use 0 < low <= high <= 0.4 (radius as a fraction of size)")
        if self.motion_scale <= 0:
            raise bad("motion_scale", "use a positive factor")
        if self.background_contrast < 0:
            raise bad("background_contrast", "use a non-negative factor")

    @property
    def test_videos_per_class(self) -> int:
        """Videos of each class in the test subset of every split (at least 1)."""
        return max(1, round(self.videos_per_class * self.test_fraction))

    @property
    def val_videos_per_class(self) -> int:
        """Videos of each class in the validation subset of every split (0 without one)."""
        return round(self.videos_per_class * self.val_fraction)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The scene's motion patterns, in ``MOTION_PATTERNS`` order."""
        return MOTION_PATTERNS[self.first_pattern : self.first_pattern + self.classes]


# What every scene shares. Chosen on *baseline validation* accuracy of small networks
# (docs/method.md, "How the default profile was chosen"): 32-px frames used as they are (no resize),
# 9 frames (T + 1 for T = 8), an object 11-15 px across moving 11-19 px over the clip, a
# background at 0.4 of its drawn contrast so appearance does not swamp motion, and near-lossless
# encoding (x264's quantisation at CRF 18 cost 8 points on 32-px clips).
_CPU_SIZED = dict(
    size=32,
    num_frames=9,
    object_size=(0.17, 0.23),
    motion_scale=1.2,
    background_contrast=0.4,
    crf=4,
    videos_per_class=100,
    test_fraction=0.25,
    val_fraction=0.15,
)

SCENES: dict[str, SceneConfig] = {
    # Static camera, moderate clutter (MPII Cooking 2).
    "synth_cooking": SceneConfig(
        "synth_cooking", classes=10, camera="static", clutter=0.5, **_CPU_SIZED
    ),
    # Camera pans and shakes (FineGym).
    "synth_gym": SceneConfig("synth_gym", classes=10, camera="moving", clutter=0.4, **_CPU_SIZED),
    # Moving camera, heavy clutter, more distractors and noise, 3 splits (HMDB-51).
    "synth_hmdb": SceneConfig(
        "synth_hmdb",
        classes=10,
        camera="moving",
        clutter=0.9,
        noise_std=0.03,
        flicker=0.05,
        distractors=2,
        splits=3,
        **_CPU_SIZED,
    ),
    # Pretraining source (Kinetics-400): larger, its own 20 patterns, static and moving camera.
    "synth_kinetics": SceneConfig(
        "synth_kinetics",
        classes=20,
        camera="mixed",
        clutter=0.7,
        distractors=1,
        first_pattern=10,
        # More source clips beat more epochs at equal cost (i3d_tiny: 64.5% validation top-1 with
        # 2,800 clips x 10 epochs against 47.5% with 1,400 x 20).
        **(_CPU_SIZED | {"videos_per_class": 180, "test_fraction": 0.1, "val_fraction": 0.1}),
    ),
}


# ----------------------------------------------------------------------------- motion patterns
# A pattern maps (rng, tau, size) to the object's path: displacement (T, 2) in pixels as (x, y)
# with y pointing down, rotation angle (T,) in radians (increasing = clockwise on screen) and a
# scale factor (T,). tau runs from 0 to 1 over the clip. Absolute placement is added later.

Motion = tuple[np.ndarray, np.ndarray, np.ndarray]


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _line(direction: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Displacement (T, 2) along a fixed direction by a distance profile (T,)."""
    return profile[:, None] * direction[None, :]


def _still(tau: np.ndarray) -> Motion:
    zero = np.zeros_like(tau)
    return np.zeros((tau.size, 2)), zero, np.ones_like(tau)


def _travel(rng: np.random.Generator, size: int) -> float:
    return size * rng.uniform(0.3, 0.5)


def _translate(angle: float) -> Callable[..., Motion]:
    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        _, a, s = _still(tau)
        return _line(_unit(angle), _travel(rng, size) * tau), a, s

    return path


def _rotate(sign: float) -> Callable[..., Motion]:
    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        d, _, s = _still(tau)
        turns = rng.uniform(0.5, 1.0)
        return d, sign * 2 * np.pi * turns * tau + rng.uniform(0, 2 * np.pi), s

    return path


def _zoom(grow: bool) -> Callable[..., Motion]:
    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        d, a, _ = _still(tau)
        ratio = rng.uniform(1.8, 2.5)  # end size / start size
        t = tau if grow else 1 - tau
        return d, a, ratio ** (t - 0.5)  # geometric, centred on 1 so mean size matches others

    return path


def _oscillate(axis: int) -> Callable[..., Motion]:
    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        d, a, s = _still(tau)
        cycles = rng.uniform(1.5, 3.0)
        d[:, axis] = (
            size * rng.uniform(0.12, 0.2) * np.sin(2 * np.pi * (cycles * tau + rng.random()))
        )
        return d, a, s

    return path


def _circle(sign: float) -> Callable[..., Motion]:
    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        _, a, s = _still(tau)
        theta = sign * 2 * np.pi * rng.uniform(0.75, 1.25) * tau + rng.uniform(0, 2 * np.pi)
        return size * rng.uniform(0.15, 0.22) * np.stack([np.cos(theta), np.sin(theta)], 1), a, s

    return path


def _profile(kind: str) -> Callable[..., Motion]:
    """Movement along a random direction with a given time profile (speed changes over time)."""

    def path(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
        _, a, s = _still(tau)
        switch = rng.uniform(0.35, 0.65)
        profile = {
            "move_then_stop": np.minimum(tau / switch, 1.0),
            "stop_then_move": np.maximum((tau - switch) / (1 - switch), 0.0),
            "move_and_return": 1 - np.abs(2 * tau - 1),
            "accelerate": tau**2,
            "decelerate": 1 - (1 - tau) ** 2,
            "jump": (tau >= switch).astype(float),
        }[kind]
        return _line(_unit(rng.uniform(0, 2 * np.pi)), _travel(rng, size) * profile), a, s

    return path


def _bounce(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    _, a, s = _still(tau)
    hops = rng.uniform(1.5, 3.0)
    y = -size * rng.uniform(0.25, 0.4) * np.abs(np.sin(np.pi * (hops * tau + rng.random())))
    x = size * rng.uniform(-0.15, 0.15) * tau
    return np.stack([x, y], 1), a, s


def _zigzag(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    _, a, s = _still(tau)
    teeth = rng.uniform(2.0, 3.5)
    phase = teeth * tau + rng.random()
    y = size * rng.uniform(0.1, 0.15) * (2 * np.abs(2 * (phase - np.floor(phase + 0.5))) - 1)
    x = rng.choice([-1.0, 1.0]) * _travel(rng, size) * tau
    return np.stack([x, y], 1), a, s


def _pulse(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    d, a, _ = _still(tau)
    cycles = rng.uniform(1.5, 3.0)
    return d, a, rng.uniform(1.3, 1.6) ** np.sin(2 * np.pi * (cycles * tau + rng.random()))


def _spin_oscillate(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    d, _, s = _still(tau)
    cycles = rng.uniform(1.5, 3.0)
    swing = rng.uniform(0.5, 0.9) * np.sin(2 * np.pi * (cycles * tau + rng.random()))
    return d, swing + rng.uniform(0, 2 * np.pi), s


def _stay(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    d, a, s = _still(tau)
    return d, a + rng.uniform(0, 2 * np.pi), s


def _shake(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    _, a, s = _still(tau)
    return rng.normal(0.0, size * rng.uniform(0.02, 0.035), (tau.size, 2)), a, s


def _spiral_out(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    _, a, s = _still(tau)
    sign = rng.choice([-1.0, 1.0])
    theta = sign * 2 * np.pi * rng.uniform(1.0, 1.5) * tau + rng.uniform(0, 2 * np.pi)
    radius = size * (0.03 + rng.uniform(0.17, 0.22) * tau)
    return radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1), a, s


def _figure_eight(rng: np.random.Generator, tau: np.ndarray, size: int) -> Motion:
    _, a, s = _still(tau)
    theta = 2 * np.pi * rng.uniform(0.8, 1.2) * tau + rng.uniform(0, 2 * np.pi)
    amp = size * rng.uniform(0.15, 0.22)
    xy = np.stack([amp * np.sin(theta), 0.6 * amp * np.sin(2 * theta)], 1)
    if rng.random() < 0.5:  # lying or standing eight
        xy = xy[:, ::-1].copy()
    return xy, a, s


_DIAG = np.pi / 4
_PATHS: dict[str, Callable[..., Motion]] = {
    "translate_left": _translate(np.pi),
    "translate_right": _translate(0.0),
    "translate_up": _translate(-np.pi / 2),
    "translate_down": _translate(np.pi / 2),
    "rotate_cw": _rotate(1.0),
    "rotate_ccw": _rotate(-1.0),
    "zoom_in": _zoom(True),
    "zoom_out": _zoom(False),
    "oscillate_horizontal": _oscillate(0),
    "oscillate_vertical": _oscillate(1),
    "circle_cw": _circle(1.0),
    "circle_ccw": _circle(-1.0),
    "diagonal_up_right": _translate(-_DIAG),
    "diagonal_up_left": _translate(-3 * _DIAG),
    "diagonal_down_right": _translate(_DIAG),
    "diagonal_down_left": _translate(3 * _DIAG),
    "move_then_stop": _profile("move_then_stop"),
    "stop_then_move": _profile("stop_then_move"),
    "move_and_return": _profile("move_and_return"),
    "bounce": _bounce,
    "zigzag": _zigzag,
    "pulse": _pulse,
    "spin_oscillate": _spin_oscillate,
    "still": _stay,
    "shake": _shake,
    "accelerate": _profile("accelerate"),
    "decelerate": _profile("decelerate"),
    "spiral_out": _spiral_out,
    "figure_eight": _figure_eight,
    "jump": _profile("jump"),
}
assert tuple(_PATHS) == MOTION_PATTERNS


# ----------------------------------------------------------------------------- appearance
def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, 3).astype(np.float32)


def _texture(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A random texture in [0, 1] over object coordinates (u, v) (about [-1, 1])."""
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    phi = rng.uniform(0, 2 * np.pi)
    along = u * np.cos(phi) + v * np.sin(phi)
    if kind == "stripes":
        return 0.5 + 0.5 * np.clip(3 * np.sin(rng.uniform(4, 8) * along), -1, 1)
    if kind == "checker":
        f = rng.uniform(3, 6)
        return 0.5 + 0.5 * np.clip(4 * np.sin(f * u) * np.sin(f * v), -1, 1)
    if kind == "gradient":
        return np.clip(0.5 + 0.5 * along, 0, 1)
    total = np.zeros_like(u)
    for _ in range(3):
        k = rng.normal(0, 4, 2)
        total += np.sin(k[0] * u + k[1] * v + rng.uniform(0, 2 * np.pi))
    return 0.5 + 0.5 * np.tanh(total)


def _shape_sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (approximate, in object units; < 0 inside) of a shape of radius ~1."""
    if shape == "disc":
        return np.hypot(u, v) - 1
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if shape == "triangle":
        normals = [np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]
        return np.max([u * np.cos(a) + v * np.sin(a) for a in normals], axis=0) - 0.6
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.7) - 0.3
    if shape == "cross":
        au, av_ = np.abs(u), np.abs(v)
        return np.minimum(np.maximum(au - 1, av_ - 0.38), np.maximum(au - 0.38, av_ - 1))
    return (np.abs(u) + np.abs(v)) / 1.2 - 1  # diamond


def _draw_object(
    frames: np.ndarray,
    pad: int,
    rng: np.random.Generator,
    centre: np.ndarray,
    angle: np.ndarray,
    radius: np.ndarray,
    coverage: np.ndarray | None = None,
) -> None:
    """Composite a random textured shape onto padded frames (T, H + 2 pad, W + 2 pad, 3) in place.

    Only a square patch around the object is computed in each frame. ``centre`` (T, 2) is in
    screen pixels (x, y); ``coverage`` (padded like frames), if given, takes the max with alpha.
    """
    half = _half_extent(radius)
    offsets = np.arange(2 * half)
    corner = np.floor(centre).astype(int) - half + pad
    ix = corner[:, 0, None] + offsets  # (T, P) padded column indices
    iy = corner[:, 1, None] + offsets
    c = centre.astype(np.float32)
    dx = (ix - pad + 0.5).astype(np.float32)[:, None, :] - c[:, 0, None, None]
    dy = (iy - pad + 0.5).astype(np.float32)[:, :, None] - c[:, 1, None, None]
    cos = np.cos(angle).astype(np.float32)[:, None, None]
    sin = np.sin(angle).astype(np.float32)[:, None, None]
    r = radius.astype(np.float32)[:, None, None]
    # Rotate screen offsets by -angle into object coordinates.
    u = (cos * dx + sin * dy) / r
    v = (-sin * dx + cos * dy) / r
    shape = SHAPES[rng.integers(len(SHAPES))]
    alpha = np.clip(0.5 - _shape_sdf(shape, u, v) * r, 0, 1)  # 1-pixel anti-aliased edge
    c1, c2, mark = _colour(rng), _colour(rng), _colour(rng)
    colour = c1 + (c2 - c1) * _texture(rng, u, v)[..., None]
    # An off-centre marker makes every object rotation-asymmetric, whatever its shape and texture.
    mx, my = rng.uniform(0.25, 0.45), rng.uniform(-0.45, -0.25)
    marker = np.clip(0.5 - (np.hypot(u - mx, v - my) - 0.22) * r, 0, 1)[..., None]
    colour += marker * (mark - colour)
    index = (np.arange(len(centre))[:, None, None], iy[:, :, None], ix[:, None, :])
    region = frames[index]
    region += alpha[..., None] * (colour - region)
    frames[index] = region
    if coverage is not None:
        coverage[index] = np.maximum(coverage[index], alpha)


def _half_extent(radius: np.ndarray) -> int:
    """Half side of a patch holding a shape of this radius (shapes reach 1.2 radii)."""
    return int(np.ceil(1.25 * radius.max())) + 2


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a (h0, w0, C) array (separable linear interpolation)."""
    h0, w0 = img.shape[:2]
    ys = np.linspace(0, h0 - 1, h)
    xs = np.linspace(0, w0 - 1, w)
    y0 = np.minimum(ys.astype(int), h0 - 2)
    x0 = np.minimum(xs.astype(int), w0 - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x0 + 1] * fx
    bottom = img[y0 + 1][:, x0] * (1 - fx) + img[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int, clutter: float, size: int) -> np.ndarray:
    """A random canvas (h, w, 3): gradient, smooth colour noise and textured blobs."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
    phi = rng.uniform(0, 2 * np.pi)
    ramp = ((xs * np.cos(phi) + ys * np.sin(phi)) / max(h, w) + 1) / 2
    c1, c2 = _colour(rng), _colour(rng)
    canvas = (c1 + (c2 - c1) * ramp[..., None]).astype(np.float32)
    coarse = rng.normal(0, 0.08 + 0.12 * clutter, (max(h // 12, 2), max(w // 12, 2), 3))
    canvas += _resize(coarse.astype(np.float32), h, w)
    for _ in range(rng.poisson(2 + 22 * clutter)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rad = size * rng.uniform(0.04, 0.2)
        # Each blob is drawn inside its bounding box only (soft blobs fade out within 1.5 radii).
        x0, x1 = max(int(cx - 1.6 * rad), 0), min(int(cx + 1.6 * rad) + 1, w)
        y0, y1 = max(int(cy - 1.6 * rad), 0), min(int(cy + 1.6 * rad) + 1, h)
        bx, by = xs[y0:y1, x0:x1] - cx, ys[y0:y1, x0:x1] - cy
        phi = rng.uniform(0, 2 * np.pi)
        u = (bx * np.cos(phi) + by * np.sin(phi)) / rad
        v = (-bx * np.sin(phi) + by * np.cos(phi)) / (rad * rng.uniform(0.4, 1.0))
        if rng.random() < 0.5:  # soft blob
            alpha = np.exp(-2 * (u**2 + v**2))
        else:  # hard-edged textured patch
            alpha = np.clip(0.5 - (np.hypot(u, v) - 1) * rad, 0, 1)
        alpha *= rng.uniform(0.3, 0.3 + 0.7 * clutter)
        colour = _colour(rng) + (rng.uniform(-0.3, 0.3) * _texture(rng, u, v))[..., None]
        box = canvas[y0:y1, x0:x1]
        box += alpha[..., None] * (colour - box)
    return canvas.astype(np.float32)


def _smooth_walk(rng: np.random.Generator, n: int, std: float) -> np.ndarray:
    """Zero-mean smooth random walk (n, 2) with per-step std ``std``, smoothed over 3 frames."""
    steps = rng.normal(0, std, (n + 2, 2))
    walk = np.cumsum(steps, axis=0)
    walk = (walk[:-2] + walk[1:-1] + walk[2:]) / 3
    return walk - walk.mean(axis=0)


def _place(rng: np.random.Generator, path: np.ndarray, margin: np.ndarray, size: int) -> np.ndarray:
    """Shift a screen path (T, 2) by a random offset that keeps it, with margin (T,), in frame."""
    lo = (margin[:, None] - path).max(axis=0)
    hi = (size - margin[:, None] - path).min(axis=0)
    offset = np.where(hi > lo, rng.uniform(lo, np.maximum(hi, lo)), (lo + hi) / 2)
    return path + offset


def appearance_motion_ratio(clips: np.ndarray) -> float:
    """Energy of what stays the same over time divided by the energy of what changes.

    For clips (N, T, H, W, C) with per-pixel temporal mean S: the variance of S (the static
    appearance) over the variance of the frames around S (motion, noise, flicker). The ratio
    does not change under an affine rescaling of intensities (e.g. normalisation). Rendered
    clips of the default scenes (40 each) measure 15.5 (synth_cooking), 8.9 (synth_gym) and 5.3
    (synth_hmdb, where camera motion and clutter make up most of the change), a small square
    moving on black about 0.4; tiny backbones trained from scratch learn the latter only.
    Returns ``inf`` for clips that do not change at all.
    """
    clips = np.asarray(clips, dtype=np.float64)
    if clips.ndim != 5:
        raise ValueError(
            f"appearance_motion_ratio: clips have shape {clips.shape}; expected (N, T, H, W, C)"
        )
    static = clips.mean(axis=1, keepdims=True)
    appearance = static.var()
    motion = np.mean((clips - static) ** 2)
    return float(appearance / motion) if motion > 0 else float("inf")


def render_clip(
    pattern: str,
    rng: np.random.Generator,
    cfg: SceneConfig,
    *,
    return_mask: bool = False,
    return_layers: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, SceneLayers]:
    """Render one clip of a motion pattern.

    Args:
        pattern: A name from ``MOTION_PATTERNS``.
        rng: Source of all randomness; the same generator state gives the same clip.
        cfg: Scene settings (frames, size, camera, clutter, noise, flicker, distractors).
        return_mask: Also return the coverage (T, H, W) float32 in [0, 1] of all objects
            (main and distractors), e.g. to look at the background alone.
        return_layers: Also return the ground truth as :class:`SceneLayers` (the class object's
            and the distractors' visible masks, the camera path). Neither option draws random
            numbers, so the frames are the same with or without them.

    Returns:
        Frames (T, H, W, 3) uint8, or (frames, mask) / (frames, layers) when asked.
    """
    if return_mask and return_layers:
        raise ValueError("render_clip: ask for return_mask or return_layers, not both")
    if pattern not in _PATHS:
        raise ValueError(
            f"pattern={pattern!r} is unknown; use one of MOTION_PATTERNS: {MOTION_PATTERNS}"
        )
    t, size = cfg.num_frames, cfg.size
    tau = np.linspace(0.0, 1.0, t)
    moving = cfg.camera == "moving" or (cfg.camera == "mixed" and rng.random() < 0.5)

    # Camera: a linear pan in a random direction plus smooth hand-held jitter (pixels, x/y).
    cam = np.zeros((t, 2))
    if moving:
        pan = size * cfg.pan * rng.uniform(0.3, 1.0)
        cam = tau[:, None] * pan * _unit(rng.uniform(0, 2 * np.pi))[None, :]
        cam += _smooth_walk(rng, t, cfg.jitter)
        cam -= cam.min(axis=0)
    border = int(np.ceil(np.abs(cam).max())) + 2
    canvas_size = size + 2 * border
    canvas = _background(rng, canvas_size, canvas_size, cfg.clutter * rng.uniform(0.6, 1.0), size)
    if cfg.background_contrast != 1.0:
        mean = canvas.mean(axis=(0, 1), keepdims=True)
        canvas = mean + np.float32(cfg.background_contrast) * (canvas - mean)

    # Objects live in world coordinates, so their screen path is the world path minus the camera.
    objects = []
    for _ in range(cfg.distractors):
        radius = np.full(t, size * rng.uniform(0.05, 0.09))
        drift = tau[:, None] * size * rng.uniform(0, 0.2) * _unit(rng.uniform(0, 2 * np.pi))
        path = drift + _smooth_walk(rng, t, size * 0.01) - cam
        angle = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.3) * tau
        objects.append((_place(rng, path, 1.2 * radius, size), angle, radius))
    disp, angle, scale = _PATHS[pattern](rng, tau, size * cfg.motion_scale)
    radius = size * rng.uniform(*cfg.object_size) * scale
    main = (_place(rng, disp - cam, 1.2 * radius, size), angle, radius)
    # The main object is drawn at a random depth among the distractors.
    objects.insert(int(rng.integers(len(objects) + 1)), main)

    # Frames carry a border so object patches never need clipping at the frame edge.
    pad = max(_half_extent(rad) for _, _, rad in objects) + 1
    frames = np.zeros((t, size + 2 * pad, size + 2 * pad, 3), np.float32)
    inner = (slice(None), slice(pad, pad + size), slice(pad, pad + size))
    # Crop the canvas at each camera position; a pure shift, so bilinear interpolation is separable.
    for i, (cx, cy) in enumerate(cam):
        x0, y0 = int(np.floor(cx)), int(np.floor(cy))
        fx, fy = np.float32(cx - x0), np.float32(cy - y0)
        win = canvas[y0 : y0 + size + 1, x0 : x0 + size + 1]
        rows = win[:-1] * (1 - fy) + win[1:] * fy
        frames[i, pad : pad + size, pad : pad + size] = rows[:, :-1] * (1 - fx) + rows[:, 1:] * fx

    coverage = np.zeros(frames.shape[:3], np.float32) if return_mask else None
    # With return_layers: each object's alpha, reduced by the objects drawn over it later.
    visible: list[np.ndarray] = []
    for centre, ang, rad in objects:
        alpha = np.zeros(frames.shape[:3], np.float32) if return_layers else coverage
        _draw_object(frames, pad, rng, centre, np.broadcast_to(ang, (t,)), rad, alpha)
        if return_layers:
            for earlier in visible:
                earlier *= 1 - alpha
            visible.append(alpha)
    frames = frames[inner]

    if cfg.flicker > 0:
        gain = 1 + np.clip(rng.normal(0, cfg.flicker, t), -3 * cfg.flicker, 3 * cfg.flicker)
        frames *= gain.astype(np.float32)[:, None, None, None]
    if cfg.noise_std > 0:
        frames += np.float32(cfg.noise_std) * rng.standard_normal(frames.shape, np.float32)
    out = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    if return_layers:
        main_index = next(k for k, o in enumerate(objects) if o is main)
        others = [v for k, v in enumerate(visible) if k != main_index]
        layers = SceneLayers(
            object=visible[main_index][inner],
            distractors=(sum(others) if others else np.zeros_like(visible[0]))[inner],
            camera=cam.astype(np.float32),
        )
        return out, layers
    return (out, coverage[inner]) if return_mask else out


# ----------------------------------------------------------------------------- writing
def _codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int, codec: str) -> None:
    """Encode frames (T, H, W, 3) uint8 as mp4 at ``path``, atomically (``vmp.io.atomic_path``)."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # One thread: x264's thread start-up costs more than a 64x64 frame takes to encode.
            # No macroblock tree: with it, repeated encodes of the same frames occasionally differ
            # (measured: ~1 in 100 with PyAV 18), which would break per-seed determinism.
            stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "threads": "1",
                "x264-params": "mbtree=0",
            }
        else:
            stream.options = {"qscale": "2"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _resolve(scene: str | SceneConfig, overrides: dict) -> SceneConfig:
    if isinstance(scene, str):
        if scene not in SCENES:
            raise ValueError(
                f"scene={scene!r} is unknown; use one of {sorted(SCENES)} or a SceneConfig"
            )
        scene = SCENES[scene]
    fields = [f.name for f in dataclasses.fields(SceneConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"generate() got unknown SceneConfig field(s) {unknown}; allowed: {fields}")
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(scene, **overrides)


def _clip_seed(seed: int, cfg: SceneConfig, pattern: str, index: int) -> np.random.SeedSequence:
    # Keyed by scene name, pattern and index: a video does not depend on how many others exist.
    key = (zlib.crc32(cfg.name.encode()), MOTION_PATTERNS.index(pattern), index)
    return np.random.SeedSequence(seed, spawn_key=key)


def _split_table(cfg: SceneConfig, seed: int, videos: pd.DataFrame) -> pd.DataFrame:
    """One row per video per split; each split a stratified random train/val/test partition."""
    n_test, n_val = cfg.test_videos_per_class, cfg.val_videos_per_class
    tables = []
    for split in range(1, cfg.splits + 1):
        rng = np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(zlib.crc32(cfg.name.encode()), 2**20 + split))
        )
        subset = np.empty(len(videos), dtype=object)
        for _, rows in videos.groupby("label").groups.items():
            order = rng.permutation(np.asarray(rows))
            subset[order[:n_test]] = "test"
            subset[order[n_test : n_test + n_val]] = "val"
            subset[order[n_test + n_val :]] = "train"
        tables.append(videos.assign(split=split, subset=subset))
    return pd.concat(tables, ignore_index=True)


def generate(
    root: str | Path, scene: str | SceneConfig, *, seed: int = 0, **overrides: object
) -> pd.DataFrame:
    """Generate a SynthMotion scene as mp4 files plus a manifest.

    Writes ``root/videos/<class>/<class>_<idx:05d>.mp4`` with its ground truth beside it
    (``<class>_<idx:05d>.masks.npz``: :func:`write_masks`), then ``root/generation.json``
    (config, seed, counts, timings) and last ``root/manifest.csv`` (columns path, label,
    class_name, split, subset), so a manifest only exists for a complete generation.

    Args:
        root: Output folder (created if missing).
        scene: A preset name from ``SCENES`` or a ``SceneConfig``.
        seed: Seed; the same seed gives the same decoded frames.
        **overrides: Replacement ``SceneConfig`` fields, e.g. ``videos_per_class=4, size=32``.

    Returns:
        The manifest, one row per video per split; labels index the sorted class names.

    Raises:
        TypeError: An override is not a ``SceneConfig`` field.
        ValueError: Unknown scene or invalid settings.
    """
    cfg = _resolve(scene, overrides)
    root = Path(root)
    manifest_path = root / "manifest.csv"
    manifest_path.unlink(missing_ok=True)  # a stale manifest must not vouch for a partial rerun
    # vmp.data.clips.write_decoded's copy of the old videos
    for stale in ("decoded.npy", "decoded.json"):
        (root / stale).unlink(missing_ok=True)
    codec = _codec()
    labels = {name: i for i, name in enumerate(sorted(cfg.class_names))}

    rows, render_s, encode_s = [], 0.0, 0.0
    start = time.perf_counter()
    for pattern in cfg.class_names:
        folder = root / "videos" / pattern
        folder.mkdir(parents=True, exist_ok=True)
        for idx in range(cfg.videos_per_class):
            t0 = time.perf_counter()
            rng = np.random.default_rng(_clip_seed(seed, cfg, pattern, idx))
            frames, layers = render_clip(pattern, rng, cfg, return_layers=True)
            t1 = time.perf_counter()
            video = folder / f"{pattern}_{idx:05d}.mp4"
            _write_mp4(video, frames, cfg.fps, cfg.crf, codec)
            write_masks(masks_path(video), layers)
            render_s += t1 - t0
            encode_s += time.perf_counter() - t1
            rel = f"videos/{pattern}/{pattern}_{idx:05d}.mp4"
            rows.append({"path": rel, "label": labels[pattern], "class_name": pattern})
    seconds = time.perf_counter() - start

    manifest = _split_table(cfg, seed, pd.DataFrame(rows))
    manifest = manifest[["path", "label", "class_name", "split", "subset"]]
    info = {
        "scene": dataclasses.asdict(cfg),
        "seed": seed,
        "videos": len(rows),
        "class_names": list(cfg.class_names),
        "codec": codec,
        "seconds": round(seconds, 3),
        "render_seconds": round(render_s, 3),
        "encode_seconds": round(encode_s, 3),
        "clips_per_second": round(len(rows) / max(seconds, 1e-9), 2),
    }
    write_text(root / "generation.json", json.dumps(info, indent=2) + "\n")
    write_csv(manifest_path, manifest)
    return manifest
