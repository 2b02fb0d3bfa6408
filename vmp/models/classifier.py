"""`VideoClassifier`: optional motion prompt layer(s) + normalisation + a video backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from vmp.layer.oracle import NO_MASKS, OraclePromptLayer
from vmp.layer.prompt import MotionPromptLayer

PROMPT_INPUTS = ("raw", "normalized")
RELEASED_MEAN = (0.45, 0.45, 0.45)
RELEASED_STD = (0.225, 0.225, 0.225)


class ClassifierOutput(NamedTuple):
    """What `VideoClassifier.forward` returns.

    Attributes:
        logits: (B, num_classes) unnormalised class scores (no softmax).
        attentions: one (B, T', H, W) attention map per prompt layer, in pathway order
            (slow before fast); empty for baselines.
    """

    logits: Tensor
    attentions: tuple[Tensor, ...]


class Pathway(NamedTuple):
    """One input stream of a backbone: its name and its frame stride in the clip."""

    name: str
    stride: int = 1


class VideoClassifier(nn.Module):
    """A backbone fed with the last T frames of a T+1-frame clip, or with T motion prompts.

    ::

        video (B, 3, T+1, H, W) in [0, 1]
          |  per pathway: frames 0, s, 2s, ..., T   (s = pathway stride; 1 for single-stream)
          v
        with prompt layer:  MotionPromptLayer -> T/s prompts  (diffs of consecutive frames)
        (oracle layer:      the object masks' motion regions -> T/s prompts, vmp.layer.oracle)
        baseline:           drop the first of those frames -> the same T/s frames
          |
        (x - mean) / std    (before the prompt layer when prompt_input="normalized")
          v
        backbone -> logits (B, num_classes)

    Dropping the first frame in the baseline makes baseline and VMP models see exactly the
    same frames, so the only difference is the prompt layer.

    A model with oracle layers (``vmp_oracle``; ``needs_masks``) takes video (B, 4, T+1, H, W):
    the frames and, as a fourth channel, the class object's mask in each frame
    (:class:`vmp.data.clips.ClipDataset` with ``mask_channel=True``); each oracle layer gets its
    pathway's frames and masks. A clip without the mask channel raises a ValueError.

    Args:
        backbone: module mapping a (B, 3, T, H, W) tensor (or a list of them, one per pathway)
            to logits.
        name: registry name, stored in checkpoints.
        num_classes: size of the logits.
        num_frames: T, frames the backbone sees (the finest pathway); forward takes T + 1.
        pathways: the backbone's input streams; one tensor is passed when there is one.
        prompt_layers: pathway name -> prompt layer, for the pathways that get prompts.
        prompt_input: "raw" (the paper: the layer sees [0, 1] frames, prompts are normalised
            afterwards) or "normalized" (released code: the clip is normalised first).
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        head_keys: state-dict keys of the classification layer (replaced on class mismatch).
        channels_last: keep the backbone's Conv3d weights and feed its inputs in the
            channels-last (NDHWC) memory layout; the same numbers up to rounding, faster on CPU
            for C2D, I3D and X3D.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        name: str,
        num_classes: int,
        num_frames: int,
        pathways: Sequence[Pathway] = (Pathway("video"),),
        prompt_layers: dict[str, nn.Module] | None = None,
        prompt_input: str = "raw",
        mean: Sequence[float] = RELEASED_MEAN,
        std: Sequence[float] = RELEASED_STD,
        head_keys: Sequence[str] = (),
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if prompt_input not in PROMPT_INPUTS:
            raise ValueError(f"prompt_input must be one of {PROMPT_INPUTS}, got {prompt_input!r}")
        names = [p.name for p in pathways]
        unknown = sorted(set(prompt_layers or {}) - set(names))
        if unknown:
            raise ValueError(f"prompt layers for unknown pathways {unknown}; {name} has {names}")
        for p in pathways:
            if num_frames % p.stride:
                raise ValueError(
                    f"num_frames={num_frames} must be divisible by the stride {p.stride} "
                    f"of pathway {p.name!r} of {name}"
                )
        self.backbone = backbone
        self.name = name
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.pathways = tuple(pathways)
        self.prompt_layers = nn.ModuleDict(prompt_layers or {})
        self.prompt_input = prompt_input
        self.head_keys = tuple(head_keys)
        self.channels_last = channels_last
        if channels_last:
            for module in backbone.modules():
                if isinstance(module, nn.Conv3d):
                    module.to(memory_format=torch.channels_last_3d)
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1, 1), persistent=False)

    @property
    def needs_masks(self) -> bool:
        """Whether a prompt layer is an oracle's: clips then carry the object mask as channel 4."""
        return any(getattr(layer, "needs_masks", False) for layer in self.prompt_layers.values())

    def _normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def forward(self, video: Tensor) -> ClassifierOutput:
        """Classify a clip of T + 1 raw frames.

        Args:
            video: (B, 3, T+1, H, W) float in [0, 1], not normalised; or uint8 in [0, 255] as
                :class:`vmp.data.clips.ClipDataset` hands it out (divided by 255 here, on the device
                the clip was moved to: every consumer of clips goes through this line). With
                oracle layers (``needs_masks``) (B, 4, T+1, H, W), channel 4 the object mask.

        Returns:
            `ClassifierOutput` with logits and the prompt layers' attention maps.
        """
        expected = self.num_frames + 1
        channels = 4 if self.needs_masks else 3
        if video.ndim == 5 and video.shape[1] == 3 and channels == 4:
            raise ValueError(f"{self.name}: this clip has no masks; {NO_MASKS}")
        if video.ndim != 5 or video.shape[1] != channels or video.shape[2] != expected:
            raise ValueError(
                f"{self.name} expects video of shape (B, {channels}, {expected}, H, W) "
                f"(num_frames + 1 = {expected} frames, channels first); got {tuple(video.shape)}"
            )
        if video.dtype == torch.uint8:  # the loader's former float32 values (then the model's
            video = video.float().div_(255.0).to(self.mean.dtype)  # dtype, as Lightning cast them)
        masks = None
        if channels == 4:  # the object mask, 0..1 as ClipDataset's object_mask (uint8 / 255)
            masks, video = video[:, 3], video[:, :3]
        normalized_first = self.prompt_input == "normalized"
        if normalized_first:
            video = self._normalize(video)
        inputs, attentions = [], []
        for pathway in self.pathways:
            clip = video[:, :, :: pathway.stride]
            if pathway.name in self.prompt_layers:
                layer = self.prompt_layers[pathway.name]
                if getattr(layer, "needs_masks", False):
                    prompts, attention = layer(clip, masks[:, :: pathway.stride])
                else:
                    prompts, attention = layer(clip)
                inputs.append(prompts)
                attentions.append(attention)
            else:
                inputs.append(clip[:, :, 1:])
        if not normalized_first:
            inputs = [self._normalize(x) for x in inputs]
        if self.channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last_3d) for x in inputs]
        logits = self.backbone(inputs if len(inputs) > 1 else inputs[0])
        return ClassifierOutput(logits, tuple(attentions))


def make_prompt_layer(
    prompt: str, prompt_input: str, mean: Sequence[float], std: Sequence[float], **kwargs
) -> MotionPromptLayer | OraclePromptLayer:
    """Build a `MotionPromptLayer` for `prompt` ("vmp" or a power-normalisation name), or the
    `OraclePromptLayer` for "oracle" (oracle: ground truth, not a method).

    `kwargs` go to `MotionPromptLayer` (alpha, beta, gamma, eps, grayscale_order, ...). The
    oracle's form is fixed (vmp.layer.oracle): raw input, no start, gate or other options.
    """
    if prompt == "oracle":
        defaults = (("init", "paper"), ("gate", False))
        options = {k: v for k, v in kwargs.items() if (k, v) not in defaults}
        if prompt_input != "raw" or options:
            raise ValueError(
                "prompt='oracle' has one fixed form (vmp.layer.oracle): prompt_input='raw' and no "
                f"layer options; got prompt_input={prompt_input!r}, options {options}"
            )
        return OraclePromptLayer()
    if prompt_input == "normalized" and (
        tuple(mean) != RELEASED_MEAN or tuple(std) != RELEASED_STD
    ):
        raise ValueError(
            "prompt_input='normalized' needs mean=(0.45,)*3 and std=(0.225,)*3 (the layer "
            f"un-normalises with those); got mean={tuple(mean)}, std={tuple(std)}"
        )
    power_norm = "sigmoid" if prompt == "vmp" else prompt
    return MotionPromptLayer(
        **kwargs, power_norm=power_norm, input_normalized=prompt_input == "normalized"
    )


def prompt_layer(model: torch.nn.Module, pathway: str | None = None) -> MotionPromptLayer:
    """A model's prompt layer: ``pathway``, else "video", else "fast", else the first one."""
    layers = getattr(model, "prompt_layers", {})
    if not layers:
        raise ValueError(
            f"prompt_layer: {getattr(model, 'name', 'model')} has no prompt layer (a baseline); "
            "pick a run of a vmp variant"
        )
    if pathway is not None:
        if pathway not in layers:
            raise ValueError(f"prompt_layer: no layer for pathway {pathway!r}; has {list(layers)}")
        return layers[pathway]
    for name in ("video", "fast"):
        if name in layers:
            return layers[name]
    return next(iter(layers.values()))
