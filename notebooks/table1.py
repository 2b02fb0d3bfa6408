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
# # Table 1
# Top-1 / top-5 / mAP of every backbone with and without the motion prompt layer, mean ± std over
# seeds, beside the published numbers of the real dataset and backbone each row stands for. Each
# +VMP row also has its paired difference to the baseline (same split and seed) with a 95%
# t-interval and a verdict (gain / loss / n.s.); the verdict summary pools the cells per backbone,
# and backbones trained from scratch are set beside their pre-trained twins.

# %% tags=["parameters"]
metrics = []
published = "config/published/table1.csv"
paper_names = {"datasets": {}, "backbones": {}, "pretrain": {}}
out_prefix = "results/tables/table1"
scratch_pairs = {}  # backbone trained from scratch -> its pre-trained counterpart (same arch)

# %%
from vmp.logs import quiet_known_warnings

quiet_known_warnings()  # before the libraries that warn at import

import pandas as pd
from IPython.display import display

from vmp.tables import (
    attach_published,
    display_pretraining,
    display_table,
    display_verdict_summary,
    load_runs,
    pretraining_comparison,
    summarise,
    verdict_summary,
    write_pretraining,
    write_table1,
    write_verdict_summary,
)

runs = load_runs(metrics)
table = attach_published(
    summarise(runs),
    pd.read_csv(published, dtype={"split": str}),
    paper_names["datasets"],
    paper_names["backbones"],
    paper_names.get("pretrain"),
)
written = write_table1(table, out_prefix)
display_table(table)

# %% [markdown]
# ## Verdict summary
# One cell per (dataset, backbone, +VMP variant), the `mean` split for multi-split datasets:
# mean paired difference over cells with a t-interval over the cell means (approximate: cells
# share data and pre-trained checkpoints) and the number of cells with a significant gain / loss.

# %%
summary = verdict_summary(table)
written += write_verdict_summary(summary, out_prefix)
display_verdict_summary(summary)

# %% [markdown]
# ## Pre-trained vs from scratch
# Written only when `scratch_pairs` is non-empty; otherwise the files say why there is no table.

# %%
pretraining = pretraining_comparison(table, scratch_pairs)
if scratch_pairs:
    reason = "no dataset has Table 1 runs of both backbones of " + ", ".join(
        f"{scratch} / {pretrained}" for scratch, pretrained in scratch_pairs.items()
    )
else:
    reason = "no backbone of this profile is trained from scratch (scratch_pairs is empty)"
written += write_pretraining(pretraining, out_prefix, empty_reason=reason)
if pretraining.empty:
    print(f"No pre-training comparison: {reason}.")
else:
    display(display_pretraining(pretraining))

# %% [markdown]
# ## Every run

# %%
runs.drop(columns="path")
