# Proposed (not yet included by the Snakefile): download what the paper profile can fetch.
# `snakemake --cores 1 --configfile config/paper.yaml fetch_all` fills data/ and checkpoints/;
# the downloads run on the submit host (localrule), one item per job.
from vmp.fetch import CATALOGUE, MARKER


def fetch_outputs(item):
    """The files one catalogue item produces (extracted folders are represented by their marker)."""
    entry = CATALOGUE[item]
    dest = "checkpoints" if entry.base == "checkpoints" else f"{DATA_ROOT}/{item}"
    files = [f"{dest}/{f.name}" for f in entry.files]
    return files + [f"{dest}/{u.into}/{MARKER}" for u in entry.unpack]


for _item in ("checkpoints", "hmdb51", "finegym"):

    rule:
        name:
            f"fetch_{_item}"
        output:
            fetch_outputs(_item),
        log:
            f"{RESULTS}/logs/fetch/{_item}.log",
        params:
            item=_item,
            root=DATA_ROOT,
        localrule: True
        shell:
            "python -m vmp.fetch --root {params.root:q} --checkpoints checkpoints {params.item} "
            "> {log:q} 2>&1"


rule fetch_all:
    input:
        [path for item in ("checkpoints", "hmdb51", "finegym") for path in fetch_outputs(item)],
