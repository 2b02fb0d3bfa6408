"""The results page (vmp.analysis.report) on a small fabricated results tree, in HTML and in Chromium."""

import json
import logging
import os
import platform
import re
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from helpers import check_report_page, needs_chromium
from PIL import Image, ImageDraw

from vmp.analysis.report import build_report
from vmp.workflow.logs import quiet_known_warnings

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["synth_gym/1/x3d_tiny/baseline/lambda~0", "synth_gym/1/x3d_tiny/vmp/lambda~2.5"]


def _notebook(path: Path, title: str, runs: list[Path] = ()) -> Path:
    """An executed notebook; a training job's lists its ``runs`` folders as papermill records."""
    cell = nbformat.v4.new_code_cell("print('trained')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="trained\n")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}"), cell])
    notebook.metadata["papermill"] = {"parameters": {"runs": [{"out_dir": str(r)} for r in runs]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def _figure(path: Path, colour: str) -> Path:
    image = Image.new("RGB", (600, 300), "white")
    ImageDraw.Draw(image).ellipse((100, 50, 500, 250), fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    path.with_suffix(".pdf").write_bytes(b"%PDF-1.4\n")
    return path


def _metrics(path: Path, lam: float, seed: int, top1: float, variant: str = "vmp") -> Path:
    settings = {"dataset": "synth_gym", "split": "1", "backbone": "x3d_tiny", "variant": variant}
    metrics = {
        "top1": top1,
        "top5": 90.0,
        "mean_average_precision": 50.0,
        "mean_class_accuracy": top1,
        "prompt": {"slope": 20.0 + seed, "shift": -0.5},
        "settings": settings | {"lambda": lam, "seed": seed},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return path


@pytest.fixture
def results_tree(tmp_path) -> dict:
    """A results tree of one smoke-sized run: notebooks of every stage, three tables, two
    figures, a two-lambda ablation, a generated and a prepared dataset, benchmark records.
    Returns ``build_report``'s keyword arguments."""
    results = tmp_path / "results"
    notebooks = [
        _notebook(results / "data/synth_gym/synth_data.ipynb", "SynthMotion scene"),
        _notebook(results / "data/hmdb51/1/prepare_data.ipynb", "Dataset preparation"),
        _notebook(results / "pretrain/x3d_tiny/train.ipynb", "Pre-training"),
        _notebook(
            results / "runs/synth_gym/1/x3d_tiny/train.ipynb",
            "Table 1 cell",
            [results / "runs" / cell / f"seed~{s}" for cell in CELLS for s in (0, 1)],
        ),
        _notebook(
            results / "runs/synth_gym/1/x3d_tiny/ablation/train.ipynb",
            "ablation",
            [results / "runs/synth_gym/1/x3d_tiny/vmp/lambda~0/seed~0"],
        ),
        _notebook(results / "tables/table1.ipynb", "Table 1"),
        _notebook(results / "figures/figures.ipynb", "Figures"),
    ]
    tables = results / "tables"
    verdict = pd.DataFrame(
        {
            "backbone": ["x3d_tiny", "all"],
            "mean Δ top-1": ["-7.5", "-7.5"],
            "Holm verdict": ["loss"] * 2,
        }
    )
    cells = pd.DataFrame(
        {
            "variant": ["baseline", "vmp"],
            "top-1": ["36.5 ± 0.8", "28.0 ± 15.3"],
            "unadjusted call": ["", "n.s."],
        }
    )
    for name, frame in (("table1_verdict", verdict), ("table1", cells)):
        (tables / f"{name}.md").write_text(frame.to_markdown(index=False) + "\n")
        frame.to_csv(tables / f"{name}.csv", index=False)
    (tables / "table1.tex").write_text("\\begin{tabular}{ll}\\end{tabular}\n")
    (tables / "table1_pretraining.md").write_text(
        "No backbone of this profile is trained from scratch.\n"
    )
    figures = [
        _figure(results / "figures/fig1_motion_representations.png", "navy"),
        _figure(results / "figures/fig4_slope_shift.png", "darkred"),
    ]
    ablation = [
        _metrics(
            results / f"runs/synth_gym/1/x3d_tiny/vmp/lambda~{lam:g}/seed~{seed}/metrics.json",
            lam,
            seed,
            top1,
        )
        for lam, seed, top1 in ((0.0, 0, 40.0), (0.0, 1, 44.0), (2.5, 0, 50.0), (2.5, 1, 60.0))
    ]
    _metrics(results / f"runs/{CELLS[0]}/seed~0/metrics.json", 0.0, 0, 36.5, "baseline")
    synth = tmp_path / "data/synth_gym/manifest.csv"
    synth.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "path": [f"v{i}.mp4" for i in range(6)],
            "class_name": ["left", "right"] * 3,
            "split": 1,
            "subset": ["train", "train", "val", "val", "test", "test"],
        }
    ).to_csv(synth, index=False)
    prepared = results / "data/hmdb51/1/manifest.csv"
    prepared.write_text("path,class_name,split,subset\nbrush/a.avi,brush,1,train\n")
    report = {
        "dataset": "hmdb51",
        "split": "1",
        "root": "data/hmdb51",
        "listed": 3,
        "found": 2,
        "missing": ["brush/gone.avi"],
        "unreadable": [{"path": "brush/cut.avi", "reason": "truncated: no frame decoded"}],
        "readable": 1,
        "num_classes": 1,
        "per_class": {"brush": 1},
    }
    (prepared.parent / "prepare_report.json").write_text(json.dumps(report))
    # Two benchmarked jobs: 100 s ending at t, then 50 s ending at t + 200 (300 s in all).
    t = 1_790_000_000
    for rel, seconds, end in (("synth_data/synth_gym.tsv", 100, t), ("runs/a.tsv", 50, t + 200)):
        tsv = results / "benchmarks" / rel
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\tcpu_time\n{seconds}\t0:00:00\t{seconds / 2}\n")
        os.utime(tsv, (end, end))
    return {
        "out_dir": results / "report",
        "root": results,
        "notebooks": notebooks,
        "tables": [tables / f"{n}.md" for n in ("table1_verdict", "table1", "table1_pretraining")],
        "figures": figures,
        "captions": {
            "fig1_motion_representations": "Fig. 1: a frame and three motion representations.",
            "table1": "Table 1: every cell with its paired difference.",
        },
        "ablation": ablation,
        "data": [synth, prepared],
        "config": {"profile": "smoke", "seeds": [0, 1], "lambda": 2.5, "datasets": {}},
        "config_files": ["config/smoke.yaml"],
        "benchmarks": results / "benchmarks",
        "repo": ROOT,
    }


class _Page(HTMLParser):
    """Section ids in order, image sources, link targets and the cells of every table row."""

    def __init__(self):
        super().__init__()
        self.sections, self.images, self.links, self.rows, self._row = [], [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "tr":
            self._row = []

    def handle_data(self, data):
        if self._row is not None and data.strip():
            self._row.append(data.strip())

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._row)
            self._row = None


def test_results_page_shows_run_tables_figures_ablation_data_and_notebooks(results_tree):
    index = build_report(**results_tree)
    text = index.read_text()
    page = _Page()
    page.feed(text)
    assert page.sections == ["run", "table1", "figures", "ablation", "data", "notebooks", "time"]
    assert "http" not in text and "<script" not in text

    # The run: commit, configuration, machine, packages, wall time from the benchmark records.
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    assert f"<code>{commit} " in text
    assert "config/smoke.yaml" in text and "profile: smoke" in text
    assert f"{os.cpu_count()} CPUs" in text and f"Python {platform.python_version()}" in text
    assert re.search(r"torch \d+\.\d+", text)
    assert "5 min 00 s from the first benchmarked job" in text and "over 2 jobs" in text

    # Tables in the given order, with their caption, files and the verdict marked.
    assert text.index("Verdict per backbone") < text.index("Every cell") < text.index("Pre-trained")
    assert "Table 1: every cell with its paired difference." in text
    assert ["x3d_tiny", "-7.5", "loss"] in page.rows and 'class="loss">loss</td>' in text
    assert "No backbone of this profile is trained from scratch." in text

    # Figures inline with their captions (a missing caption falls back to the name).
    assert page.images == [
        "../figures/fig1_motion_representations.png",
        "../figures/fig4_slope_shift.png",
    ]
    assert "<figcaption>Fig. 1: a frame and three motion representations." in text
    assert "<figcaption>fig4_slope_shift" in text

    # The ablation: per lambda, the seeds' test top-1 and the learned slope.
    assert ["0", "2", "42.0", "2.8", "40.0", "44.0", "20.5", "-0.500"] in page.rows
    assert ["2.5", "2", "55.0", "7.1", "50.0", "60.0", "20.5", "-0.500"] in page.rows

    # Data: counts per dataset, and the videos left out by name and reason.
    assert [
        "synth_gym",
        "1",
        "6",
        "6",
        "0",
        "0",
        "6",
        "2",
        "generated (SynthMotion)",
        "notebook",
    ] in page.rows
    hmdb = ["hmdb51", "1", "3", "2", "1", "1", "1", "1", "prepared from data/hmdb51", "notebook"]
    assert hmdb in page.rows
    assert "brush/gone.avi" in text and "brush/cut.avi: truncated: no frame decoded" in text

    # Notebooks by stage, each training job on its own row with its cells; every link resolves.
    for title in ("Data", "Pre-training", "Fine-tuning jobs", "Tables", "Figures"):
        assert f"<h3>{title}" in text
    table1_job = ["synth_gym", "1", "x3d_tiny", "Table 1", "baseline λ=0 · vmp λ=2.5", "notebook"]
    assert table1_job in page.rows
    assert ["synth_gym", "1", "x3d_tiny", "ablation", "vmp λ=0", "notebook"] in page.rows
    out = results_tree["out_dir"]
    for href in page.links:
        if not href.startswith("#"):
            assert not Path(href).is_absolute() and (out / href).is_file(), href
    assert len([h for h in page.links if h.endswith(".html")]) == 7 + 2  # + data rows
    converted = (out / "runs/synth_gym/1/x3d_tiny/train.html").read_text()
    assert "trained" in converted and "pre-wrap" in converted
    assert pd.read_csv(out / "rule_times.csv").set_index("rule").loc["all", "jobs"] == 2


def test_results_page_without_ablation_or_benchmarks_says_so(results_tree, tmp_path):
    """Also: captions read from caption files, and the results root taken from ``out_dir``."""
    caption = tmp_path / "table1.rst"
    caption.write_text("Table 1 from its caption file.\n")
    del results_tree["root"]
    results_tree |= {"ablation": [], "benchmarks": None, "figures": [], "captions": [caption]}
    results_tree["repo"] = tmp_path
    text = build_report(**results_tree).read_text()
    assert "Table 1 from its caption file. (" in text
    assert '<a href="runs/synth_gym/1/x3d_tiny/train.html">' in text
    assert "This profile runs no lambda ablation." in text
    assert "No figure was given." in text
    assert "unknown (no Snakemake benchmark files)" in text
    assert "unknown (not a git checkout)" in text


def test_results_page_takes_a_cell_s_lambda_from_its_runs_records(results_tree):
    """The cells column reads the runs' metrics.json settings, never the folders' names; a cell
    without a finished run says "?"."""
    results = results_tree["root"]
    renamed = results / "runs/synth_gym/1/x3d_tiny/vmp_gate/a_folder_by_hand"
    _metrics(renamed / "seed~3/metrics.json", 0.5, 3, 41.0, "vmp_gate")
    unfinished = results / "runs/synth_gym/1/x3d_tiny/vmp_identity/lambda~2.5"
    results_tree["notebooks"] += [
        _notebook(
            results / "runs/synth_gym/1/x3d_tiny/placement/train.ipynb",
            "by hand",
            [renamed / "seed~3", unfinished / "seed~0"],
        )
    ]
    page = _Page()
    page.feed(build_report(**results_tree).read_text())
    row = ["synth_gym", "1", "x3d_tiny", "placement", "vmp_gate λ=0.5 · ? λ=?", "notebook"]
    assert row in page.rows


@needs_chromium
def test_results_page_loads_in_chromium_at_1280_px(results_tree, tmp_path):
    index = build_report(**results_tree)
    state = check_report_page(index, tmp_path / "index.png")
    assert len(state["images"]) == 2 and all(image["width"] == 600 for image in state["images"])
    assert "Lambda ablation" in state["text"]


@needs_chromium
def test_browser_check_rejects_an_image_that_does_not_load(results_tree, tmp_path):
    index = build_report(**results_tree)
    results_tree["figures"][0].write_bytes(b"not a png")
    with pytest.raises(AssertionError, match="images that did not load"):
        check_report_page(index, tmp_path / "broken.png")


def test_quiet_known_warnings_silences_only_known_noise():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn(
            "`torch.jit.script` is deprecated. Please switch", FutureWarning, stacklevel=1
        )
        warnings.warn("IProgress not found. Please update jupyter", UserWarning, stacklevel=1)
        warnings.warn("run.pt: head ['proj.weight'] has a new shape", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["run.pt: head ['proj.weight'] has a new shape"]

    # Lightning's info lines: the hardware probe and tips go, anything else stays.
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    seen = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        logger.info("GPU available: False, used: False")
        logger.info("💡 Tip: For seamless cloud logging")
        logger.info("Restored all states from the checkpoint at last.ckpt")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == ["Restored all states from the checkpoint at last.ckpt"]


def test_a_row_whose_runs_ran_differently_is_marked(results_tree, tmp_path):
    """The runs' execution records per Table 1 row; a row whose runs differ in precision is
    marked, uncommitted changes are counted but mark nothing, a run without a record differs."""
    cpu = {
        "accelerator": "cpu",
        "precision": "32-true",
        "devices": 1,
        "num_workers": 0,
        "deterministic": True,
        "sync_bn": False,
        "torch": "2.5.1",
        "cuda": None,
        "cudnn": None,
        "gpu": None,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
    }
    runs = []
    for variant, seed, execution in (
        ("baseline", 0, cpu),
        ("baseline", 1, cpu | {"dirty": True}),
        ("vmp", 0, cpu),
        ("vmp", 1, cpu | {"precision": "16-mixed"}),
        ("vmp_gate", 0, cpu),
        ("vmp_gate", 1, None),  # made before runs kept the record
    ):
        path = _metrics(tmp_path / f"runs/{variant}/seed~{seed}/metrics.json", 2.5, seed, 50.0)
        record = json.loads(path.read_text())
        record["settings"]["variant"] = variant
        if execution is not None:
            record["execution"] = execution
        path.write_text(json.dumps(record))
        runs.append(path)
    page = _Page()
    page.feed(build_report(**results_tree | {"runs": runs}).read_text())
    assert page.sections[:3] == ["run", "table1", "execution"]
    same = ["cpu", "1", "0", "True", "False", "2.5.1", "—", "—", "—", "0123456789"]
    key = ["synth_gym", "1", "x3d_tiny"]
    assert [*key, "baseline", "2", "cpu", "32-true", *same[1:], "1 of 2"] in page.rows
    assert [*key, "vmp", "2", "cpu", "16-mixed / 32-true", *same[1:], "precision"] in page.rows
    gate = next(row for row in page.rows if row[:4] == [*key, "vmp_gate"])
    differs = "accelerator, precision, devices, num_workers, deterministic, sync_bn, torch, commit"
    assert gate[-1] == f"{differs}, recorded"  # cuda, cudnn, gpu: None (—) in both
    text = (results_tree["out_dir"] / "index.html").read_text()
    assert "2 of 3 rows mix runs that ran differently" in text
    assert "<td class=differs>16-mixed / 32-true</td>" in text
