"""HTML report: every executed notebook converted to HTML, and an index page linking them."""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path

import nbformat
import pandas as pd
from nbconvert import HTMLExporter

from vmp.io import write_csv, write_text


def build_report(
    notebooks: Iterable[str | Path],
    out_dir: str | Path,
    root: str | Path = ".",
    rule_times: pd.DataFrame | None = None,
) -> Path:
    """Convert ``notebooks`` to HTML under ``out_dir`` (mirroring their paths below ``root``).

    Returns the index page, which lists the notebooks grouped by folder, after the time spent per
    rule (``vmp.timing.rule_times``) when given; that table is also written as
    ``rule_times.{csv,md}`` beside the index.
    """
    out_dir, root = Path(out_dir), Path(root)
    exporter = HTMLExporter(template_name="lab")
    entries = []
    for notebook in sorted(map(Path, notebooks)):
        relative = notebook.resolve().relative_to(root.resolve())
        target = (out_dir / relative).with_suffix(".html")
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
        write_text(target, body)
        entries.append(
            (relative.parent.as_posix(), os.path.relpath(target, out_dir), relative.name)
        )
    items = "\n".join(
        f'<li><a href="{html.escape(link)}">{html.escape(folder)}/{html.escape(name)}</a></li>'
        for folder, link, name in entries
    )
    times = ""
    if rule_times is not None:
        write_csv(out_dir / "rule_times.csv", rule_times)
        write_text(out_dir / "rule_times.md", rule_times.to_markdown(index=False) + "\n")
        times = (
            "<h2>Time per rule</h2><p>From Snakemake's benchmark files: wall seconds summed over "
            "each rule's jobs (jobs run side by side).</p>" + rule_times.to_html(index=False)
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>vmp report</title></head><body>"
        "<h1>Video Motion Prompts: executed notebooks</h1>"
        f"{times}<h2>Notebooks</h2>"
        f"<p>{len(entries)} notebooks.</p><ul>\n{items}\n</ul></body></html>\n"
    )
    return write_text(out_dir / "index.html", page)
