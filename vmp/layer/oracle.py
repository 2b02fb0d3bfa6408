"""The oracle prompt layer (``vmp_oracle``): oracle: ground truth, not a method.

The positive control of the motion prompt layer (``vmp.layer.prompt``). The layer stays where it
was and multiplies the same frames, but A_t is no longer learned from the frame differences: it is
SynthMotion's ground truth, the class object's motion region::

    frames F_1..F_{T+1}  (B, 3, T+1, H, W)
    object masks O_1..O_{T+1}  (B, T+1, H, W), resized, cropped and flipped with the frames
        --> A_t = 1 where O_t >= 0.5 or O_{t+1} >= 0.5, else 0   (t = 1..T)
        --> prompts Z_t = A_t * F_{t+1}  (B, 3, T, H, W)

So Z_t keeps frame t+1 where the class object is in frame t or t+1 (the object, and what its
motion uncovered) and removes clutter, distractors and the background the camera moves. The
layer has no parameters and A is fixed: no temporal-variation regulariser is applied to it
(``vmp.training.run`` trains it with lambda 0).

The exact form, fixed before any oracle accuracy was seen:

* Hard 0/1. A floor outside the region would pass part of the clutter, distractors and moving
  background, and its value would be one more free choice; 0 removes them, as the control means
  to, and 1 inside keeps the object's pixels as the frames show them.
* No dilation. The region is exactly the one ``vmp.analysis.attention`` scores the learned maps
  against (``motion_region``: the rule of ``vmp.analysis.attention.motion_regions``), so an
  oracle run's maps score object share, precision and recall 1, the top of the scale the
  learned maps are read on. The masks go
  through the same resize, crop and flip as the frames (one tensor in
  ``vmp.data.clips.ClipDataset``) and are thresholded after resizing, so the region's edge lies
  within half a pixel of the resized object's; there is no misalignment for a dilation to
  cover, and at 32-48 px crops even 1 px would add much background (an 8 x 8 object's 1-px ring
  is 36 pixels, 56% more than the object). The cost: edge pixels the object covers less than
  half are dropped, as the scores drop them.

The masks reach the layer with the clip: a model with oracle layers takes video
(B, 4, T+1, H, W), its fourth channel the object mask (``ClipDataset(mask_channel=True)``), and
``vmp.models.VideoClassifier.forward`` hands each oracle layer its pathway's frames and masks.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor, nn

from vmp.layer.prompt import PromptOutput
from vmp.names import ORACLE_LABEL, ORACLE_VARIANT

MaskArray = TypeVar("MaskArray")  # a torch tensor or a numpy array

# A resized (soft) mask pixel belongs to its region where its coverage is at least this.
MASK_THRESHOLD = 0.5

NO_MASKS = (
    f"{ORACLE_VARIANT} ({ORACLE_LABEL}) needs the class object's masks with every clip: "
    "SynthMotion clips from vmp.data.clips.ClipDataset(mask_channel=True), whose video has a "
    "fourth channel, the object mask (B, 4, T+1, H, W)"
)


def motion_region(object_mask: MaskArray) -> MaskArray:
    """The class object's motion region of T+1 frames' masks (..., T+1, H, W), torch or numpy:
    boolean (..., T, H, W), region t the object in frame t or in frame t+1 (coverage at least
    ``MASK_THRESHOLD``), what moves for the class in the difference of frames t and t+1.

    The region ``vmp.analysis.attention`` scores attention maps against, and the oracle's map.
    """
    obj = object_mask >= MASK_THRESHOLD
    return obj[..., 1:, :, :] | obj[..., :-1, :, :]


class OraclePromptLayer(nn.Module):
    """Motion prompts ``A_t * F_{t+1}`` with A_t the class object's ground-truth motion region
    (hard 0/1, no dilation: see the module docstring for the form and why).

    The same interface as ``MotionPromptLayer`` where the training and its records read a prompt
    layer (``reset_parameters``, ``pn_parameters``, ``static_gain``), with nothing to draw, learn
    or report; ``needs_masks`` tells :class:`vmp.models.VideoClassifier` to pass the masks.
    """

    needs_masks = True

    def forward(self, video: Tensor, object_mask: Tensor | None = None) -> PromptOutput:
        """Prompts of a clip from its object masks.

        Args:
            video: (B, 3, T+1, H, W) float frames (raw, in [0, 1], as the classifier gives them).
            object_mask: (B, T+1, H, W) the class object's coverage in [0, 1] in the same frames.

        Returns:
            ``PromptOutput(prompts (B, 3, T, H, W), attention (B, T, H, W))``, attention 0 or 1.

        Raises:
            ValueError: no masks, or masks that do not fit the clip.
        """
        if object_mask is None:
            raise ValueError(NO_MASKS)
        if video.dim() != 5 or video.shape[1] != 3 or video.shape[2] < 2:
            raise ValueError(
                f"OraclePromptLayer: video has shape {tuple(video.shape)}; expected "
                "(B, 3, T+1, H, W) with at least 2 frames"
            )
        b, _, frames, h, w = video.shape
        if tuple(object_mask.shape) != (b, frames, h, w):
            raise ValueError(
                f"OraclePromptLayer: masks {tuple(object_mask.shape)} do not fit the clip "
                f"{tuple(video.shape)}; expected ({b}, {frames}, {h}, {w})"
            )
        # oracle: ground truth, not a method. Hard 0/1 on exactly the scored motion region (the
        # object in frame t or t+1), no dilation, no floor (why: the module docstring).
        attention = motion_region(object_mask).to(video.dtype)
        return PromptOutput(attention.unsqueeze(1) * video[:, :, 1:], attention)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Nothing to draw: no parameters (a replicate's draws stay the baseline's)."""

    def pn_parameters(self) -> dict[str, Tensor]:
        """No parameters to log."""
        return {}

    def static_gain(self) -> dict[str, float]:
        """No static gain: a static pixel passes inside the region and is removed outside it."""
        return {}

    def extra_repr(self) -> str:
        return f"{ORACLE_LABEL}; A_t = object in frame t or t+1, hard 0/1, no dilation"
