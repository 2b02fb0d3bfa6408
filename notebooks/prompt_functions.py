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
# # Prompt functions compared: the learnable sigmoid against the paper's alternatives (Fig. 3)
# One backbone's +VMP rows with each prompt function (config `prompt_functions`), on every target
# scene, each run paired with the sigmoid +VMP run of Table 1 with the same dataset, split and
# seed. Top-1 and the attention scores against SynthMotion's ground truth (see the attention
# notebook). Logic: `vmp.analysis.prompt_function_table`.

# %% tags=["parameters"]
runs = {}  # run folder (the alternatives and their sigmoid partners) -> its SynthMotion scene folder
out_prefix = "results/tables/prompt_functions"

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

from IPython.display import Markdown, display

from vmp.analysis.prompt_function_table import compare, score_runs, write_tables

rows = score_runs(runs)
summary = compare(rows)
write_tables(rows, summary, out_prefix)

# %% [markdown]
# ## Per scene and prompt function: mean (paired difference to the sigmoid [95% interval])

# %%
display(Markdown(open(f"{out_prefix}.md").read()))

# %% [markdown]
# ## Every run

# %%
rows
