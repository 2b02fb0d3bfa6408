rule table1:
    """Table 1: mean +- std over seeds of every cell, beside the published value where one exists.

    Also the paired +VMP differences' verdict summary and, for backbones with `pretrained: false`
    and an `arch` that is itself a backbone of the profile, the scratch vs pre-trained comparison
    (a one-line note when there is none).
    """
    input:
        notebook=f"{RESULTS}/notebooks/table1.ipynb",
        metrics=[f"{run_dir(run)}/metrics.json" for run in TABLE_RUNS],
        published="config/published/table1.csv",
    output:
        csv=report(f"{RESULTS}/tables/table1.csv", caption="../report/table1.rst", category="Table 1"),
        md=f"{RESULTS}/tables/table1.md",
        tex=f"{RESULTS}/tables/table1.tex",
        verdict_csv=report(
            f"{RESULTS}/tables/table1_verdict.csv", caption="../report/table1_verdict.rst", category="Table 1"
        ),
        verdict_md=f"{RESULTS}/tables/table1_verdict.md",
        strata_csv=report(
            f"{RESULTS}/tables/table1_strata.csv", caption="../report/table1_strata.rst", category="Table 1"
        ),
        strata_md=f"{RESULTS}/tables/table1_strata.md",
        states_csv=report(
            f"{RESULTS}/tables/prompt_states.csv", caption="../report/prompt_states.rst", category="Table 1"
        ),
        states_runs=f"{RESULTS}/tables/prompt_states_runs.csv",
        states_md=f"{RESULTS}/tables/prompt_states.md",
        pretraining_csv=report(
            f"{RESULTS}/tables/table1_pretraining.csv", caption="../report/table1_pretraining.rst", category="Table 1"
        ),
        pretraining_md=f"{RESULTS}/tables/table1_pretraining.md",
        notebook=f"{RESULTS}/tables/table1.ipynb",
    params:
        parameters=get_table1_parameters,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/table1.log",
    shell:
        PAPERMILL


rule attention:
    """Attention of every +VMP run on a SynthMotion scene against the scene's ground-truth masks."""
    input:
        notebook=f"{RESULTS}/notebooks/attention.ipynb",
        models=[f"{run_dir(run)}/model.pt" for run in ATTENTION_RUNS],
        manifests=[f"{DATA_ROOT}/{name}/manifest.csv" for name in sorted({run["dataset"] for run in ATTENTION_RUNS})],
    output:
        runs=f"{RESULTS}/tables/attention_runs.csv",
        lambda_csv=f"{RESULTS}/tables/attention_lambda.csv",
        csv=report(f"{RESULTS}/tables/attention.csv", caption="../report/attention.rst", category="Attention"),
        md=f"{RESULTS}/tables/attention.md",
        notebook=f"{RESULTS}/tables/attention.ipynb",
    params:
        parameters=get_attention_parameters,
    conda:
        "../envs/environment.yaml"
    log:
        f"{RESULTS}/logs/attention.log",
    shell:
        PAPERMILL


# The optional target exists where the configuration asks for it (config `prompt_functions`).
if PROMPT_FUNCTIONS:

    rule prompt_functions:
        """Optional target (not part of `all`): the prompt functions of Fig. 3 against the learnable
        sigmoid, one backbone's +VMP rows on every target scene (config `prompt_functions`)."""
        localrule: True
        input:
            notebook=f"{RESULTS}/notebooks/prompt_functions.ipynb",
            models=[f"{run_dir(run)}/model.pt" for run in PROMPT_FUNCTION_RUNS],
            manifests=[
                f"{DATA_ROOT}/{name}/manifest.csv"
                for name in sorted({run["dataset"] for run in PROMPT_FUNCTION_RUNS} & set(SYNTH_DATASETS))
            ],
        output:
            runs=f"{RESULTS}/tables/prompt_functions_runs.csv",
            csv=f"{RESULTS}/tables/prompt_functions.csv",
            md=f"{RESULTS}/tables/prompt_functions.md",
            notebook=f"{RESULTS}/tables/prompt_functions.ipynb",
        params:
            parameters=get_prompt_functions_parameters,
        conda:
            "../envs/environment.yaml"
        log:
            f"{RESULTS}/logs/prompt_functions.log",
        shell:
            PAPERMILL
