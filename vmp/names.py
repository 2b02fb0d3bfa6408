"""Names the configuration may use, known without importing torch, numpy or av.

Snakemake validates the configuration each time it parses the workflow, including a no-op rerun;
building the model registry for that would import torch (seconds). These lists mirror the real
ones, and tests/test_config.py asserts they are equal, so they cannot drift:

    MODELS           vmp.models.list_models(), with the pathways each backbone has
    SCENES           vmp.data.synth.SCENES
    DATASET_FORMATS  what vmp.data.official.index reads from a dataset root (without "prepared")
"""

from __future__ import annotations

# The prompt functions `MotionPromptLayer(power_norm=...)` accepts: the learnable sigmoid and the
# paper's alternatives of Fig. 3. A new one is added here and in vmp.layer.prompt.power_norm_curve.
POWER_NORMS: tuple[str, ...] = ("sigmoid", "gamma", "maxexp", "sigme", "asinhe")
# +VMP with one of the paper's alternative prompt functions (Fig. 3) instead of the learnable
# sigmoid: the optional prompt-function comparison (single-pathway backbones).
PROMPT_FUNCTION_VARIANTS = tuple(f"vmp_{name}" for name in POWER_NORMS if name != "sigmoid")
# The paper's learnable sigmoid layer as its Table 1 places it (in front of every pathway, or of
# SlowFast's slow or fast one).
PAPER_VARIANTS = ("vmp", "vmp_slow", "vmp_fast", "vmp_both")
# The positive control, not a method: A_t is SynthMotion's ground truth instead of a learned map,
# the class object's motion region (its mask in frame t or t+1), hard 0/1, no dilation (0 px), no
# floor: exactly the region the attention is scored on (vmp.layer.oracle says why). SynthMotion
# datasets only: they have the masks.
ORACLE_VARIANT = "vmp_oracle"
ORACLE_LABEL = "oracle: ground truth, not a method"
# The sigmoid layer on every pathway with another start (identity, gate: not in the paper) or
# placement (normalized: the released code's), and the oracle's ground-truth map in its place,
# each paired with the paper's sigmoid variant.
SIGMOID_ALTERNATIVES = ("vmp_identity", "vmp_gate", "vmp_normalized", ORACLE_VARIANT)
# The paper's start of the sigmoid layer (the released code's draw): m and n ~ Normal(mean, std),
# each layer its own draw. The analysis weighs start states by it (vmp.analysis.verdict).
PAPER_INIT_MEAN = 1e-5
PAPER_INIT_STD = 1.0
SINGLE_VARIANTS = ("baseline", "vmp", *SIGMOID_ALTERNATIVES, *PROMPT_FUNCTION_VARIANTS)
TWO_PATHWAY_VARIANTS = ("baseline", "vmp_slow", "vmp_fast", "vmp_both", *SIGMOID_ALTERNATIVES)
VARIANTS = (
    "baseline",
    "vmp",
    "vmp_slow",
    "vmp_fast",
    "vmp_both",
    *SIGMOID_ALTERNATIVES,
    *PROMPT_FUNCTION_VARIANTS,
)

_SLOW_FAST = ("slow", "fast")
_VIDEO = ("video",)

# Registered backbone -> its pathways (a prompt layer can sit in front of each).
MODELS: dict[str, tuple[str, ...]] = {
    "c2d_r50": _VIDEO,
    "c2d_tiny": _VIDEO,
    "i3d_r50": _VIDEO,
    "i3d_tiny": _VIDEO,
    "slowfast_r50": _SLOW_FAST,
    "slowfast_tiny": _SLOW_FAST,
    "timesformer": _VIDEO,
    "timesformer_tiny": _VIDEO,
    "x3d_l": _VIDEO,
    "x3d_m": _VIDEO,
    "x3d_s": _VIDEO,
    "x3d_tiny": _VIDEO,
    "x3d_xs": _VIDEO,
}

SCENES = ("synth_cooking", "synth_gym", "synth_hmdb", "synth_kinetics")

DATASET_FORMATS = ("synthmotion", "hmdb51", "finegym", "mpii_cooking2", "video_list")


def variants(model: str) -> list[str]:
    """Variants of a registered model (as ``vmp.models.list_variants``)."""
    return list(TWO_PATHWAY_VARIANTS if len(MODELS[model]) > 1 else SINGLE_VARIANTS)


def sigmoid_variant(model: str) -> str:
    """The paper's sigmoid layer on every pathway (as ``vmp.models.sigmoid_variant``)."""
    return "vmp_both" if len(MODELS[model]) > 1 else "vmp"
