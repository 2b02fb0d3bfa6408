"""Helpers of the Snakemake workflow: configuration, run matrix, cell commands.

Imported when Snakemake parses the workflow: nothing here imports torch at module level."""
