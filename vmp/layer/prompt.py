"""Motion prompt layer (Sec. 2.1-2.2 of "Motion meets Attention: Video Motion Prompts", ACML 2024).

Data flow for a clip of T+1 frames (B, 3, T+1, H, W)::

    frames F_1..F_{T+1} --gray--> G_t --diff--> D_t = G_{t+1} - G_t  (t = 1..T)
        --power norm f--> A_t in [0, 1]  --(A_t * F_{t+1})--> prompts Z_t (B, 3, T, H, W)

The default power normalisation is the paper's learnable sigmoid (Eq. 1-3)
``f(D) = sigmoid(a(m) (D - b(n)))`` with ``a(m) = alpha / (beta |tanh m| + eps)`` and
``b(n) = gamma tanh n``. The sign-preserving members of the well-behaved power-normalisation
family of Koniusz & Zhang (TPAMI 2021) are available as alternatives (see ``power_norm_curve``).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from vmp.layer import native
from vmp.names import PAPER_INIT_MEAN, PAPER_INIT_STD, POWER_NORMS

IMPLEMENTATIONS: tuple[str, ...] = ("fused", "eager", "compiled", "native")
"""Names accepted by ``MotionPromptLayer(implementation=...)``."""

# ITU-R BT.601 luma weights; "bgr" reproduces the released code, whose weights are written for
# BGR order while its decoder yields RGB (red and blue swapped).
GRAYSCALE_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "rgb": (0.299, 0.587, 0.114),
    "bgr": (0.114, 0.587, 0.299),
}

# Normalisation of the released code's input clips (same value for all three channels).
NORM_MEAN = 0.45
NORM_STD = 0.225

# Initial value of eta, the learnable parameter of each alternative power norm.
PN_ETA_INIT: dict[str, float] = {"gamma": 0.5, "maxexp": 10.0, "sigme": 10.0, "asinhe": 10.0}

INITS: tuple[str, ...] = ("paper", "identity")
"""Names accepted by ``MotionPromptLayer(init=...)``: "paper" draws m and n from Normal(1e-5, 1);
"identity" (not in the paper) draws m likewise and starts n at ``IDENTITY_N0``."""

# n = -2 gives b = 0.6 tanh(-2) = -0.578 (about the b = -0.59 the paper learned on FineGym), so a
# static pixel (D = 0) gets attention sigmoid(a * 0.578) >= sigmoid(9.09 * 0.578) = 0.9948 for
# every m: the layer starts as (nearly) the identity on static content.
IDENTITY_N0 = -2.0

# Static attention sigmoid(-a b) of a layer below CLOSED is "closed", above OPEN "open".
CLOSED, OPEN = 0.1, 0.9


class PromptOutput(NamedTuple):
    """Output of ``MotionPromptLayer``.

    Attributes:
        prompts: Motion prompts ``A_t * F_{t+1}``, shape (B, 3, T, H, W).
        attention: Attention maps ``A_t`` in [0, 1], shape (B, T, H, W).
    """

    prompts: Tensor
    attention: Tensor


def slope_fn(m: Tensor, alpha: float = 5.0, beta: float = 0.45, eps: float = 0.1) -> Tensor:
    """Slope ``a(m) = alpha / (beta |tanh m| + eps)`` (Eq. 1), in [alpha/(beta+eps), alpha/eps]."""
    return alpha / (beta * torch.tanh(m).abs() + eps)


def shift_fn(n: Tensor, gamma: float = 0.6) -> Tensor:
    """Shift ``b(n) = gamma tanh n`` (Eq. 2), in [-gamma, gamma]."""
    return gamma * torch.tanh(n)


def _safe_pow(base: Tensor, eta: Tensor) -> Tensor:
    """``base ** eta`` for ``base >= 0`` that is exactly 0 at 0, with finite gradients there."""
    positive = base > 0
    # Where base is 0, pow sees 1 so neither its value nor its gradients become inf or nan.
    return torch.where(positive, torch.where(positive, base, 1.0) ** eta, 0.0)


def _signed_pn(name: str, x: Tensor, eta: Tensor) -> Tensor:
    """Sign-preserving power norm ``f`` with ``f(-x) = -f(x)``, mapping [-1, 1] into [-1, 1]."""
    mag = x.abs()
    if name == "gamma":
        return torch.sign(x) * _safe_pow(mag, eta)
    if name == "maxexp":
        return torch.sign(x) * (1.0 - _safe_pow((1.0 - mag).clamp_min(0.0), eta))
    if name == "sigme":
        return 2.0 * torch.sigmoid(eta * x) - 1.0
    if name == "asinhe":
        return torch.asinh(eta * x) / torch.asinh(eta)
    raise ValueError(f"power_norm={name!r} is unknown; choose one of {POWER_NORMS}")


def _attention(name: str, d: Tensor, params: tuple[Tensor, ...]) -> Tensor:
    """Attention in [0, 1] from differences ``d``; params are (slope, shift) or (eta,)."""
    if name == "sigmoid":
        slope, shift = params
        return torch.sigmoid(slope * (d - shift))
    return 0.5 * (1.0 + _signed_pn(name, d, params[0]))


def power_norm_curve(name: str, x: Tensor, **params: float | Tensor) -> Tensor:
    """Evaluate a power normalisation exactly as the layer applies it (for plots, Fig. 3).

    All curves return attention values in [0, 1]. For the alternatives the sign-preserving
    function ``f`` (with ``f(-x) = -f(x)``) is mapped by ``(1 + f) / 2``, so, like the sigmoid,
    a zero difference gives 0.5, brightening pixels more and darkening pixels less:

    - ``"sigmoid"`` (params ``slope`` = a, default 50; ``shift`` = b, default 0):
      ``1 / (1 + exp(-a (x - b)))``; range (0, 1).
    - ``"gamma"`` (``eta`` > 0, default 0.5): ``f = sign(x) |x|^eta``; range [0, 1] on [-1, 1].
    - ``"maxexp"`` (``eta`` > 0, default 10): ``f = sign(x) (1 - (1 - |x|)^eta)``;
      range [0, 1] on [-1, 1].
    - ``"sigme"`` (``eta`` > 0, default 10): ``f = 2 / (1 + exp(-eta x)) - 1``;
      range [(1 - tanh(eta/2)) / 2, (1 + tanh(eta/2)) / 2] on [-1, 1].
    - ``"asinhe"`` (``eta`` > 0, default 10): ``f = asinh(eta x) / asinh(eta)``;
      range [0, 1] on [-1, 1].

    Args:
        name: One of ``POWER_NORMS``.
        x: Frame differences, expected in [-1, 1].
        **params: ``slope``/``shift`` for "sigmoid", ``eta`` for the others.

    Returns:
        Tensor of the shape of ``x``.
    """
    if name not in POWER_NORMS:
        raise ValueError(f"power_norm_curve: name={name!r} is unknown; choose one of {POWER_NORMS}")
    allowed = {"slope", "shift"} if name == "sigmoid" else {"eta"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(
            f"power_norm_curve({name!r}): unknown parameter(s) {sorted(unknown)}; "
            f"expected {sorted(allowed)}"
        )

    def as_tensor(v: float | Tensor) -> Tensor:
        return torch.as_tensor(v, dtype=x.dtype, device=x.device)

    if name == "sigmoid":
        scalars = (as_tensor(params.get("slope", 50.0)), as_tensor(params.get("shift", 0.0)))
    else:
        scalars = (as_tensor(params.get("eta", PN_ETA_INIT[name])),)
    return _attention(name, x, scalars)


def _check_video(video: Tensor) -> None:
    if not isinstance(video, Tensor):
        raise TypeError(f"MotionPromptLayer: video must be a torch.Tensor, got {type(video)}")
    if video.dim() != 5 or video.shape[1] != 3 or video.shape[2] < 2:
        raise ValueError(
            f"MotionPromptLayer: video has shape {tuple(video.shape)}; expected (B, 3, T+1, H, W) "
            "with 3 colour channels and at least 2 frames (T+1 frames give T prompts)"
        )
    if not video.is_floating_point():
        raise ValueError(
            f"MotionPromptLayer: video has dtype {video.dtype}; expected a floating-point tensor "
            "(convert uint8 frames with video.float() / 255)"
        )


def compute_dtype(video: Tensor) -> torch.dtype:
    """The dtype the layer computes in: the clip's, but at least float32.

    A float16 or bfloat16 clip (``precision="bf16-true"``) would quantise the frame differences
    and the shift b(n) to about 1/256 of their range, a step the sigmoid's slope of up to 50
    turns into jumps of the attention; so m, n, a(m), b(n), the differences and the sigmoid's
    argument stay float32, and only the outputs take the clip's dtype.
    """
    return torch.promote_types(video.dtype, torch.float32)


def _frame_differences(video: Tensor, weights: tuple[float, float, float], scale: float) -> Tensor:
    """Grayscale frame differences ``D`` (B, T, H, W) in ``compute_dtype(video)``, times ``scale``
    (std when normalised)."""
    # Three multiply-adds over channel slices are much faster on CPU than einsum/tensordot.
    gray = video[:, 0].to(compute_dtype(video)) * weights[0]
    gray = gray.add_(video[:, 1], alpha=weights[1]).add_(video[:, 2], alpha=weights[2])
    diff = gray[:, 1:] - gray[:, :-1]
    return diff.mul_(scale) if scale != 1.0 else diff


def _prompt_maps(
    video: Tensor,
    weights: tuple[float, float, float],
    scale: float,
    name: str,
    *scalars: Tensor,
) -> tuple[Tensor, Tensor]:
    """Prompts and attention with plain autograd ops (the "eager" reference), computed in
    ``compute_dtype(video)`` and returned in the clip's dtype."""
    attention = _attention(name, _frame_differences(video, weights, scale), scalars)
    prompts = attention.unsqueeze(1) * video[:, :, 1:]
    return prompts.to(video.dtype), attention.to(video.dtype)


_RECOMPILE_LIMIT = 64
_HALF = (torch.float16, torch.bfloat16)


@functools.cache
def _compiled_prompt_maps() -> Callable[..., tuple[Tensor, Tensor]]:
    """``torch.compile`` of ``_prompt_maps``, created on first use (compiles on first call)."""
    return torch.compile(_prompt_maps)


@functools.cache
def compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of a failed ``torch.compile`` (Dynamo tracing, Inductor lowering or code
    generation, no C++ compiler, no Triton), after which the layer falls back to "fused".

    Everything else propagates: out-of-memory (``torch.OutOfMemoryError``), errors of the
    compiled code while it runs, bad input.
    """
    import torch._dynamo.exc as dynamo_exc  # imported on first use: about 3 s
    import torch._inductor.exc as inductor_exc

    # TorchDynamoException covers BackendCompilerFailed, InductorError, TorchRuntimeError,
    # Unsupported, TritonMissing and GPUTooOldForTriton (torch 2.14); getattr keeps older ones.
    names = [
        (dynamo_exc, "TorchDynamoException"),
        (dynamo_exc, "TritonUnavailableError"),
        (inductor_exc, "CppCompileError"),
        (inductor_exc, "InvalidCxxCompiler"),
        (inductor_exc, "CppWrapperCodegenError"),
        (inductor_exc, "OperatorIssue"),
        (inductor_exc, "SubgraphLoweringException"),
    ]
    return tuple(getattr(module, name) for module, name in names if hasattr(module, name))


def _caused_by_oom(err: BaseException | None) -> bool:
    """Whether ``err`` or an exception it wraps (``__cause__``/``__context__``) is an OOM."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, torch.OutOfMemoryError):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class _FusedPrompt(torch.autograd.Function):
    """Prompt layer as one autograd node that saves only the clip and the scalars.

    The per-pixel maps (grayscale, differences, attention) are recomputed in backward instead
    of being stored, so the memory held for backward is that of the input alone (which the
    caller keeps anyway).
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        video: Tensor,
        weights: tuple[float, float, float],
        scale: float,
        name: str,
        *scalars: Tensor,
    ) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        ctx.weights, ctx.scale, ctx.name = weights, scale, name
        diff = _frame_differences(video, weights, scale)
        if name == "sigmoid":
            slope, shift = scalars
            attention = diff.sub_(shift).mul_(slope).sigmoid_()
        else:
            attention = _attention(name, diff, scalars)
        prompts = (attention.unsqueeze(1) * video[:, :, 1:]).to(video.dtype)
        ctx.save_for_backward(video, *scalars)
        return prompts, attention.to(video.dtype)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx,
        g_prompts: Tensor | None,
        g_attention: Tensor | None,
    ) -> tuple[Tensor | None, ...]:
        video, *scalars = ctx.saved_tensors
        frames = video[:, :, 1:]
        dtype = compute_dtype(video)  # the scalars' dtype; the clip's when float32 or float64
        # Gradient reaching the attention maps: directly and through Z_t = A_t * F_{t+1}.
        g_att = None if g_attention is None else g_attention.to(dtype)
        if g_prompts is not None:
            if g_att is None:
                g_att = g_prompts[:, 0].to(dtype) * frames[:, 0]
            else:
                g_att = torch.addcmul(g_att, g_prompts[:, 0], frames[:, 0])
            g_att.addcmul_(g_prompts[:, 1], frames[:, 1]).addcmul_(g_prompts[:, 2], frames[:, 2])
        if g_att is None:
            return (None,) * (4 + len(scalars))

        own_g_att = g_att is not g_attention  # a buffer of ours, free to overwrite
        diff = _frame_differences(video, ctx.weights, ctx.scale)
        needs_scalars = ctx.needs_input_grad[4:]
        if ctx.name == "sigmoid":
            slope, shift = scalars
            u = diff.sub_(shift)
            attention = torch.mul(u, slope).sigmoid_()
            # Gradient w.r.t. s = slope * u, using d sigmoid(s) / ds = A (1 - A).
            sig_bwd = torch.ops.aten.sigmoid_backward
            g_s = sig_bwd.grad_input(g_att, attention, grad_input=g_att) if own_g_att else None
            g_s = sig_bwd(g_att, attention) if g_s is None else g_s
            del g_att
            g_slope = torch.dot(g_s.flatten(), u.flatten()) if needs_scalars[0] else None
            g_shift = -slope * g_s.sum() if needs_scalars[1] else None
            del u, diff
            g_scalars = [g_slope, g_shift]
            g_diff = g_s.mul_(slope)
        else:
            # Elementwise families: a short-lived local graph, freed when backward returns.
            with torch.enable_grad():
                d = diff.detach().requires_grad_()
                params = [s.detach().requires_grad_() for s in scalars]
                attention = _attention(ctx.name, d, tuple(params))
                g_diff, *g_scalars = torch.autograd.grad(attention, [d, *params], g_att)
            attention = attention.detach()
            del g_att, d, diff
            g_scalars = [
                g if need else None for g, need in zip(g_scalars, needs_scalars, strict=True)
            ]

        g_video = None
        if ctx.needs_input_grad[0]:
            if ctx.scale != 1.0:
                g_diff = g_diff.mul_(ctx.scale)
            # D_t = G_{t+1} - G_t, so dL/dG_t = g_diff_{t-1} - g_diff_t (zero outside 1..T).
            # dL/dG is built in channel 0 of the result, then scaled into the three channels.
            g_video = torch.empty_like(video, dtype=dtype)
            g_gray = g_video[:, 0]
            torch.neg(g_diff[:, 0], out=g_gray[:, 0])
            torch.sub(g_diff[:, :-1], g_diff[:, 1:], out=g_gray[:, 1:-1])
            g_gray[:, -1] = g_diff[:, -1]
            del g_diff
            torch.mul(g_gray, ctx.weights[1], out=g_video[:, 1])
            torch.mul(g_gray, ctx.weights[2], out=g_video[:, 2])
            g_gray.mul_(ctx.weights[0])
            if g_prompts is not None:
                g_video[:, :, 1:].addcmul_(g_prompts, attention.unsqueeze(1))
            g_video = g_video.to(video.dtype)
        return (g_video, None, None, None, *g_scalars)


class _NativePrompt(torch.autograd.Function):
    """Sigmoid prompt layer through the C++ CPU kernel (``vmp.layer.native``): one pass forward, one
    pass backward, nothing per-pixel saved (the kernel recomputes the attention in backward)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        video: Tensor,
        weights: tuple[float, float, float],
        scale: float,
        slope: Tensor,
        shift: Tensor,
    ) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        ctx.weights, ctx.scale = weights, scale
        ctx.save_for_backward(video, slope, shift)
        prompts, attention = native.prompt_kernel().forward(
            video, slope.item(), shift.item(), weights, scale
        )
        return prompts, attention

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx,
        g_prompts: Tensor | None,
        g_attention: Tensor | None,
    ) -> tuple[Tensor | None, ...]:
        if g_prompts is None and g_attention is None:
            return (None,) * 5
        video, slope, shift = ctx.saved_tensors
        g_video, sums = native.prompt_kernel().backward(
            video,
            None if g_prompts is None else g_prompts.contiguous(),
            None if g_attention is None else g_attention.contiguous(),
            slope.item(),
            shift.item(),
            ctx.weights,
            ctx.scale,
            ctx.needs_input_grad[0],
        )
        # s = slope * u with u = scale * D - shift: ds/dslope = u, ds/dshift = -slope.
        g_slope = sums[0].to(slope.dtype) if ctx.needs_input_grad[3] else None
        g_shift = (-slope * sums[1]).to(shift.dtype) if ctx.needs_input_grad[4] else None
        return (g_video if ctx.needs_input_grad[0] else None, None, None, g_slope, g_shift)


def _native_applies(video: Tensor, power_norm: str) -> bool:
    """The C++ kernel covers the sigmoid power norm on float32 CPU clips."""
    return power_norm == "sigmoid" and video.device.type == "cpu" and video.dtype == torch.float32


class MotionPromptLayer(nn.Module):
    """Turns T+1 frames into T motion prompts with a learnable power normalisation.

    Args:
        alpha, beta, gamma, eps: Constants of ``a(m)`` and ``b(n)`` (Eq. 1-2).
        power_norm: Prompt function, one of ``POWER_NORMS`` (see ``power_norm_curve``).
        input_normalized: The clip is already normalised with mean 0.45 and std 0.225
            (released code): differences are taken on un-normalised frames and the attention
            multiplies the normalised frames.
        grayscale_order: "rgb" (BT.601) or "bgr" (the released code's swapped weights).
        init: How ``m`` and ``n`` start (``INITS``): "paper" (Normal(1e-5, 1) for both) or
            "identity" (not in the paper: n = ``IDENTITY_N0``, a static pixel's attention
            >= 0.9948 whatever m). Sigmoid power norm only.
        gate: Not in the paper: prompts ``F * (1 + g (A - 1))`` with a learnable gate
            ``g = clamp(gate, 0, 1)`` that starts at 0, so the layer starts as the identity
            (as LoRA, ReZero and ControlNet start) and ``g = 1`` is the paper's ``A * F``. The
            clamp passes gradients straight through, so a gate pushed below 0 can come back.
        implementation: "fused" (default; custom autograd that recomputes the per-pixel maps
            in backward: nothing per-pixel saved for backward, about 4x faster forward+backward
            than "eager" on CPU when the clip needs a gradient), "eager" (plain reference),
            "compiled" (``torch.compile`` of the eager maps, one compilation shared by all
            layers: about 15 s on the first call on a 2-core CPU, then about 1.4-1.6x faster
            forward+backward than "fused" on CPU; for long runs) or "native" (a C++ CPU kernel,
            one pass forward and one backward, built on first use, see ``vmp.layer.native``; it
            covers the sigmoid power norm on float32 CPU clips and runs "fused" otherwise).
            If compilation or the kernel build fails, e.g. without a C++ compiler, the layer
            warns once and falls back to "fused" (only compilation errors, ``compile_errors()``:
            running out of memory and other errors propagate).

    Half-precision clips (``precision="bf16-true"``) give outputs in their dtype, computed in
    float32 (``compute_dtype``); m, n, eta and the gate stay float32 parameters also through
    ``.half()`` / ``.to(torch.bfloat16)``.

    The alternative power norms learn ``eta > 0`` through its logarithm (``log_eta``); their
    layers have no ``m``, ``n``, ``slope`` or ``shift``. Use ``pn_parameters()`` for logging.
    """

    def __init__(
        self,
        alpha: float = 5.0,
        beta: float = 0.45,
        gamma: float = 0.6,
        eps: float = 0.1,
        *,
        power_norm: str = "sigmoid",
        input_normalized: bool = False,
        grayscale_order: str = "rgb",
        init: str = "paper",
        gate: bool = False,
        implementation: str = "fused",
    ) -> None:
        super().__init__()
        if power_norm not in POWER_NORMS:
            raise ValueError(
                f"MotionPromptLayer: power_norm={power_norm!r} is unknown; choose one of {POWER_NORMS}"
            )
        if grayscale_order not in GRAYSCALE_WEIGHTS:
            raise ValueError(
                f"MotionPromptLayer: grayscale_order={grayscale_order!r}; choose 'rgb' or 'bgr'"
            )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"MotionPromptLayer: implementation={implementation!r}; choose one of {IMPLEMENTATIONS}"
            )
        if init not in INITS:
            raise ValueError(f"MotionPromptLayer: init={init!r}; choose one of {INITS}")
        if init != "paper" and power_norm != "sigmoid":
            raise ValueError(
                f"MotionPromptLayer: init={init!r} needs power_norm='sigmoid' (it sets n)"
            )
        if beta < 0 or eps <= 0:
            raise ValueError(f"MotionPromptLayer: need beta >= 0 and eps > 0, got {beta}, {eps}")
        self.alpha, self.beta, self.gamma, self.eps = alpha, beta, gamma, eps
        self.power_norm = power_norm
        self.input_normalized = input_normalized
        self.grayscale_order = grayscale_order
        self.implementation = implementation
        self.init = init
        self._build_failed = False
        # float32 also under a half-precision default dtype (Lightning's "bf16-true" init).
        scalar = functools.partial(
            torch.zeros, (), dtype=torch.promote_types(torch.get_default_dtype(), torch.float32)
        )
        if power_norm == "sigmoid":
            self.m = nn.Parameter(scalar())
            self.n = nn.Parameter(scalar())
        else:
            # eta > 0 is kept positive by learning its logarithm.
            self.log_eta = nn.Parameter(scalar())
        self.gate = nn.Parameter(scalar()) if gate else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the layer's starting point (see ``init``), from ``generator`` if given.

        m is drawn before n, so layers of one generator seed share m across inits.
        """
        if self.power_norm == "sigmoid":
            self.m.normal_(mean=PAPER_INIT_MEAN, std=PAPER_INIT_STD, generator=generator)
            self.n.normal_(mean=PAPER_INIT_MEAN, std=PAPER_INIT_STD, generator=generator)
            if self.init == "identity":
                self.n.fill_(IDENTITY_N0)
        else:
            self.log_eta.fill_(math.log(PN_ETA_INIT[self.power_norm]))
        if self.gate is not None:
            self.gate.zero_()

    @property
    def slope(self) -> Tensor:
        """Slope ``a(m)``, a differentiable 0-d tensor (sigmoid power norm only)."""
        self._require_sigmoid("slope")
        return slope_fn(self.m, self.alpha, self.beta, self.eps)

    @property
    def shift(self) -> Tensor:
        """Shift ``b(n)``, a differentiable 0-d tensor (sigmoid power norm only)."""
        self._require_sigmoid("shift")
        return shift_fn(self.n, self.gamma)

    @property
    def eta(self) -> Tensor:
        """Parameter ``eta`` of the alternative power norms (not for "sigmoid")."""
        if self.power_norm == "sigmoid":
            raise AttributeError("MotionPromptLayer.eta exists only for power_norm != 'sigmoid'")
        return self.log_eta.exp()

    def __getattr__(self, name: str) -> Tensor | nn.Module:
        # A property raising AttributeError falls back here; keep its message for users.
        if name in ("slope", "shift", "m", "n") and self.__dict__.get("power_norm") not in (
            None,
            "sigmoid",
        ):
            self._require_sigmoid(name)
        return super().__getattr__(name)

    def _require_sigmoid(self, what: str) -> None:
        if self.power_norm != "sigmoid":
            raise AttributeError(
                f"MotionPromptLayer.{what} exists only for power_norm='sigmoid' "
                f"(this layer uses {self.power_norm!r}); use pn_parameters() instead"
            )

    @property
    def gate_value(self) -> Tensor | None:
        """The gate ``g`` in [0, 1] of a gated layer (None without a gate)."""
        if self.gate is None:
            return None
        # Straight-through clamp: the value stays in [0, 1], the gradient is that of `gate`.
        return self.gate + (self.gate.clamp(0.0, 1.0) - self.gate).detach()

    def pn_parameters(self) -> dict[str, Tensor]:
        """Current parameters for logging: {"slope", "shift"} or {"eta"}, and "gate" if gated."""
        params = (
            {"slope": self.slope, "shift": self.shift}
            if self.power_norm == "sigmoid"
            else {"eta": self.eta}
        )
        return params | ({"gate": self.gate_value} if self.gate is not None else {})

    @torch.no_grad()
    def static_gain(self) -> dict[str, float]:
        """How the layer passes a static pixel (frame difference 0), as plain floats.

        ``static_attention`` is ``f(0)`` (``sigmoid(-a b)`` for the sigmoid); ``static_gain`` is
        the factor the pixel's frame is multiplied by: ``1 + g (f(0) - 1)`` for a gated layer,
        else ``f(0)``. ``state`` is "closed" (gain < ``CLOSED``), "open" (> ``OPEN``) or
        "between".
        """
        device = (self.m if self.power_norm == "sigmoid" else self.log_eta).device
        zero = torch.zeros((), dtype=torch.float32, device=device)
        scalars = tuple(s.detach().float() for s in self._scalars(zero))
        attention = float(_attention(self.power_norm, zero, scalars))
        gate = self.gate_value
        gain = attention if gate is None else 1.0 + float(gate) * (attention - 1.0)
        return {"static_attention": attention, "static_gain": gain, "state": layer_state(gain)}

    def _scalars(self, like: Tensor) -> tuple[Tensor, ...]:
        """a(m), b(n) (or eta) in ``compute_dtype(like)``: float32 for a half-precision clip."""
        dtype = compute_dtype(like)
        if self.power_norm == "sigmoid":
            m, n = self.m.to(dtype), self.n.to(dtype)
            return (
                slope_fn(m, self.alpha, self.beta, self.eps),
                shift_fn(n, self.gamma),
            )
        return (self.log_eta.to(dtype).exp(),)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> MotionPromptLayer:
        # `.half()` or `.to(torch.bfloat16)` (Lightning's "bf16-true") would store m and n with
        # 8 bits of mantissa, where an optimiser step of lr 1e-3 is lost: they stay float32.
        super()._apply(fn, recurse)
        for param in self._parameters.values():
            if param is not None and param.dtype in _HALF:
                param.data = param.data.float()
                if param.grad is not None:
                    param.grad = param.grad.float()
        return self

    def forward(self, video: Tensor) -> PromptOutput:
        """Compute motion prompts.

        Args:
            video: (B, 3, T+1, H, W) float clip, in [0, 1] (or normalised, see
                ``input_normalized``).

        Returns:
            ``PromptOutput(prompts (B, 3, T, H, W), attention (B, T, H, W))``.
        """
        _check_video(video)
        scalars = self._scalars(video)
        weights = GRAYSCALE_WEIGHTS[self.grayscale_order]
        scale = NORM_STD if self.input_normalized else 1.0
        args = (video, weights, scale, self.power_norm, *scalars)
        if self.implementation == "compiled" and not self._build_failed:
            try:
                # Each power norm, scale, dtype and grad mode is one more graph of the same
                # function; the default limit of 8 would silently run the rest uncompiled.
                with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
                    return self._gated(video, *_compiled_prompt_maps()(*args))
            except compile_errors() as err:  # no C++ compiler / Triton, unsupported op, ...
                if _caused_by_oom(err):  # out of memory while compiling (autotuning)
                    raise
                self._fall_back("torch.compile failed", err)
        if (
            self.implementation == "native"
            and not self._build_failed
            and _native_applies(video, self.power_norm)
        ):
            try:
                return self._gated(
                    video, *_NativePrompt.apply(video.contiguous(), weights, scale, *scalars)
                )
            except native.KernelBuildError as err:
                self._fall_back("the C++ kernel could not be built", err)
        if self.implementation == "eager":
            return self._gated(video, *_prompt_maps(*args))
        return self._gated(video, *_FusedPrompt.apply(*args))

    def _gated(self, video: Tensor, prompts: Tensor, attention: Tensor) -> PromptOutput:
        """``F + g (A F - F) = F (1 + g (A - 1))`` for a gated layer; the prompts otherwise."""
        if self.gate is not None:
            prompts = torch.lerp(video[:, :, 1:], prompts, self.gate_value.to(video.dtype))
        return PromptOutput(prompts, attention)

    def _fall_back(self, what: str, err: Exception) -> None:
        self._build_failed = True
        warnings.warn(
            f"MotionPromptLayer(implementation={self.implementation!r}): {what} "
            f"({type(err).__name__}: {str(err).strip()[:300]}); this layer falls back "
            "to implementation='fused' (same results, no compilation)",
            RuntimeWarning,
            stacklevel=3,
        )

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, eps={self.eps}, "
            f"power_norm={self.power_norm!r}, input_normalized={self.input_normalized}, "
            f"grayscale_order={self.grayscale_order!r}, init={self.init!r}, "
            f"gate={self.gate is not None}, implementation={self.implementation!r}"
        )


def layer_state(static_gain: float) -> str:
    """ "closed", "between" or "open": where a static pixel's gain lies against CLOSED / OPEN."""
    return "closed" if static_gain < CLOSED else "open" if static_gain > OPEN else "between"


def temporal_variation(attention: Tensor, reduction: str = "mean") -> Tensor:
    """Temporal attention variation (Eq. 6) of attention maps (B, T, H, W).

    Args:
        attention: Attention maps, T >= 2 (one pair of frames gives no variation to measure,
            and Eq. 6 divides by T - 1, so T = 1 raises).
        reduction: "mean": mean over batch, pairs and pixels of ``(A_{t+1} - A_t)^2`` (the
            released code's scale, used for the paper's lambda values); "frobenius": Eq. 6 per
            clip, ``1/(T-1) sum_t ||A_{t+1} - A_t||_F^2``, then the mean over the batch
            (H * W times "mean"); "none": "mean" per clip, without the batch mean.

    Returns:
        0-d tensor ((B,) for "none").
    """
    if not isinstance(attention, Tensor) or attention.dim() != 4:
        shape = tuple(attention.shape) if isinstance(attention, Tensor) else type(attention)
        raise ValueError(f"temporal_variation: attention has shape {shape}; expected (B, T, H, W)")
    if attention.shape[1] < 2:
        raise ValueError(
            f"temporal_variation: attention has shape {tuple(attention.shape)} with T="
            f"{attention.shape[1]} map(s); need T >= 2 maps (feed the layer at least 3 frames)"
        )
    sq = (attention[:, 1:] - attention[:, :-1]).square()
    if reduction == "mean":
        return sq.mean()
    if reduction == "frobenius":
        return sq.sum(dim=(2, 3)).mean()
    if reduction == "none":
        return sq.mean(dim=(1, 2, 3))
    raise ValueError(
        f"temporal_variation: reduction={reduction!r}; choose 'mean', 'frobenius' or 'none'"
    )


@torch.no_grad()
def attention_maps(clip: torch.Tensor, layer: MotionPromptLayer) -> torch.Tensor:
    """Attention (T, H, W) of ``layer`` on a raw (3, T+1, H, W) clip in [0, 1], normalising the
    clip first where the layer expects normalised input (the released code's mode)."""
    x = clip.unsqueeze(0).float()
    if layer.input_normalized:
        x = (x - NORM_MEAN) / NORM_STD
    return layer(x).attention[0]
