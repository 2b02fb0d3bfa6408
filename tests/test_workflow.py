"""The Snakemake workflow: configuration errors, notebook parameters, and the smoke DAG end to end."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import papermill
import pytest
import yaml
from helpers import (
    check_report_page,
    comparable_results,
    copy_tree,
    needs_chromium,
    snakemake,
    workflow_checkout,
    write_config,
)

from vmp.training.run import train_run
from vmp.workflow.config import select_part
from vmp.workflow.logs import KNOWN_LIGHTNING_LINES, KNOWN_WARNINGS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("train", "synth_data", "table1", "attention", "prompt_functions", "figures")
NOTEBOOKS += ("prepare_data",)
FIGURES = ("fig1_motion_representations", "fig3_power_normalisation", "fig4_slope_shift")
FIGURES += ("fig4_trajectories",)
FIGURES += ("fig5_attention", "fig6_regularisation")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"optim": {"learning_rate": 0.1}},
            "optim: unknown key 'learning_rate'; allowed: accumulate",
        ),
        ({"optim": {"epoch": 3}}, "optim: unknown key 'epoch' (did you mean 'epochs'?)"),
        ({"optim": {"lrr": 0.1}}, "optim: unknown key 'lrr' (did you mean 'lr'?); allowed: "),
        ({"seeds": "zero"}, "seeds: 'zero' is not of type 'array'"),
        (
            {"backbones": {"x3d_tiny": {"variants": ["vmp_slow"]}}},
            "backbones.x3d_tiny.variants: unknown value 'vmp_slow'; allowed: baseline, vmp",
        ),
        ({"datasets": {"synth_gym": {"format": "kinetics"}}}, "'kinetics' is not one of"),
        (
            {"backbones": {"x3d_tiny": {"arch": "x3d_huge"}}},
            "backbones.x3d_tiny.arch: unknown value 'x3d_huge'; allowed: c2d_r50",
        ),
    ],
)
def test_config_errors_fail_before_any_job(tmp_path, changes, message):
    proc = snakemake("-n", "--configfile", str(write_config(tmp_path, **changes)), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert len((proc.stdout + proc.stderr).strip().splitlines()) <= 8  # not a schema dump
    assert not (tmp_path / "results").exists()


def test_missing_real_dataset_names_the_folder_and_the_source(tmp_path):
    config = write_config(tmp_path, base="config/paper.yaml", fetch=False)
    proc = snakemake("-n", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"datasets.hmdb51: dataset root {tmp_path / 'data' / 'hmdb51'} does not exist" in out
    assert "serre-lab.clps.brown.edu" in out


def test_paper_profile_fetches_what_is_public_before_the_jobs_that_read_it(tmp_path):
    """`fetch: true`: HMDB-51, FineGym's annotations and the catalogue's checkpoints are fetch
    jobs (a dry run contacts nothing); FineGym's videos and MPII must be there."""
    checkpoints = {
        backbone: str(tmp_path / path)
        for backbone, path in yaml.safe_load((ROOT / "config/paper.yaml").read_text())["pretrain"][
            "checkpoints"
        ].items()
    }
    config = write_config(tmp_path, base="config/paper.yaml", pretrain={"checkpoints": checkpoints})
    proc = snakemake("-n", "--configfile", str(config), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"datasets.finegym: dataset root {tmp_path / 'data' / 'finegym'} does not exist" in out
    for name in ("finegym", "mpii_cooking2"):
        (tmp_path / "data" / name).mkdir(parents=True)
    counts = planned_jobs("--configfile", str(config))
    assert counts["fetch"] == 3  # checkpoints, hmdb51, finegym
    assert counts["prepare_data"] == 5 and "check_inputs" not in counts  # checked at parse
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()


PAPER_BACKBONES = (
    "slowfast_r50",
    "c2d_r50",
    "i3d_r50",
    "x3d_m",
    "timesformer",
    "timesformer_k600",
    "timesformer_released",
)


def paper_config(tmp_path: Path) -> Path:
    """The paper profile with empty dataset roots and checkpoint files under tmp_path."""
    for name in ("hmdb51", "finegym", "mpii_cooking2"):
        (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
    checkpoints = {backbone: str(tmp_path / f"{backbone}.pyth") for backbone in PAPER_BACKBONES}
    for path in checkpoints.values():
        Path(path).touch()
    return write_config(
        tmp_path, "paper.yaml", base="config/paper.yaml", pretrain={"checkpoints": checkpoints}
    )


def planned_jobs(*args: str) -> dict[str, int]:
    """Jobs per rule that a dry run with ``args`` would execute (Snakemake's job table)."""
    proc = snakemake("-n", "--quiet", "rules", *args)
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def test_paper_profile_plans_every_cell_of_table1(tmp_path):
    counts = planned_jobs("--configfile", str(paper_config(tmp_path)))
    # One job per Table 1 cell: 5 dataset-splits x 7 backbones (each trains its baseline and
    # variants), plus one for the ablation's other lambdas.
    jobs = {rule: n for rule, n in counts.items() if rule.startswith("finetune_")}
    assert len(jobs) == 5 * 7 + 1 and set(jobs.values()) == {1}
    assert (
        "finetune_hmdb51_1_i3d_r50" in jobs
        and "finetune_finegym_gym99_timesformer_ablation" in jobs
    )
    assert counts["prepare_data"] == 5
    assert "pretrain" not in counts and "synth_data" not in counts


def test_a_part_file_runs_part_of_the_protocol_with_only_its_data(tmp_path):
    (tmp_path / "data" / "hmdb51").mkdir(parents=True)
    checkpoint = tmp_path / "i3d.pyth"
    checkpoint.touch()
    config = write_config(
        tmp_path,
        "paper.yaml",
        base="config/paper.yaml",
        pretrain={"checkpoints": {"i3d_r50": str(checkpoint)}},
    )
    part = ROOT / "config" / "parts" / "hmdb51_i3d.yaml"
    # FineGym and MPII are absent and other checkpoints missing: the part needs none of them.
    counts = planned_jobs("--configfile", str(config), str(part))
    assert sorted(r for r in counts if r.startswith("finetune_")) == [
        f"finetune_hmdb51_{split}_i3d_r50" for split in (1, 2, 3)
    ]  # 3 splits, each one job of (baseline, vmp)
    assert counts["prepare_data"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("only: {backbones: [i3d]}\n")
    proc = snakemake("-n", "--configfile", str(config), str(bad), check=False)
    assert proc.returncode != 0
    assert "only.backbones: unknown value 'i3d'; allowed: c2d_r50" in proc.stdout + proc.stderr


def test_select_part_keeps_the_ablation_only_with_what_it_trains():
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    finegym = select_part(
        config | {"only": {"datasets": ["finegym"], "backbones": ["timesformer"]}}
    )
    assert list(finegym["datasets"]) == ["finegym"] and finegym["ablation"] == config["ablation"]
    split = select_part(config | {"only": {"splits": ["2"]}})
    assert list(split["datasets"]) == ["hmdb51"] and split["datasets"]["hmdb51"]["splits"] == ["2"]
    assert split["ablation"] is None and len(split["backbones"]) == len(config["backbones"])
    assert select_part(config) is config


def passed_parameters(config: Path, *targets: str) -> dict[str, set[str]]:
    """Parameter names each notebook receives from the rules, read from a dry run's commands."""
    proc = snakemake("-n", "-p", "--configfile", str(config), "--forceall", *targets)
    passed = {}
    for line in proc.stdout.splitlines():
        line = line.removeprefix("Shell command: ").removeprefix("VMP_SNAKEMAKE_PID=$PPID ")
        if line.startswith("papermill "):
            notebook = Path(next(w for w in line.split() if w.endswith(".ipynb"))).stem
            parameters = yaml.safe_load(line.split(" -y ", 1)[1].split(" > ")[0].strip("'"))
            passed.setdefault(notebook, set()).update(parameters)
    return passed


def test_notebook_parameters_match_what_the_rules_pass(tmp_path):
    """Every parameter a rule passes is declared in its notebook's parameters cell, and vice versa."""
    for notebook in NOTEBOOKS:
        subprocess.run(
            [
                "jupytext",
                "--to",
                "ipynb",
                "--output",
                str(tmp_path / f"{notebook}.ipynb"),
                str(ROOT / "notebooks" / f"{notebook}.py"),
            ],
            check=True,
            capture_output=True,
        )
    declared = {
        nb: set(papermill.inspect_notebook(str(tmp_path / f"{nb}.ipynb"))) for nb in NOTEBOOKS
    }
    passed = passed_parameters(write_config(tmp_path), "all", "prompt_functions")
    assert set(passed) == set(NOTEBOOKS) - {"prepare_data"}
    passed |= {"prepare_data": passed_parameters(paper_config(tmp_path))["prepare_data"]}
    for notebook, keys in passed.items():
        assert keys == declared[notebook], notebook


@pytest.mark.slow
def test_smoke_workflow_end_to_end(smoke_run):
    config, results = smoke_run

    table = pd.read_csv(results / "tables" / "table1.csv", dtype={"split": str})
    # vmp_normalized: the placement comparison; vmp_oracle: the positive control
    variants = ["baseline", "vmp", "vmp_gate", "vmp_normalized", "vmp_oracle"]
    assert list(table["variant"]) == variants
    assert set(table["dataset"]) == {"synth_gym"} and set(table["backbone"]) == {"x3d_tiny"}
    assert (table["seeds"] == 2).all()
    runs = sorted(results.glob("runs/synth_gym/1/x3d_tiny/*/lambda~*/seed~*/metrics.json"))
    assert len(runs) == 11  # 5 variants x 2 seeds, plus the ablation's lambda 0
    top1 = {
        variant: [
            json.loads(p.read_text())["top1"]
            for p in runs
            if f"/{variant}/lambda~{lam}/" in p.as_posix()
        ]
        for variant, lam in zip(variants, ("0", "2.5", "2.5", "2.5", "0"), strict=True)
    }
    for row in table.itertuples():
        values = pd.Series(top1[row.variant])
        assert row.top1_mean == pytest.approx(values.mean(), abs=1e-3)  # the CSV rounds
        assert row.top1_std == pytest.approx(values.std(ddof=1), abs=1e-3)
    assert table.loc[1, "published_top1"] == 83.8 and table.loc[0, "published_top1"] == 83.0
    markdown = (results / "tables" / "table1.md").read_text()
    assert "x3d_tiny" in markdown and "±" in markdown
    assert (results / "tables" / "table1.tex").read_text().startswith("\\begin{tabular}")

    history = pd.read_csv(runs[-1].parent / "history.csv")
    assert len(history) == 2
    assert (results / "pretrain" / "x3d_tiny" / "model.pt").exists()
    # One notebook per Table 1 cell (dataset, split, backbone) records its runs, each variant
    # and seed trained into its own run folder.
    job = results / "runs" / "synth_gym" / "1" / "x3d_tiny"
    notebook = json.loads((job / "train.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in notebook["cells"])
    parameters = notebook["metadata"]["papermill"]["parameters"]
    assert [(r["variant"], r["seed"]) for r in parameters["runs"]] == [
        (v, s) for v in ("baseline", "vmp", "vmp_gate", "vmp_oracle") for s in (0, 1)
    ]
    assert parameters["runs"][0]["out_dir"] == str(runs[0].parent)
    log = (results / "logs" / "runs" / "synth_gym/1/x3d_tiny.log").read_text()
    assert "synth_gym/1/x3d_tiny/vmp/lambda~2.5/seed~1 epoch 2/2, loss " in log
    assert "synth_gym/1/x3d_tiny/baseline/lambda~0/seed~0 epoch 2/2, loss " in log
    index = (results / "report" / "index.html").read_text()
    assert "tables/table1.ipynb" in index and "runs/synth_gym/1/x3d_tiny/vmp" in index
    # Each cell's notebook draws its confusion matrix, which the results page links.
    cell = runs[0].parent.parent
    assert (cell / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert (
        f'href="../{(cell / "confusion.png").relative_to(results).as_posix()}">confusion' in index
    )
    assert (runs[0].parent / "test_scores.csv").exists() and (
        runs[0].parent / "tensorboard"
    ).is_dir()
    assert (results / "report" / "tables" / "table1.html").stat().st_size > 10_000

    # Nothing changed: nothing to do.
    dry = snakemake("-n", "--configfile", str(config))
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # Rerun one cell of Table 1: only its job and what depends on it.
    forced = planned_jobs("--configfile", str(config), "--forcerun", str(runs[0]))
    assert forced == {"finetune_synth_gym_1_x3d_tiny": 1, "attention": 1, "table1": 1} | (
        {"figures": 1, "report": 1, "all": 1}
    )


@pytest.mark.slow
@needs_chromium
def test_smoke_results_page_in_chromium(smoke_run, tmp_path):
    """The results page of the smoke run, loaded at 1280 px: every figure shown, every link
    resolves (notebooks, tables, PDFs), no horizontal scrolling, a screenshot that is not blank."""
    _, results = smoke_run
    state = check_report_page(results / "report" / "index.html", tmp_path / "index.png")
    shown = {Path(image["src"]).stem for image in state["images"]}
    assert shown == set(FIGURES)
    for heading in ("The run", "Table 1", "Verdict per backbone", "Lambda ablation", "Data"):
        assert heading in state["text"]
    hrefs = [link["href"] for link in state["links"]]
    assert "tables/table1.html" in hrefs and "../tables/table1.csv" in hrefs
    assert "runs/synth_gym/1/x3d_tiny/train.html" in hrefs


@pytest.mark.slow
def test_smoke_snakemake_report_has_captions(smoke_run, tmp_path):
    config, _ = smoke_run
    snakemake("--report", str(tmp_path / "report.html"), "--configfile", str(config))
    report = (tmp_path / "report.html").read_text()
    caption = (ROOT / "report" / "fig1_motion_representations.rst").read_text().split(":")[0]
    assert caption == "Fig. 1" and "Fig. 1: one test frame" in report
    assert "Table 1" in report and "table1_verdict.csv" in report


def library_noise(results: Path) -> list[str]:
    """What executed notebooks under ``results`` show that a reader should not see: known library
    warnings or Lightning info lines on stderr, and raw reprs such as ``array([[<Axes: ...>]])``
    (a figure's own text fallback beside its image does not count)."""
    found = []
    for path in sorted(results.rglob("*.ipynb")):
        if path.parent.name == "notebooks":  # the templates, not executed
            continue
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                if output.get("name") == "stderr":
                    text = "".join(output["text"])
                    found += [f"{path}: {m}" for m, _ in KNOWN_WARNINGS if re.search(m, text)]
                    found += [
                        f"{path}: {line}"
                        for line in text.splitlines()
                        if line.startswith(KNOWN_LIGHTNING_LINES)
                    ]
                data = output.get("data", {})
                if "image/png" not in data and "<Axes" in "".join(data.get("text/plain", "")):
                    found.append(f"{path}: {''.join(data['text/plain'])[:200]}")
    return found


@pytest.mark.slow
def test_smoke_notebooks_show_no_library_noise(smoke_run):
    _, results = smoke_run
    assert len(list(results.glob("runs/**/train.ipynb"))) == 3  # Table 1, ablation, placement
    assert library_noise(results) == []


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields.get("PPid", "0").strip() or 0) == pid:
            found.append(int(status.parent.name))
    return found


def _training_kernel(notebook: Path) -> int | None:
    """The Jupyter kernel of the papermill process that writes ``notebook``, if running."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"papermill" in a for a in args[:2]) and str(notebook).encode() in args:
            kernels = _children(int(cmdline.parent.name))
            return kernels[0] if kernels else None
    return None


def _wait_for(condition, what: str, job: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.poll() is None, f"snakemake ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_smoke_prompt_functions_target_pairs_each_seed_with_the_sigmoid_row(smoke_run, tmp_path):
    config, results = copy_tree(smoke_run, tmp_path, data=None), tmp_path / "results"
    snakemake("prompt_functions", "--cores", "2", "--configfile", str(config))
    summary = pd.read_csv(results / "tables" / "prompt_functions.csv").set_index("variant")
    assert list(summary.index) == ["vmp", "vmp_gamma"]
    top1 = {
        variant: [
            json.loads(p.read_text())["top1"] / 100
            for p in sorted(
                results.glob(f"runs/synth_gym/1/x3d_tiny/{variant}/lambda~2.5/seed~*/metrics.json")
            )
        ]
        for variant in ("vmp", "vmp_gamma")
    }
    assert len(top1["vmp_gamma"]) == 2
    gamma = summary.loc["vmp_gamma"]
    assert gamma["pairs"] == 2
    assert gamma["delta_top1"] == pytest.approx(
        sum(g - s for g, s in zip(top1["vmp_gamma"], top1["vmp"], strict=True)) / 2
    )
    assert 0 <= gamma["object_share"] <= 1 and 0 <= gamma["recall"] <= 1
    assert "gamma" in (results / "tables" / "prompt_functions.md").read_text()
    assert (results / "tables" / "prompt_functions.ipynb").is_file()
    # not part of the default target: Table 1 and the report stay done
    assert "Nothing to be done" in snakemake("-n", "--configfile", str(config)).stdout


@pytest.mark.slow
def test_killed_training_resumes_to_identical_metrics(smoke_run, tmp_path):
    """SIGKILL the training kernel, then Snakemake itself, mid-run: rerunning Snakemake (after
    ``--unlock`` for the second) resumes the job from its last epoch checkpoint each time, and it
    ends with the metrics of an uninterrupted run."""
    # Enough epochs (about 0.1 s each on the smoke data) that both kills land mid-training; the
    # smoke tree's scenes and pre-training, no fine-tuning run.
    config = copy_tree(
        smoke_run,
        tmp_path,
        runs=False,
        optim={"epochs": 40},
        seeds=[0],
        backbones={"x3d_tiny": {"variants": ["baseline"]}},
        prompt_functions=None,
    )
    run_dir = tmp_path / "results/runs/synth_gym/1/x3d_tiny/baseline/lambda~0/seed~0"
    job_notebook = tmp_path / "results/runs/synth_gym/1/x3d_tiny/train.ipynb"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    command = ["snakemake", str(run_dir / "metrics.json"), "--cores", "1"]
    command += ["--configfile", str(config)]
    # Snakemake's lock lives in the working directory's .snakemake, which any other Snakemake
    # there clears as it ends: this test's runs get a checkout of their own.
    checkout = workflow_checkout(tmp_path / "checkout")

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            command,
            cwd=checkout,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    # 1. The training process dies (out-of-memory killer, cluster preemption): Snakemake sees
    #    the job fail, removes its incomplete outputs (not the checkpoints) and stops.
    job = start()
    _wait_for(checkpoint.exists, "the first epoch checkpoint", job)
    kernel = _training_kernel(job_notebook)
    assert kernel is not None
    os.kill(kernel, signal.SIGKILL)
    assert job.wait(timeout=120) != 0
    assert checkpoint.exists() and not (run_dir / "metrics.json").exists()

    # 2. Snakemake itself is killed with its job while the rerun is training.
    written = checkpoint.stat().st_mtime_ns
    job = start()
    _wait_for(lambda: checkpoint.stat().st_mtime_ns != written, "a checkpoint of the rerun", job)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    # The Jupyter kernel runs in a session of its own; ipykernel's parent poller ends it within
    # about a second of papermill's death.
    time.sleep(3)
    assert not (run_dir / "metrics.json").exists()
    locked = snakemake(*command[1:], cwd=checkout, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(*command[1:], "--unlock", cwd=checkout)

    snakemake(*command[1:], cwd=checkout)
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["resumed_from_epoch"] >= 2
    assert not checkpoint.parent.exists()  # removed once the run is complete

    # The same run, uninterrupted, with the parameters the workflow passed to the notebook.
    notebook = json.loads(job_notebook.read_text())
    parameters = notebook["metadata"]["papermill"]["parameters"]
    (run,) = parameters.pop("runs")
    assert run == {"variant": "baseline", "lambda_reg": 0.0, "seed": 0, "out_dir": str(run_dir)}
    assert list(parameters.pop("confusions")) == [str(run_dir.parent / "confusion.png")]
    train_run(
        **parameters,
        variant="baseline",
        lambda_reg=0.0,
        seed=0,
        out_dir=str(tmp_path / "straight"),
        progress_bar=False,
    )
    straight, killed = comparable_results(tmp_path / "straight"), comparable_results(run_dir)
    assert straight[0] == killed[0]
    pd.testing.assert_frame_equal(straight[1], killed[1])


@pytest.mark.slow
def test_a_job_killed_after_its_first_run_trains_only_the_rest(smoke_run, tmp_path):
    """The kernel is killed once the job's first run has written its record: Snakemake deletes
    the job's outputs, and the rerun restores that run (same bytes, not trained again) and
    trains only the second."""
    config = copy_tree(
        smoke_run,
        tmp_path,
        runs=False,
        optim={"epochs": 20},
        backbones={"x3d_tiny": {"variants": ["baseline"]}},
        prompt_functions=None,
    )
    cell = tmp_path / "results/runs/synth_gym/1/x3d_tiny/baseline/lambda~0"
    first, second = cell / "seed~0" / "metrics.json", cell / "seed~1" / "metrics.json"
    command = ["snakemake", str(first), str(second), "--cores", "1", "--configfile", str(config)]
    job = subprocess.Popen(
        command,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    _wait_for(first.exists, "the first run's record", job)
    written = {name: (first.parent / name).read_bytes() for name in ("metrics.json", "model.pt")}
    kernel = _training_kernel(tmp_path / "results/runs/synth_gym/1/x3d_tiny/train.ipynb")
    os.kill(kernel, signal.SIGKILL)
    assert job.wait(timeout=120) != 0
    assert not first.exists() and not second.exists()  # Snakemake removed the failed job's outputs

    snakemake(*command[1:])
    assert {name: (first.parent / name).read_bytes() for name in written} == written
    log = (tmp_path / "results/logs/runs/synth_gym/1/x3d_tiny.log").read_text()
    assert f"{first.parent}: restored the finished run kept in" in log
    assert f"{second.parent}: restored" not in log and second.exists()
