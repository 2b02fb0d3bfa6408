"""Atomic file writes: write a temporary file beside the target, then rename it into place.

An interrupted job therefore never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path in the target's folder; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_with(path: str | Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


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
