"""PySlowFast checkpoints for the pytorchvideo C2D, I3D and SlowFast builders.

PySlowFast (and the paper authors' fork of it) names a ResNet by stage and pathway::

    s1.pathway0_stem.conv / .bn                  stem of each pathway
    s1_fuse.conv_f2s / .bn                       fast-to-slow lateral after stage 1..4
    s2.pathway1_res0.branch1 / .branch1_bn       shortcut projection of block 0
    s2.pathway1_res0.branch2.{a,b,c} / .{a,b,c}_bn   bottleneck convolutions
    head.projection                              classifier

pytorchvideo names the same weights by block index (``blocks.1.multipathway_blocks.1.
res_blocks.0.branch2.conv_a``). `pyslowfast_names` derives the correspondence from the model's
own blocks, so it holds for every depth and width the builders make.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import Tensor, nn

# Inside a residual block: pytorchvideo name -> PySlowFast name.
_RES_BLOCK = [
    (r"^branch1_conv\.", "branch1."),
    (r"^branch1_norm\.", "branch1_bn."),
    (r"^branch2\.conv_([abc])\.", r"branch2.\1."),
    (r"^branch2\.norm_([abc])\.", r"branch2.\1_bn."),
]
_STEM = [(r"^conv\.", "conv."), (r"^norm\.", "bn.")]
_FUSION = [(r"^conv_fast_to_slow\.", "conv_f2s."), (r"^norm\.", "bn.")]


def _rename(key: str, table: list[tuple[str, str]], what: str) -> str:
    for pattern, replacement in table:
        new, hits = re.subn(pattern, replacement, key)
        if hits:
            return new
    raise ValueError(f"no PySlowFast name for {what} weight {key!r}")


def _pathway_names(part: nn.Module, stage: int, pathway: int) -> dict[str, str]:
    names = {}
    for key in part.state_dict():
        if stage == 1:
            names[key] = f"s1.pathway{pathway}_stem." + _rename(key, _STEM, "stem")
            continue
        match = re.match(r"^res_blocks\.(\d+)\.(.*)$", key)
        if match is None:
            raise ValueError(f"no PySlowFast name for stage {stage} weight {key!r}")
        block, rest = match.groups()
        inner = _rename(rest, _RES_BLOCK, "residual block")
        names[key] = f"s{stage}.pathway{pathway}_res{block}.{inner}"
    return names


def pyslowfast_names(backbone: nn.Module) -> dict[str, str]:
    """PySlowFast key for each state-dict key of a pytorchvideo ResNet or SlowFast ``Net``.

    Stages are numbered as PySlowFast does: the stem is ``s1``, the residual stages ``s2``-``s5``;
    blocks without weights (pooling) are skipped.

    Raises:
        ValueError: the model is not built from pytorchvideo's ResNet/SlowFast blocks (X3D and
            TimeSformer name their layers otherwise).
    """
    blocks = getattr(backbone, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(backbone).__name__} has no pytorchvideo `blocks`")
    names: dict[str, str] = {}
    stage = 0
    last = len(blocks) - 1
    for index, block in enumerate(blocks):
        prefix = f"blocks.{index}."
        if not block.state_dict():
            continue
        if index == last:  # the head
            for key in block.state_dict():
                names[prefix + key] = "head." + _rename(key, [(r"^proj\.", "projection.")], "head")
            continue
        stage += 1
        if hasattr(block, "multipathway_blocks"):
            for pathway, part in enumerate(block.multipathway_blocks):
                for key, theirs in _pathway_names(part, stage, pathway).items():
                    names[f"{prefix}multipathway_blocks.{pathway}.{key}"] = theirs
            if block.multipathway_fusion is not None:
                for key in block.multipathway_fusion.state_dict():
                    theirs = f"s{stage}_fuse." + _rename(key, _FUSION, "fusion")
                    names[f"{prefix}multipathway_fusion.{key}"] = theirs
        else:
            for key, theirs in _pathway_names(block, stage, 0).items():
                names[prefix + key] = theirs
    return names


def is_pyslowfast(state: dict[str, Tensor]) -> bool:
    """Whether a checkpoint's ``model_state`` uses PySlowFast's stage names (``s1.pathway0_stem``)."""
    return any(key.startswith("s1.pathway") for key in state)


def from_pyslowfast(
    state: dict[str, Tensor], backbone: nn.Module, path: str | Path
) -> dict[str, Tensor]:
    """Rename a PySlowFast ``model_state`` to ``backbone``'s keys (without the ``backbone.`` prefix).

    Raises:
        ValueError: naming ``path`` and the first keys that have no counterpart on either side
            (another architecture, depth or a layout this mapping does not know).
    """
    try:
        ours_to_theirs = pyslowfast_names(backbone)
    except ValueError as err:
        raise ValueError(
            f"pretrained={path}: PySlowFast checkpoints are read for the C2D, I3D and SlowFast "
            f"builders only ({err})"
        ) from None
    # BatchNorm's step counter is absent from checkpoints converted from Caffe2 (and unused).
    missing = sorted(
        ours
        for ours, theirs in ours_to_theirs.items()
        if theirs not in state and not theirs.endswith(".num_batches_tracked")
    )
    unmatched = sorted(set(state) - set(ours_to_theirs.values()))
    if missing or unmatched:
        raise ValueError(
            f"pretrained={path}: PySlowFast layout does not match {type(backbone).__name__}: "
            f"checkpoint keys without a place: {_first(unmatched)}; model keys not in the "
            f"checkpoint: {_first([ours_to_theirs[k] for k in missing])}"
        )
    return {ours: state[theirs] for ours, theirs in ours_to_theirs.items() if theirs in state}


def _first(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
