"""Wall time of the workflow at 1 vs 2 cores, side by side in one run.

    .venv/bin/python benchmarks/dag_cores.py [--configfile config/smoke.yaml] [--cores 1 2]

Each measurement runs the whole DAG of the given configuration from nothing (fresh results and
data folders in a temporary directory) and prints wall seconds and the speed-up against the
first core count.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_dag(configfile: Path, cores: int, workdir: Path) -> float:
    config = yaml.safe_load(configfile.read_text())
    config |= {"results": str(workdir / "results"), "data_root": str(workdir / "data")}
    local = workdir / "config.yaml"
    local.write_text(yaml.safe_dump(config, sort_keys=False))
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    subprocess.run(
        ["snakemake", "--cores", str(cores), "--configfile", str(local), "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "smoke.yaml")
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    times = {}
    for cores in args.cores:
        with tempfile.TemporaryDirectory() as tmp:
            times[cores] = run_dag(args.configfile, cores, Path(tmp))
        print(f"{cores} core(s): {times[cores]:.1f} s", flush=True)
    base = args.cores[0]
    for cores in args.cores[1:]:
        print(f"speed-up {base} -> {cores} cores: {times[base] / times[cores]:.2f}x")


if __name__ == "__main__":
    main()
