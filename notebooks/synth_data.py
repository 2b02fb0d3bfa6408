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
# # SynthMotion scene
# Generates one scene of the embedded benchmark (`vmp.data.synth.generate`): mp4 clips whose class is
# defined only by motion, `manifest.csv`, and `decoded.npy` (every video decoded once, for the runs).

# %% tags=["parameters"]
root = "data/synthmotion/synth_gym"
scene = "synth_gym"
overrides = {}
seed = 0

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

import json
from pathlib import Path

import matplotlib.pyplot as plt

from vmp.data.synth import generate

manifest = generate(root, scene, seed=int(seed), **overrides)  # decode_cache decodes its videos
info = json.loads((Path(root) / "generation.json").read_text())
{k: info[k] for k in info if k != "config"}

# %% [markdown]
# ## Videos per class, split and subset

# %%
manifest.pivot_table(
    index="class_name", columns=["split", "subset"], values="path", aggfunc="count"
)

# %% [markdown]
# ## One video of each class (frames 0, 4, 8, 12)

# %%
from vmp.data.clips import decode_video

examples = manifest.drop_duplicates("class_name").sort_values("label")
fig, axes = plt.subplots(len(examples), 4, figsize=(6, 1.5 * len(examples)), squeeze=False)
for row, (_, item) in zip(axes, examples.iterrows(), strict=True):
    frames, _ = decode_video(Path(root) / item["path"])
    for ax, t in zip(row, (0, 4, 8, 12), strict=True):
        ax.imshow(frames[min(t, len(frames) - 1)])
        ax.set_axis_off()
    row[0].set_title(item["class_name"], fontsize=8, loc="left")
fig.tight_layout()
plt.show()
