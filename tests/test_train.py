"""Training loop: schedule, seeding, parameter groups, determinism, NaN guard and resume after SIGKILL."""

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from helpers import TINY_CLIP, comparable_results, tiny_run_settings

from vmp.data.clips import EpochSeededSampler
from vmp.models import create_model
from vmp.training.environment import EXECUTION_KEYS, git_state
from vmp.training.fit import (
    OPTIMIZERS,
    ClipDataModule,
    OptimConfig,
    progress_line,
    recompute_batchnorm,
    schedule_sum,
    split_parameters,
    warmup_cosine,
    warmup_step_decay,
)
from vmp.training.run import train_run


def test_warmup_cosine_closed_form():
    assert warmup_cosine(0, 4, 20) == pytest.approx(0.25)
    assert warmup_cosine(3, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(4, 4, 20) == pytest.approx(1.0)
    assert warmup_cosine(12, 4, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(20, 4, 20) == pytest.approx(0.0)


def test_warmup_step_decay_closed_form():
    assert warmup_step_decay(0, 2, [10, 14]) == pytest.approx(0.5)
    assert warmup_step_decay(9, 2, [10, 14]) == pytest.approx(1.0)
    assert warmup_step_decay(10, 2, [10, 14]) == pytest.approx(0.1)
    assert warmup_step_decay(20, 2, [10, 14]) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'steps'"):
        OptimConfig(schedule="linear")


def test_sampler_depends_only_on_seed_and_epoch():
    a, b = EpochSeededSampler(50, seed=3), EpochSeededSampler(50, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.set_epoch(3)
    assert list(a) != list(b)
    assert list(EpochSeededSampler(50, seed=4)) != list(EpochSeededSampler(50, seed=3))


def test_prompt_parameters_get_their_own_group():
    model = create_model("x3d_tiny", 5, prompt="vmp", num_frames=4, crop_size=32)
    cfg = OptimConfig(lr=0.1, weight_decay=1e-4, prompt_lr_mult=10.0, prompt_weight_decay=0.0)
    groups = {g["name"]: g for g in split_parameters(model, cfg)}
    prompt = groups["prompt"]
    assert (
        len(prompt["params"]) == 2
        and prompt["lr"] == pytest.approx(1.0)
        and prompt["weight_decay"] == 0.0
    )
    assert all(p.ndim <= 1 for p in groups["backbone_no_decay"]["params"])
    released = OptimConfig(weight_decay=1e-4, prompt_weight_decay=None)
    assert {g["name"]: g for g in split_parameters(model, released)}["prompt"][
        "weight_decay"
    ] == 1e-4
    counted = sum(len(g["params"]) for g in groups.values())
    assert counted == len(list(model.parameters()))


def test_prompt_lr_is_absolute_and_its_travel_budget():
    model = create_model("x3d_tiny", 5, prompt="vmp", prompt_gate=True, num_frames=4, crop_size=32)
    cfg = OptimConfig(lr=0.003, prompt_lr=0.05, prompt_lr_mult=10.0, epochs=5, warmup_epochs=1)
    groups = {g["name"]: g for g in split_parameters(model, cfg)}
    assert groups["prompt"]["lr"] == 0.05 and len(groups["prompt"]["params"]) == 3  # m, n, gate
    assert groups["backbone"]["lr"] == 0.003
    # the default profile's schedule: 18 steps x 5 epochs, 18 warm-up steps, then cosine
    warmup = sum((s + 1) / 18 for s in range(18))
    cosine = sum(0.5 * (1 + math.cos(math.pi * (s - 18) / 72)) for s in range(18, 90))
    assert schedule_sum(cfg, 18) == pytest.approx(warmup + cosine)
    assert schedule_sum(cfg, 18) * cfg.prompt_group_lr == pytest.approx(2.3, abs=0.01)
    steps = OptimConfig(epochs=4, warmup_epochs=1, schedule="steps", milestones=(2, 3))
    # 10 warm-up steps (sum 5.5), 10 at 1, 10 at 0.1, 10 at 0.01
    assert schedule_sum(steps, 10) == pytest.approx(5.5 + 10 + 1 + 0.1)
    with pytest.raises(ValueError, match="prompt_lr must be > 0 or None"):
        OptimConfig(prompt_lr=0.0)


def _run(scene, out_dir, **changes):
    defaults = {
        "out_dir": str(out_dir),
        "clip": TINY_CLIP | {"num_temporal_clips": 2},
        "optim": {"epochs": 2, "batch_size": 4, "lr": 0.05},
    }
    return train_run(**tiny_run_settings(scene, **(defaults | changes)))


def test_same_seed_same_metrics_and_history_records_prompt(tiny_scene, tmp_path):
    first = _run(tiny_scene, tmp_path / "a")
    _run(tiny_scene, tmp_path / "b")
    (m1, h1), (m2, h2) = comparable_results(tmp_path / "a"), comparable_results(tmp_path / "b")
    assert m1 == m2
    pd.testing.assert_frame_equal(h1, h2)
    assert list(h1["epoch"]) == [1, 2]
    assert {
        "train_loss",
        "train_ce",
        "train_variation",
        "train_top1",
        "val_top1",
        "slope",
        "shift",
        "lr",
    } <= set(h1)
    assert h1["slope"].iloc[0] != h1["slope"].iloc[1]  # m is trained
    assert 9.09 <= first["prompt"]["slope"] <= 50 and -0.6 <= first["prompt"]["shift"] <= 0.6
    start = first["prompt_start"]
    assert {"slope", "shift", "static_attention", "static_gain", "state"} <= set(start)
    assert start["slope"] != first["prompt"]["slope"]
    a, b = start["slope"], start["shift"]
    assert start["static_attention"] == pytest.approx(1 / (1 + math.exp(a * b)), rel=1e-5)
    assert first["settings"]["seed"] == 0 and first["settings"]["run_seed"] != 0
    assert first["settings"]["deterministic"] is True and first["settings"]["sync_bn"] is False
    execution = json.loads((tmp_path / "a" / "metrics.json").read_text())["execution"]
    assert execution == first["execution"]
    assert list(execution) == list(EXECUTION_KEYS)
    assert {k: execution[k] for k in ("accelerator", "precision", "devices", "num_workers")} == {
        "accelerator": "cpu",
        "precision": "32-true",
        "devices": 1,
        "num_workers": 0,
    }
    assert execution["deterministic"] is True and execution["torch"] == torch.__version__
    assert execution["cuda"] is execution["cudnn"] is execution["gpu"] is None  # on CPU
    assert execution["commit"] == git_state()[0] and execution["dirty"] == git_state()[1]
    assert first["test_views"] == 2 and first["num_videos"] > 0
    assert not (tmp_path / "a" / "checkpoints").exists()
    reloaded = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    assert "state_dict" in reloaded


def test_other_seed_other_result(tiny_scene, tmp_path):
    _run(tiny_scene, tmp_path / "a", optim={"epochs": 1, "batch_size": 4})
    _run(tiny_scene, tmp_path / "b", optim={"epochs": 1, "batch_size": 4}, seed=1)
    assert not comparable_results(tmp_path / "a")[1].equals(comparable_results(tmp_path / "b")[1])


def test_non_finite_loss_names_run_epoch_and_step(tiny_scene, tmp_path, monkeypatch):
    import vmp.training.run

    seed_prompt_layers = vmp.training.run.seed_prompt_layers

    def poisoned(model, run_seed):
        seed_prompt_layers(model, run_seed)
        with torch.no_grad():
            model.prompt_layers["video"].m.fill_(float("nan"))

    monkeypatch.setattr(vmp.training.run, "seed_prompt_layers", poisoned)
    with pytest.raises(
        FloatingPointError,
        match=r"synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~0: non-finite loss .* epoch 0, step 0",
    ):
        _run(tiny_scene, tmp_path / "nan")
    assert not (tmp_path / "nan" / "metrics.json").exists()


RESUME_SCRIPT = """
import json, sys
from vmp.training.run import train_run
train_run(**json.loads(sys.argv[1]))
"""


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tiny_scene, tmp_path):
    settings = tiny_run_settings(tiny_scene, optim={"epochs": 4, "batch_size": 2, "lr": 0.05})

    def start(out_dir):
        args = json.dumps(settings | {"out_dir": str(out_dir)})
        return subprocess.Popen(
            [sys.executable, "-c", RESUME_SCRIPT, args],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    start(tmp_path / "straight").wait(timeout=300)
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    proc = start(tmp_path / "killed")
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not (tmp_path / "killed" / "metrics.json").exists()
    torch.load(checkpoint, weights_only=True)  # a kill may leave a temp file, never half a ckpt

    assert start(tmp_path / "killed").wait(timeout=300) == 0
    resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert resumed["resumed_from_epoch"] >= 1
    straight, killed = (
        comparable_results(tmp_path / "straight"),
        comparable_results(tmp_path / "killed"),
    )
    assert straight[0] == killed[0]
    pd.testing.assert_frame_equal(straight[1], killed[1])


def test_adamw_and_sgd_get_the_parameter_groups():
    model = create_model("x3d_tiny", 5, prompt="vmp", num_frames=4, crop_size=32)
    cfg = OptimConfig(optimizer="adamw", lr=0.003, weight_decay=0.05)
    optimizer = OPTIMIZERS[cfg.optimizer](split_parameters(model, cfg), cfg)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0, 0.0]
    sgd = OptimConfig(momentum=0.8)
    assert OPTIMIZERS["sgd"](split_parameters(model, sgd), sgd).defaults["momentum"] == 0.8
    with pytest.raises(ValueError, match="optimizer must be one of"):
        OptimConfig(optimizer="lbfgs")


def test_progress_line_has_epoch_loss_accuracies_prompt_and_seconds():
    row = {"epoch": 3, "train_loss": 1.23456, "train_top1": 40.0, "val_top1": 35.5}
    row |= {"slope": 12.345, "shift": -0.1234, "seconds": 4.56}
    assert progress_line("d/1/b/vmp/lambda~2.5/seed~0", row, 6) == (
        "d/1/b/vmp/lambda~2.5/seed~0 epoch 3/6, loss 1.235, train top-1 40.0, val top-1 35.5, "
        "slope 12.3, shift -0.123, 4.6 s"
    )


def test_recomputed_batchnorm_closes_the_train_eval_gap_of_x3d():
    """After a few large steps the running statistics lag the weights (eval outputs drift from
    train-mode outputs); recomputing them with the final weights makes the two agree."""
    torch.manual_seed(0)
    model = create_model("x3d_tiny", 4, num_frames=4, crop_size=32)
    video = torch.rand(16, 3, 5, 32, 32)
    labels = torch.arange(16) % 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(video).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def gap() -> float:
        with torch.no_grad():
            train_mode = model.train()(video).logits
            eval_mode = model.eval()(video).logits
        return float((train_mode - eval_mode).abs().max() / train_mode.abs().max())

    before = gap()
    assert recompute_batchnorm(model, [{"video": video}]) > 10
    assert not model.training
    after = gap()
    # What is left is the unbiased (running) vs biased (batch) variance over few elements.
    assert before > 0.1 and after < 0.02, (before, after)


def test_decode_failures_are_recorded_in_the_metrics(tiny_scene, tmp_path):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene)
    (scene / "decoded.npy").unlink(missing_ok=True)
    manifest = pd.read_csv(scene / "manifest.csv")
    broken = (scene / manifest[manifest["subset"] == "train"]["path"].iloc[0]).resolve()
    broken.write_bytes(b"")
    metrics = train_run(
        **tiny_run_settings(
            scene, out_dir=str(tmp_path / "run"), optim={"epochs": 1, "batch_size": 4}
        )
    )
    expected = {"count": 1, "files": {str(broken): f"ValueError: {broken}: empty file (0 bytes)"}}
    assert metrics["decode_failures"] == expected
    assert (
        json.loads((tmp_path / "run" / "metrics.json").read_text())["decode_failures"] == expected
    )


def test_a_class_without_test_videos_stops_the_run_naming_it(tiny_scene, tmp_path):
    import shutil

    scene = tmp_path / "scene"
    shutil.copytree(tiny_scene, scene)
    manifest = pd.read_csv(scene / "manifest.csv")
    gone = (manifest["subset"] == "test") & (manifest["label"] == 2)
    manifest[~gone].to_csv(scene / "manifest.csv", index=False)
    name = manifest.loc[gone, "class_name"].iloc[0]
    with pytest.raises(ValueError, match=f"no test video of class {name}"):
        train_run(**tiny_run_settings(scene, out_dir=str(tmp_path / "run")))


# Starts the training below as its child, prints the child's PID and waits.
ORPHAN_PARENT = """
import subprocess, sys, time
print(subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]]).pid, flush=True)
time.sleep(600)
"""
ORPHAN_CHILD = """
import json, sys
from pathlib import Path
from vmp.training.run import train_run
from vmp.training.supervision import ParentGone
settings = json.loads(sys.argv[1])
try:
    train_run(**settings)
except ParentGone as e:
    Path(settings["out_dir"], "stopped.txt").write_text(str(e))
    sys.exit(3)
"""


@pytest.mark.slow
def test_training_stops_when_its_parent_is_killed(tiny_scene, tmp_path):
    out = tmp_path / "run"
    settings = tiny_run_settings(
        tiny_scene, out_dir=str(out), optim={"epochs": 500, "batch_size": 4}
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT, ORPHAN_CHILD, json.dumps(settings)],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads((out / "train.lock").read_text())["pid"] == child
        parent.kill()
        parent.wait()
        killed = time.monotonic()
        while not (out / "stopped.txt").exists() and time.monotonic() - killed < 60:
            time.sleep(0.1)
        stopped_after = time.monotonic() - killed
        assert (out / "stopped.txt").exists(), "training went on after its parent was killed"
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert stopped_after < 30  # checked every 5 s
    assert f"parent process {parent.pid} has exited" in (out / "stopped.txt").read_text()
    assert not (out / "train.lock").exists() and not (out / "metrics.json").exists()
    assert (out / "checkpoints" / "last.ckpt").exists()  # kept: a rerun resumes


@pytest.mark.slow
def test_ddp_in_two_processes_matches_one_process(tiny_scene, tmp_path, monkeypatch):
    """DDP (gloo, 2 forked CPU processes, 2 clips each) against 1 process with batches of 4."""
    # As inside a one-task SLURM job, where Lightning would wait for processes started by srun.
    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "vmp", "SLURM_JOB_ID": "5"}.items():
        monkeypatch.setenv(key, value)
    # No random augmentation (each process draws its own): 6 frames 3 apart span the 16-frame
    # videos, no scale jitter, crop = frame size.
    clip = TINY_CLIP | {"num_frames": 5, "sampling_rate": 3, "train_scale": [32, 32]}
    still = {"clip": clip, "optim": {"epochs": 2, "batch_size": 4}}
    # TimeSformer has no BatchNorm: the same batches and averaged gradients give the same run.
    transformer = still | {"backbone": "timesformer_tiny"}
    one = _run(tiny_scene, tmp_path / "one", **transformer)
    two = _run(tiny_scene, tmp_path / "two", devices=2, **transformer)
    h1, h2 = (comparable_results(tmp_path / name)[1] for name in ("one", "two"))
    assert list(h2["epoch"]) == [1, 2] and h1["train_loss"].iloc[0] != h1["train_loss"].iloc[1]
    pd.testing.assert_frame_equal(h1, h2, check_exact=False, rtol=1e-4)
    numbers = {k: v for k, v in one["prompt"].items() if not isinstance(v, str)}
    assert {k: two["prompt"][k] for k in numbers} == pytest.approx(numbers, rel=1e-4)
    assert two["prompt"]["state"] == one["prompt"]["state"]
    assert two["top1"] == pytest.approx(one["top1"], abs=1e-6)
    assert not list(tmp_path.glob("**/*.temp.ckpt"))
    # With BatchNorm each process normalises its own 2 clips: it runs, a little differently.
    _run(tiny_scene, tmp_path / "bn", devices=2, **still)
    _, h3 = comparable_results(tmp_path / "bn")
    assert list(h3["epoch"]) == [1, 2] and h3["train_loss"].notna().all()
    with pytest.raises(ValueError, match="batch_size 4 must be a multiple of devices=3"):
        _run(tiny_scene, tmp_path / "three", devices=3, **still)


def test_replicates_draw_their_own_start_and_variants_share_it():
    from vmp.training.run import derived_seed, replicate_model

    seed = derived_seed("synth_gym", "1", "slowfast_tiny", 0)
    assert seed == derived_seed("synth_gym", "1", "slowfast_tiny", 0) < 2**31
    others = {
        derived_seed(d, s, "slowfast_tiny", r) for d in ("a", "b") for s in "12" for r in (0, 1)
    }
    assert len(others) == 8

    def build(variant, run_seed=seed):
        return replicate_model("slowfast_tiny", 5, variant, run_seed, num_frames=8, crop_size=32)

    def start(model):
        return {k: (v.m.item(), v.n.item()) for k, v in model.prompt_layers.items()}

    both, slow, fast = start(build("vmp_both")), start(build("vmp_slow")), start(build("vmp_fast"))
    assert slow["slow"] == both["slow"] and fast["fast"] == both["fast"]
    assert both["slow"] != both["fast"]
    assert start(build("vmp_gate")) == both
    identity = start(build("vmp_identity"))
    assert {k: m for k, (m, _) in identity.items()} == {k: m for k, (m, _) in both.items()}
    assert start(build("vmp_both", derived_seed("synth_gym", "2", "slowfast_tiny", 0))) != both
    # the backbone and its head are the same in every variant of the replicate
    baseline = build("baseline").backbone.state_dict()
    for name, value in build("vmp_both").backbone.state_dict().items():
        assert torch.equal(value, baseline[name]), name
    other = build("baseline", derived_seed("synth_gym", "1", "slowfast_tiny", 1)).backbone
    assert not all(torch.equal(v, baseline[k]) for k, v in other.state_dict().items())


def test_step_log_lines_progress_and_a_history_that_grows(
    tiny_scene, tmp_path, caplog, monkeypatch
):
    import vmp.training.fit

    seen = {}
    write_run = vmp.training.fit.write_run

    def before_the_record(folder, **kwargs):  # history.csv is there before the final write
        seen["history"] = pd.read_csv(folder / "history.csv")
        return write_run(folder, **kwargs)

    monkeypatch.setattr(vmp.training.fit, "write_run", before_the_record)
    with caplog.at_level(logging.INFO, logger="vmp.training.fit"):
        _run(tiny_scene, tmp_path / "run", log_every_steps=2)
    assert list(seen["history"]["epoch"]) == [1, 2]
    name = "synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~0"
    steps = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert steps, "no step lines"
    pattern = (
        rf"{re.escape(name)} epoch [12]/2 step \d+/\d+ \(\d+/\d+\): loss \d+\.\d{{3}}, "
        r"top-1 \d+\.\d, lr [\d.e-]+, data \d+\.\d{3} s, step \d+\.\d{3} s, ETA \d+:\d\d$"
    )
    assert all(re.match(pattern, line) for line in steps), steps
    last = re.search(r"\((\d+)/(\d+)\)", steps[-1])
    assert last[1] == last[2]  # the last step of the run
    messages = " | ".join(r.getMessage() for r in caplog.records)
    for what in ("precise BN", "validation", "test"):
        assert re.search(rf"{re.escape(name)} {what}: (\d+)/\1 batches", messages), what
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vmp.training.fit"):
        _run(tiny_scene, tmp_path / "quiet")
    ours = [r.getMessage() for r in caplog.records if r.name == "vmp.training.fit"]
    assert ours and not [m for m in ours if " step " in m or "batches" in m]


def test_accumulating_2_batches_of_8_is_one_step_of_16_and_clipping_bounds_the_step(tmp_path):
    from test_ddp import NoisyClips, TinyNet, tiny_fit

    def trained(name: str, **optim) -> tuple[dict, pd.DataFrame, dict]:
        torch.manual_seed(0)
        model = TinyNet()
        start = {k: v.clone() for k, v in model.state_dict().items()}
        # 36 clips without noise (no random draw): 2 steps of 16 per epoch, 4 clips left out
        tiny_fit(tmp_path / name, NoisyClips(36, noise=0.0), model=model, **optim)
        weights = torch.load(tmp_path / name / "model.pt", weights_only=True)["state_dict"]
        return weights, pd.read_csv(tmp_path / name / "history.csv"), start

    whole, h_whole, start = trained("whole", batch_size=16)
    parts, h_parts, _ = trained("parts", batch_size=16, accumulate_grad_batches=2)
    for key in start:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(whole[key], start[key])
    # the schedule counts optimiser steps: the same learning rate after every epoch
    assert h_parts["lr"].tolist() == pytest.approx(h_whole["lr"].tolist(), rel=1e-12)
    assert h_parts["train_loss"].tolist() == pytest.approx(h_whole["train_loss"].tolist())
    small, _, _ = trained("small", batch_size=8)  # 4 steps of 8: another run
    assert not torch.allclose(small["head.weight"], whole["head.weight"], atol=1e-4)
    # clipped to a norm of 1e-6, two epochs of lr <= 0.1 move no weight by more than 1e-6
    clipped, _, _ = trained("clipped", batch_size=16, clip_grad_norm=1e-6, weight_decay=0.0)
    for key in start:
        assert (clipped[key] - start[key]).abs().max() < 1e-6
    with pytest.raises(ValueError, match="batch_size 16 must be a multiple of devices=1 x "):
        trained("odd", batch_size=16, accumulate_grad_batches=3)
    with pytest.raises(ValueError, match="clip_grad_norm must be > 0 or None"):
        OptimConfig(clip_grad_norm=0.0)


def test_the_datamodule_splits_each_step_between_devices_and_accumulated_batches():
    """One optimiser step of 16 clips over 2 devices x 2 accumulated batches: batches of 4 in the
    seeded order, the last incomplete step dropped; validation and test every clip once, in order,
    16 at a time; fit gets the Trainer's own loaders back for its passes after training."""
    data = ClipDataModule(
        list(range(36)),
        list(range(10)),
        list(range(20, 26)),
        batch_size=16,
        devices=2,
        accumulate=2,
        seed=3,
    )
    train = data.train_dataloader()
    assert train is data.train_dataloader() and data.val_dataloader() is data.val_dataloader()
    assert (train.batch_size, train.drop_last, train.sampler.whole) == (4, True, 16)
    assert data.steps_per_epoch == 2
    train.sampler.set_epoch(1)
    order = torch.cat(list(train)).tolist()
    expected = EpochSeededSampler(36, seed=3, whole=16)
    expected.set_epoch(1)
    assert order == list(expected) and len(order) == 32
    assert [b.tolist() for b in data.val_dataloader()] == [list(range(10))]
    assert [b.tolist() for b in data.test_dataloader()] == [list(range(20, 26))]
    # a split no larger than one step: one step of all its clips; no validation split: no batches
    small = ClipDataModule(list(range(5)), None, [0], batch_size=16)
    assert (small.steps_per_epoch, small.train_dataloader().drop_last) == (1, False)
    assert small.train_dataloader().sampler.whole == 1 and small.val_dataloader() == []


def test_the_code_commit_is_none_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    commit, dirty = git_state()
    if commit is not None:  # the tests run from a checkout
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and isinstance(dirty, bool)
    assert git_state(tmp_path) == (None, None)  # not a checkout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert git_state(tmp_path) == (None, None)  # a checkout, not of vmp's code
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git at all
    assert git_state() == (None, None)
