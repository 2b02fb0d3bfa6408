"""Fine-tuning with Lightning: loss = CE + lambda * V, per-epoch history, resumable checkpoints.

::

    clip (B, 3, T+1, H, W) -> VideoClassifier -> logits, attentions
    loss = cross_entropy(logits, y) + lambda * sum(temporal_variation(A) for A in attentions)

Every epoch's randomness (sample order, augmentation, dropout) is derived from (seed, epoch) by
:class:`vmp.data.clips.EpochSeededSampler` (under DDP augmentation and dropout also from the rank),
so a run killed mid-epoch and resumed from its last epoch checkpoint ends with the same metrics as
one that was never interrupted.

The loaders come from a :class:`ClipDataModule` (Lightning's convention for a run's data); after
training, this process alone computes the BatchNorm statistics (precise BN), the validation and
the multi-view test (:mod:`vmp.training.scoring`, which ``python -m vmp.evaluate`` uses as well).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.environments import LightningEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset

from vmp.data.clips import FAILURE_LOG, ClipDataset, make_loader
from vmp.io import atomic_path, write_csv, write_text
from vmp.layer.prompt import temporal_variation
from vmp.training.environment import execution_record
from vmp.training.record import (
    HISTORY,
    PER_CLASS,
    SCORES,
    TENSORBOARD,
    computation_fingerprint,
    restore_kept,
    write_run,
)
from vmp.training.scoring import evaluate, precision_context, score_videos, to_device
from vmp.training.supervision import ParentWatch, run_lock

log = logging.getLogger(__name__)


# momentum applies to SGD only; AdamW keeps its default betas.
OPTIMIZERS = {
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, momentum=cfg.momentum),
    "adamw": lambda groups, cfg: torch.optim.AdamW(groups),
}


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation recipe of one run (SGD with momentum or AdamW; cosine schedule with linear warm-up)."""

    optimizer: str = "sgd"
    epochs: int = 8
    batch_size: int = 16
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    # The prompt layers' parameters (m, n, a gate) get their own parameter group: lr =
    # prompt_lr, or lr * prompt_lr_mult where prompt_lr is None (1.0: the backbone's, as in the
    # authors' released code), and this weight decay (None: the backbone's).
    prompt_lr_mult: float = 1.0
    prompt_lr: float | None = None
    prompt_weight_decay: float | None = 0.0
    lambda_reg: float = 0.0
    variation_reduction: str = "mean"
    # "cosine": linear warm-up then cosine decay, per step; "steps": warm-up, then x0.1 at each
    # milestone epoch (the released TimeSformer recipe: 11 and 14 of 25).
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    # Gradients of this many batches of batch_size / accumulate_grad_batches clips are summed
    # before each optimiser step: the same effective batch (and schedule, counted in optimiser
    # steps) on less memory. clip_grad_norm: the gradients' total L2 norm is clipped to it (None: no
    # clipping), after unscaling under 16-bit mixed precision.
    accumulate_grad_batches: int = 1
    clip_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in ("cosine", "steps"):
            raise ValueError(f"schedule must be 'cosine' or 'steps', got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )
        if self.lambda_reg < 0:
            raise ValueError(f"lambda_reg must be >= 0, got {self.lambda_reg}")
        if self.prompt_lr is not None and self.prompt_lr <= 0:
            raise ValueError(f"prompt_lr must be > 0 or None, got {self.prompt_lr}")
        if self.accumulate_grad_batches < 1:
            raise ValueError(
                f"accumulate_grad_batches must be >= 1, got {self.accumulate_grad_batches}"
            )
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {self.clip_grad_norm}")

    @property
    def prompt_group_lr(self) -> float:
        """Learning rate of the prompt layers' parameters."""
        return self.lr * self.prompt_lr_mult if self.prompt_lr is None else self.prompt_lr


def split_parameters(model: torch.nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Parameter groups: weights (decayed), norms and biases (not decayed), prompt m and n."""
    decay, no_decay, prompt = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("prompt_layers."):
            prompt.append(param)
        elif param.ndim <= 1:
            no_decay.append(param)
        else:
            decay.append(param)
    prompt_wd = cfg.weight_decay if cfg.prompt_weight_decay is None else cfg.prompt_weight_decay
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr, "name": "backbone"},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr, "name": "backbone_no_decay"},
        {
            "params": prompt,
            "weight_decay": prompt_wd,
            "lr": cfg.prompt_group_lr,
            "name": "prompt",
        },
    ]
    return [g for g in groups if g["params"]]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up from 1/warmup_steps to 1, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_factor(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor of each step of a run of ``total_steps`` steps."""
    warmup = max(1, round(total_steps * cfg.warmup_epochs / cfg.epochs))
    if cfg.schedule == "cosine":
        return functools.partial(warmup_cosine, warmup_steps=warmup, total_steps=total_steps)
    per_epoch = total_steps / cfg.epochs
    milestones = [round(m * per_epoch) for m in cfg.milestones]
    return functools.partial(warmup_step_decay, warmup_steps=warmup, milestone_steps=milestones)


def schedule_sum(cfg: OptimConfig, steps_per_epoch: int) -> float:
    """Sum over a run's steps of the learning-rate factor of ``cfg``'s schedule.

    AdamW moves a scalar whose gradient keeps its sign by about the learning rate per step,
    whatever the gradient's size, so ``prompt_group_lr * schedule_sum`` bounds how far m or n can
    travel in one run (config/config.yaml, ``optim.prompt_lr``).
    """
    total = steps_per_epoch * cfg.epochs
    return sum(map(lr_factor(cfg, total), range(total)))


def warmup_step_decay(step: int, warmup_steps: int, milestone_steps: Sequence[int]) -> float:
    """Learning-rate factor: linear warm-up, then x0.1 at each milestone step passed."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.1 ** sum(step >= m for m in milestone_steps)


class VideoClassificationModule(L.LightningModule):
    """Trains a :class:`vmp.models.VideoClassifier`; keeps a per-epoch history in its checkpoints."""

    def __init__(self, model: torch.nn.Module, optim: OptimConfig, *, run_name: str = "run"):
        super().__init__()
        self.model, self.optim, self.run_name = model, optim, run_name
        self.history: list[dict[str, float]] = []
        self.checkpoint_path: Path | None = None
        self.history_path: Path | None = None  # rewritten after every epoch, while it grows
        self.tensorboard: TensorBoard | None = None
        self._sums: dict[str, float] = {}
        self._epoch_started = 0.0

    def forward(self, video: torch.Tensor):
        return self.model(video)

    def _accumulate(self, **values: float) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + value

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Here, not in on_train_epoch_start: Lightning skips that hook in the epoch after a resume.
        if batch_idx == 0:
            self._sums, self._epoch_started = {}, time.perf_counter()
        video, labels = batch["video"], batch["label"]
        out = self.model(video)
        ce = F.cross_entropy(out.logits, labels)
        variation = sum(
            (
                temporal_variation(a, reduction=self.optim.variation_reduction)
                for a in out.attentions
            ),
            start=torch.zeros((), device=ce.device),
        )
        loss = ce + self.optim.lambda_reg * variation
        self._stop_if_not_finite(loss, ce, variation, batch_idx)
        n = len(labels)
        values = {"loss": loss.item(), "ce": ce.item(), "variation": variation.item()}
        self._accumulate(
            n=n,
            **{key: value * n for key, value in values.items()},
            correct=float((out.logits.argmax(1) == labels).sum()),
        )
        self.log("loss", loss, prog_bar=True, batch_size=n)
        if self.tensorboard is not None and self.trainer.is_global_zero:
            lr = self.optimizers().param_groups[0]["lr"]
            self.tensorboard.scalars("train", values | {"lr": lr}, self.global_step)
        return loss

    def _stop_if_not_finite(self, loss, ce, variation, batch_idx: int) -> None:
        """Raise FloatingPointError on every process once any process's loss is not finite.

        Under DDP each step all-reduces every rank's (loss, ce, variation), so all ranks stop at
        the same step with the same message; a rank raising alone would leave the others waiting
        for its gradients.
        """
        world = self.trainer.world_size
        if world == 1:
            if torch.isfinite(loss):
                return
            rows = [[loss.item(), ce.item(), variation.item()]]
        else:
            table = torch.zeros(world, 3, dtype=torch.float64, device=loss.device)
            values = [t.detach().double() for t in (loss, ce, variation)]  # any dtype
            table[self.global_rank] = torch.stack(values)
            torch.distributed.all_reduce(table)  # a sum: each rank fills its own row
            if torch.isfinite(table[:, 0]).all():
                return
            rows = table.tolist()
        bad = [rank for rank, row in enumerate(rows) if not math.isfinite(row[0])]
        where = f" on rank {', '.join(map(str, bad))} of {world}" if world > 1 else ""
        loss_, ce_, variation_ = rows[bad[0]]
        raise FloatingPointError(
            f"{self.run_name}: non-finite loss ({loss_}){where} at epoch {self.current_epoch}, "
            f"step {batch_idx} (global step {self.global_step}); cross-entropy {ce_}, "
            f"variation {variation_}. Lower the learning rate or check the input clips."
        )

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.model(batch["video"])
        labels = batch["label"]
        self._accumulate(
            val_n=len(labels),
            val_ce=float(F.cross_entropy(out.logits, labels, reduction="sum")),
            val_correct=float((out.logits.argmax(1) == labels).sum()),
        )

    def on_train_epoch_end(self) -> None:
        # Under DDP each process summed its own share of the batches: add them up.
        keys = ("n", "loss", "ce", "variation", "correct", "val_n", "val_ce", "val_correct")
        local = torch.tensor([self._sums.get(k, 0.0) for k in keys], device=self.device)
        totals = self.trainer.strategy.reduce(local.double(), reduce_op="sum")
        s = dict(zip(keys, totals.tolist(), strict=True))
        row = {
            "epoch": self.current_epoch + 1,
            "lr": self.optimizers().param_groups[0]["lr"],
            "train_loss": s["loss"] / s["n"],
            "train_ce": s["ce"] / s["n"],
            "train_variation": s["variation"] / s["n"],
            "train_top1": 100.0 * s["correct"] / s["n"],
        }
        if s.get("val_n"):
            row |= {
                "val_ce": s["val_ce"] / s["val_n"],
                "val_top1": 100.0 * s["val_correct"] / s["val_n"],
            }
        row |= prompt_state(self.model)
        row["seconds"] = time.perf_counter() - self._epoch_started
        self.history.append(row)
        log.info(progress_line(self.run_name, row, self.optim.epochs))
        if self.history_path is not None and self.trainer.is_global_zero:
            write_csv(self.history_path, pd.DataFrame(self.history))
        if self.tensorboard is not None and self.trainer.is_global_zero:
            self.tensorboard.scalars("epoch", row, self.global_step)
        self.log("val_top1", row.get("val_top1", float("nan")), prog_bar=True)
        if self.checkpoint_path is not None:
            self.trainer.save_checkpoint(self.checkpoint_path, weights_only=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vmp_history"] = json.dumps(self.history)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = json.loads(checkpoint.get("vmp_history", "[]"))

    def on_train_end(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def configure_optimizers(self):
        optimizer = OPTIMIZERS[self.optim.optimizer](
            split_parameters(self.model, self.optim), self.optim
        )
        factor = lr_factor(self.optim, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def progress_line(run_name: str, row: dict[str, float], epochs: int) -> str:
    """One line per epoch for the job's log: epoch/total, loss, accuracies, a and b, seconds."""
    parts = [f"{run_name} epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.3f}"]
    parts.append(f"train top-1 {row['train_top1']:.1f}")
    if "val_top1" in row:
        parts.append(f"val top-1 {row['val_top1']:.1f}")
    parts += [
        f"{k} {v:.3g}"
        for k, v in row.items()
        if k.startswith(("slope", "shift", "gate", "static_gain"))
    ]
    return ", ".join(parts + [f"{row['seconds']:.1f} s"])


class StepLog(L.Callback):
    """One log line every ``every`` training steps (and at each epoch's last step).

    ``<run> epoch 2/5 step 10/18 (28/90): loss 2.113, top-1 35.0, lr 0.0024, data 0.004 s,
    step 0.051 s, ETA 0:03, GPU 1.20 GiB``: the batch's loss, the epoch's running top-1, the
    backbone's learning rate, the mean time per step spent waiting for data and computing over
    the steps since the last line, the time left at that pace, and the peak GPU memory (on a
    GPU). MMAction2's ``LoggerHook(interval=20)`` and PySlowFast's ``LOG_PERIOD`` do the same.
    """

    def __init__(self, run_name: str, every: int) -> None:
        self.run_name, self.every = run_name, every
        self._last: float | None = None
        self._began = 0.0
        self._data = self._compute = 0.0
        self._steps = 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last = None  # the wait after validation is not data time

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        self._began = time.perf_counter()
        if self._last is not None:
            self._data += self._began - self._last

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        self._last = time.perf_counter()
        self._compute += self._last - self._began
        self._steps += 1
        per_epoch = trainer.num_training_batches
        if (batch_idx + 1) % self.every and batch_idx + 1 != per_epoch:
            return
        data, compute = self._data / self._steps, self._compute / self._steps
        self._data = self._compute = 0.0
        self._steps = 0
        total, done = int(trainer.estimated_stepping_batches), trainer.global_step
        eta = int((total - done) * (data + compute))
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        sums = getattr(module, "_sums", {})
        parts = [
            f"{self.run_name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step "
            f"{batch_idx + 1}/{per_epoch} ({done}/{total}): loss {float(loss):.3f}",
            f"top-1 {100.0 * sums.get('correct', 0.0) / max(1.0, sums.get('n', 0.0)):.1f}",
            f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}",
            f"data {data:.3f} s, step {compute:.3f} s, ETA {eta // 60}:{eta % 60:02d}",
        ]
        if module.device.type == "cuda":
            parts.append(f"GPU {torch.cuda.max_memory_allocated(module.device) / 2**30:.2f} GiB")
        log.info(", ".join(parts))


def logged(batches: DataLoader, run_name: str, what: str, quiet: bool = False) -> Iterator:
    """The batches of ``batches``, logging ``<run> <what>: k/n batches`` at each quarter."""
    total = len(batches)
    marks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)}
    for done, batch in enumerate(batches, 1):
        yield batch
        if not quiet and done in marks:
            log.info("%s %s: %d/%d batches", run_name, what, done, total)


@torch.no_grad()
def recompute_batchnorm(
    model: torch.nn.Module,
    loader: DataLoader,
    device="cpu",
    precision: str | int = "32-true",
) -> int:
    """Set every BatchNorm's running statistics to their exact average over ``loader``'s batches.

    During training the running statistics are an exponential average over batches seen with
    *earlier* weights; after a short run with a high learning rate they lag far behind the final
    weights, and eval-mode outputs drift from what the network computes in training (seen on
    x3d_tiny: eval-mode predictions collapsed to a few classes). Recomputing them with the final
    weights (PySlowFast's "precise BN") removes that gap. It runs under the run's ``precision``
    (:func:`vmp.training.scoring.precision_context`), as training did. Returns the number of
    BatchNorm layers.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train().to(device)
    with precision_context(precision, device):
        for batch in loader:
            model(to_device(batch["video"], device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return len(norms)


def prompt_state(model: torch.nn.Module) -> dict[str, float | str]:
    """Every prompt layer's parameters (slope a and shift b, or eta; the gate of a gated layer)
    and how it passes a static pixel (``static_attention``, ``static_gain``, ``state``: see
    ``MotionPromptLayer.static_gain``); keys ``<name>``, or ``<name>_<pathway>`` with several
    layers."""
    layers = getattr(model, "prompt_layers", {})
    state = {}
    for key, layer in layers.items():
        suffix = "" if len(layers) == 1 else f"_{key}"
        values = {k: v.item() for k, v in layer.pn_parameters().items()} | layer.static_gain()
        state |= {f"{name}{suffix}": value for name, value in values.items()}
    return state


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file and renamed, so a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class TensorBoard:
    """A run's TensorBoard event files (``tensorboard --logdir results/runs`` shows every run).

    The writer opens in the process that first writes: under DDP (forked processes) that is
    rank 0, never the parent that forked it. ``purge_step`` (a resumed run: its first step) tells
    TensorBoard to drop what an interrupted attempt logged from that step on.
    """

    def __init__(self, folder: str | Path, purge_step: int | None = None) -> None:
        self.folder, self.purge_step = Path(folder), purge_step
        self._writer = None

    def scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        """``<prefix>/<key>`` at ``step`` for every finite number in ``values``."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.folder, purge_step=self.purge_step)
        for key, value in values.items():
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self._writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ClipDataModule(L.LightningDataModule):
    """A run's train, validation and test loaders (:func:`vmp.data.clips.make_loader`).

    ``batch_size`` is one optimiser step's clips over all devices: the training loader gives each
    of ``devices`` processes ``batch_size / (devices * accumulate)`` clips per batch, in the
    order of :class:`vmp.data.clips.EpochSeededSampler` (which splits it between the processes
    and seeds each epoch's draws), and drops the last incomplete step when the split holds more
    than one. Validation and test go through every view once, ``batch_size`` at a time.

    The Trainer asks for the training and validation loaders; :func:`fit` asks for them again
    after training, for the passes it runs outside the Trainer in its own process (precise BN,
    the final validation, the test: :mod:`vmp.training.scoring`), and gets the same objects
    (built once, in the process that calls :func:`fit`; the processes of ``ddp_fork`` inherit
    them): the training sampler's epoch is then set by hand. Without a validation split there
    are no validation batches (and :func:`fit` sets the Trainer's ``limit_val_batches`` to 0).
    """

    def __init__(
        self,
        train_set: Dataset,
        val_set: Dataset | None,
        test_set: Dataset,
        *,
        batch_size: int,
        devices: int = 1,
        accumulate: int = 1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.test_set = test_set
        self.drop_last = len(train_set) > batch_size
        self._eval_loader = functools.partial(
            make_loader, batch_size=batch_size, shuffle=False, num_workers=num_workers, seed=seed
        )
        self._train = make_loader(
            train_set,
            batch_size=batch_size // (devices * accumulate),
            shuffle=True,
            num_workers=num_workers,
            seed=seed,
            drop_last=self.drop_last,
            whole=batch_size if self.drop_last else 1,  # every optimiser step a whole batch
        )
        self._val = self._eval_loader(val_set) if val_set else []
        # optimiser steps of an epoch, all processes together
        self.steps_per_epoch = (len(train_set) // batch_size) if self.drop_last else 1

    def train_dataloader(self) -> DataLoader:
        return self._train

    def val_dataloader(self) -> DataLoader | list:
        return self._val

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)


def fingerprint(settings: dict[str, Any]) -> str:
    """Short hash of what a run computes (:func:`vmp.training.record.computation_fingerprint`:
    not where its data sits); a checkpoint is resumed, and a kept record restored, only by a run
    with the same one."""
    return computation_fingerprint(settings)


def fit(
    model: torch.nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    test_set: Dataset,
    optim: OptimConfig,
    run_dir: str | Path,
    *,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    num_workers: int = 0,
    accelerator: str = "auto",
    devices: int = 1,
    precision: str = "32-true",
    progress_bar: bool = True,
    log_every: int = 0,
    deterministic: bool = True,
    sync_bn: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``model``, evaluate it on ``test_set`` and write the run's files into ``run_dir``.

    ``log_every`` > 0 logs a line every that many training steps (:class:`StepLog`) and the
    progress of the precise-BN pass, the validation and the multi-view test; 0 logs one line per
    epoch. ``history.csv`` is rewritten after every epoch, so it shows a run while it trains.

    Writes ``history.csv`` (one row per epoch), ``metrics.json`` (test metrics, learned prompt
    parameters, timings and ``settings``) and ``model.pt`` (final weights, vmp checkpoint format).
    ``checkpoints/last.ckpt`` is written after every epoch and resumed from when the job is rerun with
    the same settings; it is removed once the run has finished. ``train.lock`` (see
    :func:`vmp.training.supervision.run_lock`) keeps a second process from training the same folder meanwhile, and
    training stops when the process that started it exits (:class:`StopWhenOrphaned`).
    Videos that failed to decode are listed under "decode_failures" in ``metrics.json``, and
    what the run ran on under "execution" (:func:`vmp.training.environment.execution_record`).

    ``deterministic`` (``resources.deterministic``) makes torch use deterministic algorithms
    (warning where an operation has none) and cuDNN skip its autotuner; False lets cuDNN time its
    algorithms and keep the fastest (``benchmark=True``, PySlowFast's choice): faster on a GPU,
    not bitwise repeatable. Either way the sample order and every random draw (augmentation,
    dropout, the prompt layers' start) are the same.

    ``optim.accumulate_grad_batches`` = k splits each step's ``optim.batch_size`` clips into k
    batches whose gradients are summed before the optimiser steps (the schedule counts optimiser
    steps); ``optim.clip_grad_norm`` clips the gradients' norm before each step.

    ``devices`` > 1 trains with DDP in that many processes forked from this one (Lightning's
    ``ddp_fork``: it works inside a Jupyter kernel), each with ``optim.batch_size / devices``
    clips per step, so the processes' batches together are one process's batch and gradients
    are averaged over it. Every process draws its own augmentation and dropout (from the run's
    seed, the epoch and its rank; rank 0 the draws of a single process); a non-finite loss on any
    process stops all of them at that step with one FloatingPointError. BatchNorm normalises
    with each process's own batch (PySlowFast's default), so models with BatchNorm train
    slightly differently from one process; ``sync_bn`` (``resources.sync_bn``) normalises over
    all processes' batches with torch's SyncBatchNorm instead, on GPUs only (it does not run on
    CPU, where it is ignored with a warning). Models without BatchNorm (TimeSformer) train the
    same as in one process up to rounding where the clips have no random augmentation.
    This process then gets the trained weights back and computes the BatchNorm statistics,
    validation and test metrics alone, under the run's ``precision`` (the autocast of a mixed
    precision) as training did.
    """
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        return _fit(
            model,
            train_set,
            val_set,
            test_set,
            optim,
            run_dir,
            seed=seed,
            settings=settings,
            num_workers=num_workers,
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            progress_bar=progress_bar,
            log_every=log_every,
            deterministic=deterministic,
            sync_bn=sync_bn,
        )


def _fit(
    model: torch.nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    test_set: Dataset,
    optim: OptimConfig,
    run_dir: Path,
    *,
    seed: int,
    settings: dict[str, Any] | None,
    num_workers: int,
    accelerator: str,
    devices: int,
    precision: str,
    progress_bar: bool,
    log_every: int,
    deterministic: bool,
    sync_bn: bool,
) -> dict[str, Any]:
    accumulate = optim.accumulate_grad_batches
    if devices < 1 or optim.batch_size % (devices * accumulate):
        raise ValueError(
            f"batch_size {optim.batch_size} must be a multiple of devices={devices}"
            + (f" x accumulate_grad_batches={accumulate}" if accumulate > 1 else "")
            + ": it is the batch of one step over all devices, split evenly between them"
        )
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if sync_bn and devices > 1 and not on_gpu:
        log.warning(
            "sync_bn ignored: SyncBatchNorm runs on GPUs only (accelerator %s)", accelerator
        )
    sync_bn = sync_bn and devices > 1 and on_gpu
    settings = (
        {"seed": seed}
        | dict(settings or {})
        | {"optim": asdict(optim), "run_seed": seed}
        | {"deterministic": deterministic, "sync_bn": sync_bn}
    )
    run_name = settings.get("name", run_dir.as_posix())
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    kept = restore_kept(run_dir, settings)
    if kept is not None:  # finished before its job was rerun (a sibling failed, a spurious trigger)
        return kept
    resume = _resumable(checkpoint, fingerprint(settings))
    datasets = [d for d in (train_set, val_set, test_set) if isinstance(d, ClipDataset)]
    for dataset in datasets:  # decode failures of every process, kept until the run ends
        dataset.failure_log = checkpoint.parent / FAILURE_LOG

    L.seed_everything(seed, workers=True, verbose=False)
    orphan_guard = StopWhenOrphaned()
    module = VideoClassificationModule(model, optim, run_name=run_name)
    module.checkpoint_path = checkpoint
    module.history_path = run_dir / HISTORY
    if not resume:  # events of an earlier attempt of this run would overlap this one's
        shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)
    data = ClipDataModule(
        train_set,
        val_set,
        test_set,
        batch_size=optim.batch_size,
        devices=devices,
        accumulate=accumulate,
        num_workers=num_workers,
        seed=seed,
    )
    steps_per_epoch = data.steps_per_epoch
    module.tensorboard = TensorBoard(
        run_dir / TENSORBOARD, purge_step=resume * steps_per_epoch if resume else None
    )
    trainer = L.Trainer(
        max_epochs=optim.epochs,
        accelerator=accelerator,
        devices=devices,
        strategy="ddp_fork" if devices > 1 else "auto",
        use_distributed_sampler=False,  # EpochSeededSampler splits the items between processes
        precision=precision,
        # deterministic: deterministic algorithms (a warning where one has none), cuDNN's
        # autotuner off; otherwise cuDNN times its algorithms per shape and keeps the fastest.
        deterministic="warn" if deterministic else False,
        benchmark=None if deterministic else True,
        sync_batchnorm=sync_bn,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=optim.clip_grad_norm,
        gradient_clip_algorithm="norm",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if data.val_dataloader() else 0,  # no validation split: no loop
        # With devices > 1 Lightning forks the processes itself, also inside a SLURM job (whose
        # environment would otherwise make it wait for processes started by srun).
        plugins=[AtomicCheckpointIO()] + ([LightningEnvironment()] if devices > 1 else []),
        callbacks=[orphan_guard] + ([StepLog(run_name, log_every)] if log_every else []),
        default_root_dir=run_dir,
    )
    prompt_start = prompt_state(model)  # before a resume loads the trained weights
    started = time.perf_counter()
    write_text(checkpoint.parent / "fingerprint", fingerprint(settings))
    with _one_error_from_the_processes():
        trainer.fit(
            module, datamodule=data, ckpt_path=checkpoint if resume else None, weights_only=True
        )
    train_seconds = time.perf_counter() - started
    if devices > 1:  # the forked processes kept the history; rank 0 saved it with every epoch
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        module.history = json.loads(state["vmp_history"])

    device = trainer.strategy.root_device
    train_loader, val_loader = data.train_dataloader(), data.val_dataloader()
    train_loader.sampler.set_epoch(optim.epochs)  # a fixed, seeded pass for the statistics

    def progress(loader: DataLoader, what: str):
        return logged(loader, run_name, what, quiet=not log_every)

    run_precision = str(trainer.precision)  # as Lightning resolved it ("32" -> "32-true")
    recompute_batchnorm(model, progress(train_loader, "precise BN"), device, run_precision)
    val_metrics = (
        evaluate(model, progress(val_loader, "validation"), device, run_precision)
        if val_loader
        else {}
    )
    test_loader = data.test_dataloader()
    started = time.perf_counter()
    metrics, scores, per_class = score_videos(
        model, progress(test_loader, "test"), test_set.table, device, run_precision
    )
    metrics |= {
        "val_top1": val_metrics.get("top1"),
        "test_views": len(test_set) // max(1, metrics["num_videos"]),
        "epochs": optim.epochs,
        "resumed_from_epoch": resume,
        "train_seconds": train_seconds,
        "test_seconds": time.perf_counter() - started,
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompt_start": prompt_start,
        "prompt": prompt_state(model),
        "decode_failures": decode_failures(datasets),
        "execution": execution_record(
            device=device,
            precision=run_precision,
            devices=devices,
            num_workers=num_workers,
            deterministic=deterministic,
            sync_bn=sync_bn,
        ),
        "settings": settings,
    }
    orphan_guard.check()  # nobody waits for this run any more: write nothing
    tensorboard = TensorBoard(run_dir / TENSORBOARD)
    final_step = len(module.history) * steps_per_epoch
    tensorboard.scalars("test", metrics, final_step)
    tensorboard.close()
    write_run(
        run_dir,
        metrics=metrics,
        history=pd.DataFrame(module.history),
        model=model,
        settings=settings,
        tables={SCORES: scores, PER_CLASS: per_class},
    )
    shutil.rmtree(checkpoint.parent)
    return metrics


@contextlib.contextmanager
def _one_error_from_the_processes() -> Iterator[None]:
    """A training process's FloatingPointError raised again here, as in one process.

    Under ``ddp_fork`` an exception in a forked process reaches this one as torch's
    ProcessRaisedException, holding the process's traceback as text; the non-finite loss every
    process raises alike (:meth:`VideoClassificationModule._stop_if_not_finite`) becomes one
    FloatingPointError with its message.
    """
    try:
        yield
    except torch.multiprocessing.ProcessRaisedException as err:
        lines = str(err).rstrip().splitlines()
        prefix = "FloatingPointError: "
        if lines and lines[-1].startswith(prefix):
            raise FloatingPointError(lines[-1].removeprefix(prefix)) from err
        raise


def decode_failures(datasets: Sequence[ClipDataset]) -> dict[str, Any]:
    """Videos that failed to decode in any of ``datasets`` (any process): count and path -> reason."""
    files: dict[str, str] = {}
    for dataset in datasets:
        files |= dataset.all_failures()
    if files:
        log.warning("%d videos failed to decode and were replaced: %s", len(files), sorted(files))
    return {"count": len(files), "files": dict(sorted(files.items()))}


class StopWhenOrphaned(L.Callback):
    """Stops training (raises :class:`vmp.training.supervision.ParentGone`) once the process that started it exits.

    Killing only Snakemake leaves papermill and the Jupyter kernel training for hours; this
    checks every few seconds, at each training and validation step (see :class:`ParentWatch`),
    and ``_fit`` checks once more right before writing the run's record. (The workflow's
    notebooks also watch from their first line, :func:`vmp.training.supervision.stop_with_parents`.)
    """

    def __init__(self, interval: float = 5.0) -> None:
        self.watch = ParentWatch(interval)

    def check(self) -> None:
        self.watch.check(full=True)

    def on_train_batch_start(self, *args: Any) -> None:
        self.watch.check()

    def on_validation_batch_start(self, *args: Any) -> None:
        self.watch.check()


def _resumable(checkpoint: Path, expected: str) -> int | None:
    """Epoch stored in ``checkpoint`` if it exists and belongs to a run with the same settings.

    A checkpoint of other settings is moved aside (``checkpoints.<fingerprint>/``, named in the
    log), never deleted: it may be hours of training that a settings change was not meant for.
    """
    if not checkpoint.exists():
        return None
    stored = checkpoint.parent / "fingerprint"
    found = stored.read_text().strip() if stored.exists() else "unknown"
    if found != expected:
        aside = checkpoint.parent.with_name(f"{checkpoint.parent.name}.{found}")
        shutil.rmtree(aside, ignore_errors=True)
        checkpoint.parent.rename(aside)
        log.warning(
            "%s was written by a run with other settings (fingerprint %s, this run %s): moved "
            "to %s; this run starts from epoch 0",
            checkpoint,
            found,
            expected,
            aside,
        )
        return None
    # mmap: only the epoch is read here; Lightning loads the tensors when it resumes.
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    log.info("resuming %s after epoch %d", checkpoint, state["epoch"] + 1)
    return int(state["epoch"]) + 1
