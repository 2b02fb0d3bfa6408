# Tables in the order the results page shows them: the verdict first, then every cell.
REPORT_TABLES = ["table1_verdict", "table1", "table1_pretraining"]


def report_data():
    """Each dataset's manifest: generated scenes (the pre-training source too) and prepared splits."""
    manifests = [data_ready_file(name, split) for name, d in config["datasets"].items() for split in d["splits"]]
    manifests += [data_ready_file(name) for name in SYNTH_DATASETS]
    return list(dict.fromkeys(manifests))


def report_captions(wildcards):
    """One-line caption per table and figure, by name (also the captions of `snakemake --report`)."""
    return {name: Path(f"report/{name}.rst").read_text().strip() for name in REPORT_TABLES + FIGURES}


rule report:
    """The results page: what was run, Table 1, the figures, the lambda ablation, the data reports
    and every executed notebook (as HTML beside it), and the time spent per rule."""
    input:
        notebooks=executed_notebooks(),
        tables=[f"{RESULTS}/tables/{name}.md" for name in REPORT_TABLES],
        figures=[f"{RESULTS}/figures/{name}.png" for name in FIGURES],
        ablation=[f"{run_dir(run)}/metrics.json" for run in RUNS if run["ablation"]],
        data=report_data(),
    output:
        index=f"{RESULTS}/report/index.html",
    params:
        root=RESULTS,
        captions=report_captions,
        config=config,
        config_files=workflow.config_settings.configfiles or ["config/config.yaml"],
        benchmarks=f"{RESULTS}/benchmarks",
    log:
        f"{RESULTS}/logs/report.log",
    run:
        from vmp.report import build_report

        build_report(Path(output.index).parent, **dict(input.items()), **dict(params.items()))
