rule pretrain:
    """Pre-train one backbone (no prompts) on the source set, the stand-in for Kinetics."""
    input:
        notebook=f"{RESULTS}/notebooks/train.ipynb",
        data=lambda wc: data_ready_file(config["pretrain"]["dataset"]),
    output:
        model=f"{RESULTS}/pretrain/{{backbone}}/model.pt",
        metrics=f"{RESULTS}/pretrain/{{backbone}}/metrics.json",
        history=f"{RESULTS}/pretrain/{{backbone}}/history.csv",
        notebook=f"{RESULTS}/pretrain/{{backbone}}/train.ipynb",
    params:
        parameters=lambda wc: train_parameters(wc.backbone),
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/pretrain/{{backbone}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{backbone}}.tsv"
    threads: RES.get("threads", 1)
    resources:
        mem_mb=RES.get("mem_mb", 4000),
        runtime=RES.get("runtime", 60),
        gpu=RES.get("gpu", 0),
    shell:
        "papermill --log-output {input.notebook:q} {output.notebook:q} -k python3 -y {params.parameters:q} > {log:q} 2>&1"


for seeds, cells in SEED_GROUPS.items():

    rule:
        """Fine-tune one cell of Table 1 (dataset, split, backbone, variant, lambda): each of its seeds in turn."""
        name:
            "finetune_seeds_" + "_".join(map(str, seeds))
        input:
            notebook=f"{RESULTS}/notebooks/train.ipynb",
            data=lambda wc: data_ready_file(*wc.cell.split("/")[:2]),
            pretrained=lambda wc: pretrained_checkpoint(wc.cell.split("/")[2]),
        output:
            metrics=[f"{RESULTS}/runs/{{cell}}/seed~{seed}/metrics.json" for seed in seeds],
            history=[f"{RESULTS}/runs/{{cell}}/seed~{seed}/history.csv" for seed in seeds],
            model=[f"{RESULTS}/runs/{{cell}}/seed~{seed}/model.pt" for seed in seeds],
            notebook=f"{RESULTS}/runs/{{cell}}/train.ipynb",
        wildcard_constraints:
            cell="|".join(re.escape(cell) for cell in cells),
        params:
            parameters=lambda wc: train_parameters(wc.cell.split("/")[2], wc.cell),
        conda:
            "../envs/environment.yaml"
        log:
            f"{RESULTS}/logs/runs/{{cell}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/runs/{{cell}}.tsv"
        threads: RES.get("threads", 1)
        resources:
            mem_mb=RES.get("mem_mb", 4000),
            runtime=RES.get("runtime", 60) * len(seeds),
            gpu=RES.get("gpu", 0),
        shell:
            "papermill --log-output {input.notebook:q} {output.notebook:q} -k python3 -y {params.parameters:q} > {log:q} 2>&1"
