"""``python -m vmp.workflow``: a cell's folder and rerun command; a notebook's parameters for a rerun.

python -m vmp.workflow cell --configfile config/paper.yaml config/parts/hmdb51_i3d.yaml \
        hmdb51 1 i3d_r50 vmp [--seed S] [--run]
    the cell's folder and the commands that retrain it (or one seed of it) and what is drawn
    from it, nothing else; the config files as Snakemake takes them (a profile, then parts or
    overlays, merged in order, `only:` honoured); --run runs them
python -m vmp.workflow params results/runs/<cell>/train.ipynb rerun/
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
from vmp.workflow.matrix import cell_seeds, run_matrix


def find_cell(
    config: dict[str, Any], dataset: str, split: str, backbone: str, variant: str, lam=None
) -> str:
    """The cell path of one training job of ``config``; a ConfigError lists the near ones."""
    lam = 0.0 if variant == "baseline" else float(config["lambda"] if lam is None else lam)
    cell = cell_path(
        {"dataset": dataset, "split": str(split), "backbone": backbone, "variant": variant}
        | {"lambda": lam}
    )
    cells = cell_seeds(run_matrix(config))
    if cell not in cells:
        near = [c for c in cells if c.startswith(f"{dataset}/{split}/{backbone}/")] or list(cells)
        raise ConfigError(f"{cell} is not a cell of this profile; cells: {', '.join(near)}")
    return cell


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
    config: dict[str, Any], cell: str, configfiles: list[str], seed: int | None = None
) -> list[list[str]]:
    """The commands that retrain ``cell`` (or its ``seed``) and redraw what reads it: remove the
    kept copies of its runs (else its job restores them), then force its job. Its other seeds
    are restored from their kept copies, so they keep their bytes."""
    seeds = [seed] if seed is not None else cell_seeds(run_matrix(config))[cell]
    kept = [f"{seed_dir(config['results'], cell, s)}/{KEPT}" for s in seeds]
    snakemake = [
        "snakemake",
        "--cores",
        "2",
        "--forcerun",
        f"{cell_dir(config['results'], cell)}/train.ipynb",
    ]
    if configfiles != [DEFAULT_CONFIG]:  # after the target: --configfile takes every word after it
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
    """A training notebook's parameters with its runs written under ``out_dir``/seed~<s>.

    Raises a ValueError if ``out_dir`` would overlap a folder the workflow's run wrote.
    """
    params = injected_parameters(notebook)
    if "out_dirs" not in params:
        raise ValueError(f"{notebook} has no out_dirs parameter (not a training notebook)")
    out = Path(out_dir).resolve()
    for old in (Path(d).resolve() for d in params["out_dirs"]):
        if out == old or out in old.parents or old in out.parents:
            raise ValueError(f"{out_dir} overlaps the workflow's run folder {old}; choose another")
    params["out_dirs"] = [f"{out_dir}/seed~{seed}" for seed in params["seeds"]]
    if params.get("confusion"):
        params["confusion"] = f"{out_dir}/confusion.png"
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
    cell.add_argument("--lambda", dest="lam", type=float, help="default: the profile's lambda")
    cell.add_argument("--seed", type=int, help="retrain this seed only (default: every seed)")
    cell.add_argument("--run", action="store_true", help="run the commands (else print them)")
    cell.add_argument("key", nargs="*", help=" ".join(RUN_KEYS[:4]))
    params = commands.add_parser(
        "params", help="write an executed training notebook's parameters for a rerun elsewhere"
    )
    params.add_argument("notebook", type=Path, help="e.g. results/runs/<cell>/train.ipynb")
    params.add_argument("out_dir", type=Path, help="new run folders: <out_dir>/seed~<s>")
    args = parser.parse_args(argv)

    try:
        if args.command == "cell":
            # `--configfile a.yaml b.yaml dataset split ...`: the files are the YAML words
            words = [*args.configfile, *args.key]
            args.configfile = [w for w in words if w.endswith((".yaml", ".yml"))]
            keys = [w for w in words if not w.endswith((".yaml", ".yml"))]
            if len(keys) != 4:
                parser.error(f"cell needs {' '.join(RUN_KEYS[:4])}; got {' '.join(keys) or 'none'}")
            config = load_profile(args.configfile)
            found = find_cell(config, *keys, args.lam)
            seeds = cell_seeds(run_matrix(config))[found]
            if args.seed is not None and args.seed not in seeds:
                raise ConfigError(f"seed {args.seed} is not a seed of {found}; its seeds: {seeds}")
            folder = cell_dir(config["results"], found)
            commands = retrain_commands(config, found, args.configfile, args.seed)
            print(f"cell      {found} (seeds {', '.join(map(str, seeds))})")
            print(f"folder    {folder}")
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
