"""``python -m vmp.workflow``: a cell's folders and retrain commands; a notebook's parameters for a rerun.

python -m vmp.workflow cell --configfile config/paper.yaml config/parts/hmdb51_i3d.yaml \
        hmdb51 1 i3d_r50 [vmp] [--lambda L] [--seed S] [--run]
    the runs of a Table 1 cell (dataset, split, backbone), or of one variant (and lambda, seed)
    of it, their folders and the commands that retrain exactly those and redraw what reads them;
    the config files as Snakemake takes them (a profile, then parts or overlays, merged in
    order, `only:` honoured); --run runs them
python -m vmp.workflow params results/runs/<dataset>/<split>/<backbone>/train.ipynb rerun/
    writes rerun/params.yaml (the executed notebook's parameters, runs under rerun/) and
    prints the papermill command that runs it outside the workflow
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from vmp.training.record import KEPT, RUN_KEYS, cell_dir, cell_path, seed_dir
from vmp.workflow.config import ConfigError, check_config, nested_update, select_part
from vmp.workflow.matrix import UNREGULARISED, job_of, run_matrix


def find_runs(
    config: dict[str, Any],
    dataset: str,
    split: str,
    backbone: str,
    variant: str | None = None,
    lam: float | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The runs of ``config`` in a Table 1 cell (dataset, split, backbone), narrowed to a variant
    (at the profile's lambda unless ``lam`` is given) and a seed; a ConfigError lists the cells
    of that backbone (or all) when none is found."""
    runs = run_matrix(config)
    if variant is not None and lam is None and variant not in UNREGULARISED:
        lam = config["backbones"].get(backbone, {}).get("lambda", config["lambda"])
    wanted = {"dataset": dataset, "split": str(split), "backbone": backbone, "variant": variant}
    wanted |= {"lambda": None if lam is None else float(lam), "seed": seed}
    found = [r for r in runs if all(v is None or r[k] == v for k, v in wanted.items())]
    if not found:
        named = "/".join(str(v) for v in wanted.values() if v is not None)
        cells = list(dict.fromkeys(map(cell_path, runs)))
        near = [c for c in cells if c.startswith(f"{dataset}/{split}/{backbone}/")] or cells
        raise ConfigError(f"{named} is not run by this profile; its cells: {', '.join(near)}")
    return found


DEFAULT_CONFIG = "config/config.yaml"


def load_profile(configfiles: list[str]) -> dict[str, Any]:
    """The configuration Snakemake runs with ``--configfile`` ``configfiles``: merged in order,
    checked, restricted to its ``only:`` part (as rules/common.smk does)."""
    config: dict[str, Any] = {}
    for path in configfiles:
        config = nested_update(config, yaml.safe_load(Path(path).read_text()) or {})
    config = select_part(config) if config.get("only") else config
    check_config(config)
    return config


def retrain_commands(
    config: dict[str, Any], runs: list[dict[str, Any]], configfiles: list[str]
) -> list[list[str]]:
    """The commands that retrain ``runs`` and redraw what reads them: remove the kept copies of
    those runs (else their jobs restore them), then force their jobs. The jobs' other runs are
    restored from their kept copies, so they keep their bytes."""
    kept = [f"{seed_dir(config['results'], cell_path(r), r['seed'])}/{KEPT}" for r in runs]
    jobs = dict.fromkeys(f"{config['results']}/runs/{job_of(r)}/train.ipynb" for r in runs)
    snakemake = ["snakemake", "--cores", "2", "--forcerun", *jobs]
    if configfiles != [DEFAULT_CONFIG]:  # after the targets: --configfile takes every word after it
        snakemake += ["--configfile", *configfiles]
    return [["rm", "-rf", *kept], snakemake]


def injected_parameters(notebook: str | Path) -> dict[str, Any]:
    """The parameters an executed notebook ran with (papermill's injected-parameters cell)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    for tag in ("injected-parameters", "parameters"):  # without injected ones: the defaults
        source = next(
            (c["source"] for c in cells if tag in c.get("metadata", {}).get("tags", [])), None
        )
        if source is not None:
            break
    else:
        raise ValueError(f"{notebook} has no parameters cell")
    tree = ast.parse(source if isinstance(source, str) else "".join(source))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def rerun_parameters(notebook: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """A training notebook's parameters with its runs written under ``out_dir`` (each run in
    ``<out_dir>/<variant>/lambda~<l>/seed~<s>``, confusion matrices beside them).

    Raises a ValueError if ``out_dir`` would overlap a folder the workflow's runs wrote.
    """
    params = injected_parameters(notebook)
    if "runs" not in params:
        raise ValueError(f"{notebook} has no runs parameter (not a training notebook)")
    out = Path(out_dir).resolve()
    for old in (Path(run["out_dir"]).resolve() for run in params["runs"]):
        if out == old or out in old.parents or old in out.parents:
            raise ValueError(f"{out_dir} overlaps the workflow's run folder {old}; choose another")
    moved = {}
    for run in params["runs"]:
        cell = cell_path(
            {k: params[k] for k in ("dataset", "split", "backbone")}
            | {"variant": run["variant"], "lambda": run["lambda_reg"]}
        )
        folder = f"{out_dir}/{cell.split('/', 3)[3]}"
        moved[run["out_dir"]] = f"{folder}/seed~{run['seed']}"
        run["out_dir"] = moved[run["out_dir"]]
    params["confusions"] = {
        f"{Path(moved[dirs[0]]).parent}/confusion.png": [moved[d] for d in dirs]
        for dirs in params.get("confusions", {}).values()
    }
    return params


def _template(notebook: Path) -> Path:
    """The notebook the workflow executed: <results>/notebooks/<name>.ipynb above ``notebook``."""
    for folder in notebook.parents:
        if (candidate := folder / "notebooks" / notebook.name).is_file():
            return candidate
    return notebook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vmp.workflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    cell = commands.add_parser("cell", help="a cell's folder and the commands that retrain it")
    cell.add_argument("--configfile", nargs="+", default=[DEFAULT_CONFIG])
    cell.add_argument("--lambda", dest="lam", type=float, help="default: the variant's lambda")
    cell.add_argument("--seed", type=int, help="this seed only (default: every seed)")
    cell.add_argument("--run", action="store_true", help="run the commands (else print them)")
    cell.add_argument("key", nargs="*", help=f"{' '.join(RUN_KEYS[:3])} [variant]")
    params = commands.add_parser(
        "params", help="write an executed training notebook's parameters for a rerun elsewhere"
    )
    params.add_argument(
        "notebook", type=Path, help="e.g. results/runs/<dataset>/<split>/<backbone>/train.ipynb"
    )
    params.add_argument(
        "out_dir", type=Path, help="new run folders: <out_dir>/<variant>/lambda~<l>/seed~<s>"
    )
    args = parser.parse_args(argv)

    try:
        if args.command == "cell":
            # `--configfile a.yaml b.yaml dataset split ...`: the files are the YAML words
            words = [*args.configfile, *args.key]
            args.configfile = [w for w in words if w.endswith((".yaml", ".yml"))]
            keys = [w for w in words if not w.endswith((".yaml", ".yml"))]
            if len(keys) not in (3, 4):
                parser.error(
                    f"cell needs {' '.join(RUN_KEYS[:3])} [variant]; got {' '.join(keys) or 'none'}"
                )
            config = load_profile(args.configfile)
            runs = find_runs(config, *keys[:3], *keys[3:] or [None], args.lam, args.seed)
            cells = {}
            for run in runs:
                cells.setdefault(cell_path(run), []).append(run["seed"])
            for cell, seeds in cells.items():
                print(f"cell      {cell} (seeds {', '.join(map(str, seeds))})")
                print(f"folder    {cell_dir(config['results'], cell)}")
            commands = retrain_commands(config, runs, args.configfile)
            for command in commands:
                print(f"rerun     {shlex.join(command)}")
            if args.run:
                for command in commands:
                    subprocess.run(command, check=True)
        else:
            values = rerun_parameters(args.notebook, args.out_dir)
            args.out_dir.mkdir(parents=True, exist_ok=True)
            (args.out_dir / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
            out = args.out_dir / args.notebook.name
            command = ["papermill", str(_template(args.notebook)), str(out), "-k", "python3"]
            print(shlex.join([*command, "-f", str(args.out_dir / "params.yaml")]))
    except (ConfigError, ValueError, OSError) as e:
        parser.exit(2, f"error: {e}\n")
