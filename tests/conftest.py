import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Workflow tests call snakemake, papermill and jupytext from this environment.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """A small SynthMotion scene (4 classes x 6 videos of 16 frames, 32 px), generated once."""
    from vmp.data.synth import generate

    root = tmp_path_factory.mktemp("synth") / "synth_gym"
    generate(root, "synth_gym", seed=0, classes=4, videos_per_class=6, num_frames=16, size=32)
    return root
