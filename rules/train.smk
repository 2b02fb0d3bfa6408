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
        parameters=lambda wc: train_parameters(wc, pretraining=True),
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


rule finetune:
    """Fine-tune one cell of Table 1: dataset, split, backbone, variant, lambda and seed."""
    input:
        notebook=f"{RESULTS}/notebooks/train.ipynb",
        data=lambda wc: data_ready_file(wc.dataset, wc.split),
        pretrained=lambda wc: pretrained_checkpoint(wc.backbone),
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}/metrics.json",
        history=f"{RESULTS}/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}/history.csv",
        model=f"{RESULTS}/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}/model.pt",
        notebook=f"{RESULTS}/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}/train.ipynb",
    params:
        parameters=train_parameters,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/runs/{{dataset}}/{{split}}/{{backbone}}/{{variant}}/lambda~{{lam}}/seed~{{seed}}.tsv"
    threads: RES.get("threads", 1)
    resources:
        mem_mb=RES.get("mem_mb", 4000),
        runtime=RES.get("runtime", 60),
        gpu=RES.get("gpu", 0),
    shell:
        "papermill --log-output {input.notebook:q} {output.notebook:q} -k python3 -y {params.parameters:q} > {log:q} 2>&1"
