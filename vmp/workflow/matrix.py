"""The matrix of training runs and the parameters each training job passes its notebook."""

from __future__ import annotations

import itertools
from typing import Any

from vmp.names import ORACLE_VARIANT, sigmoid_variant
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
    config: dict[str, Any], backbone: str, job: str | None = None
) -> dict[str, Any]:
    """Parameters of notebooks/train.py for a pre-training job (``job`` None) or one training
    job of :func:`training_jobs` (its runs in turn).

    The workflow passes exactly these (rules/train.smk); the notebook's parameters cell holds
    them for one job of the default profile (tests/test_config.py).
    """
    resources = config["resources"]
    if job is None:
        dataset, split = config["pretrain"]["dataset"], "1"
        optim = nested_update(
            backbone_settings(config, backbone, "optim"), config["pretrain"].get("optim", {})
        )
        optim = nested_update(optim, config["backbones"][backbone].get("pretrain_optim", {}))
        fmt, root, pretrained = "synthmotion", dataset_root(config, dataset), None
        runs = [
            {"variant": "baseline", "lambda_reg": 0.0, "seed": 0}
            | {"out_dir": pretrain_dir(config, backbone)}
        ]
        confusions = {}
    else:
        jobs = training_jobs(run_matrix(config))
        if job not in jobs:
            raise ValueError(f"{job} is not a training job of this configuration's runs")
        dataset, split = jobs[job][0]["dataset"], jobs[job][0]["split"]
        optim = backbone_settings(config, backbone, "optim", dataset)
        fmt, root = training_data(config, dataset, split)
        results = config["results"]
        runs = [
            {"variant": run["variant"], "lambda_reg": run["lambda"], "seed": run["seed"]}
            | {"out_dir": seed_dir(results, cell_path(run), run["seed"])}
            for run in jobs[job]
        ]
        pretrained = pretrained_checkpoint(config, backbone)
        confusions = {}
        for run in jobs[job]:
            figure = f"{cell_dir(results, cell_path(run))}/confusion.png"
            confusions.setdefault(figure, []).append(seed_dir(results, cell_path(run), run["seed"]))
    return {
        "dataset": dataset,
        "dataset_format": fmt,
        "data_root": root,
        "split": split,
        "backbone": backbone,
        "arch": config["backbones"][backbone].get("arch", backbone),
        "runs": runs,
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
        "deterministic": resources.get("deterministic", True),
        "sync_bn": resources.get("sync_bn", False),
        "confusions": confusions,
    }


RUN_KINDS = ("table", "ablation", "placement", "prompt_functions")
# Variants without a learned map have no regulariser: their runs' lambda is 0.
UNREGULARISED = ("baseline", ORACLE_VARIANT)


def run_matrix(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training run: Table 1's cells (``table``), the lambda ablation's (``ablation``), the
    layer placement's (``placement``: its variant for every backbone whose variants include the
    paper's sigmoid variant, on one dataset) and the optional prompt-function comparison's
    (``prompt_functions``, not part of the default target).

    A run shared by both (same dataset, split, backbone, variant, lambda and seed) appears once.
    Baselines have no prompt layer and the oracle's map is fixed, so their lambda is 0; a
    backbone's ``lambda`` replaces the global one for its +VMP rows and its ``seeds`` the global
    ones for its Table 1 rows (more replicates where its rows are less precise). A dataset's
    ``seeds`` replace both (e.g. a single seed where its splits serve as the replicates).
    """
    runs: dict[tuple, dict[str, Any]] = {}

    def add(kind: str, dataset, split, backbone, variant, lam, seed) -> None:
        lam = 0.0 if variant in UNREGULARISED else float(lam)
        key = (dataset, str(split), backbone, variant, lam, int(seed))
        run = runs.setdefault(
            key,
            dict(zip(RUN_KEYS, key, strict=True)) | {kind: False for kind in RUN_KINDS},
        )
        run[kind] = True

    for (name, dataset), (backbone, settings) in itertools.product(
        config["datasets"].items(), config["backbones"].items()
    ):
        seeds = dataset.get("seeds", settings.get("seeds", config["seeds"]))
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


def job_of(run: dict[str, Any]) -> str:
    """The training job that trains ``run``: ``<dataset>/<split>/<backbone>`` for Table 1's cell
    (baseline and every variant together, as the paper's Table 1 cell is one backbone on one
    dataset), ``.../<kind>`` for the runs only the ablation, the placement comparison or the
    prompt-function comparison adds (a run shared with Table 1 is trained by Table 1's job)."""
    base = "/".join(str(run[k]) for k in ("dataset", "split", "backbone"))
    kind = next(k for k in RUN_KINDS if run[k])
    return base if kind == "table" else f"{base}/{kind}"


def training_jobs(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Job (:func:`job_of`) -> its runs in the order it trains them: variant as the matrix lists
    them, then lambda, then seed. One job trains them in one kernel (one start and import)."""
    order = {cell: i for i, cell in enumerate(dict.fromkeys(cell_path(r) for r in runs))}
    jobs: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: (order[cell_path(r)], r["seed"])):
        jobs.setdefault(job_of(run), []).append(run)
    return jobs
