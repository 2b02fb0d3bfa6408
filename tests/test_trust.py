"""Outside inputs checked before any job (vmp.workflow.preflight) and changes noticed (vmp.data.sources)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import write_frames

from vmp.data import official
from vmp.data.sources import video_fingerprint, video_folders
from vmp.models import create_model, save_checkpoint
from vmp.workflow.config import ConfigError, check_config, nested_update
from vmp.workflow.preflight import check_checkpoints, check_split_lists, preflight

ROOT = Path(__file__).resolve().parents[1]


def hmdb_tree(root: Path, lines: dict[str, str]) -> Path:
    """An HMDB-51 split 1: ``lines`` maps a class to its list file's text; videos for every line."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True, exist_ok=True)
    for cls, text in lines.items():
        (splits / f"{cls}_test_split1.txt").write_text(text)
        for line in text.splitlines():
            frames = np.full((12, 32, 32, 3), 90, np.uint8)
            write_frames(root / "videos" / cls / line.split()[0], frames, 10)
    return root


def hmdb_config(root: Path, **changes) -> dict:
    config = {
        "datasets": {"hmdb51": {"format": "hmdb51", "root": str(root), "splits": ["1"]}},
        "backbones": {"x3d_tiny": {"variants": ["baseline"]}},
        "clip": {"num_frames": 4, "crop_size": 32},
        "data_root": str(root.parent),
        "seeds": [0],
        "lambda": 2.5,
    }
    return nested_update(config, changes)


def test_split_lists_give_every_class_a_train_and_a_test_item(tmp_path):
    root = hmdb_tree(tmp_path / "hmdb51", {"catch": "c1.avi 1\nc2.avi 2\n", "kick": "k1.avi 2\n"})
    with pytest.raises(ConfigError) as err:
        check_split_lists(hmdb_config(root))
    message = str(err.value)
    assert message.startswith("datasets.hmdb51 split 1: no train item listed for class kick in ")
    assert message.count("\n") == 0
    assert str(root / "testTrainMulti_7030_splits" / "kick_test_split1.txt") in message
    assert "catch_test_split1" not in message and "Fix the list" in message
    (root / "testTrainMulti_7030_splits" / "kick_test_split1.txt").write_text(
        "k1.avi 2\nk0.avi 1\n"
    )
    with pytest.raises(
        ConfigError, match=r"class kick has no readable train video: .*k0\.avi \(missing\)"
    ):
        check_split_lists(hmdb_config(root))
    write_frames(root / "videos" / "kick" / "k0.avi", np.full((12, 32, 32, 3), 90, np.uint8), 10)
    assert check_split_lists(hmdb_config(root)) == {
        "hmdb51/1": {"classes": 2, "train": 2, "test": 2, "unreadable": 0}
    }


def two_split_tree(tmp_path: Path) -> tuple[Path, dict]:
    """HMDB-51 splits 1 and 2 of two classes; c1.avi is catch's train video in split 1 and its
    test video in split 2."""
    root = hmdb_tree(
        tmp_path / "hmdb51", {"catch": "c1.avi 1\nc2.avi 2\n", "kick": "k1.avi 1\nk2.avi 2\n"}
    )
    splits = root / "testTrainMulti_7030_splits"
    (splits / "catch_test_split2.txt").write_text("c1.avi 2\nc2.avi 1\n")
    (splits / "kick_test_split2.txt").write_text("k1.avi 1\nk2.avi 2\n")
    return root, hmdb_config(root, datasets={"hmdb51": {"splits": ["1", "2"]}})


def test_one_message_names_every_split_left_without_a_readable_video(tmp_path, monkeypatch):
    root, config = two_split_tree(tmp_path)
    video = root / "videos" / "catch" / "c1.avi"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])  # truncated
    cache = tmp_path / "results" / "checks" / "inputs.json"
    with pytest.raises(ConfigError) as err:
        preflight(config, cache)
    message = str(err.value)
    assert message.startswith("2 problems in the datasets' lists and videos:")
    assert f"split 1: class catch has no readable train video: {video} (" in message
    assert f"split 2: class catch has no readable test video: {video} (" in message
    assert "Fix: replace these files" in message and not cache.exists()
    write_frames(video, np.full((12, 32, 32, 3), 90, np.uint8), 10)  # fixed
    probed = []
    monkeypatch.setattr(official, "quick_probe", lambda path: probed.append(path))
    assert preflight(config, cache).startswith("pre-flight: 2 split(s) of 1 dataset(s)")
    assert len(probed) == 4  # each video once, for both splits
    assert preflight(config, cache) is None and len(probed) == 4  # cached: nothing probed again


def test_a_broken_video_stops_the_parse_before_any_job(tmp_path):
    root, hmdb = two_split_tree(tmp_path)
    video = root / "videos" / "catch" / "c1.avi"
    video.write_bytes(os.urandom(3000))  # garbage over the video
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config |= {"results": str(tmp_path / "results"), "data_root": str(tmp_path / "data")}
    config |= {"datasets": hmdb["datasets"], "ablation": None, "placement": None}
    config |= {"prompt_functions": None, "backbones": {"x3d_tiny": {"variants": ["baseline"]}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    planned = snakemake(path, dry=True)  # a dry run plans on and says what would stop the run
    assert planned.returncode == 0 and "pre-flight, which stops a real run here" in planned.stderr
    failed = snakemake(path)
    assert failed.returncode != 0
    out = failed.stdout + failed.stderr
    assert "split 1: class catch has no readable train video" in out, out
    assert "split 2: class catch has no readable test video" in out
    assert "rule " not in failed.stdout + failed.stderr and not (tmp_path / "results/runs").exists()


def test_checkpoints_must_exist_and_fit_their_backbone(tmp_path):
    good = save_checkpoint(create_model("x3d_tiny", 400), tmp_path / "x3d.pt")
    other = save_checkpoint(create_model("c2d_tiny", 400), tmp_path / "c2d.pt")
    config = hmdb_config(tmp_path, pretrain={"dataset": "kinetics", "checkpoints": {}})
    config["datasets"] = {}
    config["pretrain"]["checkpoints"]["x3d_tiny"] = str(good)
    started = time.perf_counter()
    assert check_checkpoints(config) == {"x3d_tiny": str(good)}
    assert time.perf_counter() - started < 10  # built on the meta device, no weights
    config["pretrain"]["checkpoints"]["x3d_tiny"] = str(other)
    with (
        pytest.warns(UserWarning, match="saved from 'c2d_tiny'"),
        pytest.raises(
            ConfigError,
            match=r"pretrain\.checkpoints\.x3d_tiny: pretrained=.*c2d\.pt does not fit x3d_tiny: missing keys \[backbone\.",
        ) as err,
    ):
        check_checkpoints(config)
    assert "Fix: point pretrain.checkpoints.x3d_tiny at a Kinetics checkpoint of x3d_tiny" in str(
        err.value
    )
    config["pretrain"]["checkpoints"]["x3d_tiny"] = str(tmp_path / "gone.pt")
    with pytest.raises(
        ConfigError, match=r"pretrain\.checkpoints\.x3d_tiny: .*gone\.pt does not exist"
    ):
        check_config(config)


def test_video_fingerprint_notices_added_replaced_emptied_and_removed_videos(tmp_path):
    root = hmdb_tree(tmp_path / "hmdb51", {"catch": "c1.avi 1\nc2.avi 2\n"})
    folders = video_folders("hmdb51", root)
    assert folders == [root / "videos"]
    seen = {video_fingerprint(folders)}
    assert video_fingerprint(folders) in seen  # nothing changed
    video = root / "videos" / "catch" / "c1.avi"

    def changed(what) -> None:
        what()
        new = video_fingerprint(folders)
        assert new not in seen
        seen.add(new)

    changed(
        lambda: write_frames(
            root / "videos" / "catch" / "c3.avi", np.zeros((5, 32, 32, 3), np.uint8), 10
        )
    )
    changed(lambda: os.utime(video, ns=(1, 1)))  # replaced by a file of the same size
    changed(lambda: video.write_bytes(b""))
    changed(video.unlink)


def test_vmp_errors_are_one_line_in_a_notebook(tmp_path):
    import nbformat
    import papermill

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from vmp.workflow.logs import prepare_job\nprepare_job()"),
        nbformat.v4.new_code_cell(
            f"from vmp.io import disk_full\nraise disk_full('{tmp_path}/model.pt')"
        ),
    ]
    path = tmp_path / "job.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(path), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False
        )
    assert err.value.ename == "DiskFull"
    assert [line for line in err.value.traceback if line.strip()] == [
        f"DiskFull: {err.value.evalue}"
    ]
    assert err.value.evalue.startswith(f"no space left on the disk of {tmp_path} (")


def small_profile(tmp_path, **changes) -> Path:
    """The smoke profile with one x3d_tiny baseline cell of two seeds and nothing else."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config |= {
        "results": str(tmp_path / "results"),
        "data_root": str(tmp_path / "data"),
        "ablation": None,
        "placement": None,
        "prompt_functions": None,
    } | changes
    config["backbones"]["x3d_tiny"]["variants"] = ["baseline"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def small_metrics(tmp_path) -> list[Path]:
    cell = tmp_path / "results/runs/synth_gym/1/x3d_tiny/baseline/lambda~0"
    return [cell / f"seed~{s}" / "metrics.json" for s in (0, 1)]


def snakemake(config: Path, *targets, dry=False):
    return subprocess.run(
        ["snakemake", "--cores", "2", *(["-n"] if dry else []), *map(str, targets)]
        + ["--configfile", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_stops_the_workflow_and_keeps_the_results(
    smoke_run, tmp_path
):
    _, results = smoke_run
    shutil.copytree(results.parent / "data", tmp_path / "data")  # the scenes, generated once
    checkpoint = tmp_path / "kinetics.pt"
    save_checkpoint(create_model("x3d_tiny", 400), checkpoint)
    pretrain = {"dataset": "kinetics", "checkpoints": {"x3d_tiny": str(checkpoint)}}
    config, metrics = small_profile(tmp_path, pretrain=pretrain), small_metrics(tmp_path)
    first = snakemake(config, *metrics)
    assert first.returncode == 0, first.stderr[-3000:]
    before = [m.read_text() for m in metrics]
    save_checkpoint(create_model("c2d_tiny", 400), checkpoint)  # another backbone's weights
    failed = snakemake(config, *metrics)
    assert failed.returncode != 0
    assert "pretrain.checkpoints.x3d_tiny" in failed.stderr
    assert "does not fit x3d_tiny" in failed.stderr
    assert "rule finetune" not in failed.stderr  # the pre-flight stops the parse, before any job
    assert [m.read_text() for m in metrics] == before  # the earlier results are kept
