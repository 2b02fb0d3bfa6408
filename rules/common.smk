import json
import re
from pathlib import Path

from snakemake.utils import validate

from vmp.workflow import cell_path, cell_seeds, check_config, nested_update, run_matrix, seed_groups
from vmp.workflow import dataset_root as vmp_dataset_root

validate(config, schema="../config/schema.yaml")
check_config(config)

RESULTS = config["results"]
DATA_ROOT = config["data_root"]
RES = config["resources"]
SYNTH_DATASETS = [
    name for name, d in config["datasets"].items() if d["format"] == "synthmotion"
] + ([config["pretrain"]["dataset"]] if config.get("pretrain") and "scene" in config["pretrain"] else [])
RUNS = run_matrix(config)


def alternation(values):
    return "|".join(sorted({str(v) for v in values})) or "^$"


wildcard_constraints:
    dataset=alternation(list(config["datasets"]) + SYNTH_DATASETS),
    backbone=alternation(config["backbones"]),
    variant="baseline|vmp|vmp_slow|vmp_fast|vmp_both",
    split="[A-Za-z0-9_]+",
    lam=r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",
    seed="[0-9]+",
    notebook="[a-z_0-9]+",


def run_dir(run):
    """results/runs/<dataset>/<split>/<backbone>/<variant>/lambda~<l>/seed~<s>"""
    return f"{RESULTS}/runs/{cell_path(run)}/seed~{run['seed']}"


# One training job per cell trains the cell's seeds in turn (one kernel start and import for all),
# so cells are grouped by their seed list: each group gets a rule with that many declared runs.
CELL_SEEDS = cell_seeds(RUNS)
SEED_GROUPS = seed_groups(CELL_SEEDS)


def dataset_root(name):
    return vmp_dataset_root(config, name)


def data_ready_file(name, split="1"):
    """The manifest training indexes: generated (SynthMotion) or prepared (real datasets)."""
    return f"{training_data(name, split)[1]}/manifest.csv"


def training_data(name, split):
    """(format, root) that vmp.datasets.index reads a dataset's split from for training."""
    if name in SYNTH_DATASETS:
        return "synthmotion", dataset_root(name)
    return "prepared", f"{RESULTS}/data/{name}/{split}"


def backbone_settings(backbone, key, dataset=None):
    """Global `key` settings, updated by the dataset's, then by the backbone's."""
    settings = dict(config[key])
    if dataset is not None:
        settings = nested_update(settings, config["datasets"].get(dataset, {}).get(key, {}))
    return nested_update(settings, config["backbones"][backbone].get(key, {}))


def pretrained_checkpoint(backbone):
    pretrain = config.get("pretrain")
    if not pretrain or not config["backbones"][backbone].get("pretrained", True):
        return []
    if backbone in pretrain.get("checkpoints", {}):
        return pretrain["checkpoints"][backbone]
    return f"{RESULTS}/pretrain/{backbone}/model.pt"


def train_parameters(backbone, cell=None):
    """Papermill parameters of one pre-training job (``cell`` None) or one cell (see notebooks/train.py)."""
    if cell is None:
        dataset, split, variant, lam, seeds = config["pretrain"]["dataset"], "1", "baseline", 0.0, [0]
        optim = nested_update(backbone_settings(backbone, "optim"), config["pretrain"].get("optim", {}))
        fmt, root, pretrained = "synthmotion", dataset_root(dataset), None
        out_dirs = [f"{RESULTS}/pretrain/{backbone}"]
    else:
        dataset, split, _, variant, lam = cell.split("/")
        lam, seeds = float(lam.removeprefix("lambda~")), CELL_SEEDS[cell]
        optim = backbone_settings(backbone, "optim", dataset)
        fmt, root = training_data(dataset, split)
        out_dirs = [f"{RESULTS}/runs/{cell}/seed~{seed}" for seed in seeds]
        pretrained = pretrained_checkpoint(backbone) or None
    return json.dumps(
        {
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
            "clip": backbone_settings(backbone, "clip", dataset),
            "optim": optim,
            "model": config["backbones"][backbone].get("model", {}),
            "pretrained": pretrained,
            "threads": RES.get("threads", 1),
            "num_workers": RES.get("num_workers", 0),
            "cache_frames": fmt == "synthmotion",
            "accelerator": RES.get("accelerator", "auto"),
            "precision": RES.get("precision", "32-true"),
        }
    )


def all_outputs():
    return [
        f"{RESULTS}/tables/table1.csv",
        *(f"{RESULTS}/figures/{name}.png" for name in FIGURES),
        f"{RESULTS}/report/index.html",
    ]


FIGURES = [
    "fig1_motion_representations",
    "fig3_power_normalisation",
    "fig4_slope_shift",
    "fig5_attention",
    "fig6_regularisation",
]


def run_files(kind):
    return [f"{run_dir(run)}/{name}" for run in RUNS if run[kind] for name in ("metrics.json", "history.csv", "model.pt")]


def executed_notebooks():
    notebooks = [f"{RESULTS}/runs/{cell}/train.ipynb" for cell in CELL_SEEDS]
    notebooks += [f"{RESULTS}/tables/table1.ipynb", f"{RESULTS}/figures/figures.ipynb"]
    notebooks += [f"{RESULTS}/data/{name}/synth_data.ipynb" for name in SYNTH_DATASETS]
    notebooks += [
        f"{RESULTS}/data/{name}/{split}/prepare_data.ipynb"
        for name, d in config["datasets"].items()
        if d["format"] != "synthmotion"
        for split in d["splits"]
    ]
    if config.get("pretrain") and "scene" in config["pretrain"]:
        notebooks += [f"{RESULTS}/pretrain/{b}/train.ipynb" for b in config["backbones"] if pretrained_checkpoint(b)]
    return notebooks
