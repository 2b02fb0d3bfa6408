"""The matrix of training runs and the parameters each training job passes its notebook."""

from __future__ import annotations

import itertools
from typing import Any

from vmp.names import sigmoid_variant
from vmp.training.record import RUN_KEYS, cell_dir, cell_path, seed_dir
from vmp.workflow.config import (
    backbone_settings,
    dataset_root,
    nested_update,
    pretrain_dir,
    pretrained_checkpoint,
    require,
    training_data,
)


def train_parameters(
    config: dict[str, Any], backbone: str, cell: str | None = None
) -> dict[str, Any]:
    """Parameters of notebooks/train.py for a pre-training job (``cell`` None) or one cell.

    The workflow passes exactly these (rules/train.smk); the notebook's parameters cell holds
    them for one cell of the default profile (tests/test_config.py).
    """
    resources = config["resources"]
    if cell is None:
        dataset, split, variant, lam, seeds = (
            config["pretrain"]["dataset"],
            "1",
            "baseline",
            0.0,
            [0],
        )
        optim = nested_update(
            backbone_settings(config, backbone, "optim"), config["pretrain"].get("optim", {})
        )
        optim = nested_update(optim, config["backbones"][backbone].get("pretrain_optim", {}))
        fmt, root, pretrained = "synthmotion", dataset_root(config, dataset), None
        out_dirs = [pretrain_dir(config, backbone)]
        confusion = None
    else:
        runs = [run for run in run_matrix(config) if cell_path(run) == cell]
        if not runs:
            raise ValueError(f"{cell} is not a cell of this configuration's runs")
        dataset, split, variant, lam = (
            runs[0][k] for k in ("dataset", "split", "variant", "lambda")
        )
        seeds = sorted(run["seed"] for run in runs)
        optim = backbone_settings(config, backbone, "optim", dataset)
        fmt, root = training_data(config, dataset, split)
        out_dirs = [seed_dir(config["results"], cell, seed) for seed in seeds]
        pretrained = pretrained_checkpoint(config, backbone)
        confusion = f"{cell_dir(config['results'], cell)}/confusion.png"
    return {
        "dataset": dataset,
        "dataset_format": fmt,
        "data_root": root,
        "split": split,
        "backbone": backbone,
        "arch": config["backbones"][backbone].get("arch", backbone),
        "variant": variant,
        "lambda_reg": lam,
        "seeds": seeds,
        "out_dirs": out_dirs,
        "clip": backbone_settings(config, backbone, "clip", dataset),
        "optim": optim,
        "model": config["backbones"][backbone].get("model", {}),
        "pretrained": pretrained,
        "threads": resources.get("threads", 1),
        "num_workers": resources.get("num_workers", 0),
        "cache_frames": fmt == "synthmotion",
        "accelerator": resources.get("accelerator", "auto"),
        "devices": resources.get("devices", 1),
        "precision": config["backbones"][backbone].get(
            "precision", resources.get("precision", "32-true")
        ),
        "log_every_steps": resources.get("log_every_steps", 0),
        "confusion": confusion,
    }


RUN_KINDS = ("table", "ablation", "placement", "prompt_functions")


def run_matrix(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training run: Table 1's cells (``table``), the lambda ablation's (``ablation``), the
    layer placement's (``placement``: its variant for every backbone whose variants include the
    paper's sigmoid variant, on one dataset) and the optional prompt-function comparison's
    (``prompt_functions``, not part of the default target).

    A run shared by both (same dataset, split, backbone, variant, lambda and seed) appears once.
    Baselines have no prompt layer, so their lambda is 0; a backbone's ``lambda`` replaces the
    global one for its +VMP rows. A dataset's ``seeds`` replace the global
    ones (e.g. a single seed where its splits serve as the replicates).
    """
    runs: dict[tuple, dict[str, Any]] = {}

    def add(kind: str, dataset, split, backbone, variant, lam, seed) -> None:
        lam = 0.0 if variant == "baseline" else float(lam)
        key = (dataset, str(split), backbone, variant, lam, int(seed))
        run = runs.setdefault(
            key,
            dict(zip(RUN_KEYS, key, strict=True)) | {kind: False for kind in RUN_KINDS},
        )
        run[kind] = True

    for (name, dataset), (backbone, settings) in itertools.product(
        config["datasets"].items(), config["backbones"].items()
    ):
        seeds = dataset.get("seeds", config["seeds"])
        for split, variant, seed in itertools.product(
            dataset["splits"], settings["variants"], seeds
        ):
            add(
                "table",
                name,
                split,
                backbone,
                variant,
                settings.get("lambda", config["lambda"]),
                seed,
            )
    ablation = config.get("ablation")
    if ablation:
        for lam, seed in itertools.product(ablation["lambdas"], ablation["seeds"]):
            add(
                "ablation",
                ablation["dataset"],
                ablation["split"],
                ablation["backbone"],
                ablation["variant"],
                lam,
                seed,
            )
    placement = config.get("placement")
    if placement:
        require(placement["dataset"], sorted(config["datasets"]), "placement.dataset")
        dataset = config["datasets"][placement["dataset"]]
        for backbone, settings in config["backbones"].items():
            if sigmoid_variant(settings.get("arch", backbone)) not in settings["variants"]:
                continue
            for split, seed in itertools.product(
                dataset["splits"], dataset.get("seeds", config["seeds"])
            ):
                lam = settings.get("lambda", config["lambda"])
                add(
                    "placement",
                    placement["dataset"],
                    split,
                    backbone,
                    placement["variant"],
                    lam,
                    seed,
                )
    functions = config.get("prompt_functions")
    if functions:
        backbone = functions["backbone"]
        lam = config["backbones"][backbone].get("lambda", config["lambda"])
        for (name, dataset), variant in itertools.product(
            config["datasets"].items(), functions["variants"]
        ):
            for split, seed in itertools.product(
                dataset["splits"], dataset.get("seeds", config["seeds"])
            ):
                add("prompt_functions", name, split, backbone, variant, lam, seed)
    return list(runs.values())


def cell_seeds(runs: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Cell path -> its seeds (sorted): the runs one training job trains in turn."""
    seeds: dict[str, list[int]] = {}
    for run in runs:
        seeds.setdefault(cell_path(run), []).append(run["seed"])
    return {cell: sorted(s) for cell, s in seeds.items()}


def seed_groups(cells: dict[str, list[int]]) -> dict[tuple[int, ...], list[str]]:
    """Cells grouped by their seed list; each group is one workflow rule with that many runs."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for cell, seeds in cells.items():
        groups.setdefault(tuple(seeds), []).append(cell)
    return groups
