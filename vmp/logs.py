"""Keep executed notebooks and job logs free of known, harmless library noise.

Only messages known to carry no information about a run are silenced, each by its text; any
other warning (a replaced head, remapped checkpoint keys, a dropped video) still shows.
"""

from __future__ import annotations

import logging
import warnings

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
