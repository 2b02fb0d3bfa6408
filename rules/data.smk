rule notebook_template:
    """Turn a jupytext percent script into the notebook papermill executes."""
    input:
        "notebooks/{notebook}.py",
    output:
        f"{RESULTS}/notebooks/{{notebook}}.ipynb",
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/notebooks/{{notebook}}.log",
    shell:
        "jupytext --to ipynb --output {output:q} {input:q} > {log:q} 2>&1"


use rule notebook_template as data_notebook_template with:
    output:
        f"{DATA_ROOT}/notebooks/{{notebook}}.ipynb",
    log:
        f"{DATA_ROOT}/notebooks/{{notebook}}.log",


rule synth_data:
    """Generate one SynthMotion scene: mp4 clips with their masks, and manifest.csv.

    Everything it reads and writes lies under data_root, so profiles that share a data_root (and
    its scene settings) share the scene: one profile's run never regenerates another's data."""
    input:
        notebook=f"{DATA_ROOT}/notebooks/synth_data.ipynb",
    output:
        manifest=f"{DATA_ROOT}/{{dataset}}/manifest.csv",
        notebook=f"{DATA_ROOT}/{{dataset}}/synth_data.ipynb",
    params:
        parameters=lambda wc: json.dumps(
            {
                "root": dataset_root(wc.dataset),
                "scene": (config["datasets"].get(wc.dataset) or config["pretrain"])["scene"],
                "overrides": (config["datasets"].get(wc.dataset) or config["pretrain"]).get("generate", {}),
                "seed": 0,
            }
        ),
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/synth_data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synth_data/{{dataset}}.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        PAPERMILL


rule decode_cache:
    """Decode a SynthMotion scene's videos once into decoded.npy, which its runs memory-map;
    rebuilt when a video changes (size, mtime: the videos' fingerprint is a param). A video that
    does not decode is left out and listed in decoded.json; a run decodes it itself and counts it."""
    input:
        f"{DATA_ROOT}/{{dataset}}/manifest.csv",
    output:
        decoded=f"{DATA_ROOT}/{{dataset}}/decoded.npy",
        index=f"{DATA_ROOT}/{{dataset}}/decoded.json",
    params:
        root=lambda wc: dataset_root(wc.dataset),
        videos=lambda wc: video_fingerprint([Path(dataset_root(wc.dataset)) / "videos"]),
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/decode_cache/{{dataset}}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        f"python -m vmp.data.clips {{params.root:q}} > {{log:q}} 2>&1 || {{{{ {FAILURE_CAUSE}; exit 1; }}}}"


rule synth_data_record:
    """The profile's copy of a scene's executed notebook (the results page links it)."""
    localrule: True
    input:
        f"{DATA_ROOT}/{{dataset}}/synth_data.ipynb",
    output:
        f"{RESULTS}/data/{{dataset}}/synth_data.ipynb",
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/synth_data_record/{{dataset}}.log",
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


if FETCHES:

    checkpoint fetch:
        """Download what the profile still lacks of one catalogue item (vmp.fetch: resumed, verified
        against pinned or first-use checksums, written atomically, archives extracted); the record
        lists what it produced. Runs where Snakemake runs (login node), before the jobs that read it."""
        localrule: True
        output:
            f"{RESULTS}/fetched/{{item}}.json",
        log:
            f"{RESULTS}/logs/fetch/{{item}}.log",
        params:
            plan=lambda wc: FETCHES[wc.item],
        run:
            from vmp.fetch import fetch_planned

            from vmp.workflow.preflight import check_inputs

            fetch_planned(wildcards.item, params.plan, output[0], log[0])
            # what was downloaded fits before any job reads it (the pre-flight skipped it)
            provided = [str(Path(path)) for path in params.plan["provides"]]
            checkpoints_ = (config.get("pretrain") or {}).get("checkpoints") or {}
            backbones = [b for b, path in checkpoints_.items() if str(Path(path)) in provided]
            check_inputs(config, params.plan["datasets"], backbones)


rule prepare_data:
    """Index, validate, cut and probe one split of a real dataset (HMDB-51, FineGym, MPII Cooking 2).

    Reruns when the split's list or annotation files change (its inputs) or when a video is added,
    removed, replaced or emptied (the videos' fingerprint is one of its params)."""
    input:
        notebook=f"{RESULTS}/notebooks/prepare_data.ipynb",
        root=dataset_root_input,
        lists=dataset_lists,
    output:
        manifest=f"{RESULTS}/data/{{dataset}}/{{split}}/manifest.csv",
        report=f"{RESULTS}/data/{{dataset}}/{{split}}/prepare_report.json",
        notebook=f"{RESULTS}/data/{{dataset}}/{{split}}/prepare_data.ipynb",
    params:
        parameters=lambda wc, output: json.dumps(
            {
                "dataset_format": config["datasets"][wc.dataset]["format"],
                "root": dataset_root(wc.dataset),
                "split": wc.split,
                "paths": config["datasets"][wc.dataset].get("paths", {}),
                "out_dir": str(Path(output.manifest).parent),
                "workers": RES.get("prepare_workers", 1),
                "short_side": config["datasets"][wc.dataset].get("short_side"),
            }
        ),
        videos=dataset_videos,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{dataset}}/{{split}}.tsv"
    threads: RES.get("prepare_workers", 1)
    resources:
        mem_mb=4000,
        runtime=240,
    shell:
        # The job's output goes to its log; one summary line (found / missing / unreadable, the
        # report's path) also goes to the terminal, also when preparation stopped on a bad class.
        f"{RUN_NOTEBOOK} && status=0 || status=$?; "
        "python -m vmp.data.official $(dirname {output.manifest:q}) 2>> {log:q} | tee -a {log:q} >&2 || true; "
        f"[ $status = 0 ] || {FAILURE_CAUSE}; exit $status"
