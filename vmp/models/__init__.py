"""Backbone registry: every backbone of the paper at paper size and as a tiny CPU version.

from vmp.models import create_model, list_models, list_variants, variant_options
model = create_model("slowfast_tiny", num_classes=10, **variant_options("slowfast_tiny", "vmp_fast"))
logits, attentions = model(video)       # video (B, 3, T+1, H, W) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from vmp.models import backbones as _backbones  # noqa: F401  (registers the models)
from vmp.models.checkpoint import load_pretrained, save_checkpoint
from vmp.models.classifier import (
    RELEASED_MEAN,
    RELEASED_STD,
    ClassifierOutput,
    Pathway,
    VideoClassifier,
    make_prompt_layer,
    prompt_layer,
)
from vmp.models.registry import (
    get_entry,
    list_models,
    list_variants,
    register_model,
    sigmoid_variant,
    variant_options,
)

__all__ = [
    "ClassifierOutput",
    "Pathway",
    "VideoClassifier",
    "create_model",
    "list_models",
    "list_variants",
    "load_pretrained",
    "prompt_layer",
    "register_model",
    "save_checkpoint",
    "sigmoid_variant",
    "variant_options",
]


def _head_keys(backbone: nn.Module) -> list[str]:
    """State-dict keys of the last linear layer (the classifier) of `backbone`."""
    linears = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    return [f"backbone.{linears[-1]}.{p}" for p in ("weight", "bias")]


def create_model(
    name: str,
    num_classes: int,
    prompt: str | None = None,
    pretrained: str | Path | None = None,
    *,
    prompt_pathways: Sequence[str] | None = None,
    prompt_input: str = "raw",
    prompt_init: str = "paper",
    prompt_gate: bool = False,
    prompt_kwargs: dict | None = None,
    mean: Sequence[float] = RELEASED_MEAN,
    std: Sequence[float] = RELEASED_STD,
    **overrides: object,
) -> VideoClassifier:
    """Build a registered backbone, optionally with motion prompt layer(s) and local weights.

    Args:
        name: a name from `list_models()`.
        num_classes: size of the logits.
        prompt: None (baseline), "vmp" (learnable sigmoid), a `MotionPromptLayer` power
            norm name ("gamma", "maxexp", ...) or "oracle" (oracle: ground truth, not a method:
            `vmp.layer.oracle.OraclePromptLayer`; the model then takes the object masks as a
            fourth channel of its clips).
        pretrained: local checkpoint file or transformers directory (see `load_pretrained`).
        prompt_pathways: pathways that get a prompt layer (default: all); SlowFast has
            "slow" and "fast".
        prompt_input: "raw" (paper) or "normalized" (released code).
        prompt_init: how each layer's m and n start, "paper" or "identity" (see
            `MotionPromptLayer`).
        prompt_gate: gated prompts `F * (1 + g (A - 1))`, g starting at 0 (not in the paper).
        prompt_kwargs: extra `MotionPromptLayer` arguments (alpha, beta, gamma, eps, ...).
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        **overrides: builder options of the model, e.g. num_frames, crop_size, dropout, width.

    Returns:
        The `VideoClassifier`.
    """
    entry = get_entry(name)
    unknown = sorted(set(overrides) - set(entry.options))
    if unknown:
        raise ValueError(
            f"create_model({name!r}): unknown options {unknown}; allowed: {entry.options}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"create_model({name!r}): num_classes must be a positive int, got {num_classes!r}"
        )
    built = entry.fn(num_classes, **overrides)
    pathway_names = [p.name for p in built.pathways]
    if prompt is None:
        if prompt_pathways:
            raise ValueError(f"create_model({name!r}): prompt_pathways given without prompt=")
        layers = {}
    else:
        chosen = list(prompt_pathways) if prompt_pathways is not None else pathway_names
        bad = sorted(set(chosen) - set(pathway_names))
        if bad or not chosen:
            raise ValueError(
                f"create_model({name!r}): prompt_pathways={chosen} invalid; choose from {pathway_names}"
            )
        layers = {
            p: make_prompt_layer(
                prompt,
                prompt_input,
                mean,
                std,
                **{"init": prompt_init, "gate": prompt_gate} | (prompt_kwargs or {}),
            )
            for p in pathway_names
            if p in chosen
        }
    model = VideoClassifier(
        built.module,
        name=name,
        num_classes=num_classes,
        num_frames=built.num_frames,
        pathways=built.pathways,
        prompt_layers=layers,
        prompt_input=prompt_input,
        mean=mean,
        std=std,
        head_keys=_head_keys(built.module),
        channels_last=built.channels_last,
    )
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
