"""Figures from two tiny trained runs (lambda 0 and 2.5) on a tiny SynthMotion scene."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_CLIP, tiny_run_settings

from vmp.analysis import figures
from vmp.layer.motion import frame_differences
from vmp.layer.prompt import MotionPromptLayer
from vmp.models import prompt_layer

LAMBDAS = (0.0, 2.5)


@pytest.fixture(scope="module")
def runs(tiny_scene, tmp_path_factory):
    """Run directories of two 2-epoch x3d_tiny VMP runs, keyed by lambda."""
    from vmp.training.run import train_run

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for lam in LAMBDAS:
        run_dir = root / f"synth_gym/1/x3d_tiny/vmp/lambda~{lam:g}/seed~0"
        train_run(**tiny_run_settings(tiny_scene, lambda_reg=lam, out_dir=str(run_dir)))
        out[lam] = run_dir
    return out


@pytest.fixture(scope="module")
def clip(tiny_scene):
    return figures.sample_clip(tiny_scene, "1", TINY_CLIP)


def texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_sample_clip_is_a_test_clip_in_unit_range(clip):
    assert clip.shape == (3, 5, 32, 32)
    assert 0.0 <= clip.min() and clip.max() <= 1.0


def test_sample_clip_reads_prepared_datasets(clip, tiny_scene, tmp_path):
    """The paper profile samples Fig. 1/5 clips from prepare_data's manifest of a real dataset."""
    from vmp.data.official import index

    prepared = tmp_path / "prepared"
    prepared.mkdir()
    index("synthmotion", tiny_scene, "1").to_csv(prepared / "manifest.csv", index=False)
    got = figures.sample_clip(prepared, "1", TINY_CLIP, dataset_format="prepared")
    assert torch.equal(got, clip)


def test_fig1_shows_the_frame_differences(clip):
    fig = figures.fig1_motion_representations(clip, t=1, order=1)
    assert len(fig.axes) == 5  # 4 panels + colour bar of the differences
    shown = np.asarray(fig.axes[1].images[0].get_array())
    np.testing.assert_allclose(shown, frame_differences(clip)[1])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), clip[:, 2].permute(1, 2, 0))


def test_fig1_without_clip_or_with_short_clip(clip):
    assert "no clip" in texts(figures.fig1_motion_representations(None))
    with pytest.raises(ValueError, match="need at least 6 frames, got 5"):
        figures.fig1_motion_representations(clip, order=2)


def test_fig3_curves_come_from_the_power_norms():
    fig = figures.fig3_power_normalisation()
    assert len(fig.axes) == 5  # 4 panels + colour bar of (d)
    ax_b = fig.axes[1]
    m, a = ax_b.lines[0].get_data()
    np.testing.assert_allclose(a, 5.0 / (0.45 * np.abs(np.tanh(m)) + 0.1))
    labels = [line.get_label() for line in fig.axes[0].lines]
    for name in ("Gamma", "MaxExp", "SigmE", "AsinhE"):
        assert any(label.startswith(name) for label in labels)


def _by_gid(ax, gid):
    (artist,) = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    return artist


def test_fig4_points_are_the_runs_values(runs):
    fig = figures.fig4_slope_shift(list(runs.values()), list(runs.values()))
    assert len(fig.axes) == 5
    ax_a, ax_b, ax_c, ax_d, ax_e = fig.axes
    for lam, run in runs.items():
        metrics, history = figures.load_run(run)
        for ax, column in ((ax_a, "slope"), (ax_b, "shift")):
            line = _by_gid(ax, f"mean:{column}:lambda={lam:g}")
            assert line.get_label() == f"lambda = {lam:g}, 1 seed"
            np.testing.assert_array_equal(line.get_xdata(), history["epoch"])
            np.testing.assert_array_equal(line.get_ydata(), history[column])
        seeds = _by_gid(ax_e, f"seeds:lambda={lam:g}").get_offsets()
        np.testing.assert_allclose(seeds[:, 1], [metrics["top1"]])
    finals = [json.loads((r / "metrics.json").read_text())["prompt"] for r in runs.values()]
    expected = np.array([[p["slope"], p["shift"]] for p in finals])
    for ax, group in ((ax_c, "synth_gym"), (ax_d, "x3d_tiny")):
        by_gid = {c.get_gid(): c.get_offsets() for c in ax.collections}
        np.testing.assert_allclose(by_gid[f"runs:{group}"], expected)
        np.testing.assert_allclose(by_gid[f"mean:{group}"], [expected.mean(axis=0)])


def test_fig4_trajectories_start_at_the_recorded_start(runs):
    fig = figures.fig4_trajectories(list(runs.values()))
    ax_a, ax_b, ax_c = fig.axes
    for run in runs.values():
        metrics, history = figures.load_run(run)
        name, start = metrics["settings"]["name"], metrics["prompt_start"]
        for ax, kind, column in ((ax_a, "shift", "shift"), (ax_b, "gain", "static_gain")):
            line = _by_gid(ax, f"{kind}:{name}:-")
            np.testing.assert_array_equal(line.get_xdata(), [0, *history["epoch"]])
            np.testing.assert_allclose(line.get_ydata(), [start[column], *history[column]])
            state_colour = figures.STATE_COLOURS[start["state"]]
            assert line.get_color() == state_colour
    assert "no runs" in " ".join(t.get_text() for t in ax_c.texts)  # no identity or gate runs


def _fake_ablation_run(root, lam, seed, slopes, shifts, top1):
    """A run directory with the two files Fig. 4 reads (no model)."""
    run = root / f"lambda~{lam:g}" / f"seed~{seed}"
    run.mkdir(parents=True)
    settings = dict(dataset="synth_gym", split="1", backbone="x3d_tiny", variant="vmp", seed=seed)
    settings["lambda"] = lam
    prompt = {"slope": slopes[-1], "shift": shifts[-1]}
    (run / "metrics.json").write_text(
        json.dumps({"top1": top1, "prompt": prompt, "settings": settings})
    )
    epochs = np.arange(1, len(slopes) + 1)
    history = "epoch,slope,shift\n" + "".join(
        f"{e},{a},{b}\n" for e, a, b in zip(epochs, slopes, shifts, strict=True)
    )
    (run / "history.csv").write_text(history)
    return run


def test_fig4_shows_the_spread_over_seeds(tmp_path):
    """Per lambda: the mean over seeds as a line, min..max as a band, every seed's top-1 in (e)."""
    slopes = {
        0.0: [[10, 11, 12], [10, 12, 14], [10, 13, 16]],
        2.5: [[10, 9, 8], [10, 8, 6], [10, 10, 10]],
    }
    top1 = {0.0: [50.0, 56.0, 53.0], 2.5: [60.0, 61.0, 65.0]}
    runs = [
        _fake_ablation_run(tmp_path, lam, seed, a, [-0.1 * seed] * 3, top1[lam][seed])
        for lam in slopes
        for seed, a in enumerate(slopes[lam])
    ]
    fig = figures.fig4_slope_shift(runs[::-1], [])
    ax_a, ax_b, _, _, ax_e = fig.axes
    colours = set()
    for lam, per_seed in slopes.items():
        values = np.array(per_seed, dtype=float)
        line = _by_gid(ax_a, f"mean:slope:lambda={lam:g}")
        assert line.get_label() == f"lambda = {lam:g}, 3 seeds"
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(line.get_ydata(), values.mean(axis=0))
        band = _by_gid(ax_a, f"band:slope:lambda={lam:g}")
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == values.min() and ys.max() == values.max()
        np.testing.assert_allclose(band.get_facecolor()[0][:3], line.get_color()[:3])
        colours.add(tuple(line.get_color()))
        shift_band = _by_gid(ax_b, f"band:shift:lambda={lam:g}").get_paths()[0].vertices[:, 1]
        assert shift_band.min() == pytest.approx(-0.2) and shift_band.max() == 0
        dots = _by_gid(ax_e, f"seeds:lambda={lam:g}").get_offsets()
        np.testing.assert_allclose(np.sort(dots[:, 1]), np.sort(top1[lam]))
    assert len(colours) == 2  # one colour per lambda
    assert len(ax_a.lines) == len(ax_a.collections) == 2  # one mean line and one band per lambda
    means = _by_gid(ax_e, "mean:top1")
    np.testing.assert_allclose(means.get_ydata(), [53.0, 62.0])
    bars = [seg[:, 1] for seg in _by_gid(ax_e, "spread:top1").get_segments()]
    np.testing.assert_allclose([(b.min(), b.max()) for b in bars], [(50, 56), (60, 65)])
    assert [t.get_text() for t in ax_e.get_xticklabels()] == ["0", "2.5"]
    assert "min..max over seeds" in ax_a.get_title()


def test_fig4_without_runs_says_so():
    fig = figures.fig4_slope_shift([], [])
    assert len(fig.axes) == 5
    assert texts(fig).count("no runs") == 5


def test_fig5_attention_is_the_layers(clip):
    layer = MotionPromptLayer()
    with torch.no_grad():
        layer.m.fill_(0.3)
        layer.n.fill_(-0.2)
    fig = figures.fig5_attention([("scene", clip, layer)], steps=2)
    assert len(fig.axes) == 2 * 5 + 2
    a, b = layer.slope.item(), layer.shift.item()
    d = frame_differences(clip)
    last = len(d) - 1  # steps=2 shows the first and last time steps
    attention = np.asarray(fig.axes[5 + 3].images[0].get_array())
    np.testing.assert_allclose(attention, 1 / (1 + np.exp(-a * (d[last] - b))), rtol=1e-5)
    prompt = np.asarray(fig.axes[5 + 4].images[0].get_array())
    frame = clip[:, last + 1].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(prompt, attention[..., None] * frame, rtol=1e-5, atol=1e-7)
    assert "no runs" in texts(figures.fig5_attention([]))


def test_fig5_outlines_the_object_where_a_mask_is_given(clip):
    mask = torch.zeros(clip.shape[1], *clip.shape[2:])
    mask[:, 4:10, 4:10] = 1
    fig = figures.fig5_attention([("scene", clip, MotionPromptLayer(), mask)], steps=2)
    images = fig.axes[:10]  # 2 rows x 5 columns, then the colour bars
    outlined = [ax for ax in images if ax.collections]
    assert outlined == [images[3], images[5 + 3]]  # the attention column, both rows
    plain = figures.fig5_attention([("scene", clip, MotionPromptLayer(), None)], steps=2)
    assert not any(ax.collections for ax in plain.axes[:10])


def test_fig6_rows_and_missing_runs(clip):
    without, with_ = MotionPromptLayer(), MotionPromptLayer()
    fig = figures.fig6_regularisation(clip, without, with_, steps=4)
    assert len(fig.axes) == 4 * 4 + 1
    attention = figures._attention(clip, without)
    variation = float(((attention[1:] - attention[:-1]) ** 2).mean())
    assert f"V = {variation:.3g}" in fig.axes[4].get_ylabel()  # first column, attention row
    assert not any(ax.collections for ax in fig.axes[:16])
    mask = torch.zeros(clip.shape[1], *clip.shape[2:])
    mask[:, 2:6, 2:6] = 1
    outlined = figures.fig6_regularisation(
        clip, MotionPromptLayer(), MotionPromptLayer(), steps=4, mask=mask
    )
    rows = np.asarray(outlined.axes[:16]).reshape(4, 4)
    assert all(ax.collections for ax in rows[[1, 3]].ravel())  # attention rows only
    assert not any(ax.collections for ax in rows[[0, 2]].ravel())
    assert "no runs" in texts(figures.fig6_regularisation(clip, None, MotionPromptLayer()))


def test_save_figure_writes_png_and_pdf(tmp_path):
    paths = figures.save_figure(figures.fig3_power_normalisation(), tmp_path / "sub" / "fig3.x")
    assert [p.name for p in paths] == ["fig3.x.png", "fig3.x.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fig3.x.pdf", "fig3.x.png"]


def test_load_run_model_matches_the_saved_model(runs, clip):
    from vmp.models import create_model, variant_options

    run = runs[2.5]
    model = figures.load_run_model(run)
    saved = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    reference = create_model(
        "x3d_tiny", 4, **variant_options("x3d_tiny", "vmp"), num_frames=4, crop_size=32
    )
    reference.load_state_dict(saved["state_dict"])
    reference.eval()
    with torch.no_grad():
        got, want = model(clip[None]), reference(clip[None])
    torch.testing.assert_close(got.logits, want.logits)
    metrics = figures.load_run(run)[0]
    layer = prompt_layer(model)
    assert layer.slope.item() == pytest.approx(metrics["prompt"]["slope"], rel=1e-6)
    assert layer.shift.item() == pytest.approx(metrics["prompt"]["shift"], rel=1e-6)


def test_run_selection(runs):
    assert figures.pick_ablation_pair(list(runs.values())[::-1]) == (runs[0.0], runs[2.5])
    assert figures.pick_ablation_pair([runs[0.0]]) is None
    assert figures.pick_table_run(list(runs.values()), "synth_gym") == runs[0.0]
    assert figures.pick_table_run(list(runs.values()), "synth_mpii") is None


def test_prompt_points_of_two_layers_and_baselines():
    prompt = {"slope_slow": 10.0, "shift_slow": -0.1, "slope_fast": 20.0, "shift_fast": 0.3}
    assert figures.prompt_points({"prompt": prompt}) == [
        ("slow", 10.0, -0.1),
        ("fast", 20.0, 0.3),
    ]
    assert figures.prompt_points({"prompt": {}}) == []
    assert figures.prompt_points({}) == []


def test_load_run_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics\.json not found"):
        figures.load_run(tmp_path)


def test_prompt_layer_of_a_baseline_raises():
    from vmp.models import create_model

    model = create_model("x3d_tiny", 4, num_frames=4, crop_size=32)
    with pytest.raises(ValueError, match="no prompt layer"):
        prompt_layer(model)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "figures.ipynb"
    subprocess.run(
        [
            "jupytext",
            "--to",
            "ipynb",
            "-o",
            str(path),
            str(Path(__file__).resolve().parents[1] / "notebooks" / "figures.py"),
        ],
        check=True,
        capture_output=True,
    )
    return path


def test_notebook_parameters(notebook):
    import papermill

    params = papermill.inspect_notebook(str(notebook))
    assert list(params) == [
        "table_runs",
        "ablation_runs",
        "clip_sources",
        "clip",
        "out_dir",
    ]


def test_notebook_writes_the_five_figures(notebook, runs, tiny_scene, tmp_path):
    import papermill

    out_dir = tmp_path / "figures"
    papermill.execute_notebook(
        str(notebook),
        str(tmp_path / "out.ipynb"),
        parameters={
            "table_runs": [str(r) for r in runs.values()],
            "ablation_runs": [str(r) for r in runs.values()],
            "clip_sources": {
                "synth_gym": {"format": "synthmotion", "root": str(tiny_scene), "split": "1"}
            },
            "clip": {**TINY_CLIP, "num_frames": 6},
            "out_dir": str(out_dir),
        },
        kernel_name="python3",
        progress_bar=False,
    )
    names = [
        "fig1_motion_representations",
        "fig3_power_normalisation",
        "fig4_slope_shift",
        "fig4_trajectories",
        "fig5_attention",
        "fig6_regularisation",
    ]
    expected = sorted(f"{n}.{ext}" for n in names for ext in ("pdf", "png"))
    assert sorted(p.name for p in out_dir.iterdir()) == expected
    assert all(p.stat().st_size > 1000 for p in out_dir.iterdir())
