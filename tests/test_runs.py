"""A run's record (vmp.training.record): paths, files, verifying, keeping and restoring,
rebuilding the model; vmp.io's writers."""

import gc
import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

from vmp import io
from vmp.analysis import figures
from vmp.models import create_model, save_checkpoint, variant_options
from vmp.training import record as runs
from vmp.training.record import cell_path

# --- paths and files ------------------------------------------------------------------------


def test_run_paths_follow_the_results_layout():
    run = {"dataset": "synth_gym", "split": "1", "backbone": "x3d_tiny", "variant": "vmp"}
    run |= {"lambda": 2.5, "seed": 3}
    assert runs.run_dir("results", run) == "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~3"
    assert runs.run_dir("results", run) == runs.seed_dir("results", cell_path(run), 3)
    assert runs.run_name("synth_gym", "1", "x3d_tiny", "vmp", 2.5, 3) == (
        "synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~3"
    )
    assert (
        runs.run_name("d", "mean", "b", "baseline", 0.0, 0) == "d/mean/b/baseline/lambda~0/seed~0"
    )
    assert runs.run_files("r") == ["r/metrics.json", "r/history.csv", "r/model.pt"]


def _write_tiny_run(folder, backbone, arch):
    """A finished run of ``arch`` named ``backbone``, written through vmp.training.record (no training)."""
    torch.manual_seed(0)
    model = create_model(arch, 4, **variant_options(arch, "vmp"), num_frames=4, crop_size=32)
    settings = {
        "dataset": "synth_gym",
        "split": "1",
        "backbone": backbone,
        "arch": arch,
        "variant": "vmp",
        "lambda": 2.5,
        "seed": 0,
        "num_classes": 4,
        "clip": {"num_frames": 4, "crop_size": 32},
        "model": {},
    }
    history = pd.DataFrame({"epoch": [1, 2], "slope": [10.0, 11.0], "shift": [0.0, 0.1]})
    written = runs.write_run(
        folder, metrics={"top1": 25.0, "epochs": 2}, history=history, model=model, settings=settings
    )
    return model, written


def test_a_run_named_otherwise_than_its_arch_is_rebuilt_from_its_arch(tmp_path):
    # The paper profile's timesformer_k600 is built as "timesformer": the name is not a model.
    model, written = _write_tiny_run(tmp_path / "run", "x3d_custom", "x3d_tiny")
    assert [p.name for p in written] == ["history.csv", "model.pt", "metrics.json"]
    with pytest.raises(ValueError, match="x3d_custom"):
        create_model("x3d_custom", 4)
    clip = torch.rand(1, 3, 5, 32, 32)
    for rebuilt in (runs.load_model(tmp_path / "run"), figures.load_run_model(tmp_path / "run")):
        assert not rebuilt.training
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(clip).logits, model.eval()(clip).logits)
    metrics, history = figures.load_run(tmp_path / "run")
    assert metrics["settings"]["backbone"] == "x3d_custom" and list(history["epoch"]) == [1, 2]
    assert runs.read_metrics(tmp_path / "run" / "metrics.json") == metrics


def test_runs_written_before_arch_was_recorded_fall_back_to_the_backbone(tmp_path):
    _write_tiny_run(tmp_path / "run", "x3d_tiny", "x3d_tiny")
    path = tmp_path / "run" / "metrics.json"
    metrics = json.loads(path.read_text())
    del metrics["settings"]["arch"]
    path.write_text(json.dumps(metrics))
    assert runs.load_model(tmp_path / "run").name == "x3d_tiny"


def test_reading_an_unfinished_run_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics\.json not found"):
        runs.read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(runs.DamagedRun, match="no 'settings'"):
        runs.read_metrics(tmp_path)


def test_records_carry_checksums_and_provenance(tmp_path):
    _write_tiny_run(tmp_path / "run", "x3d_tiny", "x3d_tiny")
    metrics = runs.read_metrics(tmp_path / "run")
    for name in ("history.csv", "model.pt"):
        data = (tmp_path / "run" / name).read_bytes()
        import hashlib

        assert metrics["files"][name] == {
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    made = metrics["provenance"]
    assert made["pid"] == os.getpid() and made["host"] and made["written"]
    assert made["snakemake"] is None  # not started by a workflow


def _damaged_run(tmp_path):
    folder = tmp_path / "runs" / "synth_gym" / "1" / "x3d_tiny" / "vmp" / "lambda~2.5" / "seed~0"
    _write_tiny_run(folder, "x3d_tiny", "x3d_tiny")
    return folder


def test_a_truncated_metrics_json_is_named_with_the_command_that_recomputes_it(tmp_path):
    folder = _damaged_run(tmp_path)
    path = folder / "metrics.json"
    path.write_text(path.read_text()[:200])
    cell = folder.parent / "train.ipynb"
    with pytest.raises(runs.DamagedRun) as err:
        runs.read_metrics(folder)
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (not complete JSON: ")
    assert f"snakemake --cores 2 --forcerun '{cell}'" in message and "\n" not in message
    assert runs.damage(folder).startswith("not complete JSON")


@pytest.mark.parametrize(
    ("name", "damage", "cheap", "message"),
    [
        ("model.pt", lambda data: data[: len(data) // 2], "model.pt has", "bytes, the run wrote"),
        ("history.csv", lambda data: data[: data.rindex(b"2,")], "history.csv has", "bytes"),
        (
            "model.pt",
            lambda data: data[:-1] + bytes([data[-1] ^ 1]),
            "model.pt's checksum",
            "checksum differs",
        ),
        ("model.pt", None, "model.pt is missing", "not found"),
    ],
)
def test_damaged_history_and_weights_are_caught_when_read(tmp_path, name, damage, cheap, message):
    folder = _damaged_run(tmp_path)
    path = folder / name
    if damage is None:
        path.unlink()
    else:
        path.write_bytes(damage(path.read_bytes()))
    assert (runs.damage(folder) or "").startswith(cheap or "") and (
        runs.damage(folder) is None
    ) == (cheap is None)
    read = runs.load_model if name == "model.pt" else runs.read_history
    with pytest.raises((runs.DamagedRun, FileNotFoundError), match=message):
        read(folder)


def test_a_history_without_every_epoch_is_damaged_also_without_checksums(tmp_path):
    folder = _damaged_run(tmp_path)
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["files"]  # a record written before checksums were kept
    (folder / "metrics.json").write_text(json.dumps(metrics))
    history = folder / "history.csv"
    history.write_text("\n".join(history.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(runs.DamagedRun, match="1 epoch rows, the run trained 2"):
        runs.read_history(folder)


def test_damaged_records_are_set_aside_so_their_jobs_run_again(tmp_path):
    good, bad = tmp_path / "good", _damaged_run(tmp_path)
    _write_tiny_run(good, "x3d_tiny", "x3d_tiny")
    (bad / "model.pt").write_bytes(b"")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    assert runs.set_aside_damaged([good, bad, unfinished], dry_run=True) == [
        f"damaged run record {bad}: model.pt has 0 bytes, the run wrote "
        f"{runs.read_metrics(bad)['files']['model.pt']['bytes']}; would be retrained"
    ]
    assert (bad / "metrics.json").exists()
    (line,) = runs.set_aside_damaged([good, bad, unfinished])
    assert line.endswith(f"set aside in {bad / 'damaged'}, retraining it")
    # every file of the record moves, so no file of it is left for a job to read
    assert not any((bad / name).exists() for name in ("metrics.json", "history.csv", "model.pt"))
    assert (bad / "damaged" / "metrics.json").exists() and not (bad / "kept").exists()
    assert (good / "metrics.json").exists()
    assert runs.set_aside_damaged([good, bad]) == []


def test_a_byte_flipped_model_of_the_same_size_is_found_by_its_checksum_once_its_mtime_moves(
    tmp_path,
):
    folder = _damaged_run(tmp_path)
    model = folder / "model.pt"
    assert runs.damage(folder) is None  # the writer's stat cache: no checksum needed
    stat = model.stat()
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert model.stat().st_size == stat.st_size
    assert runs.damage(folder) == "model.pt's checksum differs from the one the run recorded"


def test_a_verified_file_is_not_read_again_until_its_size_or_mtime_change(tmp_path, monkeypatch):
    folder = _damaged_run(tmp_path)
    read = []
    monkeypatch.setattr(runs, "file_digest", lambda path: read.append(path.name) or "x")
    assert runs.damage(folder) is None and read == []
    os.utime(folder / "history.csv", ns=(1, 1))  # touched: checked again, by content
    assert runs.damage(folder) == "history.csv's checksum differs from the one the run recorded"
    assert read == ["history.csv"]


def test_a_kept_run_is_restored_after_its_job_deleted_it_only_for_the_same_settings(
    tmp_path, monkeypatch
):
    folder = _damaged_run(tmp_path)
    before = {n: (folder / n).read_bytes() for n in ("metrics.json", "model.pt", "history.csv")}
    settings = runs.read_metrics(folder)["settings"]
    for name in before:  # Snakemake removes a job's outputs before it runs it again
        (folder / name).unlink()
    moved = settings | {"data_root": "/elsewhere"}  # where the data sits is not what is computed
    assert runs.restore_kept(folder, moved)["top1"] == 25.0
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert (folder / "model.pt").samefile(folder / "kept" / "model.pt")  # a link, not a copy
    (folder / "metrics.json").unlink()
    assert runs.restore_kept(folder, settings | {"lambda": 5.0}) is None
    assert not (folder / "metrics.json").exists()
    monkeypatch.setenv("VMP_RETRAIN", "1")
    assert runs.restore_kept(folder, settings) is None


def test_a_damaged_kept_copy_is_not_restored(tmp_path):
    folder = _damaged_run(tmp_path)
    settings = runs.read_metrics(folder)["settings"]
    (folder / "model.pt").unlink()
    (folder / "metrics.json").unlink()
    kept = folder / "kept" / "model.pt"
    kept.write_bytes(kept.read_bytes()[:-10])
    assert runs.restore_kept(folder, settings) is None


def test_keep_finished_links_records_written_before_runs_were_kept(tmp_path):
    folder = _damaged_run(tmp_path)
    import shutil

    shutil.rmtree(folder / "kept")
    runs.keep_finished([folder, tmp_path / "not-a-run"])
    assert (folder / "kept" / "metrics.json").samefile(folder / "metrics.json")


# --- atomic writes --------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_writer_gives_files_the_usual_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        model = create_model("x3d_tiny", 4, num_frames=4, crop_size=32)
        written = [
            io.write_text(tmp_path / "a.txt", "x"),
            io.write_json(tmp_path / "a.json", {"a": 1}),
            io.write_csv(tmp_path / "a.csv", pd.DataFrame({"a": [1]})),
            io.write_torch(tmp_path / "a.pt", {"a": 1}),
            save_checkpoint(model, tmp_path / "model.pt"),
        ]
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~umask
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.txt", "a.json", "a.csv", "a.pt", "model.pt", "plain"]
    )


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    io.write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk on fire"), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"

    def broken_save(obj, f):
        Path(f).write_bytes(b"partial")
        raise OSError("no space left")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="no space"):
        save_checkpoint(create_model("x3d_tiny", 4, num_frames=4, crop_size=32), tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_writes_are_flushed_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    io.write_text(tmp_path / "a.txt", "x")
    assert len(synced) == 1


def test_a_failed_video_encode_leaves_no_temporary(tmp_path):
    import numpy as np

    from vmp.data.synth import _write_mp4

    frames = np.zeros((3, 16, 16, 3), np.uint8)
    _write_mp4(tmp_path / "ok.mp4", frames, 10, 4, "mpeg4")
    with pytest.raises(Exception):  # noqa: B017 - whatever PyAV raises for an unknown codec
        _write_mp4(tmp_path / "bad.mp4", frames, 10, 4, "no_such_codec")
    assert [p.name for p in tmp_path.iterdir()] == ["ok.mp4"]
    assert (tmp_path / "ok.mp4").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (needs root, as CI runs); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    gc.collect()  # a failed torch.save's writer may still hold its file open
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_folder_and_keeps_the_old_file(full_disk):
    kept = io.write_text(full_disk / "metrics.json", "old")
    for write in (
        lambda: io.write_text(kept, "x" * 400_000),
        lambda: io.write_torch(full_disk / "model.pt", torch.zeros(100_000)),
    ):
        with pytest.raises(io.DiskFull) as err:
            write()
        message = str(err.value)
        assert "\n" not in message and err.value.errno == 28
        assert message.startswith(f"no space left on the disk of {full_disk} (")
        assert "MiB free)" in message and "the files already there are kept" in message
    assert kept.read_text() == "old"
    assert sorted(p.name for p in full_disk.iterdir()) == ["metrics.json"]  # no temporary
