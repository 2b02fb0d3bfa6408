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
# t-interval and a verdict (gain / loss / n.s.); the verdict pools the replicates per backbone and
# variant and, clustered by replicate, overall (`vmp.analysis.verdict`); the strata split it by the prompt
# layer's state at the start, and the prompt states show what every layer did while training.
# Backbones trained from scratch are set beside their pre-trained twins.

# %% tags=["parameters"]
metrics = []
published = "config/published/table1.csv"
paper_names = {"datasets": {}, "backbones": {}, "pretrain": {}}
out_prefix = "results/tables/table1"
states_prefix = "results/tables/prompt_states"
scratch_pairs = {}  # backbone trained from scratch -> its pre-trained counterpart (same arch)

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

import pandas as pd
from IPython.display import display

from vmp.analysis.tables import (
    attach_published,
    display_pretraining,
    display_table,
    load_runs,
    pretraining_comparison,
    summarise,
    write_pretraining,
    write_table1,
)
from vmp.analysis.verdict import (
    display_strata,
    display_verdict,
    paired_runs,
    prompt_states,
    start_strata,
    summarise_states,
    verdict_summary,
    write_states,
    write_strata,
    write_verdict,
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
# ## Verdict
# Per backbone and variant: the mean over its replicates (every scene) of +VMP minus the baseline
# of the same replicate, and for the layers started or placed otherwise minus the paper-start
# sigmoid layer; overall per family, clustered by replicate. Holm over the variants compared.

# %%
pairs = paired_runs(runs)
summary = verdict_summary(pairs)
written += write_verdict(summary, out_prefix)
display_verdict(summary)

# %% [markdown]
# ## By the prompt layer's state at the start (closed / between / open)

# %%
strata = start_strata(pairs)
written += write_strata(strata, out_prefix)
display_strata(strata)

# %% [markdown]
# ## What every prompt layer did: start and end state, how far b moved

# %%
layers = prompt_states(metrics)
states = summarise_states(layers)
written += write_states(layers, states, states_prefix)
states

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
