"""timm-style registry: `@register_model` on builder functions, looked up by name."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from vmp.names import POWER_NORMS

# The sigmoid layer on every pathway, started or placed otherwise than the paper's text:
# "identity" and "gate" are not in the paper (vmp.layer.prompt.MotionPromptLayer's init and gate);
# "normalized" is the released code's placement (the layer multiplies normalised frames).
# "oracle" (oracle: ground truth, not a method): A_t is SynthMotion's ground truth in place of the
# sigmoid's map, hard 0/1 on the class object's motion region (the object in frame t or t+1), no
# dilation (0 px), no floor: exactly the region the attention is scored on (vmp.layer.oracle: why).
_SIGMOID_ALTERNATIVES = {
    "vmp_identity": {"prompt": "vmp", "prompt_init": "identity"},
    "vmp_gate": {"prompt": "vmp", "prompt_gate": True},
    "vmp_normalized": {"prompt": "vmp", "prompt_input": "normalized"},
    "vmp_oracle": {"prompt": "oracle"},
}
_VARIANTS_SINGLE = {
    "baseline": {"prompt": None},
    "vmp": {"prompt": "vmp"},
    **_SIGMOID_ALTERNATIVES,
    # the paper's alternative prompt functions (vmp.names.POWER_NORMS) in place of the sigmoid
    **{f"vmp_{name}": {"prompt": name} for name in POWER_NORMS if name != "sigmoid"},
}
_VARIANTS_SLOWFAST = {
    "baseline": {"prompt": None},
    "vmp_slow": {"prompt": "vmp", "prompt_pathways": ("slow",)},
    "vmp_fast": {"prompt": "vmp", "prompt_pathways": ("fast",)},
    "vmp_both": {"prompt": "vmp", "prompt_pathways": ("slow", "fast")},
    **_SIGMOID_ALTERNATIVES,
}


@dataclass(frozen=True)
class ModelEntry:
    """A registered builder and the pathway names of the backbone it builds."""

    name: str
    fn: Callable
    pathways: tuple[str, ...]

    @property
    def options(self) -> list[str]:
        """Keyword overrides the builder accepts."""
        params = inspect.signature(self.fn).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(pathways: tuple[str, ...] = ("video",)) -> Callable[[Callable], Callable]:
    """Decorator registering a builder `fn(num_classes, **overrides) -> Backbone` by its name."""

    def decorator(fn: Callable) -> Callable:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, tuple(pathways))
        return fn

    return decorator


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; unknown names raise a ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style `pattern` (e.g. "*_tiny")."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def _variants(name: str) -> dict[str, dict]:
    return _VARIANTS_SLOWFAST if len(get_entry(name).pathways) > 1 else _VARIANTS_SINGLE


def list_variants(name: str) -> list[str]:
    """Variants of a model: ["baseline", "vmp"], or for SlowFast the per-pathway choices."""
    return list(_variants(name))


def sigmoid_variant(name: str) -> str:
    """The variant with the learnable sigmoid prompt layer in front of every pathway: "vmp", or
    SlowFast's "vmp_both"."""
    return "vmp_both" if "vmp_both" in _variants(name) else "vmp"


def variant_options(name: str, variant: str) -> dict:
    """Keyword arguments for `create_model` that build `variant` of model `name`."""
    variants = _variants(name)
    if variant not in variants:
        raise ValueError(f"unknown variant {variant!r} for {name}; allowed: {list(variants)}")
    return dict(variants[variant])
