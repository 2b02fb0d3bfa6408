"""Tests for the SynthMotion generator (tiny clips so the file runs in seconds)."""

import dataclasses
import json

import av
import numpy as np
import pandas as pd
import pytest

from vmp.data.synth import (
    MOTION_PATTERNS,
    SCENES,
    SceneConfig,
    _clip_seed,
    appearance_motion_ratio,
    generate,
    render_clip,
)

TINY = {"num_frames": 8, "size": 32}


def tiny(scene: str, **kw) -> SceneConfig:
    return dataclasses.replace(SCENES[scene], **{**TINY, **kw})


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_presets_and_patterns():
    assert set(SCENES) == {"synth_cooking", "synth_gym", "synth_hmdb", "synth_kinetics"}
    assert SCENES["synth_cooking"].camera == "static"
    assert SCENES["synth_gym"].camera == "moving"
    assert SCENES["synth_hmdb"].camera == "moving" and SCENES["synth_hmdb"].splits == 3
    assert SCENES["synth_kinetics"].camera == "mixed"
    assert len(set(MOTION_PATTERNS)) == len(MOTION_PATTERNS) == 30
    target = set(SCENES["synth_cooking"].class_names)
    assert target == set(SCENES["synth_hmdb"].class_names) == set(MOTION_PATTERNS[:10])
    # The pretraining source has its own, disjoint classes.
    assert not target & set(SCENES["synth_kinetics"].class_names)
    assert SceneConfig("x", classes=3, videos_per_class=4).class_names == MOTION_PATTERNS[:3]


@pytest.mark.parametrize("pattern", MOTION_PATTERNS)
def test_render_clip_shape_dtype_every_pattern(pattern):
    clip = render_clip(pattern, np.random.default_rng(1), tiny("synth_kinetics", distractors=2))
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    assert clip.std() > 5  # not blank


def test_render_clip_deterministic_per_generator_state():
    cfg = tiny("synth_hmdb")
    a = render_clip("rotate_cw", np.random.default_rng(7), cfg)
    b = render_clip("rotate_cw", np.random.default_rng(7), cfg)
    c = render_clip("rotate_cw", np.random.default_rng(8), cfg)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5


def test_render_clip_rejects_unknown_pattern():
    with pytest.raises(ValueError, match="pattern='wave'.*MOTION_PATTERNS"):
        render_clip("wave", np.random.default_rng(0), tiny("synth_cooking"))


def _diff_centroid_x(clip: np.ndarray) -> np.ndarray:
    """Per frame pair, the x centroid of |frame difference| (grayscale)."""
    gray = clip.astype(np.float32).mean(-1)
    diff = np.abs(np.diff(gray, axis=0))
    xs = np.arange(clip.shape[2]) + 0.5
    return (diff.sum(1) * xs).sum(-1) / diff.sum((1, 2))


def test_motion_statistic_separates_left_from_right():
    # Static camera, no distractors: the moving object is the only source of frame differences.
    cfg = tiny("synth_cooking", num_frames=12, size=48, distractors=0, noise_std=0.0, flicker=0.0)
    slopes = {}
    for pattern in ("translate_left", "translate_right"):
        slopes[pattern] = [
            np.polyfit(np.arange(11), _diff_centroid_x(render_clip(pattern, rng, cfg)), 1)[0]
            for rng in map(np.random.default_rng, range(6))
        ]
    assert max(slopes["translate_left"]) < -0.5
    assert min(slopes["translate_right"]) > 0.5


def test_mean_colour_does_not_reveal_the_class():
    """Leave-one-out nearest-centroid on per-clip mean RGB must stay near chance (10 classes)."""
    cfg = tiny("synth_cooking", size=24, num_frames=6)
    per_class = 12
    feats, labels = [], []
    for label, pattern in enumerate(cfg.class_names):
        for i in range(per_class):
            clip = render_clip(pattern, np.random.default_rng(1000 * label + i), cfg)
            feats.append(clip.reshape(-1, 3).mean(0))
            labels.append(label)
    x, y = np.array(feats), np.array(labels)
    sums = np.stack([x[y == k].sum(0) for k in range(10)])
    correct = 0
    for i in range(len(x)):
        centroids = sums / per_class
        centroids[y[i]] = (sums[y[i]] - x[i]) / (per_class - 1)
        correct += np.argmin(((centroids - x[i]) ** 2).sum(1)) == y[i]
    accuracy = correct / len(x)
    assert accuracy < 0.25, f"mean colour predicts the class ({accuracy:.2f} vs chance 0.10)"
    # Per-class mean brightness agrees within a few grey levels.
    brightness = x.mean(1).reshape(10, per_class).mean(1)
    assert brightness.max() - brightness.min() < 25


def test_class_does_not_shift_brightness_paired():
    """Same seed across classes gives the same scene draws, so a class effect on brightness
    shows up clearly: per-class mean deviation from the per-seed mean must be tiny."""
    cfg = tiny("synth_hmdb", size=24, num_frames=6)
    x = np.array(
        [
            [render_clip(p, np.random.default_rng(s), cfg).mean() for s in range(12)]
            for p in cfg.class_names
        ]
    )
    deviation = (x - x.mean(0)).mean(1)  # grey levels, per class
    assert np.abs(deviation).max() < 2.0, deviation


@pytest.mark.parametrize(("camera", "moves"), [("static", False), ("moving", True)])
def test_background_moves_only_with_moving_camera(camera, moves):
    cfg = tiny("synth_gym", camera=camera, noise_std=0.0, flicker=0.0, pan=0.3)
    clip, mask = render_clip("translate_up", np.random.default_rng(3), cfg, return_mask=True)
    assert mask.shape == clip.shape[:3] and mask.max() == pytest.approx(1.0)
    background = mask.max(0) == 0  # never covered by any object
    assert background.mean() > 0.3
    change = np.abs(np.diff(clip.astype(int), axis=0)).max(-1)[:, background]
    if moves:
        assert change.mean() > 1.0
    else:
        assert change.max() == 0


def test_scene_config_validation_messages():
    with pytest.raises(ValueError, match="camera='tripod'.*static"):
        SceneConfig("x", classes=2, videos_per_class=2, camera="tripod")
    with pytest.raises(ValueError, match="size=33.*even"):
        SceneConfig("x", classes=2, videos_per_class=2, size=33)
    with pytest.raises(ValueError, match="classes=31"):
        SceneConfig("x", classes=31, videos_per_class=2)
    with pytest.raises(ValueError, match="videos_per_class=1.*no video is left for training"):
        SceneConfig("x", classes=2, videos_per_class=1)
    with pytest.raises(ValueError, match="videos_per_class=4.*val_fraction=0.75 no video"):
        SceneConfig("x", classes=2, videos_per_class=4, test_fraction=0.25, val_fraction=0.75)
    with pytest.raises(ValueError, match=r"object_size=\(0.3, 0.2\)"):
        SceneConfig("x", classes=2, videos_per_class=4, object_size=(0.3, 0.2))
    with pytest.raises(ValueError, match="motion_scale=0"):
        SceneConfig("x", classes=2, videos_per_class=4, motion_scale=0)


def _plain(**changes) -> SceneConfig:
    """A static, noise-free one-object scene (64 px) for closed-form checks."""
    return SceneConfig(
        "plain",
        classes=2,
        videos_per_class=4,
        size=64,
        num_frames=8,
        noise_std=0.0,
        flicker=0.0,
        distractors=0,
        **changes,
    )


def test_background_contrast_scales_the_background_around_its_mean():
    rng = np.random.default_rng(_clip_seed(0, _plain(), "translate_left", 0))
    frames, mask = render_clip(
        "translate_left", rng, _plain(background_contrast=0.0), return_mask=True
    )
    background = frames[0][mask[0] == 0].astype(float)
    assert background.std(axis=0).max() < 1.0  # one flat colour (within uint8 rounding)
    rng = np.random.default_rng(_clip_seed(0, _plain(), "translate_left", 0))
    frames, mask = render_clip("translate_left", rng, _plain(), return_mask=True)
    assert frames[0][mask[0] == 0].astype(float).std(axis=0).max() > 5.0


def test_motion_scale_multiplies_the_object_s_displacement():
    def travel(scale: float) -> float:
        cfg = _plain(object_size=(0.05, 0.06), motion_scale=scale)
        rng = np.random.default_rng(_clip_seed(0, cfg, "translate_right", 3))
        _, mask = render_clip("translate_right", rng, cfg, return_mask=True)
        columns = np.arange(cfg.size)
        centre = [(m.sum(0) * columns).sum() / m.sum() for m in (mask[0], mask[-1])]
        return centre[1] - centre[0]

    assert travel(1.0) > 10
    assert travel(1.5) == pytest.approx(1.5 * travel(1.0), rel=0.05)


def test_generate_rejects_unknown_override_and_scene(tmp_path):
    with pytest.raises(TypeError, match=r"\['colour'\].*videos_per_class"):
        generate(tmp_path, "synth_cooking", colour=3)
    with pytest.raises(ValueError, match="synth_ucf"):
        generate(tmp_path, "synth_ucf")
    assert not (tmp_path / "manifest.csv").exists()


def test_generate_hmdb_manifest_files_and_splits(tmp_path):
    m = generate(tmp_path, "synth_hmdb", seed=0, classes=3, videos_per_class=5, **TINY)
    assert list(m.columns) == ["path", "label", "class_name", "split", "subset"]
    assert m.equals(pd.read_csv(tmp_path / "manifest.csv"))
    names = sorted(MOTION_PATTERNS[:3])
    assert dict(zip(m.class_name, m.label, strict=True)) == {n: i for i, n in enumerate(names)}
    assert len(m) == 3 * 5 * 3 and sorted(m.split.unique()) == [1, 2, 3]
    for _, part in m.groupby("split"):
        assert part.path.is_unique and len(part) == 15
        # round(5 * 0.25) = 1 test and round(5 * 0.15) = 1 validation video per class per split.
        assert (part[part.subset == "test"].groupby("label").size() == 1).all()
        assert (part[part.subset == "val"].groupby("label").size() == 1).all()
        assert (part[part.subset == "train"].groupby("label").size() == 3).all()
    tests = [frozenset(p.path[p.subset == "test"]) for _, p in m.groupby("split")]
    assert len(set(tests)) > 1  # different partitions of the same videos
    first = m.path.iloc[0]
    assert first == "videos/translate_left/translate_left_00000.mp4"
    frames = decode(tmp_path / first)
    assert frames.shape == (8, 32, 32, 3)
    info = json.loads((tmp_path / "generation.json").read_text())
    assert info["videos"] == 15 and info["seed"] == 0 and info["scene"]["splits"] == 3
    assert info["clips_per_second"] > 0
    assert not list(tmp_path.rglob("*.part"))


def test_generate_is_deterministic_per_seed(tmp_path):
    kw = {"classes": 2, "videos_per_class": 2, "splits": 1, **TINY}
    a = generate(tmp_path / "a", "synth_gym", seed=5, **kw)
    b = generate(tmp_path / "b", "synth_gym", seed=5, **kw)
    generate(tmp_path / "c", "synth_gym", seed=6, **kw)
    assert a.equals(b)
    for rel in a.path:
        np.testing.assert_array_equal(decode(tmp_path / "a" / rel), decode(tmp_path / "b" / rel))
        assert (
            np.abs(decode(tmp_path / "a" / rel).astype(int) - decode(tmp_path / "c" / rel)).mean()
            > 5
        )
    # A video does not depend on how many videos were generated.
    generate(tmp_path / "d", "synth_gym", seed=5, **{**kw, "classes": 1})
    rel = a.path.iloc[0]
    np.testing.assert_array_equal(decode(tmp_path / "a" / rel), decode(tmp_path / "d" / rel))


def test_decoded_video_matches_rendered_frames(tmp_path):
    cfg = tiny("synth_cooking", classes=1, videos_per_class=2)
    generate(tmp_path, cfg, seed=2)
    frames = decode(tmp_path / "videos/translate_left/translate_left_00001.mp4").astype(int)
    same = render_clip(
        "translate_left", np.random.default_rng(_clip_seed(2, cfg, "translate_left", 1)), cfg
    )
    other = render_clip(
        "translate_left", np.random.default_rng(_clip_seed(2, cfg, "translate_left", 0)), cfg
    )
    # Lossy yuv420p at 32 px costs a few grey levels; another clip differs by far more.
    assert np.abs(frames - same).mean() < 10 < np.abs(frames - other).mean()


def test_appearance_motion_ratio_closed_form():
    # Static part: a checkerboard of 0.3 and 0.7 (variance 0.04); time-varying part: +-0.1
    # alternating every frame (temporal mean 0, energy 0.01). Ratio 4, whatever the scaling.
    checker = np.indices((4, 4)).sum(axis=0) % 2 * 0.4 + 0.3
    sign = np.array([1.0, -1.0, 1.0, -1.0])[:, None, None]
    clip = (checker[None] + 0.1 * sign)[None, ..., None].repeat(3, axis=-1)  # (1, 4, 4, 4, 3)
    assert appearance_motion_ratio(clip) == pytest.approx(4.0)
    assert appearance_motion_ratio((clip - 0.45) / 0.225) == pytest.approx(4.0)
    assert appearance_motion_ratio(np.repeat(clip[:, :1], 4, axis=1)) == float("inf")
    with pytest.raises(ValueError, match=r"expected \(N, T, H, W, C\)"):
        appearance_motion_ratio(clip[0])


def test_layers_are_the_ground_truth_and_leave_the_frames_unchanged(tmp_path):
    from vmp.data.masks import masks_path, read_masks, write_masks

    cfg = tiny("synth_hmdb", distractors=2)
    frames = render_clip("translate_left", np.random.default_rng(3), cfg)
    same, layers = render_clip("translate_left", np.random.default_rng(3), cfg, return_layers=True)
    assert np.array_equal(frames, same)  # no random number drawn for the ground truth
    _, coverage = render_clip("translate_left", np.random.default_rng(3), cfg, return_mask=True)
    t, h, w, _ = frames.shape
    assert layers.object.shape == layers.distractors.shape == (t, h, w)
    assert layers.camera.shape == (t, 2)
    visible = layers.object + layers.distractors
    assert visible.max() <= 1 + 1e-6 and not visible[coverage == 0].any()
    assert np.all(layers.object.sum(axis=(1, 2)) > 4)  # the class object is in every frame
    # it moves left: its centroid's x falls, camera motion taken out
    xs = (layers.object * np.arange(w)).sum(axis=(1, 2)) / layers.object.sum(axis=(1, 2))
    assert np.polyfit(np.arange(t), xs + layers.camera[:, 0], 1)[0] < 0
    path = masks_path(tmp_path / "a.mp4")
    write_masks(path, layers)
    back = read_masks(path)
    assert np.array_equal(back.object, layers.object >= 0.5)
    assert np.array_equal(back.distractors, layers.distractors >= 0.5)
    assert np.array_equal(back.camera, layers.camera)
    assert path.stat().st_size < frames.nbytes / 10


def test_generate_writes_the_masks_beside_each_video(tiny_scene):
    from vmp.data.masks import masks_path, read_masks

    manifest = pd.read_csv(tiny_scene / "manifest.csv")
    for rel in manifest["path"].unique()[:3]:
        layers = read_masks(masks_path(tiny_scene / rel))
        assert layers.object.shape[0] == 16 and layers.object.any(axis=(1, 2)).all()
