"""The oracle prompt (``vmp_oracle``; oracle: ground truth, not a method): its map is the scored
motion region, its masks travel with the clips, its replicates share the baseline's draws."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import centre_x, square_video, tiny_run_settings

from vmp.analysis.attention import attention_scores, motion_regions
from vmp.data.clips import ClipDataset, ClipSpec, load_decoded, make_loader, write_decoded
from vmp.data.official import load_splits
from vmp.layer.oracle import OraclePromptLayer, motion_region
from vmp.models import create_model, list_models, list_variants, variant_options
from vmp.models.classifier import make_prompt_layer
from vmp.names import ORACLE_LABEL, ORACLE_VARIANT, SIGMOID_ALTERNATIVES
from vmp.training.run import replicate_model, train_run

TINY = list_models("*_tiny")
SIZE = 32


def table(*paths: Path) -> pd.DataFrame:
    return pd.DataFrame({"path": [str(p) for p in paths], "label": list(range(len(paths)))})


def oracle(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    options = variant_options(name, ORACLE_VARIANT) | {"crop_size": SIZE} | kwargs
    return create_model(name, 5, **options)


def clip_with_masks(batch=2, frames=9, size=SIZE, seed=0) -> torch.Tensor:
    """(B, 4, T+1, H, W) in [0, 1]: random frames and a random soft object mask as channel 4."""
    return torch.rand(batch, 4, frames, size, size, generator=torch.Generator().manual_seed(seed))


# --- the map: exactly the scored motion region, hard 0/1 -------------------------------------


def test_the_oracle_map_is_the_region_the_attention_is_scored_on():
    masks = torch.rand(3, 7, 6, 5, generator=torch.Generator().manual_seed(0))
    region, _ = motion_regions(masks, torch.zeros_like(masks))
    assert torch.equal(motion_region(masks), region)
    assert np.array_equal(motion_region(masks.numpy()), region.numpy())  # numpy masks alike
    video = torch.rand(3, 3, 7, 6, 5)
    out = OraclePromptLayer()(video, masks)
    assert torch.equal(out.attention, region.float())  # 1 inside, 0 outside: no floor
    assert torch.equal(out.prompts, region.float().unsqueeze(1) * video[:, :, 1:])
    scores = attention_scores(out.attention, masks, torch.zeros_like(masks))
    for score in ("object_share", "precision", "recall"):
        finite = scores[score][torch.isfinite(scores[score])]
        assert torch.equal(finite, torch.ones_like(finite)), score


def test_a_pixel_is_kept_where_the_object_is_in_frame_t_or_t_plus_1_and_nowhere_else():
    mask = torch.zeros(1, 3, 1, 5)  # one row of 5 pixels, 3 frames: the object moves right
    mask[0, 0, 0, 1] = mask[0, 1, 0, 2] = mask[0, 2, 0, 3] = 1.0
    mask[0, 0, 0, 4] = 0.49  # less than half covered: not the object (no dilation)
    region = OraclePromptLayer()(torch.ones(1, 3, 3, 1, 5), mask).attention[0, :, 0]
    assert region.tolist() == [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0]]


def test_the_oracle_has_no_parameters_no_start_and_nothing_to_report():
    layer = OraclePromptLayer()
    assert list(layer.parameters()) == [] and layer.state_dict() == {}
    layer.reset_parameters(torch.Generator().manual_seed(3))  # seed_prompt_layers' call
    assert layer.pn_parameters() == {} and layer.static_gain() == {}
    assert ORACLE_LABEL in repr(layer)


def test_the_oracle_refuses_missing_or_misfit_masks():
    video = torch.rand(2, 3, 5, 8, 8)
    with pytest.raises(ValueError, match=f"{ORACLE_VARIANT} \\({ORACLE_LABEL}\\) needs"):
        OraclePromptLayer()(video)
    with pytest.raises(ValueError, match=r"masks \(2, 4, 8, 8\) do not fit"):
        OraclePromptLayer()(video, torch.ones(2, 4, 8, 8))


# --- the variant: every pathway of every backbone, paired like vmp_identity and vmp_gate ------


@pytest.mark.parametrize("name", list_models())
def test_every_backbone_has_the_oracle_variant_where_the_sigmoid_alternatives_are(name):
    variants = list_variants(name)
    assert ORACLE_VARIANT in SIGMOID_ALTERNATIVES
    assert variants.index(ORACLE_VARIANT) == variants.index("vmp_normalized") + 1
    assert variant_options(name, ORACLE_VARIANT) == {"prompt": "oracle"}


@pytest.mark.parametrize("name", TINY)
def test_oracle_model_takes_the_mask_channel_on_every_pathway(name):
    model = oracle(name).train()
    assert model.needs_masks
    assert list(model.prompt_layers) == [p.name for p in model.pathways]  # slow and fast alike
    assert all(isinstance(layer, OraclePromptLayer) for layer in model.prompt_layers.values())
    video = clip_with_masks()
    out = model(video)
    assert out.logits.shape == (2, 5)
    strides = {p.name: p.stride for p in model.pathways}
    for key, attention in zip(model.prompt_layers, out.attentions, strict=True):
        assert torch.equal(attention, motion_region(video[:, 3, :: strides[key]]).float()), key
    F.cross_entropy(out.logits, torch.tensor([0, 3])).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match=f"{name}: this clip has no masks; {ORACLE_VARIANT}"):
        model(video[:, :3])
    with pytest.raises(ValueError, match=r"expects video of shape \(B, 3, 9"):
        create_model(name, 5, crop_size=SIZE)(video)  # a baseline takes no mask channel


def test_uint8_clips_give_the_masks_as_the_loader_scales_them():
    model = oracle("i3d_tiny").eval()
    video = (clip_with_masks() * 255).round().to(torch.uint8)
    video[:, 3] = torch.where(video[:, 3] >= 128, 128, 127)  # either side of 0.5 after / 255
    with torch.no_grad():
        (attention,) = model(video).attentions
    assert torch.equal(attention, motion_region(video[:, 3] >= 128).float())


def test_the_oracle_form_is_fixed():
    for options in (
        {"prompt_gate": True},
        {"prompt_init": "identity"},
        {"prompt_kwargs": {"alpha": 2.0}},
    ):
        with pytest.raises(ValueError, match="prompt='oracle' has one fixed form"):
            create_model("x3d_tiny", 5, prompt="oracle", crop_size=SIZE, **options)
    with pytest.raises(ValueError, match="prompt_input='raw'"):
        make_prompt_layer("oracle", "normalized", (0.45,) * 3, (0.225,) * 3)


@pytest.mark.parametrize("name", TINY)
def test_a_replicate_s_oracle_run_draws_what_its_baseline_draws(name):
    base = replicate_model(name, 5, "baseline", 7, crop_size=SIZE).eval()
    model = replicate_model(name, 5, ORACLE_VARIANT, 7, crop_size=SIZE).eval()
    base_state, state = base.state_dict(), model.state_dict()
    assert list(state) == list(base_state)
    assert all(torch.equal(state[k], base_state[k]) for k in state)
    # an object everywhere makes the oracle pass frame t+1, as the baseline does
    video = clip_with_masks()
    video[:, 3] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(model(video).logits, base(video[:, :3]).logits)


# --- the masks travel with the clips --------------------------------------------------------


@pytest.mark.parametrize("train", [True, False])
def test_the_mask_channel_is_cut_as_the_frames_and_as_the_scored_masks(tmp_path, train):
    path = square_video(tmp_path)
    spec = ClipSpec(
        num_frames=4,
        sampling_rate=2,
        crop_size=24,
        train_scale=(28, 34),
        test_scale=30,
        hflip=True,
        num_temporal_clips=2,
        num_spatial_crops=3,
    )
    datasets = {
        kind: ClipDataset(table(path), spec, train=train, **options)
        for kind, options in {
            "channel": {"mask_channel": True},
            "scored": {"masks": True},
            "both": {"masks": True, "mask_channel": True},  # an oracle run's attention scores
            "plain": {},
        }.items()
    }
    flipped = 0
    for i in range(6 if train else len(datasets["plain"])):
        items = {}
        for kind, data in datasets.items():
            torch.manual_seed(i)  # the same draws: window, scale, crop and flip
            items[kind] = data[0 if train else i]
        video = items["channel"]["video"]
        assert video.dtype == torch.uint8 and video.shape == (4, 5, 24, 24)
        # the frames are the baseline's, the mask is the one the attention is scored against
        assert torch.equal(video[:3], items["plain"]["video"])
        assert torch.equal(video[3].float() / 255, items["scored"]["object_mask"])
        assert torch.equal(items["both"]["video"], video)
        assert torch.equal(items["both"]["distractor_mask"], items["scored"]["distractor_mask"])
        # and it lies on the white square, frame by frame, to a pixel
        white = (video[:3].float() / 255).min(0).values > 0.8
        mask = video[3].float() / 255
        seen = mask.sum((1, 2)) > 20
        torch.testing.assert_close(
            centre_x(mask)[seen], centre_x(white.float())[seen], atol=0.6, rtol=0
        )
        flipped += int(torch.diff(centre_x(mask)[seen]).lt(0).all())
    assert not train or 0 < flipped < 6  # flips drawn both ways moved the mask with the frames


def test_the_decoded_frame_cache_gives_the_same_masks(tiny_scene, tmp_path):
    root = Path(shutil.copytree(tiny_scene, tmp_path / "scene"))
    write_decoded(root)
    test = load_splits("synthmotion", root, "1")["test"]
    spec = ClipSpec(num_frames=4, sampling_rate=2, crop_size=SIZE, train_scale=(32, 36))
    decoded = load_decoded(root)
    assert decoded
    for train in (True, False):
        cached = ClipDataset(
            test, spec, train=train, cache_frames=True, decoded=decoded, mask_channel=True
        )
        assert cached._cache  # the memory-mapped frames serve every video
        read = ClipDataset(test, spec, train=train, mask_channel=True)
        for i in range(4):
            torch.manual_seed(i)
            a = cached[i]["video"]
            torch.manual_seed(i)
            b = read[i]["video"]
            assert torch.equal(a, b) and a[3].max() == 255  # the object is in the clip


def test_oracle_batches_score_as_the_ground_truth(tmp_path):
    """The loader's batch to the model: the oracle's maps are the scored region exactly, and a
    batch without masks is refused."""
    path = square_video(tmp_path)
    spec = ClipSpec(num_frames=8, sampling_rate=1, crop_size=SIZE, test_scale=SIZE, hflip=False)
    model = oracle("slowfast_tiny", num_frames=8).eval()
    strides = [p.stride for p in model.pathways if p.name in model.prompt_layers]
    channel = ClipDataset(table(path, path), spec, train=False, mask_channel=True)
    scored = ClipDataset(table(path, path), spec, train=False, masks=True)
    batch = next(iter(make_loader(channel, batch_size=2, shuffle=False, num_workers=0, seed=0)))
    truth = next(iter(make_loader(scored, batch_size=2, shuffle=False, num_workers=0, seed=0)))
    with torch.no_grad():
        out = model(batch["video"])
    for attention, step in zip(out.attentions, strides, strict=True):  # slow, fast
        obj, distractor = truth["object_mask"][:, ::step], truth["distractor_mask"][:, ::step]
        scores = attention_scores(attention, obj, distractor)
        assert scores["object_share"].tolist() == [1.0, 1.0]
        assert scores["precision"].tolist() == scores["recall"].tolist() == [1.0, 1.0]
    plain = ClipDataset(table(path), spec, train=False)
    with pytest.raises(ValueError, match="this clip has no masks"):
        model(plain[0]["video"][None])


@pytest.mark.slow
def test_an_oracle_run_trains_on_masks_without_the_regulariser(tiny_scene, tmp_path):
    settings = tiny_run_settings(tiny_scene, variant=ORACLE_VARIANT, out_dir=str(tmp_path / "run"))
    metrics = train_run(**settings)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 2 and history["train_loss"].equals(history["train_ce"])  # lambda 0
    assert metrics["settings"]["variant"] == ORACLE_VARIANT
    assert 0 <= metrics["top1"] <= 100
