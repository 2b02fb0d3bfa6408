"""Tests of the motion prompt layer (vmp/layer/prompt.py) against hand-computed values."""

import math
import warnings

import pytest
import torch
from helpers import assert_near_float64_truth, prompt_clip_and_grads, prompt_outputs_and_grads
from torch.func import functional_call

import vmp.layer.prompt as prompt_module
from vmp import MotionPromptLayer, PromptOutput, temporal_variation
from vmp.layer.prompt import POWER_NORMS, power_norm_curve, shift_fn, slope_fn

IMPLS = ("eager", "fused", "native")
# "native" covers float32 only (float64 runs "fused"); its gradients are compared with eager's
# in test_prompt_native.py.
FLOAT64_IMPLS = ("eager", "fused")
ALTERNATIVES = tuple(p for p in POWER_NORMS if p != "sigmoid")


def make_layer(implementation: str = "fused", m: float = 0.3, n: float = -0.2, **kw):
    layer = MotionPromptLayer(implementation=implementation, **kw)
    if layer.power_norm == "sigmoid":
        with torch.no_grad():
            layer.m.fill_(m)
            layer.n.fill_(n)
    return layer


def rand_clip(b=2, t1=4, h=5, w=6, dtype=torch.float32, seed=0):
    return torch.rand(b, 3, t1, h, w, dtype=dtype, generator=torch.Generator().manual_seed(seed))


# The autograd node of the attention names the path that computed it.
GRAD_FNS = {
    "fused": "_FusedPromptBackward",
    "native": "_NativePromptBackward",
    "compiled": "CompiledFunctionBackward",
}


def assert_path(implementation: str, out: PromptOutput) -> None:
    """``out`` came from ``implementation`` (float32 sigmoid: "native" did not fall back)."""
    name = type(out.attention.grad_fn).__name__
    if implementation in GRAD_FNS:
        assert name == GRAD_FNS[implementation], f"{implementation} ran {name}"
    else:
        assert name not in GRAD_FNS.values(), f"{implementation} ran {name}"


# --- a(m), b(n) and initialisation ---------------------------------------------------------


def test_slope_and_shift_closed_forms():
    layer = make_layer(m=0.3, n=-0.2)
    assert layer.slope.dim() == 0 and layer.shift.dim() == 0
    assert layer.slope.item() == pytest.approx(5.0 / (0.45 * math.tanh(0.3) + 0.1), rel=1e-6)
    assert layer.shift.item() == pytest.approx(0.6 * math.tanh(-0.2), rel=1e-6)
    # |tanh m| makes a even in m.
    assert slope_fn(torch.tensor(-0.3)).item() == pytest.approx(layer.slope.item(), rel=1e-6)


def test_slope_and_shift_bounds_at_extremes():
    big = torch.tensor([-100.0, 100.0])
    assert slope_fn(big).tolist() == pytest.approx([5 / 0.55, 5 / 0.55], rel=1e-6)
    assert 5 / 0.55 == pytest.approx(9.0909, abs=1e-4)
    assert slope_fn(torch.tensor(0.0)).item() == pytest.approx(50.0)
    assert shift_fn(big).tolist() == pytest.approx([-0.6, 0.6])
    assert shift_fn(torch.tensor(0.0)).item() == 0.0
    m = torch.linspace(-10, 10, 201)
    assert slope_fn(m).min() >= 5 / 0.55 - 1e-5 and slope_fn(m).max() <= 50.0 + 1e-5


def test_slope_and_shift_are_differentiable():
    layer = make_layer(m=0.3, n=-0.2)
    (layer.slope + layer.shift).backward()
    t = math.tanh(0.3)
    expected_dm = -5.0 * 0.45 * (1 - t * t) / (0.45 * t + 0.1) ** 2
    assert layer.m.grad.item() == pytest.approx(expected_dm, rel=1e-5)
    assert layer.n.grad.item() == pytest.approx(0.6 * (1 - math.tanh(-0.2) ** 2), rel=1e-5)


def test_init_is_normal_from_torch_rng():
    torch.manual_seed(123)
    layer = MotionPromptLayer()
    torch.manual_seed(123)
    m, n = torch.empty(()).normal_(1e-5, 1.0), torch.empty(()).normal_(1e-5, 1.0)
    assert isinstance(layer.m, torch.nn.Parameter) and layer.m.dim() == 0
    assert layer.m.item() == m.item() and layer.n.item() == n.item()
    draws = torch.stack([MotionPromptLayer().m.detach() for _ in range(400)])
    assert abs(draws.mean().item()) < 0.2 and 0.85 < draws.std().item() < 1.15


def test_identity_init_opens_the_layer_for_every_m():
    torch.manual_seed(5)
    paper, identity = MotionPromptLayer(), MotionPromptLayer(init="identity")
    assert identity.n.item() == -2.0
    assert identity.shift.item() == pytest.approx(0.6 * math.tanh(-2.0))
    for m in (0.0, 0.5, 3.0, -20.0):  # the smallest slope, 9.09, is the worst case
        with torch.no_grad():
            identity.m.fill_(m)
        state = identity.static_gain()
        assert state["static_attention"] >= 0.9948 and state["state"] == "open"
    assert paper.init == "paper" and "init='identity'" in repr(identity)
    with pytest.raises(ValueError, match="init='zero'; choose one of"):
        MotionPromptLayer(init="zero")
    with pytest.raises(ValueError, match="needs power_norm='sigmoid'"):
        MotionPromptLayer(init="identity", power_norm="gamma")


def test_reset_parameters_from_a_generator_and_shared_m():
    def drawn(init, seed):
        layer = MotionPromptLayer(init=init)
        layer.reset_parameters(torch.Generator().manual_seed(seed))
        return layer.m.item(), layer.n.item()

    expected = torch.empty(2).normal_(1e-5, 1.0, generator=torch.Generator().manual_seed(7))
    assert drawn("paper", 7) == pytest.approx(tuple(expected.tolist()))
    assert drawn("identity", 7) == (drawn("paper", 7)[0], -2.0)  # same m, n at -2
    assert drawn("paper", 8) != drawn("paper", 7)


def test_static_gain_closed_form_and_states():
    layer = make_layer(m=0.3, n=-0.2)
    expected = 1 / (1 + math.exp(layer.slope.item() * layer.shift.item()))
    state = layer.static_gain()
    assert state["static_attention"] == pytest.approx(expected)
    assert state["static_gain"] == state["static_attention"]
    assert [prompt_module.layer_state(g) for g in (0.05, 0.1, 0.5, 0.9, 0.95)] == [
        "closed",
        "between",
        "between",
        "between",
        "open",
    ]


@pytest.mark.parametrize("implementation", IMPLS)
def test_gate_starts_as_the_identity_and_learns(implementation):
    layer = make_layer(implementation, m=0.3, n=0.5, gate=True)  # a closed layer
    video = rand_clip()
    out = layer(video)
    assert_path(implementation, out)
    assert torch.equal(out.prompts, video[:, :, 1:])  # exactly the frames at g = 0
    assert layer.static_gain()["static_gain"] == 1.0 and layer.static_gain()["state"] == "open"
    g_prompts = torch.rand_like(out.prompts)
    (out.prompts * g_prompts).sum().backward()
    plain = make_layer(implementation, m=0.3, n=0.5)(video).prompts.detach()
    expected = ((plain - video[:, :, 1:]) * g_prompts).sum()  # dZ/dg = A F - F
    assert layer.gate.grad.item() == pytest.approx(expected.item(), rel=1e-4)
    assert layer.m.grad.item() == 0 and layer.n.grad.item() == 0  # no path while g = 0
    assert set(layer.pn_parameters()) == {"slope", "shift", "gate"}


def test_gate_value_is_clamped_with_straight_through_gradient():
    layer = make_layer(m=0.3, n=-0.2, gate=True)
    video = rand_clip()
    attention_prompts = make_layer(m=0.3, n=-0.2)(video).prompts
    for raw, used in ((0.4, 0.4), (1.7, 1.0), (-0.5, 0.0)):
        with torch.no_grad():
            layer.gate.fill_(raw)
        layer.gate.grad = None
        out = layer(video).prompts
        frames = video[:, :, 1:]
        torch.testing.assert_close(out, frames + used * (attention_prompts - frames))
        out.sum().backward()
        assert layer.gate.grad.item() != 0  # also outside [0, 1]: it can come back
    gain = layer.static_gain()
    assert gain["static_gain"] == 1.0  # g clamped to 0
    with torch.no_grad():
        layer.gate.fill_(0.5)
    gain = layer.static_gain()
    assert gain["static_gain"] == pytest.approx(1 + 0.5 * (gain["static_attention"] - 1))


# --- forward values ---------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLS)
def test_shapes_and_named_output(implementation):
    out = make_layer(implementation)(rand_clip(b=2, t1=5, h=4, w=3))
    assert_path(implementation, out)
    assert isinstance(out, PromptOutput)
    assert out.prompts.shape == (2, 3, 4, 4, 3) and out.attention.shape == (2, 4, 4, 3)
    prompts, attention = out
    assert prompts is out.prompts and attention is out.attention


@pytest.mark.parametrize("implementation", IMPLS)
def test_still_clip_gives_constant_attention(implementation):
    layer = make_layer(implementation, m=0.7, n=0.4)
    frame = torch.rand(2, 3, 1, 4, 4)
    out = layer(frame.expand(2, 3, 3, 4, 4).contiguous())
    assert_path(implementation, out)
    a, b = 5 / (0.45 * math.tanh(0.7) + 0.1), 0.6 * math.tanh(0.4)
    expected = 1 / (1 + math.exp(a * b))  # sigmoid(-a b)
    torch.testing.assert_close(out.attention, torch.full((2, 2, 4, 4), expected))
    torch.testing.assert_close(out.prompts, expected * frame.expand(2, 3, 2, 4, 4))


@pytest.mark.parametrize("implementation", IMPLS)
def test_one_pixel_hand_example(implementation):
    # tanh m = tanh n = 0.5 -> a = 5 / (0.225 + 0.1) = 15.384615..., b = 0.3.
    layer = make_layer(implementation, m=math.atanh(0.5), n=math.atanh(0.5))
    video = torch.tensor([[0.2, 0.5], [0.4, 0.1], [0.6, 0.9]]).view(1, 3, 2, 1, 1)
    # G1 = 0.0598 + 0.2348 + 0.0684 = 0.363; G2 = 0.1495 + 0.0587 + 0.1026 = 0.3108;
    # D = -0.0522; A = sigmoid(15.384615 * (-0.3522)) = sigmoid(-5.418462) = 1 / (1 + 225.536) = 0.0044144.
    out = layer(video)
    assert_path(implementation, out)
    assert out.attention.item() == pytest.approx(0.0044144, abs=2e-7)
    expected = 0.0044144 * torch.tensor([0.5, 0.1, 0.9])
    torch.testing.assert_close(out.prompts.flatten(), expected, atol=2e-7, rtol=0)


@pytest.mark.parametrize("implementation", IMPLS)
def test_dtype_follows_input(implementation):
    layer = make_layer(implementation)
    out = layer(rand_clip(dtype=torch.float64))
    assert out.prompts.dtype == torch.float64 and out.attention.dtype == torch.float64
    assert layer.m.dtype == torch.float32


@pytest.mark.parametrize("implementation", IMPLS)
def test_released_code_mode_matches_its_formula(implementation):
    layer = make_layer(implementation, input_normalized=True, grayscale_order="bgr")
    raw = rand_clip()
    normed = (raw - 0.45) / 0.225
    out = layer(normed)
    assert_path(implementation, out)
    # Direct re-derivation: un-normalise, BGR-ordered weights on RGB data, multiply normed.
    unnorm = normed * 0.225 + 0.45
    gray = 0.114 * unnorm[:, 0] + 0.587 * unnorm[:, 1] + 0.299 * unnorm[:, 2]
    a, b = 5 / (0.45 * math.tanh(0.3) + 0.1), 0.6 * math.tanh(-0.2)
    attention = torch.sigmoid(a * (gray[:, 1:] - gray[:, :-1] - b))
    torch.testing.assert_close(out.attention, attention, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        out.prompts, attention.unsqueeze(1) * normed[:, :, 1:], atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("order, red_weight", [("rgb", 0.299), ("bgr", 0.114)])
def test_grayscale_order_weights(order, red_weight):
    layer = make_layer("fused", m=0.0, n=0.0, grayscale_order=order)  # a = 50, b = 0
    video = torch.zeros(1, 3, 2, 1, 1)
    video[0, 0, 1] = 0.02  # only red brightens
    expected = 1 / (1 + math.exp(-50 * red_weight * 0.02))
    assert layer(video).attention.item() == pytest.approx(expected, rel=1e-6)


# --- gradients --------------------------------------------------------------------------------


def gradcheck_video_m_n(layer: MotionPromptLayer) -> bool:
    """Float64 gradcheck of a layer's outputs with respect to the clip, m and n."""
    layer = layer.double()
    video = rand_clip(b=1, t1=3, h=2, w=2, dtype=torch.float64).requires_grad_()
    m = layer.m.detach().clone().requires_grad_()
    n = layer.n.detach().clone().requires_grad_()

    def fn(v, m_, n_):
        return tuple(functional_call(layer, {"m": m_, "n": n_}, (v,)))

    return torch.autograd.gradcheck(fn, (video, m, n))


@pytest.mark.parametrize("implementation", FLOAT64_IMPLS)
@pytest.mark.parametrize("normalized", [False, True])
def test_gradcheck_video_m_n(implementation, normalized):
    assert gradcheck_video_m_n(make_layer(implementation, input_normalized=normalized))


@pytest.mark.parametrize("power_norm", ["sigme", "asinhe", "maxexp"])
def test_gradcheck_fused_alternatives(power_norm):
    layer = MotionPromptLayer(power_norm=power_norm).double()
    video = rand_clip(b=1, t1=3, h=2, w=2, dtype=torch.float64).requires_grad_()
    log_eta = layer.log_eta.detach().clone().requires_grad_()

    def fn(v, p):
        return tuple(functional_call(layer, {"log_eta": p}, (v,)))

    assert torch.autograd.gradcheck(fn, (video, log_eta))


@pytest.mark.parametrize("power_norm", POWER_NORMS)
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("loss_on", ["both", "prompts", "attention"])
def test_fused_matches_float64_reference(power_norm, normalized, loss_on):
    fused = MotionPromptLayer(power_norm=power_norm, input_normalized=normalized)
    inputs = prompt_clip_and_grads(normalized=normalized)
    assert_near_float64_truth(fused, *inputs, loss_on=loss_on)


# The "compiled" tests test torch.compile: the fallback's warning fails them.
NO_FALLBACK = pytest.mark.filterwarnings("error:MotionPromptLayer.*falls back:RuntimeWarning")


def assert_ran_compiled(layer: MotionPromptLayer, video: torch.Tensor) -> None:
    """The layer's output comes from the compiled graph (its autograd node), not "fused"."""
    out = layer(video)
    assert not layer._build_failed
    assert type(out.prompts.grad_fn).__name__ == "CompiledFunctionBackward", out.prompts.grad_fn


@pytest.mark.slow  # the first torch.compile in a process takes about 15 s here
@NO_FALLBACK
@pytest.mark.parametrize("power_norm", POWER_NORMS)
@pytest.mark.parametrize("normalized", [False, True])
def test_compiled_matches_float64_reference(power_norm, normalized):
    compiled = MotionPromptLayer(
        power_norm=power_norm, input_normalized=normalized, implementation="compiled"
    )
    inputs = prompt_clip_and_grads(normalized=normalized)
    for video_grad in (True, False):
        assert_near_float64_truth(compiled, *inputs, video_grad=video_grad)
    assert_ran_compiled(compiled, inputs[0])


@pytest.mark.slow
@NO_FALLBACK
def test_gradcheck_compiled():
    layer = make_layer("compiled")
    assert gradcheck_video_m_n(layer)
    assert_ran_compiled(layer, rand_clip(dtype=torch.float64))


def test_compiled_falls_back_to_fused_with_warning(monkeypatch):
    calls = []

    def broken_compiled(*args):
        calls.append(args)
        raise torch._inductor.exc.InvalidCxxCompiler()  # as inductor raises it without g++

    monkeypatch.setattr(prompt_module, "_compiled_prompt_maps", lambda: broken_compiled)
    layer, fused = make_layer("compiled"), make_layer("fused")
    video = rand_clip()
    with pytest.warns(
        RuntimeWarning,
        match="torch.compile failed .*InvalidCxxCompiler: No working C\\+\\+.*'fused'",
    ):
        out = layer(video)
    torch.testing.assert_close(out.attention, fused(video).attention, rtol=0, atol=0)
    torch.testing.assert_close(out.prompts, fused(video).prompts, rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warns once, then stays on the fallback
        layer(video)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("Expected all tensors to be on the same device"),
    ],
)
def test_compiled_lets_other_errors_through(monkeypatch, error):
    def failing(*args):
        raise error

    monkeypatch.setattr(prompt_module, "_compiled_prompt_maps", lambda: failing)
    layer = make_layer("compiled")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        with pytest.raises(type(error), match=str(error).split(".")[0]):
            layer(rand_clip())
    assert not layer._build_failed  # still compiled next time


def test_compiled_lets_an_oom_during_compilation_through(monkeypatch):
    """Inductor wraps what its autotuning raises; an out-of-memory inside is still one."""

    def failing(*args):
        try:
            raise torch.OutOfMemoryError("CUDA out of memory while benchmarking a kernel")
        except torch.OutOfMemoryError as oom:
            raise torch._dynamo.exc.BackendCompilerFailed(failing, oom, None) from oom

    monkeypatch.setattr(prompt_module, "_compiled_prompt_maps", lambda: failing)
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed, match="out of memory"):
        make_layer("compiled")(rand_clip())


def test_compile_errors_are_the_installed_torch_types():
    errors = prompt_module.compile_errors()
    assert torch._dynamo.exc.BackendCompilerFailed in errors or any(
        issubclass(torch._dynamo.exc.BackendCompilerFailed, e) for e in errors
    )
    for name in ("BackendCompilerFailed", "TorchRuntimeError", "Unsupported"):
        assert issubclass(getattr(torch._dynamo.exc, name), errors), name
    assert issubclass(torch._inductor.exc.CppCompileError, errors)
    assert not issubclass(torch.OutOfMemoryError, errors)
    assert not any(e in (Exception, RuntimeError) for e in errors)


# --- half-precision clips ---------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["eager", "fused", "native"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_clip_keeps_scalars_and_differences_float32(implementation, dtype):
    """A bf16-true / 16-true clip: the outputs are in its dtype, but a(m), b(n), the differences
    and the sigmoid's argument are float32, so only the outputs' own rounding remains."""
    layer = make_layer(implementation, m=0.3, n=-0.2)
    inputs = prompt_clip_and_grads(shape=(2, 3, 5, 16, 16))
    video, g_prompts, g_attention = (t.to(dtype) for t in inputs)
    got = prompt_outputs_and_grads(layer, video, g_prompts, g_attention)
    truth = prompt_outputs_and_grads(
        make_layer("eager", m=0.3, n=-0.2).double(),
        *(t.double() for t in (video, g_prompts, g_attention)),
    )
    assert got["prompts"].dtype == dtype and got["attention"].dtype == dtype
    assert got["video grad"].dtype == dtype and got["m grad"].dtype == torch.float32
    eps = torch.finfo(dtype).eps  # 2^-7 (bf16), 2^-10 (fp16): one rounding of the output
    for name in ("prompts", "attention"):
        error = (got[name].double() - truth[name]).abs().max().item()
        assert error <= eps * max(truth[name].abs().max().item(), 1e-3), (name, error)
    # the parameters' gradients are float32 sums of bf16 upstream gradients times float32 maps
    for name in ("m grad", "n grad"):
        torch.testing.assert_close(got[name].double(), truth[name], rtol=4 * eps, atol=0)
    scale = truth["video grad"].abs().max().item()
    error = (got["video grad"].double() - truth["video grad"]).abs().max().item()
    assert error <= 2 * eps * scale, error


def test_bf16_clip_does_not_quantise_the_shift():
    """In bf16, b(n) = 0.5017 would be 0.5 (steps of 2^-8 above 0.5): a pixel with D = 0.5
    would get attention 0.5 instead of sigmoid(50 (0.5 - 0.5017)) = 0.479 at a = 50."""
    layer = make_layer("fused", m=0.0, n=math.atanh(0.5017 / 0.6))  # a = 50, b = 0.5017
    video = torch.zeros(1, 3, 2, 1, 1)
    video[0, :, 1] = 0.5  # exact in bf16; D = 0.5 (the weights sum to 1)
    truth = 1 / (1 + math.exp(-50 * (0.5 - 0.5017)))
    got = layer(video.to(torch.bfloat16)).attention.float().item()
    assert got == pytest.approx(truth, abs=2**-9)  # the bf16 output's own rounding
    assert abs(truth - 0.5) > 0.02


def test_half_conversion_keeps_the_parameters_float32():
    layer = MotionPromptLayer(gate=True).to(torch.bfloat16)
    assert {p.dtype for p in layer.parameters()} == {torch.float32}
    assert layer.half().m.dtype == torch.float32 and layer.double().m.dtype == torch.float64
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as Lightning's "bf16-true" builds the model
    try:
        assert MotionPromptLayer().m.dtype == torch.float32
    finally:
        torch.set_default_dtype(default)


def test_fused_parameters_only_gradients():
    torch.manual_seed(0)
    eager, fused = make_layer("eager"), make_layer("fused")
    video = rand_clip()  # the usual training case: the clip needs no gradient
    for layer in (eager, fused):
        out = layer(video)
        (out.prompts.square().sum() + out.attention.sum()).backward()
    torch.testing.assert_close(fused.m.grad, eager.m.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused.n.grad, eager.n.grad, rtol=1e-6, atol=1e-6)


def test_fused_saves_only_input_and_scalars():
    video = rand_clip().requires_grad_()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    for implementation in FLOAT64_IMPLS:
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            make_layer(implementation)(video)
        per_pixel = [
            t
            for t in saved
            if t.dim() > 0 and t.untyped_storage().data_ptr() != video.untyped_storage().data_ptr()
        ]
        if implementation == "fused":
            assert per_pixel == []
        else:
            assert per_pixel, "the eager reference is expected to store per-pixel maps"


# --- temporal variation -----------------------------------------------------------------------


def test_temporal_variation_known_pair():
    att = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]], [[1.0, 1.0], [0.0, 0.5]]]])  # (1, 2, 2, 2)
    # squared differences 1, 0, 0.25, 0 -> sum 1.25 over one pair of 2x2 maps.
    assert temporal_variation(att).item() == pytest.approx(1.25 / 4)
    assert temporal_variation(att, reduction="frobenius").item() == pytest.approx(1.25)
    assert temporal_variation(att, "frobenius").item() == pytest.approx(
        4 * temporal_variation(att, "mean").item()
    )


def test_temporal_variation_frobenius_averages_pairs_then_batch():
    att = torch.zeros(2, 3, 1, 2)
    att[0, 1] = 1.0  # clip 0: pairs (0->1) and (1->2) each ||.||_F^2 = 2 -> 4 / (T-1) = 2
    att[1, 2, 0, 0] = 0.5  # clip 1: one pair with 0.25 -> 0.25 / 2 = 0.125
    assert temporal_variation(att, "frobenius").item() == pytest.approx((2 + 0.125) / 2)
    assert temporal_variation(att, "mean").item() == pytest.approx((4 + 0.25) / (2 * 2 * 2))
    per_clip = temporal_variation(att, "none")  # each clip's "mean": 4 / 4 and 0.25 / 4
    torch.testing.assert_close(per_clip, torch.tensor([1.0, 0.0625]))


def test_temporal_variation_gradient_and_errors():
    att = torch.rand(2, 3, 4, 4, requires_grad=True)
    temporal_variation(att).backward()
    assert att.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"T=1 map\(s\); need T >= 2"):
        temporal_variation(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\); expected \(B, T, H, W\)"):
        temporal_variation(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="reduction='sum'"):
        temporal_variation(torch.rand(2, 3, 4, 4), reduction="sum")


# --- power normalisations ---------------------------------------------------------------------


@pytest.mark.parametrize("name", POWER_NORMS)
def test_power_norm_range_and_sign(name):
    x = torch.arange(-200, 201, dtype=torch.float64) / 200  # exact 0 in the middle
    y = power_norm_curve(name, x)
    assert y.min() >= 0 and y.max() <= 1
    assert power_norm_curve(name, torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(0.5)
    torch.testing.assert_close(y.flip(0), 1 - y)  # f(-x) = -f(x) on the signed scale
    assert (y.diff() >= 0).all() and (y[x > 0] > 0.5).all() and (y[x < 0] < 0.5).all()


@pytest.mark.parametrize(
    "name, x, params, expected",
    [
        ("sigmoid", 0.1, {"slope": 10.0, "shift": 0.05}, 1 / (1 + math.exp(-0.5))),
        ("gamma", 0.25, {"eta": 0.5}, 0.75),  # f = 0.25^0.5 = 0.5
        ("gamma", -0.25, {"eta": 0.5}, 0.25),
        ("maxexp", 0.5, {"eta": 2.0}, 0.875),  # f = 1 - 0.5^2 = 0.75
        ("sigme", 0.5, {"eta": 2.0}, (1 + math.tanh(0.5)) / 2),  # 2 sigmoid(1) - 1 = tanh(0.5)
        ("asinhe", 0.5, {"eta": 2.0}, (1 + math.asinh(1.0) / math.asinh(2.0)) / 2),
        ("asinhe", -1.0, {"eta": 7.0}, 0.0),
    ],
)
def test_power_norm_closed_forms(name, x, params, expected):
    got = power_norm_curve(name, torch.tensor(x, dtype=torch.float64), **params)
    assert got.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", ALTERNATIVES)
@pytest.mark.parametrize("implementation", IMPLS)
def test_alternative_power_norm_in_layer(name, implementation):
    layer = MotionPromptLayer(power_norm=name, implementation=implementation)
    assert set(layer.pn_parameters()) == {"eta"}
    assert not hasattr(layer, "m")
    with pytest.raises(AttributeError, match="only for power_norm='sigmoid'"):
        _ = layer.slope
    video = rand_clip()
    video[:, :, 1] = video[:, :, 0]  # a still pair: D = 0 must keep gradients finite
    out = layer(video)
    assert 0 <= out.attention.min() and out.attention.max() <= 1
    expected = power_norm_curve(name, torch.tensor(0.0), eta=layer.eta.item())
    torch.testing.assert_close(
        out.attention[:, 0], torch.full_like(out.attention[:, 0], expected.item())
    )
    (out.prompts.sum() + temporal_variation(out.attention)).backward()
    grad = layer.log_eta.grad
    assert grad is not None and torch.isfinite(grad) and grad.abs() > 0


def test_sigmoid_pn_parameters_are_slope_and_shift():
    layer = make_layer(m=0.3, n=-0.2)
    params = layer.pn_parameters()
    assert set(params) == {"slope", "shift"}
    assert params["slope"].item() == pytest.approx(layer.slope.item())


def test_power_norm_curve_errors():
    with pytest.raises(ValueError, match="name='relu' is unknown"):
        power_norm_curve("relu", torch.zeros(3))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['slope'\]; expected \['eta'\]"):
        power_norm_curve("gamma", torch.zeros(3), slope=2.0)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, received",
    [
        ((3, 4, 8, 8), r"\(3, 4, 8, 8\)"),
        ((1, 4, 3, 8, 8), r"\(1, 4, 3, 8, 8\)"),
        ((1, 3, 1, 8, 8), r"\(1, 3, 1, 8, 8\)"),
    ],
)
@pytest.mark.parametrize("implementation", IMPLS)
def test_wrong_shape_raises(shape, received, implementation):
    with pytest.raises(ValueError, match=received + r"; expected \(B, 3, T\+1, H, W\)"):
        make_layer(implementation)(torch.rand(shape))


def test_bad_dtype_and_options_raise():
    with pytest.raises(ValueError, match="dtype torch.uint8; expected a floating-point"):
        MotionPromptLayer()(torch.zeros(1, 3, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="power_norm='tanh' is unknown"):
        MotionPromptLayer(power_norm="tanh")
    with pytest.raises(ValueError, match="grayscale_order='rbg'"):
        MotionPromptLayer(grayscale_order="rbg")
    with pytest.raises(
        ValueError,
        match=r"implementation='cuda'; choose one of \('fused', 'eager', 'compiled', 'native'\)",
    ):
        MotionPromptLayer(implementation="cuda")
