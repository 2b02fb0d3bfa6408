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
# # Where the motion prompts look: attention against SynthMotion's ground truth
# For every +VMP run on a SynthMotion scene, the prompt layer's attention maps on the run's test
# clips are compared with the masks the scene generator drew: the share of attention mass on the
# class object's motion region (the object in frame t or t+1), on the distractors and on the
# background, precision and recall of the map thresholded at 0.5 against that region, and the
# map's temporal variation (Eq. 6). Logic: `vmp.analysis.attention`.

# %% tags=["parameters"]
runs = {}  # +VMP run folder -> the SynthMotion scene folder it trained on (videos and masks)
out_prefix = "results/tables/attention"

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

import pandas as pd
from IPython.display import Markdown, display

from vmp.analysis.attention import score_run, summarise, write_tables

rows = pd.DataFrame([row for run, root in runs.items() for row in score_run(run, root)])
summary = summarise(rows)
write_tables(rows, summary, out_prefix)

# %% [markdown]
# ## Per scene, backbone and variant (mean [95% t-interval] over replicates), then every lambda
# against lambda 0 where the profile has lambda-0 runs (the ablation)

# %%
display(Markdown(open(f"{out_prefix}.md").read()))

# %% [markdown]
# ## Every run

# %%
rows
