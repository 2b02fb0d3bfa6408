"""What each fine-tuning job of a finished run paid outside its runs' training and test.

    .venv/bin/python benchmarks/job_fixed_costs.py [results]

Reads Snakemake's benchmark of every fine-tuning job and its runs' records
(vmp.analysis.timing.fixed_costs) and prints one line per job, then the totals and the median
per job. Meaningful for a tree trained from nothing: a run restored from a kept record reports
its first training's seconds.
"""

from __future__ import annotations

import sys

from vmp.analysis.timing import fixed_costs

if __name__ == "__main__":
    table = fixed_costs(sys.argv[1] if len(sys.argv) > 1 else "results")
    print(table.to_string(index=False))
    print(
        f"{len(table)} jobs, {table['runs'].sum()} runs: wall {table['wall_s'].sum():.0f} s, "
        f"training and test {table['train_test_s'].sum():.0f} s, fixed {table['fixed_s'].sum():.0f} s "
        f"(median {table['fixed_s'].median():.1f} s per job)"
    )
