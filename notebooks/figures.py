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
# # Figures 1, 3, 4, 5 and 6
# The paper's figures from finished training runs and each dataset's test clips. All logic lives
# in `vmp.analysis.figures`; every plotted number is read from the runs' `history.csv`, `metrics.json`
# and `model.pt`. Rerun alone with `papermill notebooks/figures.ipynb out.ipynb -f params.yaml`.

# %% tags=["parameters"]
table_runs = []  # run directories of Table 1
ablation_runs = []  # run directories of the lambda ablation (same dataset/backbone, lambdas differ)
clip_sources = {}  # dataset name -> {"format", "root", "split"} whose test clips are shown
clip = {"num_frames": 8, "sampling_rate": 2, "crop_size": 48, "test_scale": 48, "hflip": False}
out_dir = "results/figures"

# %%
from vmp.workflow.logs import prepare_job

prepare_job()  # first: stop with its Snakemake job, quiet known warnings

from pathlib import Path

import torch
from IPython.display import Image, display

from vmp.analysis import figures
from vmp.models import prompt_layer

torch.set_num_threads(1)
out = Path(out_dir)
clips = {
    name: figures.sample_clip(src["root"], src["split"], clip, dataset_format=src["format"])
    for name, src in clip_sources.items()
}


def show(fig, name):
    """Write the figure as PNG and PDF and display the PNG that was written."""
    png, _ = figures.save_figure(fig, out / name)
    display(Image(filename=str(png)))


# %% [markdown]
# ## Fig. 1: frame, frame differencing, time-colour reordering, Taylor video

# %%
show(
    figures.fig1_motion_representations(next(iter(clips.values()), None)),
    "fig1_motion_representations",
)

# %% [markdown]
# ## Fig. 3: learnable power normalisation, a(m), b(n), f over D and m

# %%
show(figures.fig3_power_normalisation(), "fig3_power_normalisation")

# %% [markdown]
# ## Fig. 4: slope and shift against epochs per lambda; learned (a, b) per dataset and backbone

# %%
show(figures.fig4_slope_shift(ablation_runs, table_runs), "fig4_slope_shift")

# %% [markdown]
# ## How the prompt layers moved from their start (Fig. 4-style; not in the paper)
# Shift b and a static pixel's gain per epoch of every Table 1 layer, from its start (epoch 0),
# coloured by its state at the start; the layers started at n = -2 and the gated ones apart.

# %%
show(figures.fig4_trajectories(table_runs), "fig4_trajectories")

# %% [markdown]
# ## Fig. 5: frames, differences, attention maps and prompts (one test clip per dataset)
# On SynthMotion clips the attention map is outlined where the class object is in frame t or t+1.

# %%
examples = []
for name, video in clips.items():
    run = figures.pick_table_run(table_runs, name)
    if run is not None:
        layer = prompt_layer(figures.load_run_model(run))
        src = clip_sources[name]
        mask = (
            figures.sample_object_mask(src["root"], src["split"], clip)
            if src["format"] == "synthmotion"
            else None
        )
        title = f"{name} ({figures.load_run(run)[0]['settings']['backbone']})"
        examples.append((title, video, layer, mask))
show(figures.fig5_attention(examples), "fig5_attention")

# %% [markdown]
# ## Fig. 6: attention and prompts without and with the temporal variation regulariser

# %%
pair = figures.pick_ablation_pair(ablation_runs)
video = layers = mask = None
labels = ("lambda = 0", "lambda = 2.5")
if pair is not None:
    settings = [figures.load_run(run)[0]["settings"] for run in pair]
    video = clips.get(settings[0]["dataset"])
    layers = [prompt_layer(figures.load_run_model(run)) for run in pair]
    labels = tuple(f"lambda = {s['lambda']:g}" for s in settings)
    src = clip_sources.get(settings[0]["dataset"], {})
    if src.get("format") == "synthmotion":
        mask = figures.sample_object_mask(src["root"], src["split"], clip)
show(
    figures.fig6_regularisation(video, *(layers or (None, None)), labels=labels, mask=mask),
    "fig6_regularisation",
)
