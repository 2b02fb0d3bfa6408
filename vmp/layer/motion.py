"""Hand-crafted motion representations shown beside the motion prompts in Fig. 1.

Every function takes one clip, either (3, T+1, H, W) (the layout of ``vmp.data.clips.ClipDataset``)
or (T+1, H, W, 3), as a torch tensor or numpy array with values in [0, 1] (when both end axes
have size 3, tensors are read channels-first and arrays channels-last), and returns numpy
images ready for matplotlib:

- ``frame_differences``: D_t = G_{t+1} - G_t of BT.601 grayscale frames G, (T, H, W) in [-1, 1].
- ``time_colour_reordering``: Kim et al. (BMVC 2022) channel sampling, (T-1, H, W, 3) in [0, 1].
- ``taylor_video``: Wang et al. (ICML 2024) Taylor frames, (T+1 - (order+4) + 1, H, W, 3),
  signed and unbounded (map them with ``signed_to_unit`` to show them).
"""

from __future__ import annotations

from math import comb, factorial

import numpy as np
import torch

from vmp.layer.prompt import GRAYSCALE_WEIGHTS

REORDERINGS: tuple[str, ...] = ("gray", "tc")


def _frames(video: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    """The clip as float64 (N, H, W, 3).

    The layout follows the shape; when both the first and last axes have size 3, a torch
    tensor is read as channels-first (vmp's clips) and a numpy array as channels-last.
    """
    channels_first_hint = isinstance(video, torch.Tensor)
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray):
        raise TypeError(f"{what}: video must be a torch.Tensor or numpy array, got {type(video)}")
    if video.ndim != 4 or 3 not in (video.shape[0], video.shape[-1]):
        raise ValueError(
            f"{what}: video has shape {video.shape}; expected (3, T+1, H, W) or (T+1, H, W, 3) "
            "with values in [0, 1] (drop the batch axis with video[0])"
        )
    if not np.issubdtype(video.dtype, np.floating):
        raise ValueError(
            f"{what}: video has dtype {video.dtype}; expected floats in [0, 1] "
            "(convert uint8 frames with video / 255)"
        )
    first, last = video.shape[0] == 3, video.shape[-1] == 3
    channels_first = first and (not last or channels_first_hint)
    frames = np.moveaxis(video, 0, -1) if channels_first else video
    return frames.astype(np.float64)


def grayscale(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of every frame, (T+1, H, W)."""
    return _frames(video, "grayscale") @ np.asarray(GRAYSCALE_WEIGHTS["rgb"])


def frame_differences(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """Grayscale frame differences ``D_t = G_{t+1} - G_t`` (the prompt layer's input), (T, H, W).

    Args:
        video: (3, T+1, H, W) or (T+1, H, W, 3) in [0, 1], at least 2 frames.
    """
    gray = grayscale(video)
    if len(gray) < 2:
        raise ValueError(f"frame_differences: need at least 2 frames, got {len(gray)}")
    return gray[1:] - gray[:-1]


def time_colour_reordering(video: torch.Tensor | np.ndarray, mode: str = "gray") -> np.ndarray:
    """Channel sampling of Kim et al. (BMVC 2022): three time steps in one RGB image.

    Output image k (k = 0..T-2) is built from frames k, k+1, k+2:

    - ``mode="gray"`` (their GrayST): the grayscale frames ``(G_k, G_{k+1}, G_{k+2})`` as
      (R, G, B), so a still pixel is gray and a moving one is coloured.
    - ``mode="tc"`` (their TC reordering): one colour channel c = k mod 3 of the three frames,
      ``(F_k[c], F_{k+1}[c], F_{k+2}[c])``, cycling c through R, G, B along the clip.

    Only images whose three frames lie in the clip are returned (no repeated last frame).

    Args:
        video: (3, T+1, H, W) or (T+1, H, W, 3) in [0, 1], at least 3 frames.
        mode: "gray" or "tc".

    Returns:
        (T-1, H, W, 3) in [0, 1].
    """
    if mode not in REORDERINGS:
        raise ValueError(f"time_colour_reordering: mode={mode!r}; choose one of {REORDERINGS}")
    frames = _frames(video, "time_colour_reordering")
    n = len(frames)
    if n < 3:
        raise ValueError(f"time_colour_reordering: need at least 3 frames, got {n}")
    if mode == "gray":
        planes = frames @ np.asarray(GRAYSCALE_WEIGHTS["rgb"])
        return np.stack([planes[:-2], planes[1:-1], planes[2:]], axis=-1)
    return np.stack(
        [np.stack([frames[k + j, ..., k % 3] for j in range(3)], axis=-1) for k in range(n - 2)]
    )


def taylor_video(video: torch.Tensor | np.ndarray, order: int = 2) -> np.ndarray:
    """Taylor frames of Wang et al. (ICML 2024), one per sliding temporal block (step 1).

    A block holds L = order + 4 grayscale frames G_s..G_{s+L-1}. The unknown motion function
    is expanded around the block's first frame a = G_s, its temporal derivatives replaced by
    forward differences ``Δ^j G_s = sum_i (-1)^(j-i) C(j, i) G_{s+i}``. Channel c = 1, 2, 3
    (displacement, velocity, acceleration in their terms) is the expansion of the c-th
    derivative, evaluated at every frame x = G_{s+i} of the block and summed over the block::

        M_c = sum_{k=0}^{order} S_k * Δ^{k+c} G_s,    S_k = sum_{i=0}^{L-1} (G_{s+i} - G_s)^k / k!

    (per pixel; S_0 = L). Static pixels have zero differences and so zero motion in every
    channel; highest difference used is order + 3, hence L = order + 4 frames.

    Args:
        video: (3, T+1, H, W) or (T+1, H, W, 3) in [0, 1], at least order + 4 frames.
        order: highest power k of (x - a) kept (>= 0).

    Returns:
        (T+1 - L + 1, H, W, 3) float, signed and not bounded to [-1, 1].
    """
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"taylor_video: order must be an int >= 0, got {order!r}")
    gray = grayscale(video)
    length = order + 4
    if len(gray) < length:
        raise ValueError(
            f"taylor_video: order={order} needs blocks of {length} frames, the clip has "
            f"{len(gray)}; lower order or sample more frames"
        )
    out = []
    for s in range(len(gray) - length + 1):
        block = gray[s : s + length]
        deltas = [
            sum((-1) ** (j - i) * comb(j, i) * block[i] for i in range(j + 1))
            for j in range(order + 4)
        ]
        offsets = block - block[0]
        powers = [(offsets**k).sum(axis=0) / factorial(k) for k in range(order + 1)]
        channels = [sum(powers[k] * deltas[k + c] for k in range(order + 1)) for c in (1, 2, 3)]
        out.append(np.stack(channels, axis=-1))
    return np.stack(out)


def signed_to_unit(x: np.ndarray) -> np.ndarray:
    """Map signed values to [0, 1] for display: 0 -> 0.5, the largest magnitude -> 0 or 1."""
    x = np.asarray(x, dtype=np.float64)
    scale = np.abs(x).max()
    return 0.5 + 0.5 * x / scale if scale > 0 else np.full_like(x, 0.5)
