rule pretrain:
    """Pre-train one backbone (no prompts) on the source set, the stand-in for Kinetics."""
    input:
        notebook=notebook_template("train"),
        data=get_pretrain_data,
    output:
        model=f"{pretrain_dir('{backbone}')}/model.pt",
        metrics=f"{pretrain_dir('{backbone}')}/metrics.json",
        history=f"{pretrain_dir('{backbone}')}/history.csv",
        notebook=f"{pretrain_dir('{backbone}')}/train.ipynb",
    params:
        parameters=get_pretrain_parameters,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/pretrain/{{backbone}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{backbone}}.tsv"
    threads: RES.get("threads", 1) * RES.get("devices", 1)
    resources:
        mem_mb=RES.get("mem_mb", 4000),
        runtime=RES.get("runtime", 60),
        gpu=RES.get("gpu", 0),
    shell:
        PAPERMILL


for seeds, cells in SEED_GROUPS.items():

    rule:
        """Fine-tune one cell of Table 1 (dataset, split, backbone, variant, lambda): each of its seeds in turn."""
        name:
            "finetune_seeds_" + "_".join(map(str, seeds))
        input:
            notebook=notebook_template("train"),
            data=get_cell_data,
            pretrained=get_cell_pretrained,
        output:
            metrics=[f"{seed_dir('{cell}', seed)}/metrics.json" for seed in seeds],
            history=[f"{seed_dir('{cell}', seed)}/history.csv" for seed in seeds],
            model=[f"{seed_dir('{cell}', seed)}/model.pt" for seed in seeds],
            notebook=f"{cell_dir('{cell}')}/train.ipynb",
            confusion=f"{cell_dir('{cell}')}/confusion.png",
        wildcard_constraints:
            cell="|".join(re.escape(cell) for cell in cells),
        params:
            parameters=get_cell_parameters,
        conda:
            "../envs/environment.yaml"
        log:
            f"{RESULTS}/logs/runs/{{cell}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/runs/{{cell}}.tsv"
        threads: RES.get("threads", 1) * RES.get("devices", 1)
        resources:
            mem_mb=RES.get("mem_mb", 4000),
            runtime=RES.get("runtime", 60) * len(seeds),
            gpu=RES.get("gpu", 0),
        shell:
            PAPERMILL
