import json
import os
from pathlib import Path

from snakemake.utils import validate

from vmp.workflow import check_config, nested_update, run_matrix
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
    parts = [run["dataset"], run["split"], run["backbone"], run["variant"]]
    parts += [f"lambda~{run['lambda']:g}", f"seed~{run['seed']}"]
    return os.path.join(RESULTS, "runs", *parts)


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


def train_parameters(wildcards, pretraining=False):
    """Papermill parameters of one training run (see notebooks/train.py)."""
    if pretraining:
        dataset, split, variant, lam, seed = config["pretrain"]["dataset"], "1", "baseline", 0.0, 0
        optim = nested_update(backbone_settings(wildcards.backbone, "optim"), config["pretrain"].get("optim", {}))
        fmt, root, out, pretrained = "synthmotion", dataset_root(dataset), f"{RESULTS}/pretrain/{wildcards.backbone}", None
    else:
        dataset, split, variant = wildcards.dataset, wildcards.split, wildcards.variant
        lam, seed = float(wildcards.lam), int(wildcards.seed)
        optim = backbone_settings(wildcards.backbone, "optim", dataset)
        fmt, root = training_data(dataset, split)
        out = run_dir(dict(dataset=dataset, split=split, backbone=wildcards.backbone, variant=variant, **{"lambda": lam}, seed=seed))
        pretrained = pretrained_checkpoint(wildcards.backbone) or None
    return json.dumps(
        {
            "dataset": dataset,
            "dataset_format": fmt,
            "data_root": root,
            "split": split,
            "backbone": wildcards.backbone,
            "arch": config["backbones"][wildcards.backbone].get("arch", wildcards.backbone),
            "variant": variant,
            "lambda_reg": lam,
            "seed": seed,
            "out_dir": out,
            "clip": backbone_settings(wildcards.backbone, "clip", dataset),
            "optim": optim,
            "model": config["backbones"][wildcards.backbone].get("model", {}),
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
    notebooks = [f"{run_dir(run)}/train.ipynb" for run in RUNS]
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
