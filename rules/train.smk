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
    # before any fine-tuning job: each gates every cell of its backbone
    priority: 1000
    threads: RES.get("threads", 1) * RES.get("devices", 1)
    resources:
        mem_mb=RES.get("mem_mb", 4000),
        runtime=RES.get("runtime", 60),
        gpu=RES.get("gpu", 0),
    shell:
        PAPERMILL


for job, job_runs in JOBS.items():

    rule:
        """Fine-tune one Table 1 cell (dataset, split, backbone): baseline and every variant, each seed, in turn (or the ablation's or the placement's runs of it)."""
        name:
            f"finetune_{re.sub('[^A-Za-z0-9]+', '_', job)}"
        input:
            notebook=notebook_template("train"),
            data=job_data(job),
            pretrained=job_pretrained(job),
        output:
            metrics=[f"{run_dir(run)}/metrics.json" for run in job_runs],
            history=[f"{run_dir(run)}/history.csv" for run in job_runs],
            model=[f"{run_dir(run)}/model.pt" for run in job_runs],
            notebook=f"{RESULTS}/runs/{job}/train.ipynb",
            confusion=sorted({f"{cell_dir(cell_path(run))}/confusion.png" for run in job_runs}),
        params:
            parameters=job_parameters(job),
        conda:
            "../envs/environment.yaml"
        log:
            f"{RESULTS}/logs/runs/{job}.log",
        benchmark:
            f"{RESULTS}/benchmarks/runs/{job}.tsv"
        # Jobs with more runs start first, so that no long job runs alone at the end of the run.
        priority: len(job_runs)
        threads: RES.get("threads", 1) * RES.get("devices", 1)
        resources:
            mem_mb=RES.get("mem_mb", 4000),
            runtime=RES.get("runtime", 60) * len(job_runs),
            gpu=RES.get("gpu", 0),
        shell:
            PAPERMILL
