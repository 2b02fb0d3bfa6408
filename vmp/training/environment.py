"""What a run ran on: the execution record in every run's ``metrics.json`` (key "execution").

::

    Trainer (accelerator, precision) + resources (devices, num_workers, deterministic, sync_bn)
        + torch / CUDA / cuDNN versions + GPU name + the code's git commit
        -> metrics.json["execution"] -> the results page (vmp.analysis.report), per Table 1 row

Runs of one Table 1 row that differ in any of :data:`COMPARED` are flagged on the results page:
their numbers may differ for that reason alone (GPU kernels, mixed precision, cuDNN's autotuner).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

# The record's keys, in the order the results page shows them.
EXECUTION_KEYS = (
    "accelerator",
    "precision",
    "devices",
    "num_workers",
    "deterministic",
    "sync_bn",
    "torch",
    "cuda",
    "cudnn",
    "gpu",
    "commit",
    "dirty",
)
# Compared between the runs of a row: all but the dirty flag. A tree with uncommitted changes
# (a README edit as much as a changed loss) says nothing certain about the code that trained,
# and flagging it would flag most rows of a workflow run while someone edits; it is shown, not
# compared.
COMPARED = tuple(key for key in EXECUTION_KEYS if key != "dirty")

CHECKOUT = Path(__file__).resolve().parents[2]  # the folder holding vmp/, if it is a checkout


def git_state(folder: str | Path = CHECKOUT) -> tuple[str | None, bool | None]:
    """(commit, uncommitted changes to tracked files) of the git checkout of the ``vmp`` code in
    ``folder``; (None, None) without git, outside a checkout, or where ``folder`` is not the
    checkout's top (an installed package inside some other repository)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top != Path(folder).resolve() or not (top / "vmp" / "__init__.py").exists():
            return None, None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def execution_record(
    *,
    device: Any,
    precision: str,
    devices: int,
    num_workers: int,
    deterministic: bool,
    sync_bn: bool,
    folder: str | Path = CHECKOUT,
) -> dict[str, Any]:
    """What a run ran on: its accelerator (``device``'s type: cpu, cuda), Lightning precision,
    processes, loader workers, determinism and SyncBatchNorm settings, the torch version, the
    CUDA and cuDNN versions and GPU name where it ran on CUDA (else None), and the code's git
    commit with its dirty flag (:func:`git_state`)."""
    import torch  # here: the results page reads this module's keys without torch

    device = torch.device(device)
    on_cuda = device.type == "cuda"
    commit, dirty = git_state(folder)
    return {
        "accelerator": device.type,
        "precision": str(precision),
        "devices": int(devices),
        "num_workers": int(num_workers),
        "deterministic": bool(deterministic),
        "sync_bn": bool(sync_bn),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if on_cuda else None,
        "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "gpu": torch.cuda.get_device_name(device) if on_cuda else None,
        "commit": commit,
        "dirty": dirty,
    }
