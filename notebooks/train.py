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
# # Training run
# Pre-training (source set, no prompts) or fine-tuning (one cell of Table 1) of one backbone,
# with loss = CE + lambda * V. All logic lives in `vmp.experiment.train_run`; this notebook is the
# run's record. Rerun it alone with `papermill notebooks/train.ipynb out.ipynb -f params.yaml`.

# %% tags=["parameters"]
dataset = "synth_gym"
dataset_format = "synthmotion"
data_root = "data/synthmotion/synth_gym"
split = "1"
backbone = "x3d_tiny"
arch = None
variant = "vmp"
lambda_reg = 2.5
seed = 0
out_dir = "results/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~0"
clip = {"num_frames": 8, "sampling_rate": 2, "crop_size": 48, "hflip": False}
optim = {"epochs": 8, "batch_size": 16, "lr": 0.05}
model = {}
pretrained = None
threads = 1
num_workers = 0
cache_frames = False
accelerator = "cpu"
precision = "32-true"

# %%
import logging

import pandas as pd

from vmp.experiment import train_run

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
metrics = train_run(
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
    precision=precision,
    progress_bar=False,
)

# %% [markdown]
# ## Test metrics (multi-view)

# %%
pd.Series({k: v for k, v in metrics.items() if not isinstance(v, dict)}).to_frame("value")

# %% [markdown]
# ## Learning curves and learned prompt parameters

# %%
history = pd.read_csv(f"{out_dir}/history.csv")
history

# %%
curves = [
    c
    for c in ["train_loss", "train_top1", "val_top1", "slope", "shift", "train_variation"]
    if c in history
]
history.plot(
    x="epoch", y=curves, subplots=True, layout=(2, 3), figsize=(12, 5), legend=False, title=curves
)
