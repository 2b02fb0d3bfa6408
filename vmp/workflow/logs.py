"""Keep executed notebooks and job logs free of known, harmless library noise.

Only messages known to carry no information about a run are silenced, each by its text; any
other warning (a replaced head, remapped checkpoint keys, a dropped video) still shows.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from pathlib import Path

from vmp.io import DiskFull
from vmp.training.record import DamagedRun
from vmp.training.supervision import ParentGone, RunLocked, stop_with_parents
from vmp.workflow.config import ConfigError

# Errors whose message says all a user needs: a notebook shows them in one line, no traceback.
SHORT_ERRORS = (ConfigError, DamagedRun, DiskFull, ParentGone, RunLocked)

# (message regex, category) of warnings raised by the libraries the runs use.
KNOWN_WARNINGS = [
    # pytorchvideo scripts a few functions at import time.
    (r"`torch\.jit\.script` is deprecated", FutureWarning),
    # tqdm.auto without ipywidgets (progress bars are off in the workflow).
    (r"IProgress not found", Warning),
    # Lightning's pytree helper on torch >= 2.6.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning),
    # Lightning on a SLURM node when the job was not started with srun (the workflow's jobs).
    (r"The `srun` command is available on your system but is not used", Warning),
]

# Start of the Lightning info lines that say nothing about the run (hardware probe, tips).
KNOWN_LIGHTNING_LINES = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "Loading `train_dataloader` to estimate number of stepping batches.",
    "`Trainer.fit` stopped: `max_epochs=",
)
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


class _DropKnownLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(KNOWN_LIGHTNING_LINES)


_FILTER = _DropKnownLines()


def prepare_job() -> None:
    """What every notebook of the workflow does first, before its heavy imports: stop when its
    Snakemake job is gone (:func:`vmp.training.supervision.stop_with_parents`), show ``SHORT_ERRORS`` in one
    line, and silence the known warnings."""
    stop_with_parents()
    short_errors()
    quiet_known_warnings()


def short_errors() -> None:
    """In an IPython kernel, print ``SHORT_ERRORS`` as ``Name: message`` instead of a traceback."""
    try:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        return

    def one_line(shell, etype, value, tb, tb_offset=None):  # noqa: ARG001
        stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)  # the kernel's error message, as IPython sends it
        return stb

    shell.set_custom_exc(SHORT_ERRORS, one_line)


def quiet_known_warnings() -> None:
    """Silence the known warnings and Lightning info lines above; idempotent.

    Call it before importing the training or figure code (pytorchvideo warns at import time).
    """
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# The line that names an exception in a Python traceback: "ValueError: ...", "vmp.x.DamagedRun: ..."
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Run|Gone|Locked|Full|Interrupt)\b:? ?"
)


def failure_cause(log: str | Path) -> str:
    """The one line that says why a notebook job failed: the last exception line of its log
    (papermill's and click's tracebacks around it left out), with the log's path."""
    path = Path(log)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return f"{path}: {err}"
    causes = [
        line.strip()
        for line in lines
        if _EXCEPTION_LINE.match(line.strip())
        and not line.strip().startswith(("papermill.exceptions", "PapermillExecutionError"))
    ]
    cause = causes[-1] if causes else (next((x for x in reversed(lines) if x.strip()), "no output"))
    return f"job failed: {cause} (whole traceback: {path})"


if __name__ == "__main__":
    # python -m vmp.workflow.logs cause <log>: the job's one-line failure, for the terminal
    if sys.argv[1:2] == ["cause"] and len(sys.argv) == 3:
        print(failure_cause(sys.argv[2]))
    else:
        sys.exit("usage: python -m vmp.workflow.logs cause <log>")
