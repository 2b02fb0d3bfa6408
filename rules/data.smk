rule notebook_template:
    """Turn a jupytext percent script into the notebook papermill executes."""
    input:
        "notebooks/{notebook}.py",
    output:
        f"{RESULTS}/notebooks/{{notebook}}.ipynb",
    log:
        f"{RESULTS}/logs/notebooks/{{notebook}}.log",
    shell:
        "jupytext --to ipynb --output {output:q} {input:q} > {log:q} 2>&1"


rule synth_data:
    """Generate one SynthMotion scene: mp4 clips and manifest.csv."""
    input:
        notebook=f"{RESULTS}/notebooks/synth_data.ipynb",
    output:
        manifest=f"{DATA_ROOT}/{{dataset}}/manifest.csv",
        notebook=f"{RESULTS}/data/{{dataset}}/synth_data.ipynb",
    params:
        parameters=lambda wc: json.dumps(
            {
                "root": dataset_root(wc.dataset),
                "scene": (config["datasets"].get(wc.dataset) or config["pretrain"])["scene"],
                "overrides": (config["datasets"].get(wc.dataset) or config["pretrain"]).get("generate", {}),
                "seed": 0,
            }
        ),
    log:
        f"{RESULTS}/logs/synth_data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synth_data/{{dataset}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3 -y {params.parameters:q} > {log:q} 2>&1"
