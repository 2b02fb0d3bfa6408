"""Saving `VideoClassifier` checkpoints and initialising models from local weight files.

Accepted by `load_pretrained(model, path)`:

* our format, written by `save_checkpoint`: `{"format": "vmp", "model", "num_classes",
  "state_dict", **meta}`;
* pytorchvideo model-zoo `.pyth` files (`{"model_state": ...}` with the builders' key names)
  for the CNNs, and PySlowFast checkpoints (`s1.pathway0_stem...` names, `vmp.models.pyslowfast`)
  for C2D, I3D and SlowFast;
* for TimeSformer, a transformers directory (`config.json` + `model.safetensors` or
  `pytorch_model.bin`) or a PySlowFast/TimeSformer-repo checkpoint (`model.blocks.0.attn.qkv`
  style keys in `model_state`), whose keys are renamed to the transformers ones.

A classification layer whose shape differs (other number of classes) is left freshly
initialised with a warning; prompt-layer keys may be absent; TimeSformer position and time
embeddings are interpolated to the model's crop size and frame count. Anything else that
does not match raises a ValueError naming the file and the offending keys.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vmp.io import check_fetched, write_torch
from vmp.models.backbones import TimeSformer
from vmp.models.pyslowfast import from_pyslowfast, is_pyslowfast

_PYSLOWFAST_TIMESFORMER = [
    (r"^model\.cls_token$", "timesformer.embeddings.cls_token"),
    (r"^model\.pos_embed$", "timesformer.embeddings.position_embeddings"),
    (r"^model\.time_embed$", "timesformer.embeddings.time_embeddings"),
    (r"^model\.patch_embed\.proj\.", "timesformer.embeddings.patch_embeddings.projection."),
    (r"^model\.blocks\.(\d+)\.norm1\.", r"timesformer.encoder.layer.\1.layernorm_before."),
    (r"^model\.blocks\.(\d+)\.norm2\.", r"timesformer.encoder.layer.\1.layernorm_after."),
    (
        r"^model\.blocks\.(\d+)\.attn\.qkv\.",
        r"timesformer.encoder.layer.\1.attention.attention.qkv.",
    ),
    (
        r"^model\.blocks\.(\d+)\.attn\.proj\.",
        r"timesformer.encoder.layer.\1.attention.output.dense.",
    ),
    (
        r"^model\.blocks\.(\d+)\.temporal_norm1\.",
        r"timesformer.encoder.layer.\1.temporal_layernorm.",
    ),
    (
        r"^model\.blocks\.(\d+)\.temporal_attn\.qkv\.",
        r"timesformer.encoder.layer.\1.temporal_attention.attention.qkv.",
    ),
    (
        r"^model\.blocks\.(\d+)\.temporal_attn\.proj\.",
        r"timesformer.encoder.layer.\1.temporal_attention.output.dense.",
    ),
    (r"^model\.blocks\.(\d+)\.temporal_fc\.", r"timesformer.encoder.layer.\1.temporal_dense."),
    (r"^model\.blocks\.(\d+)\.mlp\.fc1\.", r"timesformer.encoder.layer.\1.intermediate.dense."),
    (r"^model\.blocks\.(\d+)\.mlp\.fc2\.", r"timesformer.encoder.layer.\1.output.dense."),
    (r"^model\.norm\.", "timesformer.layernorm."),
    (r"^model\.head\.", "classifier."),
]


def save_checkpoint(model: nn.Module, path: str | Path, **meta: object) -> Path:
    """Write `model` (a `VideoClassifier`) to `path` atomically (`vmp.io.write_torch`).

    Args:
        model: the classifier; its `name` and `num_classes` are stored.
        path: destination file; parent directories are created.
        **meta: extra entries (epoch, metrics, ...) stored beside the weights.

    Returns:
        The path written.
    """
    path = Path(path)
    reserved = {"format", "model", "num_classes", "state_dict"} & set(meta)
    if reserved:
        raise ValueError(f"save_checkpoint: meta keys {sorted(reserved)} are reserved")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "vmp",
        "model": model.name,
        "num_classes": model.num_classes,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **meta,
    }
    return write_torch(path, payload)


def _read_hf_directory(path: Path) -> dict[str, Tensor]:
    if not (path / "config.json").is_file():
        raise ValueError(f"pretrained={path} is a directory without config.json")
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(path / "model.safetensors", device="cpu")
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ValueError(f"pretrained={path}: no model.safetensors or pytorch_model.bin inside")


def _rename_pyslowfast_timesformer(state: dict[str, Tensor]) -> dict[str, Tensor]:
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _PYSLOWFAST_TIMESFORMER:
            new, hits = re.subn(pattern, replacement, key)
            if hits:
                key = new
                break
        renamed[key] = value
    return renamed


def read_state_dict(model: nn.Module, path: str | Path) -> dict[str, Tensor]:
    """Read `path` and return its weights under `model`'s key names (`backbone.*`, ...).

    A file (or a directory's file) that `vmp.fetch` recorded in a `.fetch-lock.json` must still
    be the one recorded (`vmp.io.check_fetched`); else `vmp.io.FetchedFileChanged`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pretrained={path} does not exist")
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        if file.is_file():
            check_fetched(file)
    is_timesformer = isinstance(model.backbone, TimeSformer)
    if path.is_dir():
        if not is_timesformer:
            raise ValueError(f"pretrained={path}: directories are only read for TimeSformer")
        return {f"backbone.{k}": v for k, v in _read_hf_directory(path).items()}
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"pretrained={path} holds a {type(ckpt).__name__}, not a checkpoint dict")
    if ckpt.get("format") == "vmp":
        if ckpt.get("model") != model.name:
            warnings.warn(
                f"{path} was saved from {ckpt.get('model')!r}, loading into {model.name!r}",
                stacklevel=3,
            )
        return dict(ckpt["state_dict"])
    if "model_state" in ckpt:
        state = {k.removeprefix("module."): v for k, v in ckpt["model_state"].items()}
        if is_timesformer and any(k.startswith("model.") for k in state):
            state = _rename_pyslowfast_timesformer(state)
        elif not is_timesformer and is_pyslowfast(state):
            state = from_pyslowfast(state, model.backbone, path)
        return {f"backbone.{k}": v for k, v in state.items()}
    raise ValueError(
        f"pretrained={path}: unknown checkpoint layout (top-level keys {sorted(ckpt)[:10]}); "
        "expected a vmp checkpoint (save_checkpoint) or a dict with 'model_state'"
    )


def _resize_timesformer_embeddings(
    state: dict[str, Tensor], target: dict[str, Tensor], path: Path
) -> None:
    """Interpolate position (bicubic 2-D) and time (linear 1-D) embeddings to `target` sizes."""
    pos_key = "backbone.timesformer.embeddings.position_embeddings"
    time_key = "backbone.timesformer.embeddings.time_embeddings"
    if pos_key in state and state[pos_key].shape != target[pos_key].shape:
        pos = state[pos_key]
        old, new = pos.shape[1] - 1, target[pos_key].shape[1] - 1
        old_side, new_side = round(old**0.5), round(new**0.5)
        if old_side**2 != old or new_side**2 != new or pos.shape[2] != target[pos_key].shape[2]:
            raise ValueError(f"{path}: cannot resize {pos_key} {tuple(pos.shape)}")
        grid = pos[:, 1:].reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
        state[pos_key] = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
    if time_key in state and state[time_key].shape != target[time_key].shape:
        emb = state[time_key].transpose(1, 2)
        size = target[time_key].shape[1]
        state[time_key] = F.interpolate(emb, size=size, mode="linear").transpose(1, 2)


def _first(keys: list[str], limit: int = 10) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Initialise `model` (a `VideoClassifier`) in place from a local checkpoint.

    Raises:
        ValueError: keys other than the head and prompt layer are missing or unexpected, or
            shapes other than the head (and TimeSformer embeddings) differ. The message names
            the file and lists up to 10 keys.
    """
    path = Path(path)
    state, dropped_head = fitted_state(model, read_state_dict(model, path), path)
    if dropped_head:
        warnings.warn(
            f"{path}: head {sorted(dropped_head)} has another number of classes; "
            "replaced by a freshly initialised head",
            stacklevel=2,
        )
    missing_head = sorted(set(model.head_keys) - set(state))
    if missing_head and not dropped_head:
        warnings.warn(
            f"{path} has no head {missing_head}; it stays freshly initialised", stacklevel=2
        )
    model.load_state_dict(state, strict=False)


def fitted_state(
    model: nn.Module, state: dict[str, Tensor], path: Path
) -> tuple[dict[str, Tensor], list[str]]:
    """``state`` made to fit ``model``: (the weights to load, the head keys dropped).

    A head of another number of classes is dropped, and so are prompt-layer keys the model's
    layers do not have; TimeSformer embeddings are resized. Only the shapes of ``model``'s
    tensors are read, so a model built on the meta device can be checked without its weights.

    Raises:
        ValueError: other keys are missing or unexpected, or other shapes differ (the message
            names ``path`` and up to 10 keys).
    """
    target = model.state_dict()
    if isinstance(model.backbone, TimeSformer):
        _resize_timesformer_embeddings(state, target, path)
    head = set(model.head_keys)
    prompt = {k for k in set(state) | set(target) if k.startswith("prompt_layers.")}
    dropped_head = [k for k in head if k in state and state[k].shape != target[k].shape]
    # A prompt layer of another power norm has other parameters; such keys start fresh.
    dropped = set(dropped_head) | {k for k in prompt if k in state and k not in target}
    state = {k: v for k, v in state.items() if k not in dropped}
    ignorable = head | prompt
    missing = sorted(
        k
        for k in target
        if k not in state and k not in ignorable and "num_batches_tracked" not in k
    )
    unexpected = sorted(k for k in state if k not in target)
    if missing or unexpected:
        raise ValueError(
            f"pretrained={path} does not fit {model.name}: "
            f"missing keys [{_first(missing)}]; unexpected keys [{_first(unexpected)}]"
        )
    mismatched = sorted(k for k in state if state[k].shape != target[k].shape)
    if mismatched:
        details = [f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in mismatched]
        raise ValueError(f"pretrained={path}: shape mismatch for {model.name}: {_first(details)}")
    return state, dropped_head
