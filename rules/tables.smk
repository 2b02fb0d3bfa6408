rule table1:
    """Table 1: mean +- std over seeds of every cell, beside the published value where one exists.

    Also the paired +VMP differences' verdict summary and, for backbones with `pretrained: false`
    and an `arch` that is itself a backbone of the profile, the scratch vs pre-trained comparison
    (a one-line note when there is none).
    """
    input:
        notebook=f"{RESULTS}/notebooks/table1.ipynb",
        metrics=[f"{run_dir(run)}/metrics.json" for run in RUNS if run["table"]],
        published="config/published/table1.csv",
    output:
        csv=report(f"{RESULTS}/tables/table1.csv", caption="../report/table1.rst", category="Table 1"),
        md=f"{RESULTS}/tables/table1.md",
        tex=f"{RESULTS}/tables/table1.tex",
        verdict_csv=report(
            f"{RESULTS}/tables/table1_verdict.csv", caption="../report/table1_verdict.rst", category="Table 1"
        ),
        verdict_md=f"{RESULTS}/tables/table1_verdict.md",
        pretraining_csv=report(
            f"{RESULTS}/tables/table1_pretraining.csv", caption="../report/table1_pretraining.rst", category="Table 1"
        ),
        pretraining_md=f"{RESULTS}/tables/table1_pretraining.md",
        notebook=f"{RESULTS}/tables/table1.ipynb",
    params:
        parameters=lambda wc, input, output: json.dumps(
            {
                "metrics": list(input.metrics),
                "published": input.published,
                "paper_names": {
                    "datasets": {k: v.get("paper") for k, v in config["datasets"].items()},
                    "backbones": {k: v.get("paper") for k, v in config["backbones"].items()},
                    "pretrain": {k: v.get("paper_pretrain", "k400") for k, v in config["backbones"].items()},
                },
                "out_prefix": str(Path(output.csv).with_suffix("")),
                "scratch_pairs": {
                    name: backbone["arch"]
                    for name, backbone in config["backbones"].items()
                    if backbone.get("pretrained", True) is False
                    and backbone.get("arch") in config["backbones"]
                },
            }
        ),
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/table1.log",
    shell:
        "papermill --log-output {input.notebook:q} {output.notebook:q} -k python3 -y {params.parameters:q} > {log:q} 2>&1"
