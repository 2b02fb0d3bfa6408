"""Never train twice: the README's sequences run through Snakemake on copies of one finished smoke
tree. A finished run trains again only when its settings, data or checkpoint change; every test
checks that the runs it did not damage keep byte-identical ``metrics.json`` and ``model.pt``."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, comparable_results, copy_tree, snakemake

pytestmark = pytest.mark.slow

RECORD = ("metrics.json", "model.pt")


def records(results: Path) -> dict[str, bytes]:
    """Every run's record files (fine-tuning and pre-training), by path below ``results``."""
    files = [*results.glob("runs/**/seed~*/*"), *results.glob("pretrain/*/*")]
    return {str(f.relative_to(results)): f.read_bytes() for f in files if f.name in RECORD}


def run(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return snakemake("--cores", "2", *args, "--configfile", str(config), check=check)


def test_a_part_then_everything_and_a_second_pre_flight_train_nothing(smoke_run, tmp_path):
    config, results = smoke_run
    part = tmp_path / "part.yaml"
    part.write_text("only: {backbones: [x3d_tiny], datasets: [synth_gym]}\n")
    for args in (["--configfile", str(config), str(part)], ["--configfile", str(config)]):
        plan = snakemake("-n", "--quiet", "rules", *args).stdout
        assert "finetune_" not in plan and "pretrain" not in plan, plan  # the report may redraw
    assert "Nothing to be done" in snakemake("-n", "--configfile", str(config)).stdout


def test_damaged_records_are_retrained_in_the_same_run_and_nothing_else(smoke_run, tmp_path):
    """A truncated metrics.json, a truncated model.pt and a model.pt with one byte flipped (same
    size): a dry run names all three; one plain `snakemake` sets them aside, retrains those three
    runs and redraws what reads them; every other record keeps its bytes and every figure and
    table is there afterwards."""
    config = copy_tree(smoke_run, tmp_path)
    results = tmp_path / "results"
    before = records(results)
    cell = results / "runs/synth_gym/1/x3d_tiny"
    truncated = cell / "vmp/lambda~2.5/seed~1"
    flipped = cell / "vmp_gate/lambda~2.5/seed~0"
    cut = cell / "baseline/lambda~0/seed~0"
    damaged_runs = (truncated, flipped, cut)
    original = {run: comparable_results(run) for run in damaged_runs}
    metrics = truncated / "metrics.json"
    metrics.write_text(metrics.read_text()[:200])
    (cut / "model.pt").write_bytes((cut / "model.pt").read_bytes()[:1000])
    data = bytearray((flipped / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (flipped / "model.pt").write_bytes(bytes(data))
    figures = sorted(p.name for p in (results / "figures").iterdir())

    dry = snakemake("-n", "--configfile", str(config))
    assert f"damaged run record {truncated}: not complete JSON" in dry.stderr
    assert f"damaged run record {flipped}: model.pt's checksum differs" in dry.stderr
    assert f"damaged run record {cut}: model.pt has 1000 bytes" in dry.stderr
    assert (flipped / "model.pt").read_bytes() == bytes(data)  # a dry run changes nothing

    done = run(config)
    for folder in damaged_runs:
        assert f"set aside in {folder / 'damaged'}, retraining it" in done.stderr
        assert (folder / "damaged" / "metrics.json").exists()
    record = json.loads((cut / "metrics.json").read_text())
    assert record["files"]["model.pt"]["bytes"] == (cut / "model.pt").stat().st_size > 1000
    after = records(results)
    damaged = {str((f / n).relative_to(results)) for f in damaged_runs for n in RECORD}
    assert {k: v for k, v in after.items() if k not in damaged} == {
        k: v for k, v in before.items() if k not in damaged
    }
    # retrained to the same result as the first training (deterministic on CPU); the files' bytes
    # differ in the paths of the copy, which the record and the model's settings name
    for folder in damaged_runs:
        (metrics, history), (first, first_history) = comparable_results(folder), original[folder]
        assert metrics.pop("settings")["name"] == first.pop("settings")["name"]
        assert metrics == first
        assert history.equals(first_history)
    assert sorted(p.name for p in (results / "figures").iterdir()) == figures
    assert "Nothing to be done" in snakemake("-n", "--configfile", str(config)).stdout


def test_a_moved_dataset_retrains_nothing_and_deletes_nothing(smoke_run, tmp_path):
    config = copy_tree(smoke_run, tmp_path)
    results = tmp_path / "results"
    before = records(results)
    (tmp_path / "data").rename(tmp_path / "moved")  # mv: same files, same times
    settings = yaml.safe_load(config.read_text()) | {"data_root": str(tmp_path / "moved")}
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    targets = [str(results / name) for name in before]
    run(config, *targets)
    assert records(results) == before  # a run trained again would write a new record


def test_a_second_profile_sharing_the_data_root_leaves_the_first_nothing_to_do(smoke_run, tmp_path):
    config, _ = smoke_run
    settings = yaml.safe_load(config.read_text())
    settings["results"] = str(tmp_path / "other")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(settings, sort_keys=False))
    plan = snakemake("-n", "--quiet", "rules", "--configfile", str(other)).stdout
    # the scenes are shared: nothing of them is generated or decoded again
    assert "synth_data " not in plan and "decode_cache" not in plan and "synth_data_record" in plan
    assert "Nothing to be done" in snakemake("-n", "--configfile", str(config)).stdout


def test_a_garbage_video_rebuilds_the_cache_and_is_counted(smoke_run, tmp_path):
    config = copy_tree(smoke_run, tmp_path)
    results = tmp_path / "results"
    manifest = (tmp_path / "data/synth_gym/manifest.csv").read_text().splitlines()
    header = manifest[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in manifest[1:]]
    train = next(r["path"] for r in rows if r["subset"] == "train")
    (tmp_path / "data/synth_gym" / train).write_bytes(os.urandom(3000))
    first = results / "runs/synth_gym/1/x3d_tiny/baseline/lambda~0/seed~0/metrics.json"
    decoded = tmp_path / "data/synth_gym/decoded.npy"
    done = run(config, str(decoded), str(first))
    assert "decoded frames of synth_gym: a video under" in done.stderr
    assert (
        "rule decode_cache" in done.stderr and "rule finetune_synth_gym_1_x3d_tiny" in done.stderr
    )
    index = yaml.safe_load((tmp_path / "data/synth_gym/decoded.json").read_text())
    assert list(index["unreadable"]) == [train]
    record = yaml.safe_load(first.read_text())
    assert record["decode_failures"]["count"] == 1
    assert list(record["decode_failures"]["files"])[0].endswith(train)


def _processes_with(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_snakemake_killed_as_a_job_starts_leaves_no_record(smoke_run, tmp_path):
    """Snakemake SIGKILLed about a second after a training job started (the kernel still
    starting): the job's shell named it, so the kernel stops and writes no record."""
    config = copy_tree(smoke_run, tmp_path)
    results = tmp_path / "results"
    cell = results / "runs/synth_gym/1/x3d_tiny/baseline/lambda~0"
    for seed in (0, 1):
        shutil.rmtree(cell / f"seed~{seed}")  # not finished, nothing kept: the job would train
    notebook = results / "runs/synth_gym/1/x3d_tiny/train.ipynb"
    command = ["snakemake", str(cell / "seed~0/metrics.json"), "--cores", "1"]
    job = subprocess.Popen(
        [*command, "--configfile", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not _processes_with(f"{notebook}"):
        assert job.poll() is None and time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(
        job.pid, signal.SIGKILL
    )  # Snakemake only: its job's shell, papermill, the kernel live on
    job.wait()
    deadline = time.monotonic() + 90
    while _processes_with(f"{notebook}") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with(f"{notebook}"), "the job outlived its Snakemake"
    for seed in (0, 1):
        for name in ("metrics.json", "model.pt", "history.csv"):
            assert not (cell / f"seed~{seed}" / name).exists()
