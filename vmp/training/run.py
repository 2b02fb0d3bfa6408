"""One run of the protocol (pre-training or fine-tuning), assembled from plain notebook parameters."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from vmp.data.clips import ClipDataset, ClipSpec, decoded_file, load_decoded
from vmp.data.official import load_splits
from vmp.io import file_digest
from vmp.models import create_model, variant_options
from vmp.training.fit import OptimConfig, fit
from vmp.training.record import run_name

log = logging.getLogger(__name__)


def derived_seed(*parts: object) -> int:
    """A 31-bit seed that depends on ``parts`` only (their text), stable across processes."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def data_digest(
    subsets: dict[str, pd.DataFrame], root: str | Path, decoded: str | Path | None = None
) -> str:
    """Hash of the videos a run reads: each subset's rows (path relative to ``root``, label) and
    either the bytes of the decoded-frame cache the run reads instead of the videos (``decoded``:
    SynthMotion's ``decoded.npy``, a few MB) or each video's size and modification time (one
    stat per video, no reading). It changes when a video is added, removed, relabelled or
    rewritten, not when the dataset moves (``mv``) or a scene is generated again alike."""
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        for path, label in subsets[name][["path", "label"]].itertuples(index=False):
            stat = "" if decoded else "\t{0.st_size}\t{0.st_mtime_ns}".format(os.stat(path))
            digest.update(f"{name}\t{os.path.relpath(path, root)}\t{label}{stat}\n".encode())
    if decoded:
        digest.update(file_digest(decoded).encode())
    return digest.hexdigest()[:16]


def seed_prompt_layers(net: torch.nn.Module, run_seed: int) -> None:
    """Draw each prompt layer's start from its own generator, seeded by (run_seed, pathway).

    Variants of one replicate therefore start their layers alike (vmp_slow's slow layer is
    vmp_both's, vmp_gate's is vmp's, vmp_identity's shares m), and the two pathways differ.
    """
    for pathway, layer in net.prompt_layers.items():
        layer.reset_parameters(torch.Generator().manual_seed(derived_seed(run_seed, pathway)))


def replicate_model(
    arch: str, num_classes: int, variant: str, run_seed: int, **options: Any
) -> torch.nn.Module:
    """``variant`` of ``arch`` as replicate ``run_seed`` draws it (``options`` go to
    ``create_model``): the backbone and its head from ``torch.manual_seed(run_seed)``, drawn
    before any prompt layer, so all variants of a replicate share them; then the prompt layers
    (:func:`seed_prompt_layers`)."""
    torch.manual_seed(run_seed)
    net = create_model(arch, num_classes, **variant_options(arch, variant), **options)
    seed_prompt_layers(net, run_seed)
    return net


def train_run(
    *,
    dataset: str,
    dataset_format: str,
    data_root: str,
    split: str,
    backbone: str,
    variant: str,
    lambda_reg: float,
    seed: int,
    out_dir: str,
    arch: str | None = None,
    clip: dict[str, Any],
    optim: dict[str, Any],
    model: dict[str, Any] | None = None,
    pretrained: str | None = None,
    threads: int = 1,
    num_workers: int = 0,
    cache_frames: bool = False,
    accelerator: str = "auto",
    devices: int = 1,
    precision: str = "32-true",
    progress_bar: bool = True,
    log_every_steps: int = 0,
    deterministic: bool = True,
    sync_bn: bool = False,
) -> dict[str, Any]:
    """Train ``backbone`` (with ``variant``'s prompts) on one split and evaluate it; see :func:`vmp.training.fit.fit`.

    ``cache_frames`` keeps decoded frames in memory (small videos such as SynthMotion's).
    ``devices`` > 1 trains with DDP over that many devices (or CPU processes) of this machine.
    ``log_every_steps`` > 0 logs a line every that many training steps; ``deterministic`` and
    ``sync_bn`` are the profile's ``resources`` keys (see :func:`vmp.training.fit.fit`).
    ``backbone`` names the run (and Table 1's row); ``arch`` is the registry model it builds, when
    they differ (e.g. ``timesformer_k600`` built as ``timesformer`` from a Kinetics-600 checkpoint).
    """
    arch = arch or backbone
    torch.set_num_threads(threads)
    name = run_name(dataset, split, backbone, variant, lambda_reg, seed)
    # Replicate `seed` of (dataset, split, backbone): its own draws of the head, the prompt layers,
    # the sample order and the augmentation, shared by all variants and lambdas (the pairs).
    run_seed = derived_seed(dataset, split, backbone, seed)
    spec = ClipSpec.from_config(clip)
    subsets = load_splits(dataset_format, data_root, split)
    num_classes = int(pd.concat(subsets.values())["label"].max()) + 1
    single_view = spec.single_view()

    net = replicate_model(
        arch,
        num_classes,
        variant,
        run_seed,
        pretrained=pretrained,
        **({"num_frames": spec.num_frames, "crop_size": spec.crop_size} | (model or {})),
    )
    optim = optim | {"milestones": tuple(optim.get("milestones", ()))}
    # Eq. 6 regularises learned maps: none for a baseline, nor for the oracle's fixed ground truth.
    learned = any(p.requires_grad for p in net.prompt_layers.parameters())
    optim_cfg = OptimConfig(**(optim | {"lambda_reg": lambda_reg if learned else 0.0}))
    settings = {
        "name": name,
        "dataset": dataset,
        "split": split,
        "backbone": backbone,
        "arch": arch,
        "variant": variant,
        "dataset_format": dataset_format,
        "data_root": str(data_root),  # where vmp.evaluate finds the test split again
        "lambda": lambda_reg,
        "seed": seed,
        "run_seed": run_seed,
        "num_classes": num_classes,
        "train_videos": len(subsets["train"]),
        "test_videos": len(subsets["test"]),
        # val_top1 is measured on this subset; "test" where the dataset has no validation
        # subset (HMDB-51): nothing is selected on it, the last epoch's weights are tested.
        "val_subset": "test" if subsets["val"] is subsets["test"] else "val",
        "clip": vars(spec),
        "model": model or {},
        "pretrained": pretrained,
        # What the run reads, by content, not by place (a moved dataset or checkpoint is the same
        # run: vmp.training.record.computation_fingerprint leaves data_root and pretrained out).
        "data_digest": data_digest(
            subsets, data_root, decoded_file(data_root) if cache_frames else None
        ),
        "pretrained_digest": file_digest(pretrained) if pretrained else None,
    }
    log.info(
        "%s: %d classes, %d train / %d test videos",
        name,
        num_classes,
        *map(len, (subsets["train"], subsets["test"])),
    )
    # SynthMotion's data rule decodes every video once into one array file; runs memory-map it.
    # An oracle model (vmp_oracle) gets the class object's mask as a fourth channel of each clip.
    cached = {
        "cache_frames": cache_frames,
        "decoded": load_decoded(data_root) if cache_frames else None,
        "mask_channel": net.needs_masks,
    }
    test_set = ClipDataset(subsets["test"], spec, train=False, **cached)
    if subsets["val"] is subsets["test"]:  # no val subset: validate on the test videos' frames
        val_set = test_set.with_spec(single_view, train=False)
    else:
        val_set = ClipDataset(subsets["val"], single_view, train=False, **cached)
    return fit(
        net,
        ClipDataset(subsets["train"], spec, train=True, **cached),
        val_set,
        test_set,
        optim_cfg,
        out_dir,
        seed=run_seed,
        settings=settings,
        num_workers=num_workers,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        progress_bar=progress_bar,
        log_every=log_every_steps,
        deterministic=deterministic,
        sync_bn=sync_bn,
    )
