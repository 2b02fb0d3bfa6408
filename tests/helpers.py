"""Helpers shared by the tests: small PyAV videos, tiny training runs, prompt-layer gradients."""

import json
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch


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


def prompt_clip_and_grads(shape=(2, 3, 4, 6, 5), normalized=False, seed=1):
    """A clip (B, 3, T+1, H, W) in [0, 1] (or normalised) and upstream gradients of the prompt
    layer's outputs: (video, g_prompts (B, 3, T, H, W), g_attention (B, T, H, W))."""
    gen = torch.Generator().manual_seed(seed)
    b, _, t1, h, w = shape
    video = torch.rand(shape, generator=gen)
    if normalized:
        video = (video - 0.45) / 0.225
    g_prompts = torch.randn(b, 3, t1 - 1, h, w, generator=gen)
    g_attention = torch.randn(b, t1 - 1, h, w, generator=gen)
    return video, g_prompts, g_attention


def prompt_outputs_and_grads(layer, video, g_prompts, g_attention, loss_on="both", video_grad=True):
    """Outputs of ``layer`` and the gradients of <outputs, upstream gradients> by name.

    ``loss_on`` picks the outputs in the loss ("both", "prompts" or "attention"); the clip's
    gradient is None when ``video_grad`` is False.
    """
    v = video.clone().requires_grad_(video_grad)
    out = layer(v)
    loss = 0
    if loss_on in ("both", "prompts"):
        loss = loss + (out.prompts * g_prompts).sum()
    if loss_on in ("both", "attention"):
        loss = loss + (out.attention * g_attention).sum()
    layer.zero_grad(set_to_none=True)
    loss.backward()
    grads = {f"{name} grad": p.grad for name, p in layer.named_parameters()}
    return {"prompts": out.prompts, "attention": out.attention, "video grad": v.grad, **grads}


def twin_layers(*implementations, seed=0, **kw):
    """Prompt layers of the given implementations with the same parameters."""
    from vmp import MotionPromptLayer

    torch.manual_seed(seed)
    first, *rest = (MotionPromptLayer(implementation=i, **kw) for i in implementations)
    for layer in rest:
        layer.load_state_dict(first.state_dict())
    return (first, *rest)


def assert_near_float64_truth(layer, video, g_prompts, g_attention, **kw):
    """A float32 prompt layer is as accurate as the float32 eager reference.

    Outputs and gradients are compared with the float64 eager layer. Differences of nearby
    frames cancel, the gradients of parameters are sums of terms of both signs, and the gamma
    power norm is steep near zero, so float32 errors depend on the clip; an implementation may
    be at most 4x as far from float64 as float32 eager is, plus 1e-6 of the largest value (1e-5
    for the parameters' gradients: sums over every pixel, whose order differs between them).
    """
    from vmp import MotionPromptLayer

    options = {
        "power_norm": layer.power_norm,
        "input_normalized": layer.input_normalized,
        "grayscale_order": layer.grayscale_order,
    }
    eager = MotionPromptLayer(implementation="eager", **options)
    eager.load_state_dict(layer.state_dict())
    reference = prompt_outputs_and_grads(eager, video, g_prompts, g_attention, **kw)
    got = prompt_outputs_and_grads(layer, video, g_prompts, g_attention, **kw)
    as64 = (t.double() for t in (video, g_prompts, g_attention))
    truth = prompt_outputs_and_grads(eager.double(), *as64, **kw)
    assert got.keys() == truth.keys()
    for name, value in truth.items():
        if value is None:
            assert got[name] is None, name
            continue
        assert got[name].dtype == torch.float32, name
        scale = value.abs().max().item()
        error = (got[name].double() - value).abs().max().item()
        reference_error = (reference[name].double() - value).abs().max().item()
        floor = 1e-6 if name in ("prompts", "attention", "video grad") else 1e-5
        assert error <= 4 * reference_error + floor * scale, (
            f"{name}: error {error:.3g} (float32 eager: {reference_error:.3g}, "
            f"largest value {scale:.3g})"
        )


def comparable_results(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's metrics and history without wall times and resume bookkeeping."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    for key in ("train_seconds", "test_seconds", "resumed_from_epoch"):
        metrics.pop(key)
    history = pd.read_csv(Path(run_dir) / "history.csv").drop(columns="seconds")
    return metrics, history
