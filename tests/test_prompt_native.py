"""Tests of the C++ CPU kernel of the prompt layer (implementation="native", vmp/native.py)."""

import warnings

import pytest
import torch

import vmp.native
from vmp import MotionPromptLayer

# 37 x 41 = 1517 pixels: two pixel blocks of the kernel, the second one partial.
CLIP_SHAPE = (2, 3, 5, 37, 41)


@pytest.fixture(scope="module")
def kernel():
    return vmp.native.prompt_kernel()  # builds on first use (about 25 s), then cached


def layer_pair(normalized=False, seed=0):
    torch.manual_seed(seed)
    eager = MotionPromptLayer(implementation="eager", input_normalized=normalized)
    native = MotionPromptLayer(implementation="native", input_normalized=normalized)
    native.load_state_dict(eager.state_dict())
    return eager, native


def clip_and_grads(shape=CLIP_SHAPE, normalized=False):
    gen = torch.Generator().manual_seed(1)
    b, _, t1, h, w = shape
    video = torch.rand(shape, generator=gen)
    if normalized:
        video = (video - 0.45) / 0.225
    g_prompts = torch.randn(b, 3, t1 - 1, h, w, generator=gen)
    g_attention = torch.randn(b, t1 - 1, h, w, generator=gen)
    return video, g_prompts, g_attention


def outputs_and_grads(layer, video, g_prompts, g_attention, loss_on="both", video_grad=True):
    v = video.clone().requires_grad_(video_grad)
    out = layer(v)
    loss = 0
    if loss_on in ("both", "prompts"):
        loss = loss + (out.prompts * g_prompts).sum()
    if loss_on in ("both", "attention"):
        loss = loss + (out.attention * g_attention).sum()
    loss.backward()
    return {
        "prompts": out.prompts,
        "attention": out.attention,
        "video grad": v.grad,
        "m grad": layer.m.grad,
        "n grad": layer.n.grad,
    }


def assert_near_float64_truth(layer, video, g_prompts, g_attention, normalized, **kw):
    """Outputs and gradients of a float32 layer against the float64 eager layer.

    Differences of nearby frames cancel, so float32 results carry rounding of about 1e-7 of
    each tensor's largest value; the sums over all pixels behind the gradients of m and n
    about 1e-6 (the eager float32 layer itself is 1.2-2.4e-6 off there on these clips).
    """
    truth_layer = MotionPromptLayer(implementation="eager", input_normalized=normalized)
    truth_layer.load_state_dict(layer.state_dict())
    truth_layer.double()
    as64 = (t.double() for t in (video, g_prompts, g_attention))
    want = outputs_and_grads(truth_layer, *as64, **kw)
    got = outputs_and_grads(layer, video, g_prompts, g_attention, **kw)
    for name, value in want.items():
        if value is None:
            assert got[name] is None, name
            continue
        scale = value.abs().max().item()
        tolerance = 1e-5 if name in ("m grad", "n grad") else 1e-6
        error = (got[name].double() - value).abs().max().item()
        assert error <= tolerance * scale, f"{name}: error {error:.3g}, scale {scale:.3g}"


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("loss_on", ["both", "prompts", "attention"])
@pytest.mark.parametrize("video_grad", [True, False])
def test_native_matches_float64_reference(normalized, loss_on, video_grad):
    _, native = layer_pair(normalized)
    video, g_prompts, g_attention = clip_and_grads(normalized=normalized)
    assert_near_float64_truth(
        native, video, g_prompts, g_attention, normalized, loss_on=loss_on, video_grad=video_grad
    )


@pytest.mark.usefixtures("kernel")
def test_native_two_frames_and_single_pixel():
    _, native = layer_pair(seed=3)
    video, g_prompts, g_attention = clip_and_grads(shape=(1, 3, 2, 1, 1))
    assert_near_float64_truth(native, video, g_prompts, g_attention, normalized=False)


@pytest.mark.usefixtures("kernel")
def test_native_results_do_not_depend_on_thread_count():
    _, native = layer_pair()
    video, g_prompts, g_attention = clip_and_grads(shape=(4, 3, 6, 40, 40))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            native.zero_grad()
            results.append(outputs_and_grads(native, video, g_prompts, g_attention))
    finally:
        torch.set_num_threads(threads)
    for name, value in results[0].items():
        assert torch.equal(results[1][name], value), name


@pytest.mark.usefixtures("kernel")
def test_native_saves_nothing_per_pixel():
    video = clip_and_grads()[0].requires_grad_()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer_pair()[1](video)
    ptr = video.untyped_storage().data_ptr()
    assert [t for t in saved if t.dim() > 0 and t.untyped_storage().data_ptr() != ptr] == []


@pytest.mark.usefixtures("kernel")
def test_native_propagates_nan_like_eager():
    eager, native = layer_pair()
    video = clip_and_grads(shape=(1, 3, 4, 5, 6))[0]
    video[0, 1, 2, 3, 4] = float("nan")  # reaches D_1 and D_2 at that pixel
    want, got = eager(video).attention, native(video).attention
    assert torch.equal(got.isnan(), want.isnan()) and int(want.isnan().sum()) == 2


@pytest.mark.parametrize(
    "case", ["float64", "power norm", "non-contiguous"], ids=lambda c: c.replace(" ", "-")
)
def test_native_outside_its_scope_runs_fused(case):
    kw = {"power_norm": "asinhe"} if case == "power norm" else {}
    torch.manual_seed(0)
    fused = MotionPromptLayer(implementation="fused", **kw)
    native = MotionPromptLayer(implementation="native", **kw)
    native.load_state_dict(fused.state_dict())
    video = clip_and_grads(shape=(2, 3, 4, 6, 5))[0]
    if case == "float64":
        video = video.double()
    if case == "non-contiguous":
        video = video.transpose(3, 4)  # the kernel is given a contiguous copy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = native(video)
    want = fused(video)
    assert got.prompts.dtype == video.dtype
    torch.testing.assert_close(got.attention, want.attention, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got.prompts, want.prompts, rtol=1e-6, atol=1e-6)


def test_native_build_failure_warns_once_and_falls_back(monkeypatch):
    calls = []

    def broken_build():
        calls.append(1)
        raise RuntimeError(
            "building the prompt layer's CPU kernel prompt_cpu.cpp failed (no g++); "
            "install a C++ compiler (g++) or use implementation='fused'"
        )

    monkeypatch.setattr(vmp.native, "prompt_kernel", broken_build)
    torch.manual_seed(0)
    fused = MotionPromptLayer(implementation="fused")
    native = MotionPromptLayer(implementation="native")
    native.load_state_dict(fused.state_dict())
    video = clip_and_grads(shape=(1, 3, 3, 4, 4))[0]
    with pytest.warns(RuntimeWarning, match="C\\+\\+ kernel could not be built.*'fused'"):
        out = native(video)
    assert torch.equal(out.attention, fused(video).attention)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        native(video)
    assert len(calls) == 1


def test_kernel_rejects_bad_input(kernel):
    video = torch.rand(1, 3, 3, 4, 4)
    weights = (0.299, 0.587, 0.114)
    with pytest.raises(RuntimeError, match="float32"):
        kernel.forward(video.double(), 10.0, 0.0, weights, 1.0)
    with pytest.raises(RuntimeError, match="contiguous"):
        kernel.forward(video.transpose(3, 4), 10.0, 0.0, weights, 1.0)
    with pytest.raises(RuntimeError, match=r"\(B, 3, T\+1, H, W\)"):
        kernel.forward(video[:, :2], 10.0, 0.0, weights, 1.0)
    with pytest.raises(RuntimeError, match="g_attention has shape"):
        kernel.backward(video, None, torch.zeros(1, 3, 4, 4), 10.0, 0.0, weights, 1.0, True)
