"""Frame differences, attention maps and motion prompts of any video (Fig. 5's panels).

    python -m vmp.analysis.maps VIDEO [--run RUN_DIR] [--out maps.png]

With ``--run`` the prompt layer is the one a +VMP training run learned (its ``model.pt``);
without it, a fresh layer with m = n = 0, i.e. slope a = alpha / eps = 50 and shift b = 0:
static pixels get attention 0.5, brightening pixels more, darkening pixels less. Writes the
figure (PNG or PDF, by the suffix of ``--out``) and the arrays beside it as ``.npz``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vmp.analysis.figures import fig5_attention
from vmp.data.clips import decode_video
from vmp.io import atomic_path
from vmp.layer.motion import frame_differences
from vmp.layer.prompt import MotionPromptLayer, attention_maps
from vmp.models import prompt_layer
from vmp.training.record import load_model


@dataclass
class Maps:
    """The prompt layer's view of one clip of T+1 frames.

    Attributes:
        frames: (T+1, H, W, 3) float RGB in [0, 1], the frames read.
        differences: (T, H, W) grayscale differences D_t (Eq. 3's input).
        attention: (T, H, W) attention A_t in [0, 1].
        prompts: (T, H, W, 3) prompts Z_t = A_t * F_{t+1}, in [0, 1].
        parameters: the layer's learned values (slope and shift, or eta).
    """

    frames: np.ndarray
    differences: np.ndarray
    attention: np.ndarray
    prompts: np.ndarray
    parameters: dict[str, float]


def default_layer() -> MotionPromptLayer:
    """The paper's layer with m = n = 0 (a = 50, b = 0): a fixed, reproducible default."""
    layer = MotionPromptLayer()
    with torch.no_grad():
        layer.m.zero_()
        layer.n.zero_()
    return layer.eval()


def run_layer(run_dir: str | Path, pathway: str | None = None) -> MotionPromptLayer:
    """The prompt layer learned by the training run in ``run_dir`` (a +VMP variant)."""
    return prompt_layer(load_model(run_dir), pathway).eval()


def read_clip(
    video: str | Path, num_frames: int = 8, start: int = 0, stride: int = 1, size: int | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """``num_frames`` + 1 frames from ``start``, every ``stride``-th, as (3, T+1, H, W) in [0, 1].

    ``size`` resizes the shorter side (bilinear), e.g. to a backbone's input size.
    """
    frames, _ = decode_video(video)
    indices = np.arange(num_frames + 1) * stride + start
    if indices[-1] >= len(frames):
        raise ValueError(
            f"{video}: has {len(frames)} frames; {num_frames} + 1 frames from {start} every "
            f"{stride} need {indices[-1] + 1}. Lower --frames, --start or --stride"
        )
    clip = torch.from_numpy(frames[indices]).permute(3, 0, 1, 2).float() / 255.0
    if size is not None:
        height, width = clip.shape[-2:]
        scale = size / min(height, width)
        target = (round(height * scale), round(width * scale))
        clip = F.interpolate(clip, size=target, mode="bilinear", align_corners=False)
    return clip.clamp(0, 1), indices


def compute_maps(clip: torch.Tensor, layer: MotionPromptLayer) -> Maps:
    """Frames, differences, attention and prompts of ``layer`` on a raw (3, T+1, H, W) clip."""
    attention = attention_maps(clip, layer)
    frames = clip.permute(1, 2, 3, 0)
    prompts = attention[..., None] * frames[1:]
    return Maps(
        frames=frames.numpy(),
        differences=frame_differences(clip),
        attention=attention.numpy(),
        prompts=prompts.numpy(),
        parameters={k: float(v.detach()) for k, v in layer.pn_parameters().items()},
    )


def write_maps(
    video: str | Path,
    out: str | Path,
    *,
    run: str | Path | None = None,
    pathway: str | None = None,
    num_frames: int = 8,
    start: int = 0,
    stride: int = 1,
    size: int | None = None,
    steps: int = 2,
) -> tuple[Path, Path]:
    """Write Fig. 5's panels for ``video`` to ``out`` and the arrays to ``out`` with ``.npz``."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf"):
        raise ValueError(f"--out {out}: use a .png or .pdf file name")
    layer = run_layer(run, pathway) if run is not None else default_layer()
    clip, indices = read_clip(video, num_frames, start, stride, size)
    maps = compute_maps(clip, layer)
    title = Path(video).name if run is None else f"{Path(video).name}\n{Path(run).name}"
    fig = fig5_attention([(title, clip, layer)], steps=steps)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix[1:].lower(), dpi=150)
    arrays = out.with_suffix(".npz")
    with atomic_path(arrays) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            frames=maps.frames,
            differences=maps.differences,
            attention=maps.attention,
            prompts=maps.prompts,
            frame_indices=indices,
            **{k: np.float32(v) for k, v in maps.parameters.items()},
        )
    return out, arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vmp.analysis.maps",
        description="Frame differences, attention maps and prompts of a video (Fig. 5's panels) "
        "as a figure, and the arrays as .npz beside it.",
    )
    parser.add_argument("video", help="any video PyAV reads")
    parser.add_argument("--run", help="a +VMP run folder (metrics.json, model.pt) for its layer")
    parser.add_argument("--pathway", help="prompt layer of a two-pathway run: slow or fast")
    parser.add_argument("--out", default="maps.png", help="figure (.png or .pdf); default maps.png")
    parser.add_argument("--frames", type=int, default=8, help="T: T + 1 frames are read (8)")
    parser.add_argument("--start", type=int, default=0, help="first frame index (0)")
    parser.add_argument("--stride", type=int, default=1, help="read every n-th frame (1)")
    parser.add_argument("--size", type=int, help="resize the shorter side to this many pixels")
    parser.add_argument("--steps", type=int, default=2, help="time steps drawn as rows (2)")
    args = parser.parse_args(argv)
    figure, arrays = write_maps(
        args.video,
        args.out,
        run=args.run,
        pathway=args.pathway,
        num_frames=args.frames,
        start=args.start,
        stride=args.stride,
        size=args.size,
        steps=args.steps,
    )
    print(f"wrote {figure} and {arrays}")


if __name__ == "__main__":
    main()
