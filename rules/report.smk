rule report:
    """The results page: what was run, Table 1, the figures, the lambda ablation, the data reports
    and every executed notebook (as HTML beside it), and the time spent per rule."""
    input:
        notebooks=executed_notebooks(),
        # The verdict first, then every cell.
        tables=expand(
            f"{RESULTS}/tables/{{name}}.md",
            name=["table1_verdict", "table1_strata", "prompt_states", "table1", "table1_pretraining"],
        ),
        attention=[f"{RESULTS}/tables/attention.md"] if ATTENTION_RUNS else [],
        figures=[f"{RESULTS}/figures/{name}.png" for name in FIGURES],
        ablation=[f"{run_dir(run)}/metrics.json" for run in RUNS if run["ablation"]],
        runs=[f"{run_dir(run)}/metrics.json" for run in TABLE_RUNS],
        data=sorted(
            {data_ready_file(name, split) for name, d in config["datasets"].items() for split in d["splits"]}
            | {data_ready_file(name) for name in SYNTH_DATASETS}
        ),
        captions=expand(
            "report/{name}.rst",
            name=["table1_verdict", "table1_strata", "prompt_states", "table1", "table1_pretraining", "attention", *FIGURES],
        ),
    output:
        index=f"{RESULTS}/report/index.html",
    params:
        config=config,
        config_files=workflow.config_settings.configfiles or ["config/config.yaml"],
        benchmarks=f"{RESULTS}/benchmarks",
    log:
        f"{RESULTS}/logs/report.log",
    run:
        from vmp.analysis.report import build_report

        build_report(Path(output.index).parent, **dict(input.items()), **dict(params.items()))
