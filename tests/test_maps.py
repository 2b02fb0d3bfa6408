"""`python -m vmp.analysis.maps`: Fig. 5's panels and arrays for any video, with a run's layer or the default."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import tiny_run_settings, write_frames

from vmp.analysis.maps import main, write_maps
from vmp.training.run import train_run

SQUARE, STEP = 8, 2  # an 8-px white square moving 2 px right per frame over black


@pytest.fixture(scope="module")
def moving_square(tmp_path_factory):
    frames = []
    for t in range(12):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[12 : 12 + SQUARE, 4 + STEP * t : 4 + STEP * t + SQUARE] = 255
        frames.append(frame)
    return write_frames(tmp_path_factory.mktemp("maps") / "square.mp4", frames, fps=10)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_default_layer_maps_match_the_closed_form(moving_square, tmp_path):
    figure, arrays = write_maps(moving_square, tmp_path / "maps.png", num_frames=4, start=2)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and arrays == tmp_path / "maps.npz"
    maps = np.load(arrays)
    assert maps["frames"].shape == (5, 32, 32, 3) and maps["attention"].shape == (4, 32, 32)
    assert maps["prompts"].shape == (4, 32, 32, 3)
    assert list(maps["frame_indices"]) == [2, 3, 4, 5, 6]
    assert float(maps["slope"]) == pytest.approx(50.0) and float(maps["shift"]) == 0.0
    # A_t = sigmoid(a (D_t - b)) with a = 50, b = 0; Z_t = A_t * F_{t+1}.
    np.testing.assert_allclose(maps["attention"], _sigmoid(50 * maps["differences"]), atol=1e-5)
    np.testing.assert_allclose(maps["prompts"], maps["attention"][..., None] * maps["frames"][1:])
    # Between frames 2 and 3 the square's leading edge brightens columns 16-17 (A near 1), its
    # trailing edge darkens columns 8-9 (A near 0), and the static background stays near 0.5.
    attention = maps["attention"][0, 13:19]
    assert attention[:, 16:18].mean() > 0.95 and attention[:, 8:10].mean() < 0.05
    assert abs(maps["attention"][0, :8].mean() - 0.5) < 0.05


def test_a_run_supplies_its_learned_layer(moving_square, tiny_scene, tmp_path):
    run_dir = tmp_path / "run"
    settings = tiny_run_settings(tiny_scene, backbone="c2d_tiny", out_dir=str(run_dir))
    metrics = train_run(**settings | {"optim": {"epochs": 1, "batch_size": 4}})
    _, arrays = write_maps(moving_square, tmp_path / "maps.pdf", run=run_dir, size=48)
    maps = np.load(arrays)
    assert maps["attention"].shape == (8, 48, 48)
    slope, shift = float(maps["slope"]), float(maps["shift"])
    assert slope == pytest.approx(metrics["prompt"]["slope"], rel=1e-5)
    assert shift == pytest.approx(metrics["prompt"]["shift"], rel=1e-5, abs=1e-7)
    expected = torch.sigmoid(slope * (torch.from_numpy(maps["differences"]) - shift)).numpy()
    np.testing.assert_allclose(maps["attention"], expected, atol=1e-5)
    assert (tmp_path / "maps.pdf").read_bytes()[:5] == b"%PDF-"


def test_too_short_a_video_names_the_file_and_the_fix(moving_square, tmp_path):
    with pytest.raises(ValueError, match=r"square\.mp4: has 12 frames; .* Lower --frames"):
        write_maps(moving_square, tmp_path / "maps.png", num_frames=8, stride=2)
    with pytest.raises(ValueError, match=r"use a \.png or \.pdf"):
        write_maps(moving_square, tmp_path / "maps.jpg")


def test_command_line(moving_square, tmp_path, capsys):
    main([str(moving_square), "--out", str(tmp_path / "a.png"), "--frames", "3", "--steps", "1"])
    assert "wrote" in capsys.readouterr().out
    assert np.load(tmp_path / "a.npz")["attention"].shape == (3, 32, 32)
    # As printed in the README, in a fresh interpreter.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vmp.analysis.maps",
            str(moving_square),
            "--out",
            str(tmp_path / "b.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b.png").stat().st_size > 5_000
