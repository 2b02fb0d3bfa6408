"""Atomic file writes: write a temporary file beside the target, fsync it, then rename it into place.

An interrupted job therefore never leaves a file that looks complete, nor a temporary file
behind (it is removed on any exception). Files get the usual mode (0666 less the umask, e.g.
0644), as if they had been opened with ``open(path, "w")``. Every writer of a result file,
checkpoint or video in ``vmp`` goes through :func:`atomic_path`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the workflow imports this module when it parses: no pandas import there
    import pandas as pd


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (run records' checksums, downloads)."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


class DiskFull(OSError):
    """A result file could not be written for want of space; the files already there are kept."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it to ``path`` if the block succeeds.

    The temporary file exists (empty) when the block starts; the block writes it by name (any
    writer: ``open``, ``torch.save``, ``av.open``, ``savefig``...). On success it is flushed to
    disk and renamed over ``path`` with ``os.replace``; on any exception it is removed. A full
    disk (or quota) raises :class:`DiskFull`, one line naming the folder and its free space.
    """
    with temporary_path(path) as tmp:
        try:
            yield tmp
            _fsync(tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
            if isinstance(err, DiskFull) or not _out_of_space(err, tmp.parent):
                raise
            tmp.unlink(missing_ok=True)
            raise disk_full(path) from None


@contextmanager
def temporary_path(path: str | Path) -> Iterator[Path]:
    """Yield a new empty file ``.<name>.<random>.tmp`` beside ``path``; it is removed afterwards.

    Its mode is 0666 less the umask (``os.open`` applies the umask, unlike mkstemp's fixed 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_with(path: str | Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _out_of_space(err: Exception, folder: Path) -> bool:
    """Whether a failed write ran out of space: ENOSPC / EDQUOT, or no byte left (while the
    partial temporary file still holds what was written)."""
    if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(folder).free == 0
    except OSError:
        return False


def disk_full(path: str | Path) -> DiskFull:
    """The one-line error for ``path`` that could not be written: its folder and its free space."""
    folder = Path(path).parent
    free = shutil.disk_usage(folder).free / 2**20
    error = DiskFull(
        f"no space left on the disk of {folder} ({free:.1f} MiB free): {Path(path).name} was "
        "not written and the files already there are kept; free some space and rerun"
    )
    error.errno = errno.ENOSPC
    return error


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=True) + "\n"
    return _write_with(path, lambda tmp: tmp.write_text(text))


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text``, atomically."""
    return _write_with(path, lambda tmp: tmp.write_text(text))


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV without its index, atomically."""
    return _write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_torch(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path``, atomically."""
    import torch

    return _write_with(path, lambda tmp: torch.save(obj, tmp))


# --- files that vmp.fetch placed ------------------------------------------------------------
# Here, not in vmp.fetch, so that loading a checkpoint (vmp.models) can check its record.

FETCH_LOCK = ".fetch-lock.json"  # the first-use checksums vmp.fetch records beside its downloads


class FetchedFileChanged(ValueError):
    """A file differs from the one vmp.fetch downloaded and recorded (replaced by hand)."""


def read_fetch_lock(lock: Path) -> dict[str, dict]:
    """A lock file's records, {file name: {"sha256", "size", "url"}}; empty when there is none.

    Raises:
        ValueError: the lock is not valid JSON (naming it and the fix).
    """
    if not lock.is_file():
        return {}
    try:
        return json.loads(lock.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{lock} is not valid JSON ({err}); fix or remove it") from None


def check_fetched(path: str | Path, levels: int = 3) -> bool:
    """Compare a file that vmp.fetch placed with its first-use record; False when it has none.

    The record is the entry of ``path`` (relative to the lock's folder) in the
    ``.fetch-lock.json`` of its folder or of one of the ``levels`` folders above. A file replaced
    by hand after the fetch (another checkpoint copied over it) is caught here, before it is
    loaded: its size, then its sha256, must be the recorded ones.

    Raises:
        FetchedFileChanged: naming the file, the lock and both digests, and the two ways out.
    """
    path = Path(path).absolute()
    for folder in list(path.parents)[:levels]:
        lock = folder / FETCH_LOCK
        if not lock.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        entry = read_fetch_lock(lock).get(name)
        if entry is None:
            continue
        size = path.stat().st_size
        if "size" in entry and size != entry["size"]:
            found = f"{size} bytes, not the {entry['size']} recorded"
        elif (actual := file_digest(path)) != entry["sha256"]:
            found = f"sha256 {actual}, not {entry['sha256']} as recorded"
        else:
            return True
        raise FetchedFileChanged(
            f"{path} is not the file vmp.fetch downloaded from {entry.get('url', '?')}: it has "
            f"{found} in {lock} (entry {name!r}). Fix: remove {path} and fetch it again "
            "(`python -m vmp.fetch ...` or the workflow with `fetch: true`), or, if you replaced "
            f"it on purpose, remove the entry {name!r} from {lock}."
        )
    return False
