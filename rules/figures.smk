rule figures:
    """Figures 1, 3, 4, 5 and 6 of the paper from the runs of Table 1 and of the lambda ablation."""
    input:
        notebook=f"{RESULTS}/notebooks/figures.ipynb",
        table=run_files(TABLE_RUNS),
        ablation=run_files([run for run in RUNS if run["ablation"]]),
        data=[data_ready_file(name, spec["splits"][0]) for name, spec in config["datasets"].items()],
    output:
        figures=[
            (
                report(f"{RESULTS}/figures/{name}.{ext}", caption=f"../report/{name}.rst", category="Figures")
                if ext == "png"
                else f"{RESULTS}/figures/{name}.{ext}"
            )
            for name in FIGURES
            for ext in ("png", "pdf")
        ],
        notebook=f"{RESULTS}/figures/figures.ipynb",
    params:
        parameters=get_figures_parameters,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/figures.log",
    shell:
        PAPERMILL
