"""The paper's figures (Fig. 1, 3, 4, 5, 6) from clips, prompt layers and finished runs.

Each ``fig*`` function returns a ``matplotlib.figure.Figure`` built without pyplot (no display,
no global figure registry; rendering uses Agg); ``save_figure`` writes it as PNG and PDF.
Every plotted number comes from the inputs: learned slopes and shifts are read from the runs'
``history.csv`` and ``metrics.json``, attention maps are computed by the runs' prompt layers.
Missing inputs (no runs, no clip) give a panel with a "no runs" note instead of an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vmp.data.clips import ClipDataset, ClipSpec
from vmp.data.official import index as index_dataset
from vmp.io import atomic_path
from vmp.layer.motion import frame_differences, taylor_video, time_colour_reordering
from vmp.layer.prompt import (
    PN_ETA_INIT,
    MotionPromptLayer,
    attention_maps,
    power_norm_curve,
    shift_fn,
    slope_fn,
)
from vmp.names import PAPER_VARIANTS
from vmp.training import record as run_record
from vmp.training.metrics import confusion_matrix

DIFF_CMAP = "coolwarm"  # blue: darker, red: brighter (as in the paper's Fig. 5)
ATTENTION_CMAP = "OrRd"  # light orange: low attention, dark red: high
PN_LABELS = {"gamma": "Gamma", "maxexp": "MaxExp", "sigme": "SigmE", "asinhe": "AsinhE"}


# --- runs -----------------------------------------------------------------------------------


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """A finished run's ``(metrics, history)``; see :func:`vmp.training.record.load_run`."""
    return run_record.load_run(run_dir)


def load_run_model(run_dir: str | Path) -> torch.nn.Module:
    """A finished run's model, rebuilt from its settings (eval mode); see :func:`vmp.training.record.load_model`."""
    return run_record.load_model(run_dir)


def prompt_points(metrics: dict[str, Any]) -> list[tuple[str | None, float, float]]:
    """Learned (layer, slope a, shift b) of a run; layer is None for a single prompt layer.

    Runs without a sigmoid prompt layer (baselines, other power norms) give an empty list.
    """
    prompt = metrics.get("prompt") or {}
    if "slope" in prompt and "shift" in prompt:
        return [(None, float(prompt["slope"]), float(prompt["shift"]))]
    return [
        (key[len("slope_") :], float(value), float(prompt[f"shift_{key[len('slope_') :]}"]))
        for key, value in prompt.items()
        if key.startswith("slope_") and f"shift_{key[len('slope_') :]}" in prompt
    ]


def _prompt_runs(runs: Sequence[str | Path]) -> list[tuple[dict[str, Any], Path]]:
    """(settings, run directory) of the runs with the paper's sigmoid prompt layer (variants
    ``PAPER_VARIANTS``: not the layers started or placed otherwise), each read once."""
    loaded = ((load_run(r)[0], Path(r)) for r in runs)
    return [
        (metrics["settings"], r)
        for metrics, r in loaded
        if metrics["settings"]["variant"] in PAPER_VARIANTS and prompt_points(metrics)
    ]


def pick_table_run(runs: Sequence[str | Path], dataset: str) -> Path | None:
    """First run of ``dataset`` with a sigmoid prompt layer, seed 0 preferred; None if none."""
    found = [(s, r) for s, r in _prompt_runs(runs) if s["dataset"] == dataset]
    seed0 = [r for s, r in found if int(s["seed"]) == 0]
    return (seed0 or [r for _, r in found] or [None])[0]


def pick_ablation_pair(runs: Sequence[str | Path], target: float = 2.5) -> tuple[Path, Path] | None:
    """(run with the smallest lambda, other run with lambda closest to ``target``); None if < 2 runs."""
    found = sorted(((float(s["lambda"]), r) for s, r in _prompt_runs(runs)), key=lambda x: x[0])
    if len(found) < 2:
        return None
    rest = found[1:]
    best = min(rest, key=lambda x: abs(x[0] - target))
    return found[0][1], best[1]


def sample_clip(
    root: str | Path,
    split: str | int,
    clip: dict[str, Any],
    index: int = 0,
    dataset_format: str = "synthmotion",
) -> torch.Tensor:
    """Test clip number ``index`` of a dataset, (3, T+1, H, W) in [0, 1], centre view."""
    return _sample(root, split, clip, index, dataset_format)["video"].float().div_(255.0)


def sample_object_mask(
    root: str | Path, split: str | int, clip: dict[str, Any], index: int = 0
) -> torch.Tensor:
    """The class object's ground-truth mask (T+1, H, W) of SynthMotion test clip ``index``
    (:func:`sample_clip`'s clip)."""
    return _sample(root, split, clip, index, "synthmotion", masks=True)["object_mask"]


def _sample(root, split, clip, index, dataset_format, masks: bool = False) -> dict:
    table = index_dataset(dataset_format, root, split)
    test = table[table["subset"] == "test"].reset_index(drop=True)
    if test.empty:
        raise ValueError(f"sample_clip: {root} (split {split}) has no test videos")
    spec = ClipSpec.from_config(clip).single_view()
    return ClipDataset(test, spec, train=False, masks=masks)[index % len(test)]


# --- helpers --------------------------------------------------------------------------------


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _image(ax: Axes, image: np.ndarray, title: str | None = None, **kwargs: Any):
    im = ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _rgb(video: torch.Tensor, t: int) -> np.ndarray:
    return video[:, t].permute(1, 2, 0).clamp(0, 1).numpy()


def _attention(video: torch.Tensor, layer: MotionPromptLayer) -> np.ndarray:
    """Attention maps (T, H, W) of ``layer`` on a raw [0, 1] clip (3, T+1, H, W)."""
    return attention_maps(video, layer).numpy()


def _outline(ax, region: np.ndarray | None) -> None:
    """Outline (cyan) a boolean region on an image axis: where the class object moves."""
    if region is not None and region.any():
        ax.contour(region.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)


def _steps(num: int, steps: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, num - 1, min(steps, num))})


def _layer_label(layer: MotionPromptLayer) -> str:
    if layer.power_norm != "sigmoid":
        return f"{layer.power_norm}, eta = {layer.eta.item():.2f}"
    return f"a = {layer.slope.item():.2f}, b = {layer.shift.item():.2f}"


def _check_clip(video: torch.Tensor, what: str, min_frames: int = 2) -> None:
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[0] != 3:
        shape = tuple(video.shape) if hasattr(video, "shape") else type(video)
        raise ValueError(f"{what}: video has shape {shape}; expected (3, T+1, H, W) in [0, 1]")
    if video.shape[1] < min_frames:
        raise ValueError(f"{what}: need at least {min_frames} frames, got {video.shape[1]}")


# --- figures --------------------------------------------------------------------------------


def fig1_motion_representations(
    video: torch.Tensor | None, t: int | None = None, order: int = 2
) -> Figure:
    """Fig. 1: a frame beside frame differencing, time-colour reordering and a Taylor frame.

    Args:
        video: (3, T+1, H, W) in [0, 1] with at least ``order + 4`` frames; None gives a note.
        t: time step of the frame difference ``D_t`` (frames t and t+1); default the middle one.
            The reordering image and Taylor block start at t too (moved back to fit the clip).
        order: Taylor expansion order (see ``vmp.layer.motion.taylor_video``).

    Returns:
        Figure with 4 image axes and a colour bar for the differences.
    """
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    if video is None:
        _note(fig.add_subplot(), "no clip: no dataset to sample a test clip from")
        return fig
    _check_clip(video, "fig1_motion_representations", order + 4)
    diffs = frame_differences(video)
    reordered = time_colour_reordering(video, mode="gray")
    taylor = taylor_video(video, order=order)
    t = len(diffs) // 2 if t is None else t
    if not 0 <= t < len(diffs):
        raise ValueError(f"fig1_motion_representations: t={t} outside [0, {len(diffs) - 1}]")
    axes = fig.subplots(1, 4)
    _image(axes[0], _rgb(video, t + 1), f"frame {t + 1}")
    bound = max(float(np.abs(diffs[t]).max()), 1e-6)
    im = _image(
        axes[1], diffs[t], f"frame differencing D_{t}", cmap=DIFF_CMAP, vmin=-bound, vmax=bound
    )
    fig.colorbar(im, ax=axes[1], shrink=0.8, label="grayscale change")
    k = min(t, len(reordered) - 1)
    _image(axes[2], reordered[k], f"time-colour reordering\n(GrayST, frames {k}-{k + 2})")
    s = min(t, len(taylor) - 1)
    magnitude = np.abs(taylor[s])
    _image(
        axes[3],
        magnitude / max(float(magnitude.max()), 1e-12),
        f"Taylor video (order {order}, frames {s}-{s + order + 3})\n|displ.|, |vel.|, |acc.| as RGB",
    )
    return fig


def fig3_power_normalisation(
    alpha: float = 5.0, beta: float = 0.45, gamma: float = 0.6, eps: float = 0.1
) -> Figure:
    """Fig. 3: (a) learnable PN against Gamma/MaxExp/SigmE/AsinhE, (b) a(m), (c) b(n), (d) f(D, m).

    Curves are evaluated with ``vmp.layer.prompt.power_norm_curve``, ``slope_fn`` and ``shift_fn``
    (the layer's own functions). The alternatives use their initial eta (``PN_ETA_INIT``).

    Returns:
        Figure with 4 panels and a colour bar for (d).
    """
    fig = Figure(figsize=(11, 8), layout="constrained")
    (ax_a, ax_b), (ax_c, ax_d) = fig.subplots(2, 2)
    d = torch.linspace(-1, 1, 401, dtype=torch.float64)
    a_lo, a_hi = alpha / (beta + eps), alpha / eps

    # (a) shadow: every sigmoid with the smallest slope and a shift in [-gamma, gamma]
    def curve(name: str, **params: float) -> np.ndarray:
        return power_norm_curve(name, d, **params).numpy()

    left = curve("sigmoid", slope=a_lo, shift=-gamma)
    right = curve("sigmoid", slope=a_lo, shift=gamma)
    ax_a.fill_between(
        d.numpy(), right, left, color="tab:orange", alpha=0.15, lw=0, label="ours, range"
    )
    a_mid = float(slope_fn(torch.tensor(0.5), alpha, beta, eps))
    sigmoids = [(a_lo, 0.0), (a_mid, 0.0), (a_hi, 0.0), (a_mid, -gamma / 2), (a_mid, gamma / 2)]
    for i, (a, b) in enumerate(sigmoids):
        ax_a.plot(
            d.numpy(),
            curve("sigmoid", slope=a, shift=b),
            color="tab:orange",
            alpha=1.0 - 0.15 * i,
            lw=2 if i == 0 else 1.2,
            ls="-" if b == 0 else "--",
            label=f"ours, a = {a:.1f}, b = {b:+.2f}",
        )
    colours = ("tab:blue", "tab:green", "tab:red", "tab:purple")
    for colour, (name, label) in zip(colours, PN_LABELS.items(), strict=True):
        eta = PN_ETA_INIT[name]
        ax_a.plot(
            d.numpy(), curve(name, eta=eta), color=colour, lw=1.2, label=f"{label} (eta = {eta:g})"
        )
    ax_a.set(xlabel="frame difference D", ylabel="attention f(D)", title="(a) power normalisation")
    ax_a.legend(fontsize=7, loc="upper left")

    m = torch.linspace(-4, 4, 401, dtype=torch.float64)
    ax_b.plot(m.numpy(), slope_fn(m, alpha, beta, eps).numpy(), color="tab:orange")
    for bound in (a_lo, a_hi):
        ax_b.axhline(bound, color="gray", ls=":", lw=1)
    ax_b.set(xlabel="m", ylabel="slope a(m)", title=f"(b) a(m) in [{a_lo:.2f}, {a_hi:.0f}]")

    ax_c.plot(m.numpy(), shift_fn(m, gamma).numpy(), color="tab:orange")
    for bound in (-gamma, gamma):
        ax_c.axhline(bound, color="gray", ls=":", lw=1)
    ax_c.set(xlabel="n", ylabel="shift b(n)", title=f"(c) b(n) in [{-gamma}, {gamma}]")

    mm, dd = torch.meshgrid(m, d, indexing="ij")
    surface = power_norm_curve("sigmoid", dd, slope=slope_fn(mm, alpha, beta, eps), shift=0.0)
    mesh = ax_d.imshow(
        surface.numpy(),
        origin="lower",
        extent=(-1, 1, float(m[0]), float(m[-1])),
        aspect="auto",
        cmap=ATTENTION_CMAP,
        vmin=0,
        vmax=1,
    )
    fig.colorbar(mesh, ax=ax_d, label="attention f(D)")
    ax_d.set(xlabel="frame difference D", ylabel="m", title="(d) f(D) over D and m (b = 0)")
    return fig


def _by_lambda(ablation_runs: Sequence[str | Path]) -> dict[float, list[tuple[dict, pd.DataFrame]]]:
    """Ablation runs (metrics, history) grouped by lambda (ascending), seeds in ascending order."""
    runs: dict[float, list[tuple[dict, pd.DataFrame]]] = {}
    for metrics, history in sorted(
        (load_run(r) for r in ablation_runs),
        key=lambda mh: (float(mh[0]["settings"]["lambda"]), int(mh[0]["settings"]["seed"])),
    ):
        runs.setdefault(float(metrics["settings"]["lambda"]), []).append((metrics, history))
    return runs


def _prompt_suffixes(history: pd.DataFrame) -> list[str]:
    """Slope-column suffix of each prompt layer: "" for a single layer, else "_<pathway>"."""
    if "slope" in history:
        return [""]
    return [c[len("slope") :] for c in history.columns if c.startswith("slope_")]


def _lambda_curves(
    ax_a: Axes, ax_b: Axes, by_lambda: dict[float, list[tuple[dict, pd.DataFrame]]]
) -> None:
    """(a, b): per lambda the mean over seeds of slope / shift per epoch, a min..max band over seeds.

    Lines have gid ``mean:<column>:lambda=<lam>``, bands ``band:<column>:lambda=<lam>``.
    """
    plotted = False
    for colour, (lam, runs) in zip(_colours(len(by_lambda)), by_lambda.items(), strict=True):
        suffixes = list(dict.fromkeys(s for _, h in runs for s in _prompt_suffixes(h)))
        for style, suffix in zip(["-", "--", ":"], suffixes, strict=False):
            label = f"lambda = {lam:g}" + (f" ({suffix[1:]})" if suffix else "")
            for ax, column in ((ax_a, "slope" + suffix), (ax_b, "shift" + suffix)):
                per_seed = [h.set_index("epoch")[column] for _, h in runs if column in h]
                if not per_seed:
                    continue
                seeds = pd.concat(per_seed, axis=1).sort_index()
                epochs = seeds.index.to_numpy()
                ax.fill_between(
                    epochs,
                    seeds.min(axis=1).to_numpy(),
                    seeds.max(axis=1).to_numpy(),
                    color=colour,
                    alpha=0.2,
                    lw=0,
                    gid=f"band:{column}:lambda={lam:g}",
                )
                ax.plot(
                    epochs,
                    seeds.mean(axis=1).to_numpy(),
                    color=colour,
                    ls=style,
                    marker="o",
                    ms=3,
                    label=f"{label}, {len(per_seed)} seed{'s' * (len(per_seed) > 1)}",
                    gid=f"mean:{column}:lambda={lam:g}",
                )
                plotted = True
    if not plotted:
        for ax in (ax_a, ax_b):
            _note(ax, "no runs: no lambda-ablation runs with a prompt layer")
        return
    for ax, name in ((ax_a, "slope a"), (ax_b, "shift b")):
        ax.set(xlabel="epoch", ylabel=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, title="line: mean, band: min..max over seeds", title_fontsize=7)


def _lambda_accuracy(ax: Axes, by_lambda: dict[float, list[tuple[dict, pd.DataFrame]]]) -> None:
    """(e): test top-1 per lambda: each seed's dot and the mean with a min..max error bar.

    Lambdas sit at evenly spaced positions 0, 1, ... (labelled with their value). Dots have gid
    ``seeds:lambda=<lam>``; the means' line ``mean:top1``, their min..max bars ``spread:top1``.
    """
    found = {
        lam: [float(m["top1"]) for m, _ in runs if m.get("top1") is not None]
        for lam, runs in by_lambda.items()
    }
    found = {lam: tops for lam, tops in found.items() if tops}
    if not found:
        _note(ax, "no runs: no lambda-ablation runs with a test top-1")
        return
    colours = dict(zip(by_lambda, _colours(len(by_lambda)), strict=True))
    positions = np.arange(len(found), dtype=float)
    for x, (lam, tops) in zip(positions, found.items(), strict=True):
        ax.scatter(
            np.full(len(tops), x),
            tops,
            color=colours[lam],
            s=20,
            alpha=0.7,
            zorder=3,
            gid=f"seeds:lambda={lam:g}",
        )
    means = np.array([np.mean(t) for t in found.values()])
    low = means - np.array([np.min(t) for t in found.values()])
    high = np.array([np.max(t) for t in found.values()]) - means
    bars = ax.errorbar(
        positions + 0.15,
        means,
        yerr=np.vstack([low, high]),
        fmt="s",
        color="k",
        ms=5,
        capsize=3,
        label="mean, bar: min..max",
    )
    bars.lines[0].set_gid("mean:top1")
    bars.lines[2][0].set_gid("spread:top1")
    ax.set_xticks(positions, [f"{lam:g}" for lam in found])
    ax.set(xlabel="lambda", ylabel="test top-1 (%)")
    ax.legend(fontsize=7, title="dots: seeds", title_fontsize=7)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, max(n, 1))][:n]


def _ab_scatter(ax: Axes, groups: dict[str, list[tuple[float, float]]], what: str) -> None:
    if not groups:
        _note(ax, f"no runs: no Table 1 runs with a prompt layer ({what})")
        return
    for colour, (name, points) in zip(_colours(len(groups)), groups.items(), strict=True):
        xy = np.asarray(points)
        ax.scatter(
            xy[:, 0], xy[:, 1], color=colour, s=25, alpha=0.7, label=name, gid=f"runs:{name}"
        )
        mean = xy.mean(axis=0)
        ax.scatter(
            [mean[0]], [mean[1]], color=colour, marker="X", s=120, edgecolor="k", gid=f"mean:{name}"
        )
    ax.set(xlabel="learned slope a", ylabel="learned shift b")
    ax.legend(fontsize=7, title="X: mean", title_fontsize=7)


def _group_label(settings: dict[str, Any], layer: str | None) -> str:
    backbone, variant = settings["backbone"], settings["variant"]
    if variant in ("vmp_slow", "vmp_fast"):
        return f"{backbone}-{variant[4]}"  # SlowFast-s / SlowFast-f as in the paper
    if layer is not None:
        return f"{backbone}-{variant} ({layer})"
    return backbone


def fig4_slope_shift(
    ablation_runs: Sequence[str | Path], table_runs: Sequence[str | Path]
) -> Figure:
    """Fig. 4: (a, b) slope and shift per epoch for each lambda; learned (a, b) per (c) dataset, (d) backbone.

    (a, b) read ``history.csv`` of ``ablation_runs``: per lambda (one colour each) the mean over
    seeds per epoch as a line and the min..max over seeds as a shaded band (vmp_both runs give
    one line style per pathway). (e) shows the spread of the ablation's accuracy: the test top-1
    of every seed as a dot per lambda and the mean over seeds with a min..max error bar.
    (c, d) read the final ``prompt`` of ``metrics.json`` of every ``table_runs`` run with the
    paper's sigmoid prompt layer (``PAPER_VARIANTS``): one point per run and layer, the group mean marked with an X; (c)
    groups by dataset (all backbones), (d) by backbone, SlowFast slow-only ("-s"), fast-only
    ("-f") and both layers apart. Panels without runs show a "no runs" note.

    Returns:
        Figure with 5 axes, in the order (a), (b), (c), (d), (e); (a, b, e) form the top row.
    """
    fig = Figure(figsize=(15, 8), layout="constrained")
    grid = fig.add_gridspec(2, 6)
    ax_a, ax_b = fig.add_subplot(grid[0, 0:2]), fig.add_subplot(grid[0, 2:4])
    ax_c, ax_d = fig.add_subplot(grid[1, 0:3]), fig.add_subplot(grid[1, 3:6])
    ax_e = fig.add_subplot(grid[0, 4:6])
    ax_a.set_title("(a) slope a during fine-tuning (mean, min..max over seeds)")
    ax_b.set_title("(b) shift b during fine-tuning (mean, min..max over seeds)")
    ax_c.set_title("(c) learned (a, b) per dataset")
    ax_d.set_title("(d) learned (a, b) per backbone")
    ax_e.set_title("(e) test top-1 per lambda (seeds; mean, min..max)")
    by_lambda = _by_lambda(ablation_runs)
    _lambda_curves(ax_a, ax_b, by_lambda)
    _lambda_accuracy(ax_e, by_lambda)
    by_dataset: dict[str, list[tuple[float, float]]] = {}
    by_backbone: dict[str, list[tuple[float, float]]] = {}
    for run in table_runs:
        metrics = load_run(run)[0]
        settings = metrics["settings"]
        if settings["variant"] not in PAPER_VARIANTS:
            continue
        for layer, a, b in prompt_points(metrics):
            by_dataset.setdefault(settings["dataset"], []).append((a, b))
            by_backbone.setdefault(_group_label(settings, layer), []).append((a, b))
    _ab_scatter(ax_c, by_dataset, "per dataset")
    _ab_scatter(ax_d, by_backbone, "per backbone")
    return fig


STATE_COLOURS = {"closed": "tab:blue", "between": "tab:orange", "open": "tab:green"}


def _trajectory(metrics: dict[str, Any], history: pd.DataFrame, column: str) -> pd.Series:
    """``column`` per epoch with its value at the start as epoch 0 (NaN where not recorded)."""
    start = (metrics.get("prompt_start") or {}).get(column, np.nan)
    values = history.set_index("epoch")[column] if column in history else pd.Series(dtype=float)
    return pd.concat([pd.Series({0: start}), values]).astype(float)


def fig4_trajectories(table_runs: Sequence[str | Path]) -> Figure:
    """How the prompt layers moved, from their start (epoch 0) through every epoch.

    (a) shift b and (b) a static pixel's gain (its attention sigmoid(-a b)) of every layer of
    the paper's variants (``PAPER_VARIANTS``), one line per run and layer, coloured by the
    layer's state at the start (closed: gain < 0.1, open: > 0.9, else between); the dotted
    lines mark 0.1 and 0.9. (c) the gain of the layers started otherwise (vmp_identity) and
    of the gated ones (vmp_gate: 1 + g (f(0) - 1)), coloured by variant. Lines have gid
    ``shift:<run name>:<layer>`` in (a) and ``gain:<run name>:<layer>`` in (b, c); ``layer``
    is "-" for a run's only layer. Runs without these layers give "no runs" notes.

    Returns:
        Figure with 3 axes (a), (b), (c).
    """
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax_a, ax_b, ax_c = fig.subplots(1, 3)
    ax_a.set_title("(a) shift b of the paper's layers, by start state")
    ax_b.set_title("(b) static pixel's gain of the paper's layers")
    ax_c.set_title("(c) static pixel's gain: identity start, gate")
    others = {"vmp_identity": "tab:purple", "vmp_gate": "tab:red"}
    drawn = {ax: set() for ax in (ax_a, ax_b, ax_c)}
    for run in table_runs:
        metrics, history = load_run(run)
        settings = metrics["settings"]
        variant = settings["variant"]
        if variant not in PAPER_VARIANTS and variant not in others:
            continue
        for suffix in _prompt_suffixes(history):
            gain = _trajectory(metrics, history, "static_gain" + suffix)
            layer = suffix[1:] or "-"
            if variant in others:
                panels = [(ax_c, "gain", gain, others[variant], variant)]
            else:
                state = (metrics.get("prompt_start") or {}).get("state" + suffix)
                colour = STATE_COLOURS.get(state, "grey")
                shift = _trajectory(metrics, history, "shift" + suffix)
                panels = [
                    (ax_a, "shift", shift, colour, state),
                    (ax_b, "gain", gain, colour, state),
                ]
            for ax, kind, values, colour, label in panels:
                ax.plot(
                    values.index,
                    values.to_numpy(),
                    color=colour,
                    alpha=0.35,
                    lw=1,
                    label=None if label in drawn[ax] else str(label),
                    gid=f"{kind}:{settings['name']}:{layer}",
                )
                drawn[ax].add(label)
    for ax, ylabel in ((ax_a, "shift b"), (ax_b, "static gain"), (ax_c, "static gain")):
        if not drawn[ax]:
            _note(ax, "no runs: no Table 1 run with such a prompt layer")
            continue
        ax.set(xlabel="epoch (0: start)", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    for ax in (ax_b, ax_c):
        for level in (0.1, 0.9):
            ax.axhline(level, color="k", ls=":", lw=0.8)
    return fig


def fig5_attention(
    examples: Sequence[tuple[str, torch.Tensor, MotionPromptLayer]]
    | Sequence[tuple[str, torch.Tensor, MotionPromptLayer, torch.Tensor | None]],
    steps: int = 2,
) -> Figure:
    """Fig. 5: frames, frame differences, attention maps and prompts of sample clips.

    Each example (title, clip (3, T+1, H, W) in [0, 1], prompt layer, and optionally the class
    object's ground-truth mask (T+1, H, W)) gives ``steps`` rows (time steps spread over the
    clip) of 5 columns: frame t, frame t+1, difference D_t, attention A_t (computed by the layer)
    and prompt Z_t = A_t * frame t+1. With a mask, the attention map is outlined (cyan) where the
    object is in frame t or t+1, the region that moves for the class. No examples give a "no
    runs" note.

    Returns:
        Figure with ``5 * rows`` image axes and 2 colour bars (differences, attention).
    """
    if not examples:
        fig = Figure(figsize=(6, 2), layout="constrained")
        _note(fig.add_subplot(), "no runs: no Table 1 run with a prompt layer and a clip")
        return fig
    rows = []
    for title, video, layer, *mask in examples:
        _check_clip(video, f"fig5_attention ({title})")
        attention = _attention(video, layer)
        diffs = frame_differences(video)
        obj = mask[0].numpy() >= 0.5 if mask and mask[0] is not None else None
        for t in _steps(len(diffs), steps):
            region = obj[t] | obj[t + 1] if obj is not None else None
            rows.append((title, layer, video, t, diffs[t], attention[t], region))
    fig = Figure(figsize=(11, 2.1 * len(rows) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), 5, squeeze=False))
    bound = max(max(float(np.abs(r[4]).max()) for r in rows), 1e-6)
    for r, (title, layer, video, t, diff, att, region) in enumerate(rows):
        ax = axes[r]
        _image(ax[0], _rgb(video, t))
        _image(ax[1], _rgb(video, t + 1))
        im_d = _image(ax[2], diff, cmap=DIFF_CMAP, vmin=-bound, vmax=bound)
        im_a = _image(ax[3], att, cmap=ATTENTION_CMAP, vmin=0, vmax=1)
        _outline(ax[3], region)
        _image(ax[4], np.clip(att[..., None] * _rgb(video, t + 1), 0, 1))
        ax[0].set_ylabel(f"{title}\n{_layer_label(layer)}\nt = {t}", fontsize=8)
    for col, name in enumerate(
        ["frame t", "frame t+1", "difference D_t", "attention A_t", "prompt Z_t"]
    ):
        axes[0, col].set_title(name, fontsize=9)
    # Below their columns, so the colour bars do not push the image columns apart.
    fig.colorbar(im_d, ax=axes[:, 2].tolist(), location="bottom", shrink=0.9, label="D")
    fig.colorbar(im_a, ax=axes[:, 3].tolist(), location="bottom", shrink=0.9, label="A")
    return fig


def fig6_regularisation(
    video: torch.Tensor | None,
    layer_without: MotionPromptLayer | None,
    layer_with: MotionPromptLayer | None,
    steps: int = 4,
    labels: tuple[str, str] = ("lambda = 0", "lambda = 2.5"),
    mask: torch.Tensor | None = None,
) -> Figure:
    """Fig. 6: prompts and attention maps of models trained without and with regularisation.

    Rows: prompts and attention of ``layer_without``, then of ``layer_with``, on the same
    clip; columns: ``steps`` time steps. Each attention row is labelled with its temporal
    variation V on this clip (Eq. 6: the mean of (A_{t+1} - A_t)^2 over all its maps), and with
    the class object's mask (T+1, H, W) the maps are outlined (cyan) where the object is in frame
    t or t+1, as in Fig. 5. Missing clip or layer gives a "no runs" note.

    Returns:
        Figure with ``4 * steps`` image axes (fewer if the clip is short) and a colour bar.
    """
    if video is None or layer_without is None or layer_with is None:
        fig = Figure(figsize=(6, 2), layout="constrained")
        _note(fig.add_subplot(), "no runs: need two lambda-ablation runs and a clip")
        return fig
    _check_clip(video, "fig6_regularisation")
    maps = [_attention(video, layer) for layer in (layer_without, layer_with)]
    ts = _steps(video.shape[1] - 1, steps)
    obj = mask.numpy() >= 0.5 if mask is not None else None
    fig = Figure(figsize=(2.2 * len(ts) + 1.2, 9), layout="constrained")
    axes = np.asarray(fig.subplots(4, len(ts), squeeze=False))
    for i, (att, label, layer) in enumerate(
        zip(maps, labels, (layer_without, layer_with), strict=True)
    ):
        for j, t in enumerate(ts):
            prompt = np.clip(att[t][..., None] * _rgb(video, t + 1), 0, 1)
            _image(axes[2 * i, j], prompt, f"t = {t}" if i == 0 else None)
            im = _image(axes[2 * i + 1, j], att[t], cmap=ATTENTION_CMAP, vmin=0, vmax=1)
            _outline(axes[2 * i + 1, j], obj[t] | obj[t + 1] if obj is not None else None)
        variation = float(np.mean(np.diff(att, axis=0) ** 2))
        axes[2 * i, 0].set_ylabel(f"prompts\n{label}\n{_layer_label(layer)}", fontsize=8)
        axes[2 * i + 1, 0].set_ylabel(f"attention\n{label}\nV = {variation:.3g}", fontsize=8)
    fig.colorbar(im, ax=axes[[1, 3]].ravel().tolist(), shrink=0.6, label="attention A")
    return fig


def confusion_figure(run_dirs: Sequence[str | Path], title: str = "") -> Figure:
    """The test confusion matrix of one cell, its seeds' videos together: each row (a true
    class) in percent of its videos, the diagonal its per-class accuracy."""
    tables = [run_record.read_scores(folder) for folder in run_dirs]
    names = pd.read_csv(run_record.verify_file(run_dirs[0], run_record.PER_CLASS))
    num_classes = sum(c.startswith("score_") for c in tables[0].columns)
    counts = sum(
        confusion_matrix(
            torch.tensor(t["prediction"].to_numpy()),
            torch.tensor(t["label"].to_numpy()),
            num_classes,
        )
        for t in tables
    ).numpy()
    percent = 100.0 * counts / np.maximum(counts.sum(1, keepdims=True), 1)
    labels = dict(zip(names["label"], names["class_name"].astype(str), strict=True))
    ticks = [labels.get(k, str(k)) for k in range(num_classes)]
    side = min(14.0, 2.5 + 0.28 * num_classes)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the true class's videos")
    fontsize = 8 if num_classes <= 20 else 5
    ax.set_xticks(range(num_classes), ticks, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(num_classes), ticks, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if num_classes <= 15:
        for (row, col), value in np.ndenumerate(percent):
            if counts[row, col]:
                colour = "white" if value > 60 else "black"
                ax.text(
                    col, row, f"{value:.0f}", ha="center", va="center", fontsize=7, color=colour
                )
    videos = sum(len(t) for t in tables)
    top1 = 100.0 * np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"{title}\n{len(tables)} runs, {videos} test videos, top-1 {top1:.1f}", fontsize=9)
    return fig


def save_figure(
    fig: Figure, path_stem: str | Path, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` (or ``formats``) atomically."""
    stem = Path(path_stem)
    written = []
    for ext in formats:
        path = stem.with_name(f"{stem.name}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150)
        written.append(path)
    return written
