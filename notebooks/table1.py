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
# seeds, beside the published numbers of the real dataset and backbone each row stands for.

# %% tags=["parameters"]
metrics = []
published = "config/published/table1.csv"
paper_names = {"datasets": {}, "backbones": {}, "pretrain": {}}
out_prefix = "results/tables/table1"

# %%
import pandas as pd

from vmp.tables import attach_published, display_table, load_runs, summarise, write_table1

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
# ## Every run

# %%
runs.drop(columns="path")
