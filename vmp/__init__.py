"""vmp: reproduction suite for 'Motion meets Attention: Video Motion Prompts' (ACML 2024)."""

from vmp.prompt import MotionPromptLayer, PromptOutput, temporal_variation

__all__ = ["MotionPromptLayer", "PromptOutput", "temporal_variation"]
__version__ = "0.1.0"
