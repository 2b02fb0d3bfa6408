"""One owner for a training run's record: its identity, its folder, its files and its model.

::

    <results>/runs/<dataset>/<split>/<backbone>/<variant>/lambda~<l>/seed~<s>/
        metrics.json   test metrics, final validation top-1, learned a and b, decode failures,
                       "settings" (everything the run was built from), "files" (size and
                       SHA-256 of the files below) and "provenance" (host, PID, time, the
                       Snakemake process that started it); written last
        history.csv    one row per epoch
        model.pt       final weights (vmp checkpoint format)
        test_scores.csv  one row per test video: path, label, prediction, averaged softmax scores
        per_class.csv  test accuracy per class
        tensorboard/   TensorBoard event files (loss and lr per step, the history per epoch)
        kept/          hard links to the finished run's files (restored when its job reruns)
        .verified.json size and mtime of each file when its checksum was last verified
        damaged/       a record set aside by the workflow

The workflow's rules, ``vmp.training.run``, ``vmp.training.fit``, ``vmp.analysis.tables`` and
``vmp.analysis.figures`` read and write these files only through this module. Reading verifies
them: a metrics.json that is not complete JSON, a history without every epoch, or a file whose
size or checksum differs from the one recorded raises :class:`DamagedRun`, naming the file and
the command that recomputes it; the workflow sets damaged records aside when it parses
(:func:`set_aside_damaged`) so that their jobs run again. The lock, the watch over the process
that started training and the provenance are :mod:`vmp.training.supervision`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmp.io import file_digest, temporary_path, write_csv, write_json
from vmp.training.supervision import provenance

if TYPE_CHECKING:  # the workflow imports this module when it parses: no pandas import there
    import pandas as pd

log = logging.getLogger(__name__)

METRICS, HISTORY, MODEL = "metrics.json", "history.csv", "model.pt"
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
