# Tables in the order the results page shows them: the verdict first, then every cell.
REPORT_TABLES = ["table1_verdict", "table1", "table1_pretraining"]


def report_data():
    """Each dataset's manifest: generated scenes (the pre-training source too) and prepared splits."""
    manifests = [data_ready_file(name, split) for name, d in config["datasets"].items() for split in d["splits"]]
    manifests += [data_ready_file(name) for name in SYNTH_DATASETS]
    return list(dict.fromkeys(manifests))


def report_captions(paths):
    """One-line caption per table and figure, by name (the captions of `snakemake --report`)."""
    return {Path(path).stem: Path(path).read_text().strip() for path in paths}


rule report:
    """The results page: what was run, Table 1, the figures, the lambda ablation, the data reports
    and every executed notebook (as HTML beside it), and the time spent per rule."""
    input:
        notebooks=executed_notebooks(),
        tables=[f"{RESULTS}/tables/{name}.md" for name in REPORT_TABLES],
        figures=[f"{RESULTS}/figures/{name}.png" for name in FIGURES],
        ablation=[f"{run_dir(run)}/metrics.json" for run in RUNS if run["ablation"]],
        data=report_data(),
        captions=[f"report/{name}.rst" for name in REPORT_TABLES + FIGURES],
    output:
        index=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    run:
        from vmp.report import build_report

        build_report(
            Path(output.index).parent,
            root=RESULTS,
            notebooks=input.notebooks,
            tables=input.tables,
            figures=input.figures,
            captions=report_captions(input.captions),
            ablation=input.ablation,
            data=input.data,
            config=config,
            config_files=workflow.config_settings.configfiles or ["config/config.yaml"],
            benchmarks=f"{RESULTS}/benchmarks",
        )
