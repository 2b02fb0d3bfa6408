rule report:
    """HTML copies of every executed notebook and an index page."""
    input:
        notebooks=lambda wc: executed_notebooks(),
    output:
        index=f"{RESULTS}/report/index.html",
    log:
        f"{RESULTS}/logs/report.log",
    run:
        from vmp.report import build_report

        build_report(input.notebooks, Path(output.index).parent, root=RESULTS)
