"""Supervision of a training process: one process trains a run at a time, a run stops when
nobody waits for it any more, and a record says which process wrote it.

::

    run_lock(folder)        <folder>/train.lock (PID, host, start, command) while a process trains
                            the run; a live holder stops a second one (RunLocked); a dead one's
                            lock is taken over; another host's is waited for until its heartbeat
                            is STALE_AFTER_S old (a preempted cluster job requeued elsewhere)
    stop_with_parents()     a job's notebook stops (KeyboardInterrupt, then exit) once its
                            Snakemake (named by the job's shell, VMP_SNAKEMAKE_PID) or its parent
                            has exited, from its first line on
    ParentWatch             the same check, called by training at every step (ParentGone)
    provenance()            host, PID, time and the Snakemake process, written into each record
"""

from __future__ import annotations

import _thread
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vmp.io import temporary_path

log = logging.getLogger(__name__)

LOCK = "train.lock"


# --- one process trains a run at a time -------------------------------------------------------


class RunLocked(RuntimeError):
    """Another live process is training the same run folder."""


def _process_start(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` is a running (not zombie) process, started at ``start`` if given."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): os.kill is all we know
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start  # else: the PID was reused


def _holder(lock: Path) -> dict[str, Any]:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    return (
        f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"started {holder.get('started', '?')} ({holder.get('command', '?')})"
    )


# A held lock's modification time is refreshed every HEARTBEAT_S seconds. A lock written on another
# machine (a cluster job resubmitted to another node) cannot be checked by PID, so it counts as
# alive until it has gone STALE_AFTER_S without a heartbeat.
HEARTBEAT_S = 60.0
STALE_AFTER_S = 10 * HEARTBEAT_S


def _lock_age(lock: Path) -> float:
    try:
        return time.time() - lock.stat().st_mtime
    except OSError:
        return float("inf")


def _holder_alive(holder: dict[str, Any], lock: Path) -> bool:
    if holder.get("host") != socket.gethostname():
        return _lock_age(lock) < STALE_AFTER_S
    return isinstance(holder.get("pid"), int) and _alive(holder["pid"], holder.get("pid_start"))


def _heartbeat(lock: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            os.utime(lock)
        except OSError:
            return


@contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``<folder>/train.lock`` while the block runs, so a run is never trained twice at once.

    The lock file names this process (PID, host, start time, command line). If it exists and
    its process is alive, :class:`RunLocked` is raised naming that process; if its process is
    gone (killed, crashed) the stale lock is taken over with a warning. A lock from another host
    is alive while its heartbeat (the file's time, refreshed every ``HEARTBEAT_S``) is younger
    than ``STALE_AFTER_S``: this waits (with a log line) until it is released or goes stale, and
    then takes it over, so a requeued cluster job continues where its preempted predecessor
    stopped. The lock is removed when the block ends, also on exceptions.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    me = {
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join(_command_line(os.getpid())[:4]) or "?",
    }
    with temporary_path(lock) as tmp:
        tmp.write_text(json.dumps(me) + "\n")
        while True:
            try:
                os.link(tmp, lock)  # atomic: fails if the lock exists, never half-written
                break
            except FileExistsError:
                holder = _holder(lock)
                if _holder_alive(holder, lock) and holder.get("host") != socket.gethostname():
                    # A job on another host (a preempted cluster job, now requeued here): alive
                    # while its heartbeat is fresh; wait for it to go stale, then take it over.
                    log.warning(
                        "%s is held by %s, heartbeat %.0f s ago: waiting until it is %.0f s old",
                        lock,
                        _describe(holder),
                        _lock_age(lock),
                        STALE_AFTER_S,
                    )
                    while _holder_alive(holder, lock) and _holder(lock) == holder:
                        time.sleep(min(HEARTBEAT_S, max(0.1, STALE_AFTER_S - _lock_age(lock))))
                    continue
                if _holder_alive(holder, lock):
                    raise RunLocked(
                        f"{folder} is being trained by another process: {_describe(holder)}, "
                        f"lock refreshed {_lock_age(lock):.0f} s ago. Wait for it or stop it; "
                        f"if it is gone, remove {lock}."
                    ) from None
                log.warning("taking over the stale lock %s of %s", lock, _describe(holder))
                if _holder(lock) == holder:  # not replaced by a third process meanwhile
                    lock.unlink(missing_ok=True)
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(lock, stop), daemon=True, name="run-lock").start()
    try:
        yield lock
    finally:
        stop.set()
        if _holder(lock).get("pid") == me["pid"]:
            lock.unlink(missing_ok=True)


# --- stop when the process that started training is gone --------------------------------------


class ParentGone(RuntimeError):
    """A process that started this training run has exited: nobody waits for its results."""


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _is_snakemake(pid: int) -> bool:
    # ".venv/bin/snakemake ...", "python .venv/bin/snakemake ..." or "python -m snakemake ..."
    return any(Path(arg).name == "snakemake" for arg in _command_line(pid)[:3])


SNAKEMAKE_PID = "VMP_SNAKEMAKE_PID"  # set by the workflow's job shell: the Snakemake it serves


def watched_processes(pid: int | None = None) -> list[tuple[int, int | None, str]]:
    """The processes whose exit should stop training in ``pid`` (default: this process).

    The parent, and where an ancestor is Snakemake, every ancestor up to and including it:
    killing only Snakemake leaves its shell, papermill and the Jupyter kernel running (the
    kernel's parent, papermill, is alive), so the kernel watches Snakemake itself. Without a
    Snakemake ancestor only the parent is watched (a run started from a terminal with ``nohup``
    goes on after logout). Each entry is (pid, start time, command line).
    """
    pid = os.getpid() if pid is None else pid
    chain, current = [], _parent(pid) if Path("/proc").is_dir() else os.getppid()
    while current and current > 1:
        chain.append(current)
        if _is_snakemake(current):
            break
        current = _parent(current)
    else:
        chain = chain[:1]
    # The workflow's job shell names its Snakemake (rules/common.smk): watched even when it is
    # already gone (killed while the kernel started), when the walk above cannot find it.
    named = os.environ.get(SNAKEMAKE_PID)
    if named and named.isdigit() and int(named) not in chain:
        chain.append(int(named))
    return [(p, _process_start(p), " ".join(_command_line(p)[:3]) or "?") for p in chain]


def provenance() -> dict[str, Any]:
    """Who writes a record: host, PID and start of this process, the time, and the Snakemake
    process (PID, start in clock ticks since boot, command) whose job this is, if any."""
    snakemake = [(p, start, cmd) for p, start, cmd in watched_processes() if _is_snakemake(p)]
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
        "written": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "snakemake": dict(zip(("pid", "pid_start", "command"), snakemake[0], strict=True))
        if snakemake
        else None,
    }


def stop_with_parents(interval: float = 1.0, grace: float = 10.0) -> ParentWatch:
    """Stop this process (a job's notebook kernel) once a process that started it has exited.

    A daemon thread checks :class:`ParentWatch` every ``interval`` seconds, whatever the main
    thread does (imports, decoding, training, testing, writing). When Snakemake (or the parent)
    is gone it interrupts the main thread (a KeyboardInterrupt, so a file being written is
    removed, never left half-written) and ends the process ``grace`` seconds later if it is
    still there. Call it first in a job, before the heavy imports.
    """
    watch = ParentWatch(interval)
    # A job started in the background (nohup, `&` in a script) inherits SIGINT ignored, and then
    # Python has no handler for it and _thread.interrupt_main() does nothing: put Python's back.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def run() -> None:
        while (what := watch.gone()) is None:
            time.sleep(interval)
        print(
            f"{what} has exited, so nobody waits for this job: stopping it (PID {os.getpid()})",
            file=sys.stderr,
            flush=True,
        )
        _thread.interrupt_main()
        time.sleep(grace)
        os._exit(3)

    threading.Thread(target=run, daemon=True, name="parent-watch").start()
    return watch


class ParentWatch:
    """Raises :class:`ParentGone` from :meth:`check` once a watched process has exited.

    ``check`` is cheap: the direct parent is compared on every call (one system call), the other
    watched processes are read from /proc at most every ``interval`` seconds; call it every
    training step.
    """

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.pid, self.parent = os.getpid(), os.getppid()
        self.watched = watched_processes()
        self._last = time.monotonic()

    def _parent_gone(self) -> str | None:
        # In a process forked from the one that made the watch (a DDP rank), that one is the parent.
        parent = self.parent if os.getpid() == self.pid else self.pid
        return f"parent process {parent}" if os.getppid() != parent else None

    def _ancestor_gone(self) -> str | None:
        for pid, start, command in self.watched:
            if not _alive(pid, start):
                return f"process {pid} ({command})"
        return None

    def gone(self) -> str | None:
        """Description of the first watched process that has exited, or None."""
        return self._parent_gone() or self._ancestor_gone()

    def check(self, full: bool = False) -> None:
        """Raise :class:`ParentGone` if a watched process has exited (``full``: read them all
        now, not only once per interval)."""
        what = self._parent_gone()
        now = time.monotonic()
        if what is None and (full or now - self._last >= self.interval):
            self._last = now
            what = self._ancestor_gone()
        if what is not None:
            raise ParentGone(
                f"{what} has exited, so nobody waits for this run: training stopped "
                f"(PID {os.getpid()}). Its last epoch checkpoint is kept; rerun to resume."
            )
