import fcntl
import os
import shutil
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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, Path]:
    """The smoke profile run once from nothing, for the tests that read its results or copy them
    (never change them in place): (config file, results folder). Under pytest-xdist the workers
    share one tree: the first to ask builds it while the others wait on its lock."""
    from helpers import snakemake, write_config

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root, config = shared / "smoke", shared / "smoke" / "config.yaml"
    with open(shared / "smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "built").exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed in another worker
            root.mkdir()
            write_config(root)  # root / "config.yaml"
            snakemake("--cores", "2", "--configfile", str(config))
            (root / "built").touch()
    return config, root / "results"
