import functools
import json
import re
import sys
from pathlib import Path

from vmp.data.sources import DECODED_FRAMES, stale_decoded_cache, video_fingerprint, video_folders
from vmp.fetch import profile_downloads
from vmp.names import VARIANTS
from vmp.training import record as vmp_runs
from vmp.training.record import cell_path, keep_finished, set_aside_damaged
from vmp.workflow import config as vmp_config
from vmp.workflow.config import ConfigError, check_config, select_part, validate_config
from vmp.workflow.matrix import job_of, run_matrix, train_parameters, training_jobs
from vmp.workflow.preflight import preflight

validate_config(config, f"{workflow.basedir}/config/schema.yaml")
# `only` (a second --configfile) keeps part of the protocol: every rule below sees that part.
if config.get("only"):
    _part = select_part(config)
    config.clear()
    config.update(_part)
# `fetch: true` (config/paper.yaml): the checkpoints and datasets still missing that vmp.fetch can
# download, per catalogue item; the `fetch` checkpoint (rules/data.smk) downloads each before the
# jobs that read it. Nothing is planned once everything is in place.
FETCHES = profile_downloads(config) if config.get("fetch") else {}
check_config(config, fetched=[path for plan in FETCHES.values() for path in plan["provides"]])

RESULTS = config["results"]
DATA_ROOT = config["data_root"]
RES = config["resources"]
SYNTH_DATASETS = vmp_config.synth_datasets(config)
RUNS = run_matrix(config)
# Real datasets' lists and videos and Kinetics checkpoints are checked now, before any job
# (vmp.workflow.preflight; cached, so a no-op parse probes nothing); what a fetch job downloads
# is checked by that job. No job lists the check as an input: checking again never retrains.
# A dry run plans on and prints what would stop the real run.
if workflow.is_main_process:
    try:
        _checked = preflight(
            config,
            f"{RESULTS}/checks/inputs.json",
            pending=[path for plan in FETCHES.values() for path in plan["provides"]],
        )
    except ConfigError as err:
        if not workflow.output_settings.dryrun:
            raise
        _checked = f"pre-flight, which stops a real run here: {err}"
    if _checked:
        print(_checked, file=sys.stderr)

# Every notebook job runs its notebook the same way: papermill, the parameters as one YAML/JSON
# string (`{params.parameters}`), the log beside it. Rerun one alone with `papermill ... -f`.
# The job's shell names its Snakemake ($PPID), so the kernel stops (and writes nothing) if
# Snakemake is gone, even if it died before the kernel started (vmp.training.supervision). A failed
# job prints its one-line cause; the notebook and the log keep the whole traceback.
RUN_NOTEBOOK = (
    "VMP_SNAKEMAKE_PID=$PPID papermill --log-output {input.notebook:q} {output.notebook:q} "
    "-k python3 -y {params.parameters:q} > {log:q} 2>&1"
)
FAILURE_CAUSE = "python -m vmp.workflow.logs cause {log:q} >&2"
PAPERMILL = f"{RUN_NOTEBOOK} || {{{{ {FAILURE_CAUSE}; exit 1; }}}}"


def after_fetch(items):
    """Wait for the `fetch` jobs of ``items`` (planned ones only): an input function calling this
    is evaluated again once they have run, so it sees the downloaded files."""
    for item in items:
        if item in FETCHES:
            checkpoints.fetch.get(item=item)


def after_dataset_fetch(name):
    """Wait for the `fetch` job of dataset ``name``'s catalogue item, when the profile fetches it."""
    after_fetch([item for item, plan in FETCHES.items() if name in plan["datasets"]])


def alternation(values):
    return "|".join(sorted({str(v) for v in values})) or "^$"


wildcard_constraints:
    dataset=alternation(list(config["datasets"]) + SYNTH_DATASETS),
    backbone=alternation(config["backbones"]),
    variant=alternation(VARIANTS),
    split="[A-Za-z0-9_]+",
    lam=r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",
    seed="[0-9]+",
    notebook="[a-z_0-9]+",
    item=alternation(FETCHES),


def notebook_template(name):
    """The notebook papermill executes, converted from notebooks/<name>.py."""
    return f"{RESULTS}/notebooks/{name}.ipynb"


def cell_dir(cell):
    """results/runs/<dataset>/<split>/<backbone>/<variant>/lambda~<l>: one cell of Table 1."""
    return vmp_runs.cell_dir(RESULTS, cell)


def seed_dir(cell, seed):
    """<cell_dir>/seed~<s>: one run of a cell."""
    return vmp_runs.seed_dir(RESULTS, cell, seed)


def pretrain_dir(backbone):
    """results/pretrain/<backbone>: a backbone's pre-training run."""
    return vmp_config.pretrain_dir(config, backbone)


def run_dir(run):
    """The folder of a run of vmp.workflow.matrix.run_matrix."""
    return seed_dir(cell_path(run), run["seed"])


# A run record that is not complete JSON, or whose files differ from what the run wrote (size,
# or checksum where size or mtime changed), is set aside (into <run>/damaged/) so that its job
# runs again, before anything that reads it. Finished runs without a kept copy get one.
RUN_FOLDERS = [run_dir(run) for run in RUNS] + [pretrain_dir(b) for b in config["backbones"]]
if workflow.is_main_process:
    for line in set_aside_damaged(RUN_FOLDERS, dry_run=workflow.output_settings.dryrun):
        print(line, file=sys.stderr)
    if not workflow.output_settings.dryrun:
        keep_finished(RUN_FOLDERS)
    # A fetch record whose item is planned again (a download was removed) is wrong: it would
    # mark the fetch as done. It is only the workflow's bookkeeping, so a dry run drops it too.
    for item in FETCHES:
        stale = Path(f"{RESULTS}/fetched/{item}.json")
        if stale.exists():
            print(f"{stale}: files of {item} are missing again; dropped, so a job that needs them fetches them", file=sys.stderr)
            stale.unlink()


# A scene's decoded frames made before one of its videos changed are removed (a derived cache:
# decode_cache rebuilds it), and become a target like a damaged record, so what reads them follows.
STALE_CACHES = []
if workflow.is_main_process:
    for name in SYNTH_DATASETS:
        root = vmp_config.dataset_root(config, name)
        if why := stale_decoded_cache(root):
            done = "would be rebuilt" if workflow.output_settings.dryrun else "rebuilding it"
            print(f"decoded frames of {name}: {why}; {done}", file=sys.stderr)
            if not workflow.output_settings.dryrun:
                Path(root, DECODED_FRAMES).unlink(missing_ok=True)
                STALE_CACHES.append(f"{root}/{DECODED_FRAMES}")

# Snakemake does not rerun the job of a missing intermediate file whose readers are up to date;
# a run set aside is therefore a target of its own, so its job runs and what reads it follows.
SET_ASIDE = [
    folder
    for folder in RUN_FOLDERS
    if Path(folder, "damaged").is_dir() and not Path(folder, "metrics.json").exists()
]

# One training job per Table 1 cell (dataset, split, backbone: baseline and every variant, each
# seed) trains its runs in turn in one kernel; the ablation's and the placement comparison's own
# runs likewise per (dataset, split, backbone). Each job is a rule of its own (its runs differ).
JOBS = training_jobs(RUNS)


def dataset_root(name):
    return vmp_config.dataset_root(config, name)


def dataset_lists(wildcards):
    """The list and annotation files a real dataset's split is indexed from."""
    after_dataset_fetch(wildcards.dataset)
    return vmp_config.dataset_list_files(config, wildcards.dataset, wildcards.split)


def dataset_root_input(wildcards):
    after_dataset_fetch(wildcards.dataset)
    return dataset_root(wildcards.dataset)


def dataset_videos(wildcards):
    """prepare_data's fingerprint param (computed once the dataset's fetch has run)."""
    after_dataset_fetch(wildcards.dataset)
    return videos_fingerprint(wildcards.dataset)


@functools.cache
def videos_fingerprint(name):
    """Changes when a video of the dataset is added, removed, replaced or emptied (size, mtime)."""
    dataset = config["datasets"][name]
    return video_fingerprint(video_folders(dataset["format"], dataset_root(name), **dataset.get("paths", {})))


def data_ready_file(name, split="1"):
    """The manifest training indexes: generated (SynthMotion) or prepared (real datasets)."""
    return f"{training_data(name, split)[1]}/manifest.csv"


def training_inputs(name, split="1"):
    """What a training job reads: the manifest, and a SynthMotion scene's decoded frames."""
    fmt, root = training_data(name, split)
    return [f"{root}/manifest.csv"] + ([f"{root}/decoded.npy"] if fmt == "synthmotion" else [])


def training_data(name, split):
    """(format, root) that vmp.data.official.index reads a dataset's split from for training."""
    return vmp_config.training_data(config, name, split)


def pretrained_checkpoint(backbone):
    """The checkpoint a backbone is fine-tuned from, or no input ([]) when it starts from scratch."""
    return vmp_config.pretrained_checkpoint(config, backbone) or []


# Input and parameter functions of rules/train.smk.
def get_pretrain_data(wildcards):
    return training_inputs(config["pretrain"]["dataset"])


def get_pretrain_parameters(wildcards):
    return json.dumps(train_parameters(config, wildcards.backbone))


def job_data(job):
    """What a training job's runs read (its dataset and split)."""
    return training_inputs(JOBS[job][0]["dataset"], JOBS[job][0]["split"])


def job_pretrained(job):
    """The checkpoint a job's backbone starts from (an input function: it may wait for a fetch)."""

    def pretrained(wildcards):
        path = pretrained_checkpoint(JOBS[job][0]["backbone"])
        if path in FETCHES.get("checkpoints", {}).get("provides", []):
            after_fetch(["checkpoints"])
        return path

    return pretrained


def job_parameters(job):
    return json.dumps(train_parameters(config, JOBS[job][0]["backbone"], job))


# Table 1's rows: its cells and the layer-placement comparison's.
TABLE_RUNS = [run for run in RUNS if run["table"] or run["placement"]]
# +VMP runs of Table 1 and the ablation on SynthMotion scenes, whose attention is scored against
# the scenes' ground truth.
DEFAULT_RUNS = [run for run in RUNS if run["table"] or run["placement"] or run["ablation"]]
ATTENTION_RUNS = [run for run in DEFAULT_RUNS if run["variant"] != "baseline" and run["dataset"] in SYNTH_DATASETS]

# The optional prompt-function comparison: its runs and their sigmoid partners of Table 1.
PROMPT_FUNCTIONS = config.get("prompt_functions") or {}
PROMPT_FUNCTION_RUNS = [
    run
    for run in RUNS
    if run["prompt_functions"]
    or (run["table"] and run["backbone"] == PROMPT_FUNCTIONS.get("backbone") and run["variant"] == "vmp")
]


def all_outputs():
    return [
        *(f"{folder}/{name}" for folder in SET_ASIDE for name in ("metrics.json", "model.pt")),
        *STALE_CACHES,
        f"{RESULTS}/tables/table1.csv",
        *([f"{RESULTS}/tables/attention.csv"] if ATTENTION_RUNS else []),
        *(f"{RESULTS}/figures/{name}.png" for name in FIGURES),
        f"{RESULTS}/report/index.html",
    ]


FIGURES = [
    "fig1_motion_representations",
    "fig3_power_normalisation",
    "fig4_slope_shift",
    "fig4_trajectories",
    "fig5_attention",
    "fig6_regularisation",
]


def run_files(runs):
    return [f"{run_dir(run)}/{name}" for run in runs for name in ("metrics.json", "history.csv", "model.pt")]


def executed_notebooks():
    notebooks = [f"{RESULTS}/runs/{job}/train.ipynb" for job in dict.fromkeys(map(job_of, DEFAULT_RUNS))]
    notebooks += [f"{RESULTS}/tables/table1.ipynb", f"{RESULTS}/figures/figures.ipynb"]
    notebooks += [f"{RESULTS}/tables/attention.ipynb"] if ATTENTION_RUNS else []
    notebooks += [f"{RESULTS}/data/{name}/synth_data.ipynb" for name in SYNTH_DATASETS]
    notebooks += [
        f"{RESULTS}/data/{name}/{split}/prepare_data.ipynb"
        for name, d in config["datasets"].items()
        if d["format"] != "synthmotion"
        for split in d["splits"]
    ]
    if config.get("pretrain") and "scene" in config["pretrain"]:
        notebooks += [f"{RESULTS}/pretrain/{b}/train.ipynb" for b in config["backbones"] if pretrained_checkpoint(b)]
    return notebooks


def get_table1_parameters(wildcards, input, output):
    """Papermill parameters of notebooks/table1.py."""
    return json.dumps(
        {
            "metrics": list(input.metrics),
            "published": input.published,
            "paper_names": {
                "datasets": {k: v.get("paper") for k, v in config["datasets"].items()},
                "backbones": {k: v.get("paper") for k, v in config["backbones"].items()},
                "pretrain": {k: v.get("paper_pretrain", "k400") for k, v in config["backbones"].items()},
            },
            "out_prefix": str(Path(output.csv).with_suffix("")),
            "states_prefix": str(Path(output.states_csv).with_suffix("")),
            "scratch_pairs": {
                name: backbone["arch"]
                for name, backbone in config["backbones"].items()
                if backbone.get("pretrained", True) is False and backbone.get("arch") in config["backbones"]
            },
        }
    )


def get_attention_parameters(wildcards):
    """Papermill parameters of notebooks/attention.py."""
    return json.dumps(
        {
            "runs": {run_dir(run): dataset_root(run["dataset"]) for run in ATTENTION_RUNS},
            "out_prefix": f"{RESULTS}/tables/attention",
        }
    )


def get_prompt_functions_parameters(wildcards):
    """Papermill parameters of notebooks/prompt_functions.py."""
    return json.dumps(
        {
            "runs": {
                run_dir(run): dataset_root(run["dataset"]) if run["dataset"] in SYNTH_DATASETS else None
                for run in PROMPT_FUNCTION_RUNS
            },
            "out_prefix": f"{RESULTS}/tables/prompt_functions",
        }
    )


def get_figures_parameters(wildcards):
    """Papermill parameters of notebooks/figures.py."""
    return json.dumps(
        {
            "table_runs": [run_dir(run) for run in TABLE_RUNS],
            "ablation_runs": [run_dir(run) for run in RUNS if run["ablation"]],
            "clip_sources": {
                name: dict(zip(("format", "root"), training_data(name, spec["splits"][0])), split=spec["splits"][0])
                for name, spec in config["datasets"].items()
            },
            # Fig. 1's Taylor video needs at least 6 frames, whatever the training clips hold.
            "clip": config["clip"] | {"num_frames": max(8, config["clip"]["num_frames"])},
            "out_dir": f"{RESULTS}/figures",
        }
    )
