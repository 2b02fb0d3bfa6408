"""Backbone builders (pytorchvideo CNNs, transformers TimeSformer) and their registered sizes.

Every registered function takes `num_classes` plus keyword overrides and returns a `Backbone`;
`vmp.models.create_model` wraps it into a `VideoClassifier`. Heads pool adaptively, so the CNNs
accept any crop size; `crop_size` is only checked against the total stride (TimeSformer fixes it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import NamedTuple

from pytorchvideo.models import resnet as pv_resnet
from pytorchvideo.models import slowfast as pv_slowfast
from pytorchvideo.models.resnet import create_resnet
from pytorchvideo.models.slowfast import create_slowfast
from pytorchvideo.models.x3d import create_x3d
from torch import Tensor, nn
from transformers import TimesformerConfig, TimesformerModel

from vmp.models.classifier import Pathway
from vmp.models.registry import register_model

SINGLE = (Pathway("video"),)
# pytorchvideo 8x8 R50 recipes: (temporal kernel of conv_a per stage); lists cycle over blocks.
C2D_CONV_A = ((1, 1, 1),) * 4
I3D_CONV_A = ((3, 1, 1), [(3, 1, 1), (1, 1, 1)], [(3, 1, 1), (1, 1, 1)], [(1, 1, 1), (3, 1, 1)])
R50_DEPTHS = (3, 4, 6, 3)
TINY_DEPTHS = (1, 1, 1, 1)


class Strides(NamedTuple):
    """Spatial stride of the stem convolution and of each of the four stages."""

    stem: int
    stages: tuple[int, int, int, int]


R50_STRIDES = Strides(2, (1, 2, 2, 2))  # with the stem's stride-2 max-pool: 224 px -> 7 px
# A 3x3 stem of stride 2 and no stem pool: the 224-px recipe (7x7 stride 2, then a stride-2 pool)
# blurs motion of 1-2 px per frame of a 32-px clip (i3d_tiny, width 16, from scratch on 800
# synth_cooking clips: 16.5% validation top-1 against 53% with this stem). res2 then halves the
# resolution as well: half the step time (0.14 vs 0.28 s, batch 32) at similar accuracy (26 vs 28%).
SMALL_INPUT_STRIDES = Strides(2, (2, 2, 2, 1))  # 32 px -> 16 (stem) -> 8, 4, 2, 2


class Backbone(NamedTuple):
    """A built backbone and how `VideoClassifier` must feed it."""

    module: nn.Module
    num_frames: int
    pathways: tuple[Pathway, ...] = SINGLE
    # Conv3d weights and inputs in channels-last (NDHWC) layout: on CPU a training step of the
    # tiny CNNs runs 1.2-2.6x faster, X3D's depthwise convolutions gaining most
    # (benchmarks/memory_format.py). TimeSformer has no Conv3d.
    channels_last: bool = False


@contextmanager
def _stage_depths(module: ModuleType, depths: Sequence[int]) -> Iterator[int]:
    """Temporarily register `depths` as a model depth of a pytorchvideo builder module.

    pytorchvideo's builders only accept depths 50/101/152; tiny models need e.g. (1, 1, 1, 1).
    """
    table = module._MODEL_STAGE_DEPTH
    for key, value in table.items():
        if tuple(value) == tuple(depths):
            yield key
            return
    key = -1
    table[key] = tuple(depths)
    try:
        yield key
    finally:
        del table[key]


def _check_crop(name: str, crop_size: int, stride: int = 32) -> None:
    if crop_size < stride:
        raise ValueError(f"{name}: crop_size={crop_size} is below the total stride {stride}")


def build_resnet(
    *,
    num_classes: int,
    conv_a_kernels: Sequence,
    stem_kernel: tuple[int, int, int],
    small_stem_kernel: tuple[int, int, int] | None = None,
    depths: Sequence[int] = R50_DEPTHS,
    width: int = 64,
    dropout: float = 0.5,
    small_input: bool = False,
) -> nn.Module:
    """ResNet (C2D / I3D) from pytorchvideo's `create_resnet` with an adaptive head.

    ``small_input`` adapts the 224-px recipe to 32-48 px clips: the stem keeps full resolution
    (a 3x3 stem kernel of stride 2, no max-pool: total stride 16, not 32).
    """
    strides = SMALL_INPUT_STRIDES if small_input else R50_STRIDES
    if small_input:
        stem_kernel = small_stem_kernel or (stem_kernel[0], 3, 3)
    with _stage_depths(pv_resnet, depths) as depth_key:
        return create_resnet(
            model_depth=depth_key,
            model_num_class=num_classes,
            dropout_rate=dropout,
            stem_dim_out=width,
            stem_conv_kernel_size=stem_kernel,
            stem_conv_stride=(1, strides.stem, strides.stem),
            stem_pool=None if small_input else nn.MaxPool3d,
            stage_spatial_h_stride=strides.stages,
            stage_spatial_w_stride=strides.stages,
            stage1_pool=nn.MaxPool3d,
            stage_conv_a_kernel_size=tuple(conv_a_kernels),
            head_pool=nn.AdaptiveAvgPool3d,
            head_output_size=(1, 1, 1),
            head_activation=None,
        )


def build_slowfast(
    *,
    num_classes: int,
    alpha: int = 4,
    beta_inv: int = 8,
    depths: Sequence[int] = R50_DEPTHS,
    width: int = 64,
    dropout: float = 0.5,
    small_input: bool = False,
) -> nn.Module:
    """SlowFast from pytorchvideo's `create_slowfast` (8x8 R50 recipe) with adaptive pooling.

    ``small_input``: both stems keep full resolution, as in `build_resnet`.
    """
    if width % beta_inv:
        raise ValueError(f"slowfast: width={width} must be divisible by beta_inv={beta_inv}")
    strides = SMALL_INPUT_STRIDES if small_input else R50_STRIDES
    pool = None if small_input else nn.MaxPool3d
    with _stage_depths(pv_slowfast, depths) as depth_key:
        return create_slowfast(
            stem_conv_strides=((1, strides.stem, strides.stem),) * 2,
            stem_pool=(pool, pool),
            stage_spatial_strides=(strides.stages, strides.stages),
            model_depth=depth_key,
            model_num_class=num_classes,
            dropout_rate=dropout,
            slowfast_channel_reduction_ratio=(beta_inv,),
            slowfast_fusion_conv_kernel_size=(7, 1, 1),
            slowfast_fusion_conv_stride=(alpha, 1, 1),
            stem_dim_outs=(width, width // beta_inv),
            head_pool=nn.AdaptiveAvgPool3d,
            head_output_size=(1, 1, 1),
            head_activation=None,
        )


def build_x3d(
    *,
    num_classes: int,
    num_frames: int,
    crop_size: int,
    width_factor: float = 2.0,
    depth_factor: float = 2.2,
    stem_dim_in: int = 12,
    head_dim_out: int = 2048,
    dropout: float = 0.5,
    bottleneck_factor: float = 2.25,
    small_input: bool = False,
) -> nn.Module:
    """X3D from pytorchvideo's `create_x3d`; the head's fixed AvgPool3d becomes adaptive.

    ``small_input``: the stem keeps full resolution and the last stage does not halve it.
    """
    strides = SMALL_INPUT_STRIDES if small_input else Strides(2, (2, 2, 2, 2))
    model = create_x3d(
        stem_conv_stride=(1, strides.stem, strides.stem),
        stage_spatial_stride=strides.stages,
        bottleneck_factor=bottleneck_factor,
        input_clip_length=num_frames,
        input_crop_size=crop_size,
        model_num_class=num_classes,
        dropout_rate=dropout,
        width_factor=width_factor,
        depth_factor=depth_factor,
        stem_dim_in=stem_dim_in,
        head_dim_out=head_dim_out,
        head_activation=None,
    )
    model.blocks[-1].pool.pool = nn.AdaptiveAvgPool3d(1)
    return model


class TimeSformer(nn.Module):
    """TimeSformer (transformers' `TimesformerModel`) with a linear head.

    State-dict keys match `TimesformerForVideoClassification` (`timesformer.*`,
    `classifier.*`), so a transformers checkpoint loads as is. Takes (B, C, T, H, W) and
    permutes to the (B, T, C, H, W) layout transformers expects. The head reads the CLS token
    (``pool="cls"``, the paper's model) or the mean of the patch tokens (``pool="mean"``).
    """

    def __init__(
        self, config: TimesformerConfig, num_classes: int, dropout: float = 0.0, pool: str = "cls"
    ):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"timesformer: pool={pool!r}; use 'cls' or 'mean'")
        self.config = config
        self.pool = pool
        self.timesformer = TimesformerModel(config)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a (B, C, T, H, W) clip of `config.num_frames` frames."""
        size = (self.config.num_frames, self.config.image_size, self.config.image_size)
        if tuple(x.shape[2:]) != size:
            raise ValueError(
                f"TimeSformer built for (T, H, W) = {size} got {tuple(x.shape[2:])}; "
                "pass num_frames=/crop_size= to create_model to match the data"
            )
        hidden = self.timesformer(x.permute(0, 2, 1, 3, 4)).last_hidden_state
        features = hidden[:, 0] if self.pool == "cls" else hidden[:, 1:].mean(dim=1)
        return self.classifier(self.dropout(features))


def build_timesformer(
    *,
    num_classes: int,
    num_frames: int,
    crop_size: int,
    patch_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    mlp_ratio: int = 4,
    drop_path: float = 0.0,
    dropout: float = 0.0,
    pool: str = "cls",
    conv_stem: bool = False,
    stem_temporal_kernel: int = 1,
) -> TimeSformer:
    """TimeSformer with divided space-time attention, built from a config (never the hub).

    ``conv_stem`` replaces the linear patch embedding by stride-2 3x3 convolutions with the same
    token grid (a hybrid ViT tokenizer, for small models trained from scratch on little data);
    ``stem_temporal_kernel`` > 1 gives those convolutions that temporal extent (stride 1 in
    time, so there is still one token grid per frame), as in MViT's and ViViT's tubelet stems.
    """
    if crop_size % patch_size:
        raise ValueError(f"timesformer: crop_size={crop_size} not divisible by patch {patch_size}")
    if stem_temporal_kernel != 1 and not (conv_stem and stem_temporal_kernel % 2):
        raise ValueError(
            f"timesformer: stem_temporal_kernel={stem_temporal_kernel} needs conv_stem=True "
            "and an odd kernel"
        )
    config = TimesformerConfig(
        image_size=crop_size,
        patch_size=patch_size,
        num_frames=num_frames,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=mlp_ratio * hidden_size,
        attention_type="divided_space_time",
    )
    # transformers annotates drop_path_rate as int and its strict dataclass rejects 0.1.
    object.__setattr__(config, "drop_path_rate", float(drop_path))
    model = TimeSformer(config, num_classes, dropout, pool)
    if conv_stem:
        model.timesformer.embeddings.patch_embeddings = ConvPatchEmbeddings(
            patch_size, hidden_size, stem_temporal_kernel
        )
    return model


class ConvPatchEmbeddings(nn.Module):
    """Tokens from stride-2 3x3 conv-BN-ReLU layers and a 1x1 projection, one grid per frame.

    Takes the place of transformers' ``TimesformerPatchEmbeddings``: (B, T, C, H, W) in,
    ((B T, N, D) tokens, T, grid width) out, N = (H / patch_size) (W / patch_size). With
    ``temporal_kernel`` k > 1 each 3x3 convolution spans k frames (zero-padded at the ends).
    """

    def __init__(self, patch_size: int, hidden_size: int, temporal_kernel: int = 1):
        super().__init__()
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(
                f"timesformer: conv_stem needs a power-of-two patch_size, got {patch_size}"
            )
        layers: list[nn.Module] = []
        channels, stages = 3, patch_size.bit_length() - 1
        kernel, padding = (temporal_kernel, 3, 3), (temporal_kernel // 2, 1, 1)
        for i in range(stages):
            out = hidden_size // 2 ** (stages - 1 - i)
            layers += [
                nn.Conv3d(channels, out, kernel, (1, 2, 2), padding, bias=False),
                nn.BatchNorm3d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        layers.append(nn.Conv3d(channels, hidden_size, 1))
        self.projection = nn.Sequential(*layers)

    def forward(self, pixel_values: Tensor) -> tuple[Tensor, int, int]:
        tokens = self.projection(pixel_values.transpose(1, 2))  # (B, D, T, h, w)
        batch, dim, frames, _, width = tokens.shape
        tokens = tokens.permute(0, 2, 3, 4, 1).reshape(batch * frames, -1, dim)
        return tokens, frames, width


# --- paper-size models (Kinetics-400 recipes of the pytorchvideo zoo / TimeSformer paper) ---


# Kernels that make a ResNet a C2D (2-D only) or an I3D (inflated), by model-name prefix.
_RESNET_KERNELS: dict[str, dict[str, object]] = {
    "c2d": {"conv_a_kernels": C2D_CONV_A, "stem_kernel": (1, 7, 7), "small_stem_kernel": (1, 3, 3)},
    "i3d": {"conv_a_kernels": I3D_CONV_A, "stem_kernel": (5, 7, 7), "small_stem_kernel": (3, 3, 3)},
}


def _resnet(name: str, num_frames: int, crop_size: int, **build: object) -> Backbone:
    """C2D or I3D (by the prefix of `name`): `build_resnet(**build)` wrapped for `num_frames`."""
    _check_crop(name, crop_size, 16 if build.get("small_input") else 32)
    kernels = _RESNET_KERNELS[name.split("_")[0]]
    return Backbone(build_resnet(**kernels, **build), num_frames, channels_last=True)


@register_model()
def c2d_r50(
    num_classes: int, *, num_frames: int = 8, crop_size: int = 224, dropout: float = 0.5
) -> Backbone:
    """C2D R50 8x8: 2-D convolutions only (temporal kernel 1), temporal pooling after res2."""
    return _resnet("c2d_r50", num_frames, crop_size, num_classes=num_classes, dropout=dropout)


@register_model()
def i3d_r50(
    num_classes: int, *, num_frames: int = 8, crop_size: int = 224, dropout: float = 0.5
) -> Backbone:
    """I3D R50 8x8: inflated 3x1x1 kernels as in the pytorchvideo zoo `i3d_r50`."""
    return _resnet("i3d_r50", num_frames, crop_size, num_classes=num_classes, dropout=dropout)


@register_model(pathways=("slow", "fast"))
def slowfast_r50(
    num_classes: int,
    *,
    num_frames: int = 32,
    alpha: int = 4,
    crop_size: int = 224,
    dropout: float = 0.5,
) -> Backbone:
    """SlowFast R50 8x8: fast pathway T = 32 frames, slow pathway T / alpha = 8 frames."""
    _check_crop("slowfast_r50", crop_size)
    module = build_slowfast(num_classes=num_classes, alpha=alpha, dropout=dropout)
    return Backbone(
        module, num_frames, (Pathway("slow", alpha), Pathway("fast")), channels_last=True
    )


def _x3d(name: str, num_classes: int, num_frames: int, crop_size: int, **kwargs) -> Backbone:
    _check_crop(name, crop_size, 16 if kwargs.get("small_input") else 32)
    module = build_x3d(
        num_classes=num_classes, num_frames=num_frames, crop_size=crop_size, **kwargs
    )
    return Backbone(module, num_frames, channels_last=True)


@register_model()
def x3d_xs(
    num_classes: int, *, num_frames: int = 4, crop_size: int = 160, dropout: float = 0.5
) -> Backbone:
    """X3D-XS (4 x 160^2)."""
    return _x3d("x3d_xs", num_classes, num_frames, crop_size, dropout=dropout)


@register_model()
def x3d_s(
    num_classes: int, *, num_frames: int = 13, crop_size: int = 160, dropout: float = 0.5
) -> Backbone:
    """X3D-S (13 x 160^2)."""
    return _x3d("x3d_s", num_classes, num_frames, crop_size, dropout=dropout)


@register_model()
def x3d_m(
    num_classes: int, *, num_frames: int = 16, crop_size: int = 224, dropout: float = 0.5
) -> Backbone:
    """X3D-M (16 x 224^2)."""
    return _x3d("x3d_m", num_classes, num_frames, crop_size, dropout=dropout)


@register_model()
def x3d_l(
    num_classes: int, *, num_frames: int = 16, crop_size: int = 312, dropout: float = 0.5
) -> Backbone:
    """X3D-L (16 x 312^2, depth factor 5)."""
    return _x3d("x3d_l", num_classes, num_frames, crop_size, depth_factor=5.0, dropout=dropout)


@register_model()
def timesformer(
    num_classes: int,
    *,
    num_frames: int = 8,
    crop_size: int = 224,
    dropout: float = 0.0,
    drop_path: float = 0.1,
) -> Backbone:
    """TimeSformer divided space-time, ViT-B/16, 8 x 224^2 (Bertasius et al., ICML 2021)."""
    module = build_timesformer(
        num_classes=num_classes,
        num_frames=num_frames,
        crop_size=crop_size,
        patch_size=16,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        drop_path=drop_path,
        dropout=dropout,
    )
    return Backbone(module, num_frames)


# --- tiny CPU versions of every family (same wiring, reduced widths and depths) ---


@register_model()
def c2d_tiny(
    num_classes: int,
    *,
    num_frames: int = 8,
    crop_size: int = 32,
    width: int = 8,
    depths: Sequence[int] = TINY_DEPTHS,
    dropout: float = 0.0,
    small_input: bool = True,
) -> Backbone:
    """C2D with one bottleneck per stage and `width` stem channels."""
    return _resnet(
        "c2d_tiny",
        num_frames,
        crop_size,
        num_classes=num_classes,
        depths=depths,
        width=width,
        dropout=dropout,
        small_input=small_input,
    )


@register_model()
def i3d_tiny(
    num_classes: int,
    *,
    num_frames: int = 8,
    crop_size: int = 32,
    width: int = 8,
    depths: Sequence[int] = TINY_DEPTHS,
    dropout: float = 0.0,
    small_input: bool = True,
) -> Backbone:
    """I3D with one bottleneck per stage and `width` stem channels."""
    return _resnet(
        "i3d_tiny",
        num_frames,
        crop_size,
        num_classes=num_classes,
        depths=depths,
        width=width,
        dropout=dropout,
        small_input=small_input,
    )


@register_model(pathways=("slow", "fast"))
def slowfast_tiny(
    num_classes: int,
    *,
    num_frames: int = 8,
    alpha: int = 4,
    crop_size: int = 32,
    width: int = 16,
    depths: Sequence[int] = TINY_DEPTHS,
    dropout: float = 0.0,
    small_input: bool = True,
) -> Backbone:
    """SlowFast, fast T = 8 and slow T = 2 frames by default, one bottleneck per stage."""
    _check_crop("slowfast_tiny", crop_size, 16 if small_input else 32)
    module = build_slowfast(
        num_classes=num_classes,
        alpha=alpha,
        depths=depths,
        width=width,
        dropout=dropout,
        small_input=small_input,
    )
    return Backbone(
        module, num_frames, (Pathway("slow", alpha), Pathway("fast")), channels_last=True
    )


@register_model()
def x3d_tiny(
    num_classes: int,
    *,
    num_frames: int = 8,
    crop_size: int = 32,
    width_factor: float = 0.5,
    depth_factor: float = 0.4,
    head_dim_out: int = 128,
    bottleneck_factor: float = 1.5,
    dropout: float = 0.0,
    small_input: bool = True,
) -> Backbone:
    """X3D with width factor 0.5, depth factor 0.4 (stages of 1, 1, 2, 2 blocks), expansion 1.5.

    Depthwise 3-D convolutions are slow on CPU; halving the width and the expansion makes a step
    about 2.5x cheaper than width 1 / expansion 2.25 (measured at 16 x 9 x 32 x 32).
    """
    return _x3d(
        "x3d_tiny",
        num_classes,
        num_frames,
        crop_size,
        width_factor=width_factor,
        depth_factor=depth_factor,
        head_dim_out=head_dim_out,
        bottleneck_factor=bottleneck_factor,
        dropout=dropout,
        small_input=small_input,
    )


@register_model()
def timesformer_tiny(
    num_classes: int,
    *,
    num_frames: int = 8,
    crop_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    dropout: float = 0.0,
    pool: str = "cls",
    conv_stem: bool = False,
    stem_temporal_kernel: int = 1,
) -> Backbone:
    """TimeSformer divided space-time: hidden 64, 2 layers, 4 heads, patch 8 (16 patches at 32 px)."""
    module = build_timesformer(
        num_classes=num_classes,
        num_frames=num_frames,
        crop_size=crop_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
        pool=pool,
        conv_stem=conv_stem,
        stem_temporal_kernel=stem_temporal_kernel,
    )
    return Backbone(module, num_frames)
