# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training runs of one job
# Pre-training (source set, no prompts) or fine-tuning: one cell of Table 1 (dataset, split,
# backbone: the baseline and every +VMP variant, each seed), or the ablation's or the placement
# comparison's runs of it. Each run (variant, lambda, seed) trains with loss = CE + lambda * V into
# its own folder; a run whose folder keeps a finished record of the same settings and data is
# restored, not trained again (vmp.training.record). All logic lives in
# `vmp.training.run.train_run`; this notebook is the job's record. Rerun it alone:
# `python -m vmp.workflow params <this notebook> <new folder>` (docs/rerun.md).

# %% tags=["parameters"]
# The default profile's recipe for one of its jobs, the placement comparison's runs of
# synth_gym / x3d_tiny (config/config.yaml; tests/test_config.py checks these values against what
# the workflow passes for this job).
dataset = "synth_gym"
dataset_format = "synthmotion"
data_root = "data/synthmotion/synth_gym"
split = "1"
backbone = "x3d_tiny"
arch = "x3d_tiny"
runs = [
    {
        "variant": "vmp_normalized",
        "lambda_reg": 2.5,
        "seed": 0,
        "out_dir": "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~0",
    },
    {
        "variant": "vmp_normalized",
        "lambda_reg": 2.5,
        "seed": 1,
        "out_dir": "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~1",
    },
    {
        "variant": "vmp_normalized",
        "lambda_reg": 2.5,
        "seed": 2,
        "out_dir": "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~2",
    },
]
clip = {
    "num_frames": 8,
    "sampling_rate": 1,
    "crop_size": 32,
    "train_scale": [32, 32],
    "test_scale": 32,
    "hflip": False,
    "num_temporal_clips": 1,
    "num_spatial_crops": 1,
}
optim = {
    "optimizer": "adamw",
    "epochs": 5,
    "batch_size": 32,
    "lr": 0.003,
    "momentum": 0.9,
    "weight_decay": 0.05,
    "warmup_epochs": 1,
    "prompt_lr": 0.05,
    "prompt_lr_mult": 1.0,
    "prompt_weight_decay": 0.0,
    "variation_reduction": "mean",
}
model = {}
pretrained = "results/pretrain/x3d_tiny/model.pt"
threads = 1
num_workers = 0
cache_frames = True
accelerator = "cpu"
devices = 1
precision = "32-true"
log_every_steps = 0
deterministic = True
sync_bn = False
confusions = {
    "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/confusion.png": [
        "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~0",
        "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~1",
        "results/runs/synth_gym/1/x3d_tiny/vmp_normalized/lambda~2.5/seed~2",
    ]
}

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

import logging
import sys

import matplotlib.pyplot as plt
import pandas as pd

from vmp.training.run import train_run

# Progress lines on stdout: the notebook keeps stderr (red) for warnings.
logging.basicConfig(
    level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout, force=True
)
results = {}
for run in runs:
    results[run["out_dir"]] = train_run(
        dataset=dataset,
        dataset_format=dataset_format,
        data_root=data_root,
        split=str(split),
        backbone=backbone,
        arch=arch,
        variant=run["variant"],
        lambda_reg=float(run["lambda_reg"]),
        seed=int(run["seed"]),
        out_dir=run["out_dir"],
        clip=clip,
        optim=optim,
        model=model,
        pretrained=pretrained,
        threads=threads,
        num_workers=num_workers,
        cache_frames=cache_frames,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        progress_bar=False,
        log_every_steps=log_every_steps,
        deterministic=deterministic,
        sync_bn=sync_bn,
    )

# %% [markdown]
# ## Test metrics (multi-view), one column per run (variant, lambda, seed)

# %%
labels = {
    run["out_dir"]: f"{run['variant']} λ={run['lambda_reg']:g} seed {run['seed']}" for run in runs
}
pd.DataFrame(
    {
        labels[out_dir]: {k: v for k, v in m.items() if not isinstance(v, dict)}
        for out_dir, m in results.items()
    }
)

# %% [markdown]
# ## Learning curves and learned prompt parameters

# %%
history = pd.concat(
    {labels[out_dir]: pd.read_csv(f"{out_dir}/history.csv") for out_dir in results},
    names=["run"],
).reset_index(level=0)
history

# %%
curves = [
    c
    for c in ["train_loss", "train_top1", "val_top1", "slope", "shift", "train_variation"]
    if c in history
]
fig, axes = plt.subplots(1, len(curves), figsize=(3 * len(curves), 2.6), layout="constrained")
for ax, column in zip(axes, curves, strict=True):
    history.pivot(index="epoch", columns="run", values=column).plot(
        ax=ax, title=column, marker="o", legend=column == curves[0] and len(results) <= 6
    )
plt.show()

# %% [markdown]
# ## Test confusion matrices, one per variant and lambda, its seeds' videos together
# Rows are true classes in percent of their videos; the diagonal is each class's accuracy
# (per run in `seed~<s>/per_class.csv`; every test video's scores in `seed~<s>/test_scores.csv`).

# %%
if confusions:
    from IPython.display import Image, display

    from vmp.analysis.figures import confusion_figure, save_figure

for confusion, out_dirs in confusions.items():
    cell = next(run for run in runs if run["out_dir"] == out_dirs[0])
    title = f"{dataset} split {split}, {backbone} {cell['variant']} λ={cell['lambda_reg']:g}"
    (png,) = save_figure(
        confusion_figure(out_dirs, title=title), confusion.removesuffix(".png"), formats=("png",)
    )
    display(Image(filename=str(png)))
