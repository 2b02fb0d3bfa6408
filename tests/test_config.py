"""The configuration: torch-free validation, profile names, one recipe, and the rerun commands."""

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from snakemake.utils import validate

from vmp import names
from vmp.workflow.commands import injected_parameters
from vmp.workflow.config import ConfigError, check_config, nested_update
from vmp.workflow.matrix import train_parameters

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"
DEFAULT_JOB = "synth_gym/1/x3d_tiny/placement"  # the training job of notebooks/train.py's defaults


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


# --- names known without torch ---------------------------------------------------------------


def test_names_equal_the_real_registry_scenes_and_formats():
    from vmp.data.official import SOURCES
    from vmp.data.synth import SCENES
    from vmp.models import list_models, list_variants, sigmoid_variant
    from vmp.models.registry import get_entry

    assert sorted(names.MODELS) == list_models()
    for model, pathways in names.MODELS.items():
        assert pathways == get_entry(model).pathways, model
        assert names.variants(model) == list_variants(model), model
        assert names.sigmoid_variant(model) == sigmoid_variant(model), model
    assert set(names.PAPER_VARIANTS) | set(names.SIGMOID_ALTERNATIVES) | {"baseline"} | set(
        names.PROMPT_FUNCTION_VARIANTS
    ) == set(names.VARIANTS)
    assert set(names.VARIANTS) == {v for m in names.MODELS for v in list_variants(m)}
    assert set(names.SCENES) == set(SCENES)
    assert set(names.DATASET_FORMATS) == set(SOURCES) - {"prepared"}


def test_schema_enums_equal_the_names():
    schema = yaml.safe_load(SCHEMA.read_text())
    dataset = schema["properties"]["datasets"]["additionalProperties"]["properties"]
    assert dataset["format"]["enum"] == list(names.DATASET_FORMATS)
    backbone = schema["properties"]["backbones"]["additionalProperties"]["properties"]
    assert backbone["variants"]["items"]["enum"] == list(names.VARIANTS)


def parse_time_imports() -> list[str]:
    """The top-level import lines of the Snakefile and rules/*.smk (run at every parse)."""
    lines = []
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        lines += [ln for ln in path.read_text().splitlines() if re.match(r"(import|from) \S", ln)]
    return lines


CHECK_WITHOUT_TORCH = """
import sys, yaml
{imports}
from vmp.workflow.config import check_config
for path in sys.argv[1:]:
    check_config(yaml.safe_load(open(path)))
heavy = sorted({{"torch", "numpy", "pandas", "av"}} & set(sys.modules))
assert not heavy, f"imported while parsing the workflow: {{heavy}}"
"""


def test_parsing_the_workflow_and_checking_every_profile_imports_no_torch(tmp_path):
    imports = parse_time_imports()
    assert any("vmp" in line for line in imports)
    paper = load("paper.yaml")
    for dataset in paper["datasets"].values():
        dataset["root"] = str(tmp_path)  # the check looks for each real dataset's folder
    for backbone in paper["pretrain"]["checkpoints"]:  # and for each checkpoint file
        paper["pretrain"]["checkpoints"][backbone] = str(tmp_path / f"{backbone}.pyth")
        (tmp_path / f"{backbone}.pyth").touch()
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    configs = [
        ROOT / "config" / "config.yaml",
        ROOT / "config" / "smoke.yaml",
        tmp_path / "paper.yaml",
    ]
    script = CHECK_WITHOUT_TORCH.format(imports="\n".join(imports))
    subprocess.run([sys.executable, "-c", script, *map(str, configs)], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbones": {"x3d_tiny": {"variants": ["vmp_fast"]}}}, "allowed: baseline, vmp"),
        (
            {"backbones": {"x3d_tiny": {"arch": "x3d_huge"}}},
            "backbones.x3d_tiny.arch: unknown value 'x3d_huge'; allowed: c2d_r50, c2d_tiny",
        ),
        (
            {"datasets": {"synth_gym": {"scene": "synth_moon"}}},
            "datasets.synth_gym.scene: unknown value 'synth_moon'; allowed: synth_cooking",
        ),
        ({"pretrain": {"scene": "synth_moon"}}, "pretrain.scene: unknown value 'synth_moon'"),
        ({"ablation": {"variant": "vmp_slow"}}, "ablation.variant: unknown value 'vmp_slow'"),
    ],
)
def test_unknown_names_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(nested_update(load("smoke.yaml"), changes))


ORACLE_VARIANTS = {
    "x3d_tiny": {"variants": ["baseline", "vmp", "vmp_oracle"]},
    "slowfast_tiny": {"variants": ["baseline", "vmp_both", "vmp_oracle"]},
}


def test_the_oracle_runs_on_synthmotion_profiles():
    check_config(nested_update(load("smoke.yaml"), {"backbones": ORACLE_VARIANTS}))


def test_the_oracle_on_a_real_dataset_is_refused_in_one_line(tmp_path):
    hmdb = {"format": "hmdb51", "splits": ["1"], "root": str(tmp_path / "absent")}
    config = nested_update(
        load("smoke.yaml"), {"datasets": {"hmdb51": hmdb}, "backbones": ORACLE_VARIANTS}
    )
    with pytest.raises(ConfigError) as refused:
        check_config(config)
    message = str(refused.value)
    assert message == (
        "backbones.x3d_tiny.variants: vmp_oracle (oracle: ground truth, not a method) needs "
        "SynthMotion's ground-truth masks, which real datasets (here: hmdb51) do not have; list it "
        "only in profiles whose datasets are all synthmotion"
    )
    # without the oracle the same profile gets as far as its missing dataset
    del config["backbones"]["slowfast_tiny"]
    config["backbones"]["x3d_tiny"]["variants"].remove("vmp_oracle")
    with pytest.raises(ConfigError, match="dataset root .* does not exist"):
        check_config(config)


# --- profiles named by their users -----------------------------------------------------------


@pytest.mark.parametrize("profile", ["default", "smoke", "paper", "lab_a100", "ablation-2.5"])
def test_any_sensible_profile_name_is_valid(profile):
    validate(load("smoke.yaml") | {"profile": profile}, schema=str(SCHEMA))


@pytest.mark.parametrize("profile", ["", "../up", "my profile", "-x"])
def test_profile_names_that_are_not_names_are_rejected(profile):
    with pytest.raises(Exception, match="does not match"):
        validate(load("smoke.yaml") | {"profile": profile}, schema=str(SCHEMA))


# --- one recipe: the notebook's defaults are the default profile's --------------------------


def notebook_defaults() -> dict:
    """Values of notebooks/train.py's parameters cell, as a run of the notebook alone uses."""
    notebook = jupytext.read(ROOT / "notebooks" / "train.py")
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict = {}
    exec(cell.source, {}, values)
    return values


def test_notebook_defaults_are_the_default_profiles_values_for_one_job():
    expected = train_parameters(load("config.yaml"), "x3d_tiny", DEFAULT_JOB)
    assert notebook_defaults() == expected


def test_train_parameters_are_what_the_rules_pass():
    """The job's papermill command in a dry run of the default profile carries the same values."""
    target = f"results/runs/{DEFAULT_JOB}/train.ipynb"
    proc = subprocess.run(
        ["snakemake", "-n", "-p", target, "--forcerun", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    (command,) = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith("Shell command: VMP_SNAKEMAKE_PID=$PPID papermill")
        and f" {target} " in line
    ]
    passed = yaml.safe_load(command.split(" -y ", 1)[1].split(" > ")[0].strip("'"))
    assert passed == train_parameters(load("config.yaml"), "x3d_tiny", DEFAULT_JOB)


def test_pretraining_parameters_take_the_pretrain_optim_and_folder():
    config = load("config.yaml")
    params = train_parameters(config, "i3d_tiny")
    assert params["optim"] == config["optim"] | {"epochs": 10}
    assert params["runs"] == [
        {
            "variant": "baseline",
            "lambda_reg": 0.0,
            "seed": 0,
            "out_dir": "results/pretrain/i3d_tiny",
        }
    ]
    assert params["pretrained"] is None and params["dataset"] == "synth_kinetics"
    config["backbones"]["i3d_tiny"]["pretrain_optim"] = {"epochs": 20, "lr": 0.001}
    longer = train_parameters(config, "i3d_tiny")["optim"]
    assert longer == config["optim"] | {"epochs": 20, "lr": 0.001}
    fine_tuning = train_parameters(config, "i3d_tiny", "synth_gym/1/i3d_tiny")
    assert fine_tuning["optim"] == config["optim"]  # pre-training only
    scratch = train_parameters(config, "i3d_tiny_scratch", "synth_gym/1/i3d_tiny_scratch")
    assert scratch["pretrained"] is None and scratch["arch"] == "i3d_tiny"


def test_lambda_travels_as_its_value_and_names_its_folder_exactly():
    from vmp.training.record import cell_path, lambda_text
    from vmp.workflow.matrix import run_matrix

    assert [lambda_text(v) for v in (2.5, 0, 10, 0.1234567, 1e-05)] == [
        "2.5",
        "0",
        "10",
        "0.1234567",
        "1e-05",
    ]
    config = load("config.yaml")
    config["lambda"] = 0.1234567  # ":g" would have trained it as 0.123457
    (cell,) = {
        cell_path(r)
        for r in run_matrix(config)
        if r["backbone"] == "x3d_tiny" and r["variant"] == "vmp" and r["dataset"] == "synth_gym"
    }
    assert cell == "synth_gym/1/x3d_tiny/vmp/lambda~0.1234567"
    runs = train_parameters(config, "x3d_tiny", "synth_gym/1/x3d_tiny")["runs"]
    assert {r["lambda_reg"] for r in runs if r["variant"] == "vmp"} == {0.1234567}
    with pytest.raises(ValueError, match="not a training job of this configuration"):
        train_parameters(config, "x3d_tiny", "synth_gym/1/x3d_tiny/vmp/lambda~0.123457")


def test_released_timesformer_entry_runs_the_authors_recipe():
    from vmp.models import create_model, variant_options
    from vmp.workflow.matrix import run_matrix

    config = load("paper.yaml")
    cells = {
        (r["dataset"], r["variant"], r["lambda"])
        for r in run_matrix(config)
        if r["backbone"] == "timesformer_released"
    }
    assert ("mpii_cooking2", "vmp", 0.0) in cells and ("hmdb51", "baseline", 0.0) in cells
    assert ("mpii_cooking2", "vmp", 2.5) not in cells  # its own lambda, not the global one
    params = train_parameters(
        config, "timesformer_released", "mpii_cooking2/test/timesformer_released"
    )
    assert {(r["variant"], r["lambda_reg"]) for r in params["runs"]} == {
        ("baseline", 0.0),
        ("vmp", 0.0),
    }
    assert params["precision"] == "32-true" and params["arch"] == "timesformer"
    assert params["pretrained"] == config["pretrain"]["checkpoints"]["timesformer"]
    paper_as_written = train_parameters(config, "timesformer", "mpii_cooking2/test/timesformer")
    assert paper_as_written["precision"] == config["resources"]["precision"]
    # What the rule passes builds the released layer (on the tiny TimeSformer, same code path).
    model = create_model(
        "timesformer_tiny", 5, **variant_options("timesformer_tiny", "vmp"), **params["model"]
    )
    layer = model.prompt_layers["video"]
    assert layer.input_normalized and layer.grayscale_order == "bgr"


# --- README commands: a cell's folder per profile, and the papermill route -------------------


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vmp.workflow", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def test_cell_command_names_the_folders_and_retrains_exactly_what_it_names(tmp_path):
    smoke = cli("cell", "--configfile", "config/smoke.yaml", "synth_gym", "1", "x3d_tiny", "vmp")
    folder = "results/smoke/runs/synth_gym/1/x3d_tiny/vmp/lambda~2.5"
    assert f"folder    {folder}\n" in smoke.stdout
    assert "(seeds 0, 1)" in smoke.stdout
    # Only the named variant's kept runs go; the job's others are restored by it.
    assert f"rm -rf '{folder}/seed~0/kept' '{folder}/seed~1/kept'\n" in smoke.stdout
    # The targets come before --configfile, which would read them as more config files.
    job = "results/smoke/runs/synth_gym/1/x3d_tiny/train.ipynb"
    assert f"snakemake --cores 2 --forcerun {job} --configfile config/smoke.yaml\n" in smoke.stdout
    default = cli("cell", "synth_hmdb", "2", "c2d_tiny", "baseline", "--seed", "0")
    assert "folder    results/runs/synth_hmdb/2/c2d_tiny/baseline/lambda~0\n" in default.stdout
    assert "baseline/lambda~0/seed~0/kept'\n" in default.stdout
    ablation = cli("cell", "synth_gym", "1", "i3d_tiny", "vmp", "--lambda", "0.5")
    assert "i3d_tiny/vmp/lambda~0.5 (seeds 0, 1, 2)" in ablation.stdout
    assert "--forcerun results/runs/synth_gym/1/i3d_tiny/ablation/train.ipynb" in ablation.stdout
    whole = cli("cell", "synth_gym", "1", "x3d_tiny").stdout
    assert whole.count("folder    ") == 6  # baseline, vmp, identity, gate, oracle, placement
    # a profile plus a part, as Snakemake takes them: the part's `only:` is honoured
    (tmp_path / "x3d.yaml").write_text("only: {backbones: [x3d_tiny]}\n")
    profile = ["--configfile", "config/config.yaml", str(tmp_path / "x3d.yaml")]
    part = cli("cell", *profile, "synth_gym", "1", "c2d_tiny", check=False)
    assert part.returncode == 2 and "is not run by this profile" in part.stderr
    kept = cli("cell", *profile, "synth_gym", "1", "x3d_tiny", "vmp").stdout
    assert f"--configfile config/config.yaml {tmp_path / 'x3d.yaml'}" in kept


def test_cell_command_rejects_a_cell_the_profile_does_not_run():
    proc = cli("cell", "synth_gym", "1", "i3d_tiny", "vmp", "--lambda", "0.7", check=False)
    assert proc.returncode == 2
    assert "synth_gym/1/i3d_tiny/vmp/0.7 is not run by this profile" in proc.stderr
    assert "synth_gym/1/i3d_tiny/vmp/lambda~0.5" in proc.stderr


# A stand-in for notebooks/train.py with the same parameter names that train_run needs for its
# folders: it writes one file per run into its folder.
RECORDER = """\
from pathlib import Path
for run in runs:
    Path(run["out_dir"]).mkdir(parents=True, exist_ok=True)
    Path(run["out_dir"], "ran.txt").write_text(f"{dataset} {run['lambda_reg']} {run['seed']}")
"""


def executed_notebook(tmp_path: Path) -> Path:
    """A training notebook executed by papermill as the workflow does, in a results-like tree."""
    template = tmp_path / "results" / "notebooks" / "train.ipynb"
    template.parent.mkdir(parents=True)
    defaults = "dataset = 'synth_gym'\nruns = []\n"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(defaults, metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(RECORDER),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    nbformat.write(notebook, template)
    job = tmp_path / "results" / "runs" / "synth_gym" / "1" / "x3d_tiny"
    cell = job / "vmp" / "lambda~2.5"
    params = {
        "dataset": "synth_gym",
        "split": "1",
        "backbone": "x3d_tiny",
        "runs": [
            {"variant": "vmp", "lambda_reg": 2.5, "seed": s, "out_dir": f"{cell}/seed~{s}"}
            for s in (0, 1)
        ],
        "clip": {"num_frames": 8, "hflip": False},
        "pretrained": None,
        "confusions": {f"{cell}/confusion.png": [f"{cell}/seed~0", f"{cell}/seed~1"]},
    }
    executed = job / "train.ipynb"
    job.mkdir(parents=True, exist_ok=True)
    command = ["papermill", str(template), str(executed), "-k", "python3"]
    subprocess.run([*command, "-y", yaml.safe_dump(params)], check=True, capture_output=True)
    return executed


def test_params_command_reruns_an_executed_notebook_elsewhere_with_papermill(tmp_path):
    executed = executed_notebook(tmp_path)
    workflow_runs = sorted(executed.parent.glob("vmp/lambda~2.5/seed~*/ran.txt"))
    assert [p.read_text() for p in workflow_runs] == ["synth_gym 2.5 0", "synth_gym 2.5 1"]
    before = [p.stat().st_mtime_ns for p in workflow_runs]

    rerun = tmp_path / "rerun"
    proc = cli("params", str(executed), str(rerun))
    params = yaml.safe_load((rerun / "params.yaml").read_text())
    moved = [f"{rerun}/vmp/lambda~2.5/seed~{s}" for s in (0, 1)]
    assert [run["out_dir"] for run in params["runs"]] == moved
    assert params["confusions"] == {f"{rerun}/vmp/lambda~2.5/confusion.png": moved}
    assert params["clip"] == {"num_frames": 8, "hflip": False} and params["pretrained"] is None
    command = proc.stdout.split()
    assert command[:2] == ["papermill", str(tmp_path / "results" / "notebooks" / "train.ipynb")]
    assert command[-2:] == ["-f", str(rerun / "params.yaml")]

    subprocess.run(command, check=True, capture_output=True)  # as printed
    assert (rerun / "train.ipynb").is_file()
    assert [Path(m, "ran.txt").read_text() for m in moved] == [
        "synth_gym 2.5 0",
        "synth_gym 2.5 1",
    ]
    assert [p.stat().st_mtime_ns for p in workflow_runs] == before  # the workflow's run untouched
    assert injected_parameters(rerun / "train.ipynb")["runs"] == params["runs"]


def test_params_command_refuses_the_workflows_own_run_folder(tmp_path):
    notebook = tmp_path / "train.ipynb"
    source = "dataset = 'a'\nsplit = '1'\nbackbone = 'b'\nruns = [{'variant': 'vmp', 'lambda_reg': 2.5, 'seed': 0, 'out_dir': 'results/runs/a/1/b/vmp/lambda~2.5/seed~0'}]\n"
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), notebook)
    for out in ("results/runs/a/1/b/vmp/lambda~2.5", "results/runs"):
        proc = cli("params", str(notebook), out, check=False)
        assert proc.returncode == 2 and "overlaps the workflow's run folder" in proc.stderr
    assert not (ROOT / "results" / "runs" / "a").exists()
