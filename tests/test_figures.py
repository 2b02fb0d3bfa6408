"""Figures from two tiny trained runs (lambda 0 and 2.5) on a tiny SynthMotion scene."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_CLIP, tiny_run_settings

from vmp import figures
from vmp.motion import frame_differences
from vmp.prompt import MotionPromptLayer

LAMBDAS = (0.0, 2.5)


@pytest.fixture(scope="module")
def runs(tiny_scene, tmp_path_factory):
    """Run directories of two 2-epoch x3d_tiny VMP runs, keyed by lambda."""
    from vmp.experiment import train_run

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
    from vmp.datasets import index

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


def test_fig4_points_are_the_runs_values(runs):
    fig = figures.fig4_slope_shift(list(runs.values()), list(runs.values()))
    assert len(fig.axes) == 4
    ax_a, ax_b, ax_c, ax_d = fig.axes
    for lam, run in runs.items():
        metrics, history = figures.load_run(run)
        for ax, column in ((ax_a, "slope"), (ax_b, "shift")):
            (line,) = [ln for ln in ax.lines if ln.get_label() == f"lambda = {lam:g}"]
            np.testing.assert_array_equal(line.get_xdata(), history["epoch"])
            np.testing.assert_array_equal(line.get_ydata(), history[column])
    finals = [json.loads((r / "metrics.json").read_text())["prompt"] for r in runs.values()]
    expected = np.array([[p["slope"], p["shift"]] for p in finals])
    for ax, group in ((ax_c, "synth_gym"), (ax_d, "x3d_tiny")):
        by_gid = {c.get_gid(): c.get_offsets() for c in ax.collections}
        np.testing.assert_allclose(by_gid[f"runs:{group}"], expected)
        np.testing.assert_allclose(by_gid[f"mean:{group}"], [expected.mean(axis=0)])


def test_fig4_without_runs_says_so():
    fig = figures.fig4_slope_shift([], [])
    assert len(fig.axes) == 4
    assert texts(fig).count("no runs") == 4


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


def test_fig6_rows_and_missing_runs(clip):
    fig = figures.fig6_regularisation(clip, MotionPromptLayer(), MotionPromptLayer(), steps=4)
    assert len(fig.axes) == 4 * 4 + 1
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
    layer = figures.prompt_layer(model)
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
        figures.prompt_layer(model)


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
        "fig5_attention",
        "fig6_regularisation",
    ]
    expected = sorted(f"{n}.{ext}" for n in names for ext in ("pdf", "png"))
    assert sorted(p.name for p in out_dir.iterdir()) == expected
    assert all(p.stat().st_size > 1000 for p in out_dir.iterdir())
