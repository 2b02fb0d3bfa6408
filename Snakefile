# Reproduces "Motion meets Attention: Video Motion Prompts" (Chen et al., ACML 2024).
# `snakemake --cores N` regenerates every table and figure into results/ (see README.md).
from snakemake.utils import min_version

min_version("9.0")


# `--configfile X` replaces the default configuration instead of being merged into it, so a smaller
# profile (config/smoke.yaml) can drop datasets and backbones.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/tables.smk"
include: "rules/figures.smk"
include: "rules/report.smk"


# Light rules run where Snakemake runs, not as cluster jobs (profiles/slurm); rules that exist only
# in some profiles (prompt_functions, fetch) say so themselves.
localrules:
    all,
    notebook_template,
    data_notebook_template,
    table1,
    attention,
    figures,
    report,


rule all:
    input:
        all_outputs(),
    default_target: True
