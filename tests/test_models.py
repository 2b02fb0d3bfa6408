"""Tests of the backbone registry `vmp.models`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from vmp.models import (
    create_model,
    list_models,
    list_variants,
    load_pretrained,
    save_checkpoint,
    sigmoid_variant,
    variant_options,
)
from vmp.models.checkpoint import _rename_pyslowfast_timesformer
from vmp.names import ORACLE_VARIANT, PROMPT_FUNCTION_VARIANTS

TINY = list_models("*_tiny")
# The oracle reads a mask channel with its frames: tests/test_oracle.py runs it on every pathway.
TINY_VARIANTS = [
    (name, v)
    for name in TINY
    for v in list_variants(name)
    if v not in (*PROMPT_FUNCTION_VARIANTS, ORACLE_VARIANT)
]


PAPER_SIZES = {  # published parameter counts (millions), Kinetics-400 heads
    "c2d_r50": 24.33,
    "i3d_r50": 28.04,
    "slowfast_r50": 34.57,
    "x3d_xs": 3.79,
    "x3d_s": 3.79,
    "x3d_m": 3.79,
    "x3d_l": 6.15,
    "timesformer": 121.4,
}
SIZE = 32  # tiny models are built for 32 px clips in these tests


def clip(batch: int = 2, frames: int = 9, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def tiny(name: str, variant: str = "baseline", num_classes: int = 5, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    options = variant_options(name, variant) | {"crop_size": SIZE} | kwargs
    return create_model(name, num_classes, **options)


def backbone_inputs(model: torch.nn.Module, video: torch.Tensor) -> list[torch.Tensor]:
    """The tensors the backbone receives, captured with a forward pre-hook."""
    seen = []

    def hook(_module, args):
        x = args[0]
        seen.extend(x if isinstance(x, list) else [x])

    handle = model.backbone.register_forward_pre_hook(hook)
    with torch.no_grad():
        model(video)
    handle.remove()
    return seen


def test_registry_has_every_backbone_at_both_sizes():
    assert sorted(PAPER_SIZES) == [n for n in list_models() if not n.endswith("_tiny")]
    assert TINY == ["c2d_tiny", "i3d_tiny", "slowfast_tiny", "timesformer_tiny", "x3d_tiny"]
    assert list_models("x3d_*") == ["x3d_l", "x3d_m", "x3d_s", "x3d_tiny", "x3d_xs"]


@pytest.mark.parametrize(("name", "variant"), TINY_VARIANTS)
def test_tiny_forward_backward(name, variant):
    model = tiny(name, variant).train()
    video = clip()
    out = model(video)
    assert out.logits.shape == (2, 5)
    loss = F.cross_entropy(out.logits, torch.tensor([0, 3]))
    assert torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname
    expected = {"video": 8, "slow": 2, "fast": 8}
    assert len(out.attentions) == len(model.prompt_layers)
    for (key, layer), attention in zip(model.prompt_layers.items(), out.attentions, strict=True):
        assert attention.shape == (2, expected[key], SIZE, SIZE)
        # a gate at 0 passes the frames: its gradient flows, m's and n's wait for g > 0
        learning = [layer.gate] if layer.gate is not None else [layer.m, layer.n]
        for param in learning:
            assert param.grad is not None and param.grad.abs() > 0, key


@pytest.mark.parametrize("variant", PROMPT_FUNCTION_VARIANTS)
def test_prompt_function_variants_learn_eta(variant):
    model = tiny("i3d_tiny", variant).train()
    (layer,) = model.prompt_layers.values()
    assert layer.power_norm == variant.removeprefix("vmp_")
    F.cross_entropy(model(clip()).logits, torch.tensor([0, 3])).backward()
    assert layer.log_eta.grad is not None and layer.log_eta.grad.abs() > 0
    assert not hasattr(layer, "m")


def test_variants():
    alternatives = ["vmp_identity", "vmp_gate", "vmp_normalized", "vmp_oracle"]
    assert list_variants("x3d_tiny") == [
        "baseline",
        "vmp",
        *alternatives,
        *PROMPT_FUNCTION_VARIANTS,
    ]
    assert variant_options("i3d_tiny", "vmp_maxexp") == {"prompt": "maxexp"}
    assert sigmoid_variant("x3d_tiny") == "vmp" and sigmoid_variant("slowfast_r50") == "vmp_both"
    assert list_variants("slowfast_r50") == [
        "baseline",
        "vmp_slow",
        "vmp_fast",
        "vmp_both",
        *alternatives,
    ]
    assert variant_options("slowfast_tiny", "vmp_gate") == {"prompt": "vmp", "prompt_gate": True}
    assert variant_options("timesformer", "vmp") == {"prompt": "vmp"}
    assert variant_options("slowfast_tiny", "vmp_fast") == {
        "prompt": "vmp",
        "prompt_pathways": ("fast",),
    }
    with pytest.raises(ValueError, match=r"allowed: \['baseline', 'vmp', 'vmp_identity'"):
        variant_options("c2d_tiny", "vmp_fast")
    sf = tiny("slowfast_tiny", "vmp_both")
    assert list(sf.prompt_layers) == ["slow", "fast"]
    assert sf.prompt_layers["slow"] is not sf.prompt_layers["fast"]
    assert list(tiny("c2d_tiny", "vmp").prompt_layers) == ["video"]
    assert len(tiny("c2d_tiny").prompt_layers) == 0
    for pathway, layer in tiny("slowfast_tiny", "vmp_identity").prompt_layers.items():
        assert layer.init == "identity" and layer.n.item() == -2.0, pathway
    gated = tiny("slowfast_tiny", "vmp_gate")
    assert list(gated.prompt_layers) == ["slow", "fast"]
    assert all(layer.gate is not None for layer in gated.prompt_layers.values())
    normalized = tiny("i3d_tiny", "vmp_normalized")
    assert normalized.prompt_input == "normalized"
    assert normalized.prompt_layers["video"].input_normalized


@pytest.mark.parametrize("name", ["x3d_tiny", "slowfast_tiny"])
def test_gated_model_starts_as_its_baseline(name):
    torch.manual_seed(0)
    baseline = tiny(name).eval()
    gated = tiny(name, "vmp_gate").eval()
    gated.backbone.load_state_dict(baseline.backbone.state_dict())
    video = clip()
    with torch.no_grad():
        torch.testing.assert_close(gated(video).logits, baseline(video).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_baseline_and_vmp_see_the_same_frames(name):
    video = clip()
    changed = video.clone()
    changed[:, :, 0] = torch.rand_like(changed[:, :, 0])
    baseline = tiny(name).eval()
    with torch.no_grad():
        assert torch.equal(baseline(video).logits, baseline(changed).logits)
    vmp = tiny(name, sigmoid_variant(name)).eval()
    with torch.no_grad():  # the prompt layer uses frame 1 (difference F_2 - F_1)
        assert not torch.allclose(vmp(video).logits, vmp(changed).logits)


def test_c2d_cannot_tell_a_clip_from_its_time_reversal():
    """C2D has no temporal convolution and pools time symmetrically, so reversing the frames it
    sees leaves its logits unchanged: it cannot separate SynthMotion's mirrored-in-time classes
    (left/right, up/down, cw/ccw, zoom in/out). I3D's temporal kernels can, and so can C2D fed
    with prompts, whose frame differences change sign when time runs backwards."""
    video = clip()
    seen_reversed = video.clone()
    seen_reversed[:, :, 1:] = video[:, :, 1:].flip(2)  # the T frames a baseline sees, reversed
    cases = (
        ("c2d_tiny", "baseline", seen_reversed, True),
        ("i3d_tiny", "baseline", seen_reversed, False),
        ("c2d_tiny", "vmp", video.flip(2), False),  # all T + 1 frames the prompts see, reversed
    )
    for name, variant, reversed_video, invariant in cases:
        model = tiny(name, variant).eval()
        with torch.no_grad():
            same = torch.allclose(model(video).logits, model(reversed_video).logits, atol=1e-5)
        assert same == invariant, (name, variant)


def test_baseline_input_is_last_frames_normalised():
    video = clip()
    (x,) = backbone_inputs(tiny("c2d_tiny"), video)
    torch.testing.assert_close(x, (video[:, :, 1:] - 0.45) / 0.225)


def test_slowfast_pathway_frames():
    video = clip()
    slow, fast = backbone_inputs(tiny("slowfast_tiny"), video)
    torch.testing.assert_close(slow, (video[:, :, [4, 8]] - 0.45) / 0.225)
    torch.testing.assert_close(fast, (video[:, :, 1:] - 0.45) / 0.225)
    model = tiny("slowfast_tiny", "vmp_slow")
    slow, fast = backbone_inputs(model, video)
    prompts = model.prompt_layers["slow"](video[:, :, [0, 4, 8]]).prompts
    torch.testing.assert_close(slow, (prompts - 0.45) / 0.225)
    torch.testing.assert_close(fast, (video[:, :, 1:] - 0.45) / 0.225)


def test_prompt_input_modes():
    video = clip()
    raw = tiny("c2d_tiny", "vmp")
    (x,) = backbone_inputs(raw, video)
    torch.testing.assert_close(x, (raw.prompt_layers["video"](video).prompts - 0.45) / 0.225)
    released = tiny("c2d_tiny", "vmp", prompt_input="normalized")
    assert released.prompt_layers["video"].input_normalized
    (x,) = backbone_inputs(released, video)
    normalized = (video - 0.45) / 0.225
    torch.testing.assert_close(x, released.prompt_layers["video"](normalized).prompts)
    with pytest.raises(ValueError, match="prompt_input='normalized' needs mean"):
        tiny("c2d_tiny", "vmp", prompt_input="normalized", mean=(0.5, 0.5, 0.5))


def test_power_norm_prompt_and_bad_arguments():
    model = tiny("i3d_tiny", prompt="gamma")
    assert model.prompt_layers["video"].power_norm == "gamma"
    with pytest.raises(ValueError, match="unknown model 'c3d'"):
        create_model("c3d", 5)
    with pytest.raises(ValueError, match=r"unknown options \['widht'\]"):
        create_model("c2d_tiny", 5, widht=4)
    with pytest.raises(ValueError, match=r"prompt_pathways=\['middle'\] invalid"):
        create_model("slowfast_tiny", 5, prompt="vmp", prompt_pathways=("middle",))
    with pytest.raises(ValueError, match="divisible by the stride 4"):
        create_model("slowfast_tiny", 5, num_frames=6)
    with pytest.raises(ValueError, match=r"expects video of shape \(B, 3, 9, H, W\)"):
        tiny("c2d_tiny")(clip(frames=8))
    with pytest.raises(ValueError, match="pass num_frames=/crop_size="):
        tiny("timesformer_tiny")(clip(size=48))


def test_timesformer_conv_stem_and_mean_pooling():
    plain = tiny("timesformer_tiny")
    hybrid = tiny("timesformer_tiny", conv_stem=True, pool="mean")
    tokenizer = hybrid.backbone.timesformer.embeddings.patch_embeddings
    convs = [m for m in tokenizer.projection if isinstance(m, torch.nn.Conv3d)]
    # patch 8: three stride-2 3x3 convolutions (3 -> 16 -> 32 -> 64), then a 1x1 to the width
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 16, (1, 3, 3), (1, 2, 2)),
        (16, 32, (1, 3, 3), (1, 2, 2)),
        (32, 64, (1, 3, 3), (1, 2, 2)),
        (64, 64, (1, 1, 1), (1, 1, 1)),
    ]
    frames = torch.rand(2, 6, 3, SIZE, SIZE)  # (B, T, C, H, W), as transformers passes them
    tokens, num_frames, width = tokenizer(frames)
    assert tokens.shape == (12, (SIZE // 8) ** 2, 64) and (num_frames, width) == (6, SIZE // 8)
    video, hybrid = clip(), hybrid.eval()
    hidden = hybrid.backbone.timesformer(hybrid._normalize(video[:, :, 1:]).permute(0, 2, 1, 3, 4))
    expected = hybrid.backbone.classifier(hidden.last_hidden_state[:, 1:].mean(dim=1))
    torch.testing.assert_close(hybrid(video).logits, expected)
    assert plain.backbone.pool == "cls"
    with pytest.raises(ValueError, match="pool='max'; use 'cls' or 'mean'"):
        tiny("timesformer_tiny", pool="max")
    with pytest.raises(ValueError, match="conv_stem needs a power-of-two patch_size, got 6"):
        create_model("timesformer_tiny", 5, conv_stem=True, patch_size=6, crop_size=36)


@pytest.mark.parametrize("kernel", [1, 3])
def test_timesformer_stem_temporal_kernel_reaches_neighbouring_frames(kernel):
    """A change in frame 3 reaches the tokens of frames 3 -/+ (3 convolutions x kernel // 2)."""
    model = tiny("timesformer_tiny", conv_stem=True, stem_temporal_kernel=kernel).eval()
    tokenizer = model.backbone.timesformer.embeddings.patch_embeddings
    frames = torch.rand(1, 8, 3, SIZE, SIZE)
    changed = frames.clone()
    changed[:, 3] = torch.rand(3, SIZE, SIZE)
    with torch.no_grad():
        delta = (tokenizer(changed)[0] - tokenizer(frames)[0]).abs().amax(dim=(1, 2))
    reach = 3 * (kernel // 2)
    expected = [abs(t - 3) <= reach for t in range(8)]
    assert (delta > 1e-6).tolist() == expected
    assert tokenizer.projection[0].kernel_size == (kernel, 3, 3)


def test_timesformer_stem_temporal_kernel_errors():
    with pytest.raises(ValueError, match="stem_temporal_kernel=3 needs conv_stem=True"):
        create_model("timesformer_tiny", 5, stem_temporal_kernel=3)
    with pytest.raises(ValueError, match="stem_temporal_kernel=2 needs conv_stem=True and an odd"):
        create_model("timesformer_tiny", 5, conv_stem=True, stem_temporal_kernel=2)


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_paper_size_parameter_counts(name):
    with torch.device("meta"):
        baseline = create_model(name, 400)
        vmp = create_model(name, 400, **variant_options(name, list_variants(name)[1]))
    count = sum(p.numel() for p in baseline.parameters())
    assert count / 1e6 == pytest.approx(PAPER_SIZES[name], rel=0.01)
    assert sum(p.numel() for p in vmp.parameters()) == count + 2


def test_tiny_models_adapt_to_crop_size():
    for name in ["c2d_tiny", "i3d_tiny", "slowfast_tiny", "x3d_tiny"]:
        model = tiny(name).eval()
        with torch.no_grad():
            assert model(clip(size=48)).logits.shape == (2, 5)
            assert model(clip(size=64)).logits.shape == (2, 5)


def test_save_load_roundtrip(tmp_path):
    model = tiny("slowfast_tiny", "vmp_both").eval()
    path = save_checkpoint(model, tmp_path / "sub" / "ckpt.pt", epoch=3)
    ckpt = torch.load(path, weights_only=True)
    assert (ckpt["format"], ckpt["model"], ckpt["num_classes"], ckpt["epoch"]) == (
        "vmp",
        "slowfast_tiny",
        5,
        3,
    )
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left
    torch.manual_seed(1)
    fresh = create_model(
        "slowfast_tiny",
        5,
        crop_size=SIZE,
        pretrained=path,
        **variant_options("slowfast_tiny", "vmp_both"),
    ).eval()
    assert fresh.prompt_layers["fast"].m.item() == model.prompt_layers["fast"].m.item()
    video = clip()
    with torch.no_grad():
        assert torch.equal(model(video).logits, fresh(video).logits)


def test_finetune_replaces_head_and_keeps_backbone(tmp_path):
    source = tiny("x3d_tiny", num_classes=5)
    path = save_checkpoint(source, tmp_path / "src.pt")
    with pytest.warns(UserWarning, match=r"backbone\.blocks\.5\.proj\.weight"):
        target = tiny("x3d_tiny", "vmp", num_classes=7, pretrained=path)
    assert target.backbone.blocks[-1].proj.out_features == 7
    torch.testing.assert_close(
        target.backbone.blocks[1].res_blocks[0].branch2.conv_b.weight,
        source.backbone.blocks[1].res_blocks[0].branch2.conv_b.weight,
    )


def test_unexpected_and_missing_keys_raise(tmp_path):
    model = tiny("c2d_tiny")
    state = model.state_dict()
    state["backbone.blocks.9.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pt"
    torch.save({"format": "vmp", "model": "c2d_tiny", "num_classes": 5, "state_dict": state}, path)
    with pytest.raises(
        ValueError, match=r"extra\.pt.*unexpected keys \[backbone\.blocks\.9\.weight\]"
    ):
        load_pretrained(model, path)
    del state["backbone.blocks.9.weight"]
    del state["backbone.blocks.0.conv.weight"]
    torch.save({"format": "vmp", "model": "c2d_tiny", "num_classes": 5, "state_dict": state}, path)
    with pytest.raises(ValueError, match=r"missing keys \[backbone\.blocks\.0\.conv\.weight\]"):
        load_pretrained(model, path)
    torch.save({"weights": 1}, path)
    with pytest.raises(ValueError, match="unknown checkpoint layout"):
        load_pretrained(model, path)


def test_pytorchvideo_model_zoo_format(tmp_path):
    source = tiny("i3d_tiny").eval()
    path = tmp_path / "I3D.pyth"
    torch.save({"model_state": source.backbone.state_dict(), "epoch": 196}, path)
    target = tiny("i3d_tiny", "vmp", pretrained=path).eval()
    video = clip()
    (a,) = backbone_inputs(source, video)
    with torch.no_grad():
        torch.testing.assert_close(source.backbone(a), target.backbone(a))


def test_timesformer_embeddings_are_interpolated(tmp_path):
    source = tiny("timesformer_tiny", num_frames=4)
    emb = source.backbone.timesformer.embeddings
    with torch.no_grad():
        emb.position_embeddings[:, 1:] = 0.5  # a constant grid stays constant
        emb.position_embeddings[:, 0] = 2.0
        emb.time_embeddings.copy_(
            torch.linspace(0, 3, 4).view(1, 4, 1).expand_as(emb.time_embeddings)
        )
    path = save_checkpoint(source, tmp_path / "ts.pt")
    target = create_model("timesformer_tiny", 5, num_frames=8, crop_size=48, pretrained=path)
    emb = target.backbone.timesformer.embeddings
    assert emb.position_embeddings.shape == (1, 1 + 6 * 6, 64)
    torch.testing.assert_close(emb.position_embeddings[:, 1:], torch.full((1, 36, 64), 0.5))
    torch.testing.assert_close(emb.position_embeddings[:, 0], torch.full((1, 64), 2.0))
    time = emb.time_embeddings[0, :, 0]
    assert time.shape == (8,)
    # linear, half-pixel aligned: 4 -> 8 frames gives 0, .25, .75, ..., 2.75, 3
    torch.testing.assert_close(time, torch.tensor([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]))
    with torch.no_grad():
        assert target(clip(size=48)).logits.shape == (2, 5)


def test_timesformer_transformers_directory_and_pyslowfast_keys(tmp_path):
    source = tiny("timesformer_tiny").eval()
    weights = source.backbone.state_dict()
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "timesformer"}))
    save_file(weights, tmp_path / "hf" / "model.safetensors")
    target = tiny("timesformer_tiny", pretrained=tmp_path / "hf").eval()
    video = clip()
    with torch.no_grad():
        assert torch.equal(source(video).logits, target(video).logits)

    per_layer = [
        "norm1", "norm2", "attn.qkv", "attn.proj", "temporal_norm1", "temporal_attn.qkv",
        "temporal_attn.proj", "temporal_fc", "mlp.fc1", "mlp.fc2",
    ]  # fmt: skip
    official = ["model.cls_token", "model.pos_embed", "model.time_embed"]
    official += [
        f"model.{m}.{p}" for m in ("patch_embed.proj", "norm", "head") for p in ("weight", "bias")
    ]
    official += [
        f"model.blocks.{i}.{m}.{p}" for i in range(2) for m in per_layer for p in ("weight", "bias")
    ]
    renamed = _rename_pyslowfast_timesformer(dict.fromkeys(official, torch.zeros(1)))
    assert sorted(renamed) == sorted(weights)


@pytest.mark.parametrize("name", ["c2d_tiny", "i3d_tiny", "slowfast_tiny", "x3d_tiny"])
def test_tiny_cnns_keep_resolution_for_small_clips(name):
    """A 32-px clip is 16x16 after the stem (no max-pool) and 2x2 before the head."""
    model = tiny(name).eval()
    sizes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
        for m in model.backbone.modules()
        if isinstance(m, torch.nn.Conv3d)
    ]
    with torch.no_grad():
        model(clip())
    for hook in hooks:
        hook.remove()
    # (X3D's head projects after pooling: 1x1 there.)
    assert sizes[0] == 16 and min(s for s in sizes if s > 1) == 2
    assert not any(isinstance(m, torch.nn.MaxPool3d) and m.stride[-1] > 1 for m in model.modules())
    with pytest.raises(ValueError, match="below the total stride 16"):
        tiny(name, crop_size=8)


def test_small_input_stems_keep_each_family_s_temporal_kernel():
    def stem(name):
        return next(m for m in tiny(name).backbone.modules() if isinstance(m, torch.nn.Conv3d))

    assert stem("c2d_tiny").kernel_size == (1, 3, 3)  # C2D: no temporal convolution
    assert stem("i3d_tiny").kernel_size == (3, 3, 3)  # I3D: inflated
    assert stem("c2d_r50").kernel_size == (1, 7, 7) and stem("c2d_r50").stride == (1, 2, 2)


@pytest.mark.parametrize("name", ["c2d_tiny", "x3d_tiny", "slowfast_tiny"])
def test_channels_last_layout_changes_speed_not_results(name, tmp_path):
    torch.manual_seed(0)
    model = tiny(name, sigmoid_variant(name)).train()
    assert model.channels_last
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(
        m.weight.is_contiguous(memory_format=torch.channels_last_3d) for m in convs
    )
    plain = tiny(name, sigmoid_variant(name)).train()
    plain.load_state_dict(model.state_dict())
    plain.channels_last = False
    for m in plain.backbone.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.to(memory_format=torch.contiguous_format)
    video = clip()
    logits = model(video).logits
    expected = plain(video).logits
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    logits.sum().backward()
    expected.sum().backward()
    for (key, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4, msg=key)
    # a checkpoint written in channels-last layout loads into a contiguous model and back
    path = save_checkpoint(model, tmp_path / "ckpt.pt")
    load_pretrained(plain, path)
    assert not tiny("timesformer_tiny").channels_last
