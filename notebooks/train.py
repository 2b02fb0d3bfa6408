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
# # Training runs of one cell
# Pre-training (source set, no prompts) or fine-tuning (one cell of Table 1: dataset, split,
# backbone, variant, lambda) of one backbone with loss = CE + lambda * V, once per seed, each seed
# into its own run folder. All logic lives in `vmp.training.run.train_run`; this notebook is the
# cell's record. Rerun it alone: `python -m vmp.workflow params <this notebook> <new folder>`
# writes its parameters to <new folder>/params.yaml and prints the papermill command (README).

# %% tags=["parameters"]
# The default profile's recipe for one of its cells (config/config.yaml; tests/test_config.py
# checks these values against what the workflow passes for this cell).
dataset = "synth_gym"
dataset_format = "synthmotion"
data_root = "data/synthmotion/synth_gym"
split = "1"
backbone = "x3d_tiny"
arch = "x3d_tiny"
variant = "vmp"
lambda_reg = 2.5
seeds = [0, 1, 2]
out_dirs = [
    "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~0",
    "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~1",
    "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~2",
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
confusion = "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/confusion.png"

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
for seed, out_dir in zip(seeds, out_dirs, strict=True):
    results[seed] = train_run(
        dataset=dataset,
        dataset_format=dataset_format,
        data_root=data_root,
        split=str(split),
        backbone=backbone,
        arch=arch,
        variant=variant,
        lambda_reg=float(lambda_reg),
        seed=int(seed),
        out_dir=out_dir,
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
    )

# %% [markdown]
# ## Test metrics (multi-view), one column per seed

# %%
pd.DataFrame(
    {seed: {k: v for k, v in m.items() if not isinstance(v, dict)} for seed, m in results.items()}
)

# %% [markdown]
# ## Learning curves and learned prompt parameters

# %%
history = pd.concat(
    {
        seed: pd.read_csv(f"{out_dir}/history.csv")
        for seed, out_dir in zip(seeds, out_dirs, strict=True)
    },
    names=["seed"],
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
    history.pivot(index="epoch", columns="seed", values=column).plot(
        ax=ax, title=column, marker="o", legend=column == curves[0]
    )
plt.show()

# %% [markdown]
# ## Test confusion matrix, every seed's videos together
# Rows are true classes in percent of their videos; the diagonal is each class's accuracy
# (per seed in `seed~<s>/per_class.csv`; every test video's scores in `seed~<s>/test_scores.csv`).

# %%
if confusion:
    from IPython.display import Image, display

    from vmp.analysis.figures import confusion_figure, save_figure

    figure = confusion_figure(out_dirs, title=f"{dataset} split {split}, {backbone} {variant}")
    (png,) = save_figure(figure, confusion.removesuffix(".png"), formats=("png",))
    display(Image(filename=str(png)))
