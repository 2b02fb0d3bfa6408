"""One owner for a training run's record: its folder, its files, its lock and its model.

::

    <results>/runs/<dataset>/<split>/<backbone>/<variant>/lambda~<l>/seed~<s>/
        metrics.json   test metrics, final validation top-1, learned a and b, decode failures,
                       "settings" (everything the run was built from), "files" (size and
                       SHA-256 of the two files below) and "provenance" (host, PID, start and
                       end, the Snakemake process that started it); written last
        history.csv    one row per epoch
        model.pt       final weights (vmp checkpoint format)
        test_scores.csv  one row per test video: path, label, prediction, averaged softmax scores
        per_class.csv  test accuracy per class
        tensorboard/   TensorBoard event files (loss and lr per step, the history per epoch)
        train.lock     present while a process trains the run (PID, host, start time)

The workflow's rules, ``vmp.training.run``, ``vmp.training.fit``, ``vmp.analysis.tables`` and ``vmp.analysis.figures`` read
and write these files only through this module. Reading verifies them: a metrics.json that is
not complete JSON, a history without every epoch, or a history or model whose size or checksum
differs from the one recorded raises :class:`DamagedRun`, naming the file and the command that
recomputes it; the workflow sets damaged records aside when it parses (:func:`set_aside_damaged`)
so that their jobs run again.
"""

from __future__ import annotations

import _thread
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmp.io import file_digest, temporary_path, write_csv, write_json

if TYPE_CHECKING:  # the workflow imports this module when it parses: no pandas import there
    import pandas as pd

log = logging.getLogger(__name__)

METRICS, HISTORY, MODEL, LOCK = "metrics.json", "history.csv", "model.pt", "train.lock"
SCORES, PER_CLASS, TENSORBOARD = "test_scores.csv", "per_class.csv", "tensorboard"
RUN_FILES = (METRICS, HISTORY, MODEL)


# --- paths ----------------------------------------------------------------------------------

# A run's identity; a cell of Table 1 is a run without its seed (its seeds are its replicates).
RUN_KEYS = ("dataset", "split", "backbone", "variant", "lambda", "seed")


def lambda_text(value: float) -> str:
    """The shortest text that reads back as exactly ``value``: 2.5, 0, 10, 0.1234567, 1e-05."""
    return repr(float(value)).removesuffix(".0")


def cell_path(run: dict[str, Any]) -> str:
    """``<dataset>/<split>/<backbone>/<variant>/lambda~<l>``: a run's cell; its seeds live below.

    The folder names lambda exactly (:func:`lambda_text`); the workflow passes the value itself
    to the notebook, never reading it back from the folder."""
    parts = [run["dataset"], run["split"], run["backbone"], run["variant"]]
    return "/".join([*parts, f"lambda~{lambda_text(run['lambda'])}"])


def cell_dir(results: str | Path, cell: str) -> str:
    """``<results>/runs/<cell>``: one cell of Table 1 (its notebook and one folder per seed)."""
    return f"{results}/runs/{cell}"


def seed_dir(results: str | Path, cell: str, seed: int) -> str:
    """``<results>/runs/<cell>/seed~<s>``: the folder of one run."""
    return f"{cell_dir(results, cell)}/seed~{int(seed)}"


def run_name(
    dataset: str, split: str, backbone: str, variant: str, lambda_reg: float, seed: int
) -> str:
    """``<dataset>/<split>/<backbone>/<variant>/lambda~<l>/seed~<s>``: a run's identity."""
    cell = cell_path(
        {"dataset": dataset, "split": split, "backbone": backbone, "variant": variant}
        | {"lambda": float(lambda_reg)}
    )
    return f"{cell}/seed~{int(seed)}"


def run_dir(results: str | Path, run: dict[str, Any]) -> str:
    """Folder of a run given as in ``vmp.workflow.matrix.run_matrix`` (dataset, split, ..., seed)."""
    return seed_dir(results, cell_path(run), run["seed"])


def run_files(folder: str | Path) -> list[str]:
    """The files a finished run leaves in ``folder`` (metrics, history, model)."""
    return [f"{folder}/{name}" for name in RUN_FILES]


# --- reading and writing ----------------------------------------------------------------------


class DamagedRun(ValueError):
    """A run record that cannot be trusted: incomplete, truncated or changed since written.

    ``path`` is the damaged file, ``why`` what is wrong with it; the message adds the command
    that recomputes the run.
    """

    def __init__(self, path: Path, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"{path} is damaged ({why}); recompute it: {rerun_command(path.parent)}")


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; {path.parent} is not a finished training run "
            "(run its training job first, or remove it from the list of runs)"
        )
    return path


def rerun_command(folder: str | Path) -> str:
    """The command that recomputes the run in ``folder`` (its cell's, or pre-training's, job)."""
    folder = Path(folder)
    notebook = (folder.parent if folder.name.startswith("seed~") else folder) / "train.ipynb"
    return f"snakemake --cores 2 --forcerun '{notebook}' (with your profile's --configfile)"


def _digest(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": file_digest(path)}


def read_metrics(folder: str | Path) -> dict[str, Any]:
    """A finished run's ``metrics.json`` (``folder`` may also be the JSON file itself).

    Raises:
        FileNotFoundError: the file is missing (the run has not finished).
        DamagedRun: it is not complete JSON, or has no "settings".
    """
    path = Path(folder)
    path = path if path.is_file() else path / METRICS
    try:
        metrics = json.loads(_require(path).read_text())
    except json.JSONDecodeError as err:
        raise DamagedRun(path, f"not complete JSON: {err.msg} at character {err.pos}") from None
    if not isinstance(metrics, dict) or "settings" not in metrics:
        raise DamagedRun(path, "no 'settings'")
    return metrics


def verify_file(folder: str | Path, name: str, metrics: dict[str, Any] | None = None) -> Path:
    """``<folder>/<name>`` after checking its size and SHA-256 against those its metrics.json
    recorded (records written before checksums were kept are checked for presence only).

    Raises:
        DamagedRun: the file differs from the one the run wrote.
    """
    path = _require(Path(folder) / name)
    expected = (metrics or read_metrics(folder)).get("files", {}).get(name)
    if expected:
        found = _digest(path)
        if found["bytes"] != expected["bytes"]:
            raise DamagedRun(path, f"{found['bytes']} bytes, the run wrote {expected['bytes']}")
        if found["sha256"] != expected["sha256"]:
            raise DamagedRun(path, "its checksum differs from the one the run recorded")
    return path


def read_history(folder: str | Path, metrics: dict[str, Any] | None = None) -> pd.DataFrame:
    """A finished run's ``history.csv``: one row per epoch, every epoch (verified).

    Raises:
        DamagedRun: the file differs from the one written, or lacks epochs.
    """
    import pandas as pd  # here, not at the top: the workflow imports this module when it parses

    metrics = metrics or read_metrics(folder)
    path = verify_file(folder, HISTORY, metrics)
    history = pd.read_csv(path)
    epochs = metrics.get("epochs")
    if epochs is not None and list(history.get("epoch", [])) != list(range(1, int(epochs) + 1)):
        raise DamagedRun(path, f"{len(history)} epoch rows, the run trained {epochs}")
    return history


def read_scores(folder: str | Path, metrics: dict[str, Any] | None = None) -> pd.DataFrame:
    """A finished run's per-video test scores (``test_scores.csv``, verified; see
    :func:`vmp.training.metrics.video_scores`)."""
    import pandas as pd  # here, as in read_history: no pandas in the workflow's parse

    return pd.read_csv(verify_file(folder, SCORES, metrics or read_metrics(folder)))


def load_run(folder: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(metrics, history)`` of a finished run, both verified."""
    metrics = read_metrics(folder)
    return metrics, read_history(folder, metrics)


STAT_CACHE = ".verified.json"  # size, mtime and SHA-256 of each file when last verified


def _stat(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _stat_cache(folder: Path) -> dict[str, Any]:
    try:
        cache = json.loads((folder / STAT_CACHE).read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def remember_verified(folder: str | Path, names: Iterable[str]) -> None:
    """Note the size and mtime of ``names`` (just written or verified) in the folder's stat cache,
    so :func:`damage` reads them again only once they change (as git's index does)."""
    folder = Path(folder)
    cache = _stat_cache(folder)
    cache |= {name: _stat(folder / name) for name in names if (folder / name).is_file()}
    write_json(folder / STAT_CACHE, cache)


def damage(folder: str | Path) -> str | None:
    """Why a finished run's record cannot be trusted, or None: metrics.json not complete JSON, a
    recorded file missing, of another size, or (where its size or mtime changed since it was last
    verified) of another checksum. A folder without metrics.json is not finished (None).

    Checksums are computed only for files whose (size, mtime) differ from the stat cache, so a
    no-op parse of a workflow with paper-size models reads no model."""
    folder = Path(folder)
    if not (folder / METRICS).is_file():
        return None
    try:
        metrics = read_metrics(folder)
    except DamagedRun as err:
        return err.why
    cache, checked = _stat_cache(folder), []
    for name, expected in metrics.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, the run wrote {expected['bytes']}"
        if cache.get(name) != _stat(path):
            if file_digest(path) != expected["sha256"]:
                return f"{name}'s checksum differs from the one the run recorded"
            checked.append(name)
    if checked:
        remember_verified(folder, checked)
    return None


def set_aside_damaged(folders: Iterable[str | Path], dry_run: bool = False) -> list[str]:
    """Move every file of each damaged record in ``folders`` into ``<folder>/damaged/`` (the
    record, the history, the model and the tables), so the workflow sees the run as not done and
    trains it again, and nothing downstream starts on it; one line per record (what was found
    and done). ``dry_run`` only reports."""
    lines = []
    for folder in folders:
        if (why := damage(folder)) is None:
            continue
        folder = Path(folder)
        if not dry_run:
            aside = folder / "damaged"
            aside.mkdir(exist_ok=True)
            for name in (*RUN_FILES, SCORES, PER_CLASS, STAT_CACHE):
                if (folder / name).exists():
                    (folder / name).replace(aside / name)
            shutil.rmtree(folder / KEPT, ignore_errors=True)  # the same inodes: damaged too
        done = (
            "would be retrained" if dry_run else f"set aside in {folder / 'damaged'}, retraining it"
        )
        lines.append(f"damaged run record {folder}: {why}; {done}")
    return lines


# --- a finished run outlives a rerun of its job -------------------------------------------------

KEPT = "kept"  # hard links to a finished run's files: Snakemake deletes a job's outputs before
# it reruns the job (and after it fails); the links keep the run for the job to restore.
KEPT_FILES = (*RUN_FILES, SCORES, PER_CLASS)
# Settings that say where files sit, not what is computed: moving a dataset or a checkpoint
# changes them, and must not retrain a run.
LOCATION_SETTINGS = ("data_root", "pretrained")


def computation_fingerprint(settings: dict[str, Any]) -> str:
    """Hash of what determines a run's result: its settings without where files sit
    (:data:`LOCATION_SETTINGS`; the data and checkpoint enter by content, as ``data_digest``
    and ``pretrained_digest``)."""
    relevant = {k: v for k, v in settings.items() if k not in LOCATION_SETTINGS}
    encoded = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def _link(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source`` (a copy across file systems), atomically."""
    with temporary_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another file system
            shutil.copy2(source, tmp)
        tmp.replace(target)


def keep_run(folder: str | Path) -> None:
    """Link a finished run's files into ``<folder>/kept/`` (no copy: the same inodes)."""
    folder = Path(folder)
    (folder / KEPT).mkdir(exist_ok=True)
    for name in KEPT_FILES:
        if (folder / name).is_file():
            _link(folder / name, folder / KEPT / name)


def restore_kept(folder: str | Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of the finished run kept in ``<folder>/kept/``, linked back into ``folder``,
    if it was computed from the same settings (:func:`computation_fingerprint`) and every file
    verifies; else None (nothing changed). ``VMP_RETRAIN=1`` in the environment: always None."""
    folder = Path(folder)
    kept = folder / KEPT
    if os.environ.get("VMP_RETRAIN") == "1" or not (kept / METRICS).is_file():
        return None
    try:
        metrics = read_metrics(kept)
        for name in metrics.get("files", {}):
            verify_file(kept, name, metrics)
    except (DamagedRun, FileNotFoundError) as err:
        log.warning("not restoring %s: %s", kept, err)
        return None
    if computation_fingerprint(metrics["settings"]) != computation_fingerprint(settings):
        return None
    for name in KEPT_FILES:
        if (kept / name).is_file():
            _link(kept / name, folder / name)
    remember_verified(folder, metrics.get("files", {}))
    log.info("%s: restored the finished run kept in %s (same settings and data)", folder, kept)
    return metrics


def keep_finished(folders: Iterable[str | Path]) -> None:
    """:func:`keep_run` for every finished run in ``folders`` that has no kept copy yet (records
    written before runs were kept); the workflow calls it when it parses."""
    for folder in map(Path, folders):
        if (folder / METRICS).is_file() and not (folder / KEPT / METRICS).is_file():
            if damage(folder) is None:
                keep_run(folder)


def write_run(
    folder: str | Path,
    *,
    metrics: dict[str, Any],
    history: pd.DataFrame,
    model: Any,
    settings: dict[str, Any],
    tables: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Write a finished run's files (each atomically); ``metrics.json`` last.

    ``metrics`` gets ``settings`` under "settings" (``load_model`` rebuilds the model from them),
    the size and SHA-256 of every other file under "files" and :func:`provenance`;
    ``model`` is a ``VideoClassifier``, saved on CPU with its settings beside the weights;
    ``tables`` are further CSV files by name (the test scores and per-class accuracy).
    """
    from vmp.models import save_checkpoint  # here: the workflow's parse imports this module

    folder = Path(folder)
    model_path = save_checkpoint(
        model.cpu(), folder / MODEL, settings=json.dumps(settings, default=str)
    )
    written = [write_csv(folder / HISTORY, history), model_path]
    written += [write_csv(folder / name, table) for name, table in (tables or {}).items()]
    files = {path.name: _digest(path) for path in written}
    record = metrics | {"settings": settings, "files": files, "provenance": provenance()}
    written.append(write_json(folder / METRICS, record))
    remember_verified(folder, files)
    keep_run(folder)
    return written


def build_model(settings: dict[str, Any]):
    """A freshly initialised ``VideoClassifier`` as the run with ``settings`` built it.

    The registry model is ``settings["arch"]`` (``backbone`` names the run and may differ, e.g.
    ``timesformer_k600`` built as ``timesformer``); runs written before ``arch`` was recorded
    fall back to ``backbone``.
    """
    from vmp.models import create_model, variant_options  # here: kept out of the parse (torch)

    arch = settings.get("arch") or settings["backbone"]
    clip = settings["clip"]
    return create_model(
        arch,
        int(settings["num_classes"]),
        **variant_options(arch, settings["variant"]),
        **({"num_frames": clip["num_frames"], "crop_size": clip["crop_size"]})
        | (settings.get("model") or {}),
    )


def load_model(folder: str | Path):
    """Rebuild a finished run's model from its settings and load its ``model.pt`` (eval mode).

    The file is verified first (:func:`verify_file`); the weights must match the rebuilt model
    exactly (strict loading).
    """
    import torch

    folder = Path(folder)
    metrics = read_metrics(folder)
    model = build_model(metrics["settings"])
    path = verify_file(folder, MODEL, metrics)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as err:
        raise DamagedRun(path, f"torch.load failed: {str(err).splitlines()[0]}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != "vmp":
        raise DamagedRun(path, "not a vmp checkpoint")
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


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
