"""A profile's configuration: the schema check, the cross-checks, its ``only`` part, and where its
datasets, checkpoints and pre-training runs live.

Imported when Snakemake parses the workflow (each run, a no-op rerun included): no torch here.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vmp.data.sources import list_files
from vmp.names import (
    MODELS,
    ORACLE_LABEL,
    ORACLE_VARIANT,
    PROMPT_FUNCTION_VARIANTS,
    SCENES,
    variants,
)


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


def validate_config(config: dict[str, Any], schema: str | Path) -> None:
    """Check ``config`` against the JSON schema file ``schema``.

    Raises:
        ConfigError: a few lines naming the first problem's key (``backbones.x3d_tiny.optim``),
            what is wrong, and for an unknown key the nearest valid one.
    """
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(yaml.safe_load(Path(schema).read_text()))
    errors = list(validator.iter_errors(config))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    where = ".".join(map(str, error.absolute_path)) or "the configuration"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        problem = "; ".join(
            f"unknown key {key!r}"
            + (
                f" (did you mean {near[0]!r}?)"
                if (near := difflib.get_close_matches(key, allowed, 1))
                else ""
            )
            for key in unknown
        )
        problem += f"; allowed: {', '.join(allowed)}"
    else:
        problem = error.message if len(error.message) <= 300 else error.message[:300] + " ..."
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise ConfigError(f"{where}: {problem}{more}. Every key is described in {schema}.")


def require(value: Any, allowed: list[str], where: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{where}: unknown value {value!r}; allowed: {', '.join(map(str, allowed))}"
        )


def select_part(config: dict[str, Any]) -> dict[str, Any]:
    """The profile restricted to its ``only`` key: part of the protocol, without editing it.

    ``only: {datasets: [hmdb51], splits: ["1"], backbones: [i3d_r50]}`` keeps those datasets,
    splits and backbones (each key optional); the lambda ablation, the placement comparison and
    the prompt-function comparison stay only where what they train is kept. Only the kept
    datasets and checkpoints must then exist. Layer it on a profile with a second config file:
    ``--configfile config/paper.yaml config/parts/hmdb51_i3d.yaml``.
    """
    only = config.get("only") or {}
    if not only:
        return config
    part = copy.deepcopy(config)
    for key in ("datasets", "backbones"):
        if key in only:
            for name in only[key]:
                require(name, sorted(config[key]), f"only.{key}")
            part[key] = {k: v for k, v in config[key].items() if k in only[key]}
    if "splits" in only:
        for dataset in part["datasets"].values():
            dataset["splits"] = [s for s in dataset["splits"] if s in only["splits"]]
        part["datasets"] = {k: v for k, v in part["datasets"].items() if v["splits"]}
        if not part["datasets"]:
            raise ConfigError(f"only.splits: no kept dataset has a split in {only['splits']}")
    ablation, placement = part.get("ablation"), part.get("placement")
    if ablation and (
        ablation["backbone"] not in part["backbones"]
        or ablation["split"] not in part["datasets"].get(ablation["dataset"], {}).get("splits", [])
    ):
        part["ablation"] = None
    if placement and placement["dataset"] not in part["datasets"]:
        part["placement"] = None
    functions = part.get("prompt_functions")
    if functions and functions["backbone"] not in part["backbones"]:
        part["prompt_functions"] = None
    return part


def check_config(config: dict[str, Any], fetched: Iterable[str] = ()) -> None:
    """Cross-checks the JSON schema cannot express: names known to vmp and references between keys.

    Names come from ``vmp.names`` (no torch import: this runs on every parse of the workflow).
    ``fetched``: dataset roots and checkpoint paths a download job will create (``fetch: true``,
    ``vmp.fetch.profile_downloads``); they need not exist yet.
    """
    fetched = set(fetched)
    real = sorted(n for n, d in config["datasets"].items() if d["format"] != "synthmotion")
    for backbone, settings in config["backbones"].items():
        arch = settings.get("arch", backbone)
        require(
            arch,
            sorted(MODELS),
            f"backbones.{backbone}.arch" if "arch" in settings else "backbones",
        )
        for variant in settings["variants"]:
            require(variant, variants(arch), f"backbones.{backbone}.variants")
        if ORACLE_VARIANT in settings["variants"] and real:  # it would train on every dataset
            raise ConfigError(
                f"backbones.{backbone}.variants: {ORACLE_VARIANT} ({ORACLE_LABEL}) needs "
                "SynthMotion's ground-truth masks, which real datasets (here: "
                f"{', '.join(real)}) do not have; list it only in profiles whose datasets are all "
                "synthmotion"
            )
    for name, dataset in config["datasets"].items():
        if dataset["format"] == "synthmotion":
            require(dataset.get("scene"), sorted(SCENES), f"datasets.{name}.scene")
            continue
        root = Path(dataset_root(config, name))
        if not root.is_dir() and str(root) not in fetched:
            # here, on this error only: av and pandas stay out of every parse of the workflow
            from vmp.data.official import SOURCES

            raise ConfigError(
                f"datasets.{name}: dataset root {root} does not exist; set datasets.{name}.root or "
                f"data_root. {SOURCES[dataset['format']]}."
            )
    pretrain = config.get("pretrain")
    for backbone, path in ((pretrain or {}).get("checkpoints") or {}).items():
        if backbone in config["backbones"] and not Path(path).exists() and path not in fetched:
            raise ConfigError(
                f"pretrain.checkpoints.{backbone}: {path} does not exist; `python -m vmp.fetch "
                f"checkpoints` downloads the Kinetics checkpoints (with `fetch: true` the workflow "
                "does, for the names it knows: docs/paper-profile.md, '1. Fetch what is public'), or "
                "correct the path"
            )
    if pretrain and "scene" in pretrain:
        require(pretrain["scene"], sorted(SCENES), "pretrain.scene")
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
        require(ablation["dataset"], sorted(config["datasets"]), "ablation.dataset")
        require(
            ablation["split"], config["datasets"][ablation["dataset"]]["splits"], "ablation.split"
        )
        require(ablation["backbone"], sorted(config["backbones"]), "ablation.backbone")
        arch = config["backbones"][ablation["backbone"]].get("arch", ablation["backbone"])
        require(ablation["variant"], variants(arch), "ablation.variant")
    placement = config.get("placement")
    if placement:
        require(placement["dataset"], sorted(config["datasets"]), "placement.dataset")
    functions = config.get("prompt_functions")
    if functions:
        backbone = functions["backbone"]
        require(backbone, sorted(config["backbones"]), "prompt_functions.backbone")
        arch = config["backbones"][backbone].get("arch", backbone)
        if "vmp" not in config["backbones"][backbone]["variants"]:
            raise ConfigError(
                f"prompt_functions.backbone: {backbone} has no `vmp` variant in Table 1, the sigmoid "
                "rows the other prompt functions are paired with; add it to its variants"
            )
        for variant in functions["variants"]:
            require(
                variant,
                [v for v in variants(arch) if v in PROMPT_FUNCTION_VARIANTS],
                "prompt_functions.variants",
            )


def dataset_root(config: dict[str, Any], name: str) -> str:
    """Where dataset ``name`` lives: its ``root`` setting, else ``<data_root>/<name>``."""
    return config["datasets"].get(name, {}).get("root", f"{config['data_root']}/{name}")


def dataset_list_files(config: dict[str, Any], name: str, split: str) -> list[str]:
    """The list and annotation files real dataset ``name``'s ``split`` is indexed from."""
    dataset = config["datasets"][name]
    root = dataset_root(config, name)
    return list_files(dataset["format"], root, split, **dataset.get("paths", {}))


def synth_datasets(config: dict[str, Any]) -> list[str]:
    """Datasets the workflow generates: SynthMotion targets, and the pre-training scene if any."""
    names = [name for name, d in config["datasets"].items() if d["format"] == "synthmotion"]
    pretrain = config.get("pretrain")
    return names + ([pretrain["dataset"]] if pretrain and "scene" in pretrain else [])


def training_data(config: dict[str, Any], name: str, split: str) -> tuple[str, str]:
    """(format, root) that vmp.data.official.index reads a dataset's split from for training."""
    if name in synth_datasets(config):
        return "synthmotion", dataset_root(config, name)
    return "prepared", f"{config['results']}/data/{name}/{split}"


def backbone_settings(
    config: dict[str, Any], backbone: str, key: str, dataset: str | None = None
) -> dict[str, Any]:
    """Global ``key`` settings (clip, optim), updated by the dataset's, then by the backbone's."""
    settings = dict(config[key])
    if dataset is not None:
        settings = nested_update(settings, config["datasets"].get(dataset, {}).get(key, {}))
    return nested_update(settings, config["backbones"][backbone].get(key, {}))


def pretrained_checkpoint(config: dict[str, Any], backbone: str) -> str | None:
    """The checkpoint a backbone is fine-tuned from: a local file, or the pre-training job's."""
    pretrain = config.get("pretrain")
    if not pretrain or not config["backbones"][backbone].get("pretrained", True):
        return None
    if backbone in pretrain.get("checkpoints", {}):
        return pretrain["checkpoints"][backbone]
    return f"{pretrain_dir(config, backbone)}/model.pt"


def pretrain_dir(config: dict[str, Any], backbone: str) -> str:
    """``<results>/pretrain/<backbone>``: a backbone's pre-training run."""
    return f"{config['results']}/pretrain/{backbone}"
