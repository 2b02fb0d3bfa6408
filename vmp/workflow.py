"""Helpers of the Snakemake workflow: configuration checks, the matrix of runs, their folders.

Also a small command line (``python -m vmp.workflow -h``):

    python -m vmp.workflow cell --configfile config/smoke.yaml synth_gym 1 x3d_tiny vmp
        the cell's folder and the snakemake command that reruns it
    python -m vmp.workflow params results/runs/<cell>/train.ipynb rerun/
        writes rerun/params.yaml (the executed notebook's parameters, runs under rerun/) and
        prints the papermill command that runs it outside the workflow
"""

from __future__ import annotations

import ast
import copy
import difflib
import itertools
import json
from pathlib import Path
from typing import Any

from vmp.names import MODELS, PROMPT_FUNCTION_VARIANTS, SCENES, sigmoid_variant, variants
from vmp.runs import cell_dir, cell_path, seed_dir
from vmp.sources import list_files


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


def _require(value: Any, allowed: list[str], where: str) -> None:
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
                _require(name, sorted(config[key]), f"only.{key}")
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
    for backbone, path in ((pretrain or {}).get("checkpoints") or {}).items():
        if backbone in config["backbones"] and not Path(path).exists():
            raise ConfigError(
                f"pretrain.checkpoints.{backbone}: {path} does not exist; `python -m vmp.fetch "
                f"checkpoints` downloads the Kinetics checkpoints, or correct the path (README, "
                "'The paper profile, from git clone to Table 1')"
            )
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
    placement = config.get("placement")
    if placement:
        _require(placement["dataset"], sorted(config["datasets"]), "placement.dataset")
    functions = config.get("prompt_functions")
    if functions:
        backbone = functions["backbone"]
        _require(backbone, sorted(config["backbones"]), "prompt_functions.backbone")
        arch = config["backbones"][backbone].get("arch", backbone)
        if "vmp" not in config["backbones"][backbone]["variants"]:
            raise ConfigError(
                f"prompt_functions.backbone: {backbone} has no `vmp` variant in Table 1, the sigmoid "
                "rows the other prompt functions are paired with; add it to its variants"
            )
        for variant in functions["variants"]:
            _require(
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


def outside_inputs(config: dict[str, Any]) -> list[str]:
    """The files from outside the workflow that ``vmp.preflight`` checks before any job: every
    real dataset split's list and annotation files, and the ``pretrain.checkpoints`` files of the
    profile's backbones. Empty for a profile of generated data and pre-training (the default)."""
    files = [
        path
        for name, dataset in config["datasets"].items()
        if dataset["format"] != "synthmotion"
        for split in dataset["splits"]
        for path in dataset_list_files(config, name, split)
    ]
    checkpoints = (config.get("pretrain") or {}).get("checkpoints") or {}
    files += [path for backbone, path in checkpoints.items() if backbone in config["backbones"]]
    return sorted(set(files))


def synth_datasets(config: dict[str, Any]) -> list[str]:
    """Datasets the workflow generates: SynthMotion targets, and the pre-training scene if any."""
    names = [name for name, d in config["datasets"].items() if d["format"] == "synthmotion"]
    pretrain = config.get("pretrain")
    return names + ([pretrain["dataset"]] if pretrain and "scene" in pretrain else [])


def training_data(config: dict[str, Any], name: str, split: str) -> tuple[str, str]:
    """(format, root) that vmp.datasets.index reads a dataset's split from for training."""
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
            dict(
                zip(("dataset", "split", "backbone", "variant", "lambda", "seed"), key, strict=True)
            )
            | {kind: False for kind in RUN_KINDS},
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
        _require(placement["dataset"], sorted(config["datasets"]), "placement.dataset")
    placement = config.get("placement")
    if placement:
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


# --- command line: find a cell's files, rerun a training notebook outside the workflow ----------


def find_cell(
    config: dict[str, Any], dataset: str, split: str, backbone: str, variant: str, lam=None
) -> str:
    """The cell path of one training job of ``config``; a ConfigError lists the near ones."""
    lam = 0.0 if variant == "baseline" else float(config["lambda"] if lam is None else lam)
    cell = cell_path(
        {"dataset": dataset, "split": str(split), "backbone": backbone, "variant": variant}
        | {"lambda": lam}
    )
    cells = cell_seeds(run_matrix(config))
    if cell not in cells:
        near = [c for c in cells if c.startswith(f"{dataset}/{split}/{backbone}/")] or list(cells)
        raise ConfigError(f"{cell} is not a cell of this profile; cells: {', '.join(near)}")
    return cell


def injected_parameters(notebook: str | Path) -> dict[str, Any]:
    """The parameters an executed notebook ran with (papermill's injected-parameters cell)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    for tag in ("injected-parameters", "parameters"):  # without injected ones: the defaults
        source = next(
            (c["source"] for c in cells if tag in c.get("metadata", {}).get("tags", [])), None
        )
        if source is not None:
            break
    else:
        raise ValueError(f"{notebook} has no parameters cell")
    tree = ast.parse(source if isinstance(source, str) else "".join(source))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def rerun_parameters(notebook: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """A training notebook's parameters with its runs written under ``out_dir``/seed~<s>.

    Raises a ValueError if ``out_dir`` would overlap a folder the workflow's run wrote.
    """
    params = injected_parameters(notebook)
    if "out_dirs" not in params:
        raise ValueError(f"{notebook} has no out_dirs parameter (not a training notebook)")
    out = Path(out_dir).resolve()
    for old in (Path(d).resolve() for d in params["out_dirs"]):
        if out == old or out in old.parents or old in out.parents:
            raise ValueError(f"{out_dir} overlaps the workflow's run folder {old}; choose another")
    params["out_dirs"] = [f"{out_dir}/seed~{seed}" for seed in params["seeds"]]
    if params.get("confusion"):
        params["confusion"] = f"{out_dir}/confusion.png"
    return params


def _template(notebook: Path) -> Path:
    """The notebook the workflow executed: <results>/notebooks/<name>.ipynb above ``notebook``."""
    for folder in notebook.parents:
        if (candidate := folder / "notebooks" / notebook.name).is_file():
            return candidate
    return notebook


def main(argv: list[str] | None = None) -> None:
    import argparse
    import shlex

    import yaml

    parser = argparse.ArgumentParser(prog="python -m vmp.workflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cell = commands.add_parser("cell", help="a cell's folder and the command that reruns it")
    cell.add_argument("--configfile", default="config/config.yaml")
    cell.add_argument("--lambda", dest="lam", type=float, help="default: the profile's lambda")
    for name in ("dataset", "split", "backbone", "variant"):
        cell.add_argument(name)
    params = commands.add_parser(
        "params", help="write an executed training notebook's parameters for a rerun elsewhere"
    )
    params.add_argument("notebook", type=Path, help="e.g. results/runs/<cell>/train.ipynb")
    params.add_argument("out_dir", type=Path, help="new run folders: <out_dir>/seed~<s>")
    args = parser.parse_args(argv)

    try:
        if args.command == "cell":
            config = yaml.safe_load(Path(args.configfile).read_text())
            check_config(config)
            found = find_cell(
                config, args.dataset, args.split, args.backbone, args.variant, args.lam
            )
            seeds = ", ".join(map(str, cell_seeds(run_matrix(config))[found]))
            folder = cell_dir(config["results"], found)
            option = (
                ""
                if args.configfile == "config/config.yaml"
                else f" --configfile {args.configfile}"
            )
            print(f"cell      {found} (seeds {seeds})")
            print(f"folder    {folder}")
            print(
                f"rerun     snakemake --cores 2 --forcerun {shlex.quote(folder + '/train.ipynb')}{option}"
            )
        else:
            values = rerun_parameters(args.notebook, args.out_dir)
            args.out_dir.mkdir(parents=True, exist_ok=True)
            (args.out_dir / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
            out = args.out_dir / args.notebook.name
            command = ["papermill", str(_template(args.notebook)), str(out), "-k", "python3"]
            print(shlex.join([*command, "-f", str(args.out_dir / "params.yaml")]))
    except (ConfigError, ValueError, OSError) as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
