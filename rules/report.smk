rule report:
    """HTML copies of every executed notebook, and an index page with the time spent per rule."""
    input:
        notebooks=lambda wc: executed_notebooks(),
    output:
        index=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    run:
        from vmp.report import build_report
        from vmp.timing import rule_times

        times = rule_times(f"{RESULTS}/benchmarks")
        build_report(input.notebooks, Path(output.index).parent, root=RESULTS, rule_times=times)
