"""Supervision of a training process (vmp.training.supervision): the run lock, stopping when the
process that started training is gone, and the provenance a record names."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmp.training import supervision

# --- the lock -------------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from vmp.training.supervision import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of ``tmp_path / 'run'``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_attempt_on_a_locked_run_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(supervision.RunLocked, match=rf"being trained by .*PID {holder.pid} on "):
        with supervision.run_lock(tmp_path / "run"):
            pytest.fail("the lock was taken twice")
    assert json.loads((tmp_path / "run" / "train.lock").read_text())["pid"] == holder.pid
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["train.lock"]


def test_training_a_locked_run_stops_before_it_starts(tmp_path, holder, tiny_scene):
    from helpers import tiny_run_settings

    from vmp.training.run import train_run

    with pytest.raises(supervision.RunLocked, match=f"PID {holder.pid}"):
        train_run(**tiny_run_settings(tiny_scene, out_dir=str(tmp_path / "run")))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["train.lock"]


def test_a_stale_lock_is_taken_over_and_released(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "train.lock"
    stale = {"pid": dead.pid, "host": os.uname().nodename, "started": "yesterday"}
    lock.write_text(json.dumps(stale))
    with (
        caplog.at_level(logging.WARNING, logger="vmp.training.supervision"),
        supervision.run_lock(tmp_path) as held,
    ):
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock {lock} of PID {dead.pid}" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_a_lock_from_another_host_is_waited_for_until_its_heartbeat_stops(
    tmp_path, monkeypatch, caplog
):
    """A preempted cluster job on node-17, requeued here at once: its lock is fresh, so the
    requeued job waits (with a log line) until the heartbeat is STALE_AFTER_S old, then takes it."""
    monkeypatch.setattr(supervision, "STALE_AFTER_S", 1.5)
    lock = tmp_path / "train.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "node-17", "started": "an hour ago"}))
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="vmp.training.supervision"),
        supervision.run_lock(tmp_path),
    ):
        waited = time.monotonic() - started
    assert 1.0 < waited < 10
    assert f"{lock} is held by PID 1 on node-17" in caplog.text and "waiting until" in caplog.text
    assert "taking over the stale lock" in caplog.text and list(tmp_path.iterdir()) == []


def test_a_held_lock_is_refreshed_by_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(supervision, "HEARTBEAT_S", 0.05)
    with supervision.run_lock(tmp_path) as lock:
        old = time.time() - 3600
        os.utime(lock, (old, old))
        time.sleep(0.5)
        assert time.time() - lock.stat().st_mtime < 60


def test_the_lock_is_released_on_exceptions(tmp_path):
    with pytest.raises(KeyError), supervision.run_lock(tmp_path):
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []
    with supervision.run_lock(tmp_path):  # and can be taken again
        pass


# --- stopping when the parent is gone -------------------------------------------------------

# Prints its PID, starts ``argv[1:]`` as its child and waits (a shell, papermill or snakemake).
PARENT = """
import subprocess, sys
print(subprocess.Popen(sys.argv[1:]).pid, flush=True)
import time; time.sleep(300)
"""
# Checks the watch (interval argv[2] s, default 0.05) until it fires, then writes the message and exits.
CHILD = """
import sys, time
from vmp.training.supervision import ParentGone, ParentWatch
watch = ParentWatch(interval=float(sys.argv[2]) if len(sys.argv) > 2 else 0.05)
open(sys.argv[1] + ".watched", "w").write(repr(watch.watched))
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        watch.check()
    except ParentGone as e:
        open(sys.argv[1], "w").write(str(e))
        sys.exit(3)
    time.sleep(0.01)
"""


def _wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("interval", [0.05, 3600.0])
def test_the_watch_fires_when_the_parent_dies(tmp_path, interval):
    """The direct parent is checked on every call, whatever the interval of the /proc reads."""
    out = tmp_path / "stopped"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, sys.executable, "-c", CHILD, str(out), str(interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    try:
        assert _wait_for(Path(f"{out}.watched"))
        assert not out.exists()
        parent.kill()
        parent.wait()
        started = time.monotonic()
        assert _wait_for(out, 30), "the child went on after its parent died"
        assert time.monotonic() - started < (10 if interval < 1 else 2)
        assert f"parent process {parent.pid} has exited" in out.read_text()
    finally:
        _kill(child)


def _snakemake_papermill_kernel(tmp_path, kernel_code: str, out: Path, *args: str):
    """A fake ``snakemake`` process -> a middle process (papermill) -> ``kernel_code`` with
    arguments ``out`` and ``args``; returns (snakemake's Popen, the middle's PID, the kernel's PID)."""
    snakemake = tmp_path / "bin" / "snakemake"
    snakemake.parent.mkdir()
    snakemake.write_text(PARENT)
    top = subprocess.Popen(
        [sys.executable, str(snakemake), sys.executable, "-c", PARENT]
        + [sys.executable, "-c", kernel_code, str(out), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    return top, int(top.stdout.readline()), int(top.stdout.readline())


def test_killing_only_snakemake_stops_the_kernel_below_a_live_papermill(tmp_path):
    # snakemake -> papermill -> kernel; the kernel's parent lives on when snakemake is killed.
    out = tmp_path / "stopped"
    top, middle, kernel = _snakemake_papermill_kernel(tmp_path, CHILD, out)
    try:
        assert _wait_for(Path(f"{out}.watched"))
        watched = Path(f"{out}.watched").read_text()
        assert str(top.pid) in watched and "snakemake" in watched
        top.kill()  # only snakemake: papermill stays alive, the kernel's parent does not change
        top.wait()
        assert _wait_for(out, 30), "the kernel went on training after snakemake was killed"
        assert f"process {top.pid}" in out.read_text() and "snakemake" in out.read_text()
        os.kill(middle, 0)  # papermill was alive all along
    finally:
        _kill(middle)
        _kill(kernel)
    # Without a snakemake ancestor only the parent is watched (nohup runs survive a logout).
    assert [p for p, _, _ in supervision.watched_processes()] == [os.getppid()]


# A job's kernel, stopped from its first line: it signals it is ready, then "imports" for 30 s and
# would write argv[1] (an orphan write) if nothing stopped it.
JOB = """
import signal, sys, time
if sys.argv[2] == "ignored":  # as a job started in the background inherits it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
from vmp.training.supervision import stop_with_parents
stop_with_parents(interval=0.1, grace=2.0)
open(sys.argv[1] + ".ready", "w").close()
try:
    for _ in range(300):
        time.sleep(0.1)
except KeyboardInterrupt:
    open(sys.argv[1] + ".interrupted", "w").close()
    raise
open(sys.argv[1], "w").write("written by an orphan")
"""


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_a_job_stops_when_snakemake_dies_before_training(tmp_path, sigint):
    """snakemake -> shell (papermill) -> kernel: killing only snakemake stops the kernel while it
    is still importing, before it trains or writes anything; also when the job inherited SIGINT
    ignored (started in the background), which would make the interrupt a no-op."""
    out = tmp_path / "record"
    top, middle, kernel = _snakemake_papermill_kernel(tmp_path, JOB, out, sigint)
    try:
        assert _wait_for(Path(f"{out}.ready"))
        top.kill()
        top.wait()
        started = time.monotonic()
        while supervision._alive(kernel) and time.monotonic() - started < 20:
            time.sleep(0.05)
        assert not supervision._alive(kernel), "the kernel went on after snakemake was killed"
        assert time.monotonic() - started < 5
        assert Path(f"{out}.interrupted").exists() and not out.exists()
    finally:
        _kill(middle)
        _kill(kernel)
