"""The results page a researcher opens first: ``results/report/index.html``.

One static HTML file (inline CSS, no script, relative links only) with, in order: what was run
(profile, commit, configuration, machine, time), Table 1 and its verdict tables, every figure
with its caption, the lambda ablation, the data reports, the executed notebooks (converted to
HTML beside the index) grouped by stage, and the time spent per rule.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

import mistune
import nbformat
import pandas as pd
import yaml
from nbconvert import HTMLExporter

from vmp.analysis.tables import load_runs
from vmp.analysis.timing import rule_times
from vmp.io import write_csv, write_text
from vmp.training.environment import COMPARED, EXECUTION_KEYS
from vmp.training.record import METRICS, RUN_KEYS, DamagedRun, lambda_text, read_metrics

# Section titles of the executed notebooks, by the first folder below the results root.
STAGES = {
    "data": "Data",
    "pretrain": "Pre-training",
    "runs": "Fine-tuning jobs (one notebook per Table 1 cell: its variants and seeds in turn)",
    "tables": "Tables",
    "figures": "Figures",
}
TABLE_TITLES = {
    "table1": "Every cell",
    "table1_verdict": "Verdict per backbone and variant",
    "table1_strata": "By the prompt layer's state at the start",
    "prompt_states": "What the prompt layers did",
    "table1_pretraining": "Pre-trained vs from scratch",
    "attention": "Attention against the scenes' ground truth",
}
# Added to each notebook's HTML: long input lines (injected parameters) wrap instead of being cut.
NOTEBOOK_CSS = (
    "<style>.jp-InputArea pre { white-space: pre-wrap; overflow-wrap: anywhere; }</style>"
)
PACKAGES = ("torch", "lightning", "pytorchvideo", "snakemake", "papermill")

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d2125; margin: 0; }
main { max-width: 1220px; margin: 0 auto; padding: 8px 24px 48px; }
h1 { font-size: 26px; margin: 16px 0 4px; }
h2 { font-size: 21px; margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 17px; margin: 22px 0 6px; }
nav { position: sticky; top: 0; background: #f6f8fa; border-bottom: 1px solid #d0d7de;
      padding: 6px 24px; font-size: 14px; }
nav a { margin-right: 16px; }
a { color: #0757b5; }
dl.facts { display: grid; grid-template-columns: 170px 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; max-height: 480px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums;
        margin: 6px 0 10px; }
th, td { border-bottom: 1px solid #e1e4e8; padding: 3px 8px; white-space: nowrap; }
th { background: #f6f8fa; text-align: left; }
td.gain { background: #dafbe1; font-weight: 600; }
td.loss { background: #ffebe9; font-weight: 600; }
td.differs { background: #fff8c5; font-weight: 600; }
figure { margin: 18px 0 28px; }
figure img { display: block; max-width: 100%; max-height: 760px; width: auto; height: auto;
             border: 1px solid #e1e4e8; }
figcaption { font-size: 14px; margin-top: 6px; color: #424a53; }
.note { color: #57606a; font-size: 14px; }
.missing { color: #b35900; }
ul.notebooks { columns: 2; font-size: 14px; }
"""


def build_report(
    out_dir: str | Path,
    *,
    root: str | Path | None = None,
    notebooks: Iterable[str | Path] = (),
    tables: Iterable[str | Path] = (),
    attention: Iterable[str | Path] = (),
    figures: Iterable[str | Path] = (),
    captions: Mapping[str, str] | Iterable[str | Path] = (),
    ablation: Iterable[str | Path] = (),
    runs: Iterable[str | Path] = (),
    data: Iterable[str | Path] = (),
    config: Mapping | None = None,
    config_files: Iterable[str | Path] = (),
    benchmarks: str | Path | None = None,
    repo: str | Path = ".",
) -> Path:
    """Write ``out_dir/index.html`` and the notebooks as HTML below ``out_dir``.

    Args:
        out_dir: the report folder (``results/report``); every link is relative to it.
        root: the results root (default: the parent of ``out_dir``); notebooks' HTML copies
            mirror their paths below it.
        notebooks: executed ``.ipynb`` files.
        tables: the tables' markdown files (``table1.md``, ``table1_verdict.md``, ...); the
            ``.csv`` / ``.tex`` beside each are linked.
        attention: ``attention.md`` (SynthMotion profiles), shown in a section of its own.
        figures: the figures' PNG files (the PDF beside each is linked).
        captions: one-line caption per table or figure, by file stem, or caption files
            (``<stem>.rst``, as ``snakemake --report`` reads them).
        ablation: ``metrics.json`` of the lambda ablation's runs.
        runs: ``metrics.json`` of Table 1's runs: a section of what each row's runs ran on
            (their execution records), a row whose runs differ marked; none: no section.
        data: each dataset's ``manifest.csv``; a ``prepare_report.json`` beside it (real
            datasets) gives found / missing / unreadable, otherwise it is a generated scene.
        config: the configuration the workflow ran with; config_files: where it was read from.
        benchmarks: Snakemake's benchmark folder; the time per rule is also written as
            ``rule_times.{csv,md}`` beside the index.
        repo: the git checkout whose commit is recorded.
    """
    out_dir = Path(out_dir)
    root = Path(root) if root is not None else out_dir.parent
    if not isinstance(captions, Mapping):
        captions = {Path(p).stem: Path(p).read_text().strip() for p in captions}
    converted = _convert_notebooks(notebooks, out_dir, root)
    runs = list(runs)
    times = rule_times(benchmarks) if benchmarks and Path(benchmarks).is_dir() else None
    if times is not None:
        write_csv(out_dir / "rule_times.csv", times)
        write_text(out_dir / "rule_times.md", times.to_markdown(index=False) + "\n")
    sections = [
        ("run", "The run", _run_section(config or {}, config_files, benchmarks, repo)),
        ("table1", "Table 1", _tables_section(tables, captions, out_dir)),
        *([("execution", "What the runs ran on", _execution_section(runs))] if runs else []),
        ("figures", "Figures", _figures_section(figures, captions, out_dir)),
        *(
            [("attention", "Attention", _tables_section(attention, captions, out_dir))]
            if attention
            else []
        ),
        ("ablation", "Lambda ablation", _ablation_section(ablation)),
        ("data", "Data", _data_section(data, converted)),
        ("notebooks", "Executed notebooks", _notebooks_section(converted, root, out_dir)),
        ("time", "Time per rule", _times_section(times)),
    ]
    profile = (config or {}).get("profile", "?")
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{title}</h2>{content}</section>'
        for key, title, content in sections
    )
    page = (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>vmp results: {html.escape(str(profile))} profile</title>"
        f"<style>{CSS}</style></head><body><nav>{nav}</nav><main>"
        "<h1>Motion meets Attention: Video Motion Prompts, reproduced</h1>"
        f"<p class='note'>Profile <b>{html.escape(str(profile))}</b>; results in "
        f"<code>{html.escape(str(root))}</code>. Every number on this page is read from the "
        "files it links to.</p>"
        f"{body}</main></body></html>\n"
    )
    return write_text(out_dir / "index.html", page)


# --- the run ---------------------------------------------------------------------------------


def _run_section(config: Mapping, config_files, benchmarks, repo) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    files = ", ".join(f"<code>{html.escape(str(f))}</code>" for f in config_files) or "(none named)"
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    facts = {
        "Report built": now,
        "Commit": _git_state(repo),
        "Configuration": f"{files}; {html.escape(_config_summary(config))}",
        "Machine": html.escape(
            f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
        ),
        "Packages": html.escape(versions),
        "Wall time": _wall_time(benchmarks),
    }
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    dumped = yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)
    return (
        f"<dl class='facts'>{rows}</dl>"
        "<details><summary>The configuration the workflow ran with (after defaults)</summary>"
        f"<pre>{html.escape(dumped)}</pre></details>"
    )


def _plain(value):
    """Snakemake's config holds its own mapping types; YAML wants plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _config_summary(config: Mapping) -> str:
    datasets = config.get("datasets", {})
    backbones = config.get("backbones", {})
    parts = [
        "datasets "
        + ", ".join(
            f"{n} (splits {', '.join(map(str, d.get('splits', [])))})" for n, d in datasets.items()
        ),
        "backbones "
        + ", ".join(f"{n} ({', '.join(b.get('variants', []))})" for n, b in backbones.items()),
        f"seeds {config.get('seeds', '?')}",
        f"lambda {config.get('lambda', '?')}",
        f"{config.get('optim', {}).get('epochs', '?')} fine-tuning epochs",
    ]
    if ablation := config.get("ablation"):
        parts.append(f"ablation lambdas {ablation.get('lambdas')} on {ablation.get('dataset')}")
    return "; ".join(parts)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_state(repo) -> str:
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("log", "-1", "--format=%h %cs %s")
        changed = [
            line
            for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
            if line
        ]
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    dirty = (
        f" <span class='missing'>plus uncommitted changes in {len(changed)} files</span>"
        if changed
        else ""
    )
    return f"<code>{html.escape(commit)}</code>{dirty}"


def _wall_time(benchmarks) -> str:
    """From the first benchmarked job's start to the last one's end (benchmark files' times)."""
    files = (
        sorted(Path(benchmarks).rglob("*.tsv")) if benchmarks and Path(benchmarks).is_dir() else []
    )
    if not files:
        return "unknown (no Snakemake benchmark files)"
    spans = []
    for tsv in files:
        end = tsv.stat().st_mtime
        spans.append((end - float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]), end))
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    when = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{_duration(end - start)} from the first benchmarked job's start ({when}) to the last "
        f"one's end, over {len(files)} jobs (data, pre-training and fine-tuning; a rerun of some "
        "jobs stretches this span)"
    )


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


# --- tables and figures ----------------------------------------------------------------------


def _markdown(text: str) -> str:
    rendered = mistune.create_markdown(escape=True, plugins=["table"])(text)
    rendered = re.sub(r"<td([^>]*)>(gain|loss)</td>", r'<td\1 class="\2">\2</td>', rendered)
    return f"<div class='scroll'>{rendered}</div>"


def _link(path: Path, out_dir: Path, text: str | None = None) -> str:
    href = Path(os.path.relpath(path, out_dir)).as_posix()
    return f'<a href="{html.escape(href)}">{html.escape(text or path.name)}</a>'


def _siblings(path: Path, out_dir: Path, suffixes: Iterable[str]) -> str:
    found = [path.with_suffix(s) for s in suffixes if path.with_suffix(s).exists()]
    return " · ".join(_link(p, out_dir) for p in found)


def _tables_section(tables, captions, out_dir: Path) -> str:
    parts = []
    for path in map(Path, tables):
        title = TABLE_TITLES.get(path.stem, path.stem)
        caption = captions.get(path.stem, "")
        files = _siblings(path, out_dir, (".csv", ".md", ".tex"))
        parts.append(
            f"<h3>{html.escape(title)}</h3><p class='note'>{html.escape(caption)} ({files})</p>"
            + (
                _markdown(path.read_text())
                if path.exists()
                else "<p class='missing'>not written</p>"
            )
        )
    return "".join(parts) or "<p class='missing'>No table was given.</p>"


def _figures_section(figures, captions, out_dir: Path) -> str:
    parts = []
    for path in map(Path, figures):
        caption = captions.get(path.stem, path.stem)
        src = html.escape(Path(os.path.relpath(path, out_dir)).as_posix())
        files = _siblings(path, out_dir, (".png", ".pdf"))
        parts.append(
            f"<figure id='{html.escape(path.stem)}'><img src='{src}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)} ({files})</figcaption></figure>"
        )
    return "".join(parts) or "<p class='missing'>No figure was given.</p>"


def _ablation_section(metrics) -> str:
    metrics = list(metrics)
    if not metrics:
        return "<p class='note'>This profile runs no lambda ablation.</p>"
    runs = load_runs(metrics)
    first = runs.iloc[0]
    summary = runs.groupby("lambda").agg(
        seeds=("seed", "size"),
        top1_mean=("top1", "mean"),
        top1_sd=("top1", "std"),
        top1_min=("top1", "min"),
        top1_max=("top1", "max"),
    )
    for column, title in (("prompt_slope", "slope a"), ("prompt_shift", "shift b")):
        if column in runs:
            summary[title] = runs.groupby("lambda")[column].mean()
    summary = summary.rename(
        columns={
            "top1_mean": "top-1 mean",
            "top1_sd": "top-1 sd",
            "top1_min": "top-1 min",
            "top1_max": "top-1 max",
        }
    )
    formats = {"lambda": "{:g}".format, "shift b": "{:.3f}".format}
    table = summary.reset_index().to_html(
        index=False, formatters=formats, float_format="{:.1f}".format, na_rep=""
    )
    return (
        f"<p class='note'>{html.escape(first['dataset'])} split {html.escape(first['split'])}, "
        f"{html.escape(first['backbone'])} {html.escape(first['variant'])}: test top-1 (%) per "
        "lambda over its seeds, and the learned slope a and shift b (means). Fig. 4 draws their "
        f"course over the epochs.</p><div class='scroll'>{table}</div>"
    )


# --- execution records -----------------------------------------------------------------------

EXECUTION_TITLES = {
    "accelerator": "accelerator",
    "precision": "precision",
    "devices": "devices",
    "num_workers": "workers",
    "deterministic": "deterministic",
    "sync_bn": "sync BN",
    "torch": "torch",
    "cuda": "CUDA",
    "cudnn": "cuDNN",
    "gpu": "GPU",
    "commit": "commit",
}


def execution_rows(metrics: Iterable[str | Path]) -> pd.DataFrame:
    """One row per Table 1 row (dataset, split, backbone, variant): its runs, each field of their
    execution records (:data:`vmp.training.environment.COMPARED`; the distinct values, sorted and
    joined by " / ", where the runs differ), the runs with uncommitted changes (``dirty``) and
    ``differs``: the fields in which the runs differ ("recorded" where some runs, made before
    runs kept the record, have none)."""
    keys = list(RUN_KEYS[:4])
    records = []
    for path in metrics:
        record = read_metrics(path)
        settings, execution = record["settings"], record.get("execution") or {}
        records.append(
            {k: str(settings[k]) for k in keys}
            | {k: execution.get(k) for k in EXECUTION_KEYS}
            | {"recorded": bool(execution)}
        )
    rows = []
    for row_keys, group in itertools.groupby(
        sorted(records, key=lambda r: [r[k] for k in keys]), key=lambda r: [r[k] for k in keys]
    ):
        runs = list(group)
        values = {k: sorted({_shown(r[k]) for r in runs}) for k in COMPARED}
        differs = [k for k in COMPARED if len(values[k]) > 1]
        if len({r["recorded"] for r in runs}) > 1:
            differs.append("recorded")
        rows.append(
            dict(zip(keys, row_keys, strict=True))
            | {"runs": len(runs)}
            | {k: " / ".join(v) for k, v in values.items()}
            | {"dirty": sum(bool(r["dirty"]) for r in runs), "differs": ", ".join(differs)}
        )
    return pd.DataFrame(rows)


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value):
        return value[:10]  # a commit
    return str(value)


def _execution_section(metrics) -> str:
    table = execution_rows(metrics)
    head = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in (*RUN_KEYS[:4], "runs", *EXECUTION_TITLES.values(), "uncommitted", "differs in")
    )
    body = []
    for _, row in table.iterrows():
        differs = set(row["differs"].split(", ")) - {""}
        cells = [f"<td>{html.escape(str(row[k]))}</td>" for k in (*RUN_KEYS[:4], "runs")]
        cells += [
            f"<td{' class=differs' if k in differs else ''}>{html.escape(row[k])}</td>"
            for k in EXECUTION_TITLES
        ]
        cells.append(f"<td>{row['dirty']} of {row['runs']}</td>" if row["dirty"] else "<td></td>")
        cells.append(
            f"<td class=differs>{html.escape(row['differs'])}</td>" if differs else "<td></td>"
        )
        body.append(f"<tr>{''.join(cells)}</tr>")
    flagged = int((table["differs"] != "").sum())
    summary = (
        f"<p class='missing'>{flagged} of {len(table)} rows mix runs that ran differently "
        "(marked): their spread and paired differences may partly come from that.</p>"
        if flagged
        else f"<p class='note'>The runs of each of the {len(table)} rows ran alike.</p>"
    )
    return (
        "<p class='note'>What each Table 1 row's runs (seeds) ran on, from their "
        "<code>metrics.json</code>: accelerator, precision, processes, loader workers, "
        "deterministic algorithms (false: cuDNN's autotuner), SyncBatchNorm, torch, CUDA and cuDNN "
        "(— off CUDA), GPU, and the code's commit. Where a row's runs differ in any of these, the "
        "values are listed and the row is marked. Uncommitted changes are counted, not compared: "
        "they may be anything from a README edit to a changed loss.</p>"
        + summary
        + f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


# --- data ------------------------------------------------------------------------------------


def _data_section(manifests, converted) -> str:
    rows, details = [], []
    for manifest in map(Path, manifests):
        report = manifest.parent / "prepare_report.json"
        if report.exists():
            r = json.loads(report.read_text())
            name, split = r["dataset"], str(r["split"])
            counts = [
                r["listed"],
                r["found"],
                len(r["missing"]),
                len(r["unreadable"]),
                r["readable"],
                r["num_classes"],
            ]
            source = "prepared from " + html.escape(str(r["root"]))
            problems = [f"missing: {p}" for p in r["missing"]]
            problems += [f"unreadable: {u['path']}: {u['reason']}" for u in r["unreadable"]]
            if problems:
                items = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in problems)
                details.append(
                    f"<details><summary>{html.escape(name)} split {split}: {len(problems)} videos left out</summary><ul>{items}</ul></details>"
                )
        elif manifest.exists():
            table = pd.read_csv(manifest)
            name, split = (
                manifest.parent.name,
                ", ".join(sorted(table["split"].astype(str).unique())) if "split" in table else "",
            )
            videos = table["path"].nunique()
            counts = [videos, videos, 0, 0, videos, table["class_name"].nunique()]
            source = "generated (SynthMotion)"
        else:
            rows.append(
                f"<tr><td colspan='9' class='missing'>{html.escape(str(manifest))} does not exist</td></tr>"
            )
            continue
        notebook = next(
            (link for parts, link in converted if parts[:3] == ("data", name, split)),
            next((link for parts, link in converted if parts[:2] == ("data", name)), None),
        )
        cells = "".join(f"<td>{c}</td>" for c in (html.escape(name), split, *counts))
        link = f'<a href="{html.escape(notebook)}">notebook</a>' if notebook else ""
        rows.append(f"<tr>{cells}<td>{source}</td><td>{link}</td></tr>")
    if not rows:
        return "<p class='missing'>No dataset was given.</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "dataset",
            "split",
            "listed",
            "found",
            "missing",
            "unreadable",
            "readable",
            "classes",
            "source",
            "",
        )
    )
    return (
        "<p class='note'>Videos each dataset lists, finds and can decode; missing and unreadable "
        "videos are left out of training and named below.</p>"
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        + ("".join(details) or "<p class='note'>No video was missing or unreadable.</p>")
    )


# --- notebooks and time ----------------------------------------------------------------------


def _convert_notebooks(notebooks, out_dir: Path, root: Path) -> list[tuple[tuple[str, ...], str]]:
    """HTML copy of each notebook under ``out_dir``: [(path parts below root, relative link)]."""
    exporter = HTMLExporter(template_name="lab")
    converted = []
    for notebook in sorted(map(Path, notebooks)):
        relative = notebook.resolve().relative_to(root.resolve())
        target = (out_dir / relative).with_suffix(".html")
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
        write_text(target, body.replace("</head>", f"{NOTEBOOK_CSS}</head>", 1))
        converted.append((relative.parts, Path(os.path.relpath(target, out_dir)).as_posix()))
    return converted


def _confusion_link(cell: Path, out_dir: Path) -> str:
    """ " · confusion" linking a cell's confusion matrix (drawn by its job), if there is one."""
    figure = cell / "confusion.png"
    return f" · {_link(figure, out_dir, 'confusion')}" if figure.exists() else ""


def _recorded(cell: Path) -> tuple[str, str]:
    """(variant, lambda) of a cell as its runs' records name them (the first finished run below
    ``cell``); "?" where no run below it has a readable record."""
    runs = sorted(p for p in cell.iterdir() if (p / METRICS).is_file()) if cell.is_dir() else []
    for run in runs:
        try:
            settings = read_metrics(run)["settings"]
            return str(settings["variant"]), lambda_text(settings["lambda"])
        except (DamagedRun, KeyError, TypeError, ValueError):
            continue
    return "?", "?"


def _job_cells(notebook: Path) -> list[Path]:
    """The cells (folders of a variant and lambda) a training job's notebook trained, in its
    order, from the runs it was given (papermill's record of its parameters)."""
    parameters = nbformat.read(notebook, as_version=4).metadata.get("papermill", {})
    runs = parameters.get("parameters", {}).get("runs", [])
    return list(dict.fromkeys(Path(run["out_dir"]).parent for run in runs))


def _job_row(parts: tuple[str, ...], root: Path, out_dir: Path) -> tuple[list[str], str]:
    """A job notebook's row: dataset, split, backbone (its folders), what it trained besides
    Table 1's cell (ablation, placement), and each of its cells as ``variant λ=l`` (from the
    runs' records) with its confusion matrix."""
    kind = parts[4] if len(parts) > 5 else "Table 1"
    cells = []
    for cell in _job_cells(root.joinpath(*parts)):
        variant, lam = _recorded(cell)
        cells.append(f"{html.escape(variant)} λ={html.escape(lam)}{_confusion_link(cell, out_dir)}")
    return [*(html.escape(x) for x in (*parts[1:4], kind))], " · ".join(cells) or "?"


def _notebooks_section(converted, root: Path, out_dir: Path) -> str:
    parts = [f"<p class='note'>{len(converted)} executed notebooks, as HTML.</p>"]
    for stage, title in STAGES.items():
        entries = [(p, link) for p, link in converted if p[0] == stage]
        if not entries:
            continue
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if stage == "runs":
            head = "".join(f"<th>{h}</th>" for h in (*RUN_KEYS[:3], "job", "cells", ""))
            rows = ""
            for p, link in entries:
                keys, cells = _job_row(p, root, out_dir)
                rows += "<tr>" + "".join(f"<td>{k}</td>" for k in keys)
                rows += f'<td>{cells}</td><td><a href="{html.escape(link)}">notebook</a></td></tr>'

            parts.append(
                f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
            )
        else:
            items = "".join(
                f'<li><a href="{html.escape(link)}">{html.escape("/".join(p))}</a></li>'
                for p, link in entries
            )
            parts.append(f"<ul class='notebooks'>{items}</ul>")
    others = [(p, link) for p, link in converted if p[0] not in STAGES]
    if others:
        items = "".join(
            f'<li><a href="{html.escape(link)}">{html.escape("/".join(p))}</a></li>'
            for p, link in others
        )
        parts.append(f"<h3>Other</h3><ul class='notebooks'>{items}</ul>")
    return "".join(parts)


def _times_section(times: pd.DataFrame | None) -> str:
    if times is None:
        return "<p class='missing'>No Snakemake benchmark files.</p>"
    return (
        "<p class='note'>From Snakemake's benchmark files: wall seconds summed over each rule's "
        "jobs (jobs run side by side, so the sum exceeds the run's wall time). Also in "
        '<a href="rule_times.csv">rule_times.csv</a> and <a href="rule_times.md">rule_times.md</a>.</p>'
        f"<div class='scroll'>{times.to_html(index=False)}</div>"
    )
