"""vmp: reproduction suite for 'Motion meets Attention: Video Motion Prompts' (ACML 2024)."""

__all__ = ["MotionPromptLayer", "PromptOutput", "temporal_variation"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Imported on first use: `import vmp.workflow` (Snakemake parsing the workflow) must not pay
    # for importing torch.
    if name in __all__:
        from vmp.layer import prompt

        return getattr(prompt, name)
    raise AttributeError(f"module 'vmp' has no attribute {name!r}")
