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
# # Dataset preparation
# Validates a real dataset's tree in its official layout, cuts segment clips where the protocol
# needs them, probes every video once and writes the manifest training reads
# (`vmp.data.official.prepare`). Missing and unreadable videos are listed by file and left out.

# %% tags=["parameters"]
dataset_format = "hmdb51"
root = "data/hmdb51"
split = "1"
paths = {}
out_dir = "results/data/hmdb51/1"
workers = 1
short_side = None

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

from pathlib import Path

import pandas as pd
from IPython.display import Markdown

from vmp.data.official import prepare

report = prepare(
    dataset_format, root, split, out_dir, workers=workers, short_side=short_side, **paths
)
Markdown((Path(out_dir) / "prepare_report.md").read_text())

# %% [markdown]
# ## Readable videos per class and subset

# %%
manifest = pd.read_csv(Path(out_dir) / "manifest.csv")
manifest.pivot_table(
    index="class_name", columns="subset", values="path", aggfunc="count", fill_value=0
)
