"""Helpers of the Snakemake workflow: configuration checks and the matrix of runs."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from vmp.names import MODELS, SCENES, variants


class ConfigError(ValueError):
    """A configuration value the workflow cannot run with; raised before any job starts."""


def nested_update(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in, recursing into nested dictionaries."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = nested_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _require(value: Any, allowed: list[str], where: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{where}: unknown value {value!r}; allowed: {', '.join(map(str, allowed))}"
        )


def check_config(config: dict[str, Any]) -> None:
    """Cross-checks the JSON schema cannot express: names known to vmp and references between keys.

    Names come from ``vmp.names`` (no torch import: this runs on every parse of the workflow).
    """
    for backbone, settings in config["backbones"].items():
        arch = settings.get("arch", backbone)
        _require(
            arch,
            sorted(MODELS),
            f"backbones.{backbone}.arch" if "arch" in settings else "backbones",
        )
        for variant in settings["variants"]:
            _require(variant, variants(arch), f"backbones.{backbone}.variants")
    for name, dataset in config["datasets"].items():
        if dataset["format"] == "synthmotion":
            _require(dataset.get("scene"), sorted(SCENES), f"datasets.{name}.scene")
            continue
        root = Path(dataset_root(config, name))
        if not root.is_dir():
            from vmp.datasets import SOURCES  # imports av and pandas: only on this error

            raise ConfigError(
                f"datasets.{name}: dataset root {root} does not exist; set datasets.{name}.root or "
                f"data_root. {SOURCES[dataset['format']]}."
            )
    pretrain = config.get("pretrain")
    if pretrain and "scene" in pretrain:
        _require(pretrain["scene"], sorted(SCENES), "pretrain.scene")
    elif pretrain:
        pretrained = {
            b for b, settings in config["backbones"].items() if settings.get("pretrained", True)
        }
        missing = sorted(pretrained - set(pretrain.get("checkpoints", {})))
        if missing:
            raise ConfigError(
                f"pretrain.checkpoints: no checkpoint for {', '.join(missing)}; give each backbone a "
                "local Kinetics checkpoint file, or a SynthMotion `scene` to pre-train on"
            )
    ablation = config.get("ablation")
    if ablation:
        _require(ablation["dataset"], sorted(config["datasets"]), "ablation.dataset")
        _require(
            ablation["split"], config["datasets"][ablation["dataset"]]["splits"], "ablation.split"
        )
        _require(ablation["backbone"], sorted(config["backbones"]), "ablation.backbone")
        arch = config["backbones"][ablation["backbone"]].get("arch", ablation["backbone"])
        _require(ablation["variant"], variants(arch), "ablation.variant")


def dataset_root(config: dict[str, Any], name: str) -> str:
    """Where dataset ``name`` lives: its ``root`` setting, else ``<data_root>/<name>``."""
    return config["datasets"].get(name, {}).get("root", f"{config['data_root']}/{name}")


def run_matrix(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training run: Table 1's cells (``table``) and the lambda ablation's (``ablation``).

    A run shared by both (same dataset, split, backbone, variant, lambda and seed) appears once.
    Baselines have no prompt layer, so their lambda is 0. A dataset's ``seeds`` replace the global
    ones (e.g. a single seed where its splits serve as the replicates).
    """
    runs: dict[tuple, dict[str, Any]] = {}

    def add(kind: str, dataset, split, backbone, variant, lam, seed) -> None:
        lam = 0.0 if variant == "baseline" else float(lam)
        key = (dataset, str(split), backbone, variant, lam, int(seed))
        run = runs.setdefault(
            key,
            dict(
                zip(("dataset", "split", "backbone", "variant", "lambda", "seed"), key, strict=True)
            )
            | {"table": False, "ablation": False},
        )
        run[kind] = True

    for (name, dataset), (backbone, settings) in itertools.product(
        config["datasets"].items(), config["backbones"].items()
    ):
        seeds = dataset.get("seeds", config["seeds"])
        for split, variant, seed in itertools.product(
            dataset["splits"], settings["variants"], seeds
        ):
            add("table", name, split, backbone, variant, config["lambda"], seed)
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
    return list(runs.values())


def cell_path(run: dict[str, Any]) -> str:
    """``<dataset>/<split>/<backbone>/<variant>/lambda~<l>``: a run's cell; its seeds live below."""
    parts = [run["dataset"], run["split"], run["backbone"], run["variant"]]
    return "/".join([*parts, f"lambda~{run['lambda']:g}"])


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
