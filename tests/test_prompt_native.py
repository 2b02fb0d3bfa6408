"""Tests of the C++ CPU kernel of the prompt layer (implementation="native", vmp/layer/native.py)."""

import collections
import warnings

import pytest
import torch
from helpers import (
    assert_near_float64_truth,
    prompt_clip_and_grads,
    prompt_outputs_and_grads,
    twin_layers,
)

import vmp.layer.native
from vmp import MotionPromptLayer

# 37 x 41 = 1517 pixels: two pixel blocks of the kernel, the second one partial.
CLIP_SHAPE = (2, 3, 5, 37, 41)


@pytest.fixture(scope="module")
def kernel():
    return vmp.layer.native.prompt_kernel()  # builds on first use (about 25 s), then cached


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the layer's calls of the C++ kernel: a "native" test whose layer never reached it
    (it fell back to "fused", or dispatch skipped it) fails on the count."""
    calls = collections.Counter()
    build = vmp.layer.native.prompt_kernel  # the kernel is built only when the layer calls it

    class Counted:
        def forward(self, *args):
            calls["forward"] += 1
            return build().forward(*args)

        def backward(self, *args):
            calls["backward"] += 1
            return build().backward(*args)

    monkeypatch.setattr(vmp.layer.native, "prompt_kernel", Counted)
    return calls


def native_layer(normalized=False, seed=0):
    torch.manual_seed(seed)
    return MotionPromptLayer(implementation="native", input_normalized=normalized)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("loss_on", ["both", "prompts", "attention"])
@pytest.mark.parametrize("video_grad", [True, False])
def test_native_matches_float64_reference(normalized, loss_on, video_grad, kernel_calls):
    inputs = prompt_clip_and_grads(CLIP_SHAPE, normalized)
    assert_near_float64_truth(
        native_layer(normalized), *inputs, loss_on=loss_on, video_grad=video_grad
    )
    assert kernel_calls == {"forward": 1, "backward": 1}


@pytest.mark.usefixtures("kernel")
def test_native_two_frames_and_single_pixel(kernel_calls):
    inputs = prompt_clip_and_grads((1, 3, 2, 1, 1))
    assert_near_float64_truth(native_layer(seed=3), *inputs)
    assert kernel_calls == {"forward": 1, "backward": 1}


@pytest.mark.usefixtures("kernel")
def test_native_autograd_node_is_the_kernels(kernel_calls):
    out = native_layer()(prompt_clip_and_grads((1, 3, 3, 4, 4))[0])
    assert type(out.prompts.grad_fn).__name__ == "_NativePromptBackward"
    assert type(out.attention.grad_fn).__name__ == "_NativePromptBackward"
    assert kernel_calls == {"forward": 1}


@pytest.mark.usefixtures("kernel")
def test_native_results_do_not_depend_on_thread_count(kernel_calls):
    native = native_layer()
    inputs = prompt_clip_and_grads((4, 3, 6, 40, 40))
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(prompt_outputs_and_grads(native, *inputs))
    finally:
        torch.set_num_threads(threads)
    for name, value in results[0].items():
        assert torch.equal(results[1][name], value), name
    assert kernel_calls == {"forward": 2, "backward": 2}


@pytest.mark.usefixtures("kernel")
def test_native_saves_nothing_per_pixel(kernel_calls):
    video = prompt_clip_and_grads(CLIP_SHAPE)[0].requires_grad_()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        native_layer()(video)
    ptr = video.untyped_storage().data_ptr()
    assert [t for t in saved if t.dim() > 0 and t.untyped_storage().data_ptr() != ptr] == []
    assert kernel_calls == {"forward": 1}


@pytest.mark.usefixtures("kernel")
def test_native_propagates_nan_like_eager(kernel_calls):
    eager, native = twin_layers("eager", "native")
    video = prompt_clip_and_grads((1, 3, 4, 5, 6))[0]
    video[0, 1, 2, 3, 4] = float("nan")  # reaches D_1 and D_2 at that pixel
    want, got = eager(video).attention, native(video).attention
    assert torch.equal(got.isnan(), want.isnan()) and int(want.isnan().sum()) == 2
    assert kernel_calls == {"forward": 1}


@pytest.mark.parametrize("case", ["float64", "asinhe"])
def test_native_outside_its_scope_runs_fused(case, kernel_calls):
    kw = {"power_norm": "asinhe"} if case == "asinhe" else {}
    fused, native = twin_layers("fused", "native", **kw)
    inputs = prompt_clip_and_grads()
    if case == "float64":
        fused.double(), native.double()
        inputs = tuple(t.double() for t in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = prompt_outputs_and_grads(native, *inputs)
    for name, value in prompt_outputs_and_grads(fused, *inputs).items():
        assert torch.equal(got[name], value), name
    assert kernel_calls == {}


@pytest.mark.usefixtures("kernel")
def test_native_takes_non_contiguous_clips(kernel_calls):
    video, g_prompts, g_attention = prompt_clip_and_grads((2, 3, 4, 5, 6))
    transposed = video.transpose(3, 4).contiguous().transpose(3, 4)  # same values, other strides
    assert not transposed.is_contiguous()
    native = native_layer()
    got = prompt_outputs_and_grads(native, transposed, g_prompts, g_attention)
    want = prompt_outputs_and_grads(native, video, g_prompts, g_attention)
    for name, value in want.items():
        assert torch.equal(got[name], value), name
    assert kernel_calls == {"forward": 2, "backward": 2}


def test_native_build_failure_warns_once_and_falls_back(monkeypatch):
    calls = []

    def broken_build():
        calls.append(1)
        raise vmp.layer.native.KernelBuildError(
            "building the prompt layer's CPU kernel prompt_cpu.cpp failed (no g++); "
            "install a C++ compiler (g++) or use implementation='fused'"
        )

    monkeypatch.setattr(vmp.layer.native, "prompt_kernel", broken_build)
    fused, native = twin_layers("fused", "native")
    video = prompt_clip_and_grads((1, 3, 3, 4, 4))[0]
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
