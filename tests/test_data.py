"""Clip sampling, decoding, augmentation and loaders (vmp.data.clips) on tiny generated videos."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import centre_x, square_video, write_frames

from vmp.data.clips import (
    ClipDataset,
    ClipSpec,
    decode_video,
    frame_indices,
    load_decoded,
    make_loader,
    write_decoded,
)


def write_video(path: Path, n: int, fps: float = 30, size=(32, 32), pattern=None) -> Path:
    """mpeg4 video whose frame k encodes k: red = 16 * (k % 16) + 8, green = 16 * (k // 16) + 8."""

    def frame(k: int) -> np.ndarray:
        img = np.zeros((*size, 3), np.uint8)
        img[..., 0] = 16 * (k % 16) + 8
        img[..., 1] = 16 * (k // 16) + 8
        return img if pattern is None else pattern(img)

    return write_frames(path, (frame(k) for k in range(n)), fps, size)


def frame_ids(video: torch.Tensor) -> list[int]:
    """Decode the frame numbers written by write_video from a (3, T, H, W) uint8 clip."""
    rgb = video.double().mean(dim=(2, 3))  # (3, T)
    return [int(round((r - 8) / 16) + 16 * round((g - 8) / 16)) for r, g in rgb[:2].T.tolist()]


def spec(**kw) -> ClipSpec:
    base = dict(num_frames=4, sampling_rate=2, crop_size=32, train_scale=(32, 40), test_scale=32)
    return ClipSpec(**(base | kw))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    bad = d / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 50)
    return {
        "v24": write_video(d / "v24.mp4", 24),
        "v5": write_video(d / "v5.mp4", 5),
        "long": write_video(d / "long.mp4", 100, fps=25),
        "wide": write_video(d / "wide.mp4", 12, size=(32, 48)),
        "bad": bad,
    }


def table(*paths: Path, **cols) -> pd.DataFrame:
    return pd.DataFrame({"path": [str(p) for p in paths], "label": list(range(len(paths))), **cols})


def test_frame_indices_closed_form():
    assert frame_indices(24, 30.0, spec(), 0) == ([0, 2, 4, 6, 8], 16)
    assert frame_indices(24, 30.0, spec(), 15) == ([15, 17, 19, 21, 23], 16)
    # Short video: the last frame repeats, one possible start.
    assert frame_indices(5, 30.0, spec(), 0) == ([0, 2, 4, 4, 4], 1)
    # 30 fps video sampled at 15 fps: stride 2 at 15 fps is 4 source frames.
    assert frame_indices(24, 30.0, spec(target_fps=15), 1) == ([2, 6, 10, 14, 18], 4)
    # 30 fps video sampled at 60 fps: source frames repeat.
    assert frame_indices(24, 30.0, spec(target_fps=60, sampling_rate=1), 0) == ([0, 0, 1, 1, 2], 44)


def test_test_views_sample_evenly_spaced_windows(videos):
    ds = ClipDataset(table(videos["v24"], videos["v5"]), spec(num_temporal_clips=3), train=False)
    assert len(ds) == 6
    items = [ds[i] for i in range(len(ds))]
    assert [it["video_index"] for it in items] == [0, 0, 0, 1, 1, 1]
    assert [it["label"] for it in items] == [0, 0, 0, 1, 1, 1]
    # 24 frames, window 9: starts 0, round(7.5) = 8, 15.
    assert frame_ids(items[0]["video"]) == [0, 2, 4, 6, 8]
    assert frame_ids(items[1]["video"]) == [8, 10, 12, 14, 16]
    assert frame_ids(items[2]["video"]) == [15, 17, 19, 21, 23]
    # 5 frames: every view repeats the last frame.
    assert all(frame_ids(it["video"]) == [0, 2, 4, 4, 4] for it in items[3:])
    v = items[0]["video"]
    assert v.shape == (3, 5, 32, 32) and v.dtype == torch.uint8 and v.is_contiguous()
    # Deterministic: the same item twice is the same tensor.
    assert torch.equal(ds[1]["video"], items[1]["video"])


def test_target_fps_resampling(videos):
    ds = ClipDataset(table(videos["v24"]), spec(target_fps=15), train=False)
    # 12 frames at 15 fps, window 9: 4 starts, centre round(1.5) = 2 -> source 4, 8, ..., 20.
    assert frame_ids(ds[0]["video"]) == [4, 8, 12, 16, 20]


def test_manifest_frame_count_is_trusted(videos):
    # prepare's manifest gives num_frames; 10 frames leave 2 window starts, centre round(0.5) = 0.
    ds = ClipDataset(table(videos["v24"], num_frames=[10]), spec(), train=False)
    assert frame_ids(ds[0]["video"]) == [0, 2, 4, 6, 8]
    header = ClipDataset(table(videos["v24"]), spec(), train=False)  # 24 frames: centre start 8
    assert frame_ids(header[0]["video"]) == [8, 10, 12, 14, 16]


def test_start_end_seconds_select_a_segment(videos):
    t = table(videos["long"], start_sec=[2.0], end_sec=[3.0])
    ds = ClipDataset(t, spec(num_temporal_clips=2), train=False)
    # Frames 50..74 at 25 fps (a seek past the first second), starts 0 and 16 in the segment.
    assert frame_ids(ds[0]["video"]) == [50, 52, 54, 56, 58]
    assert frame_ids(ds[1]["video"]) == [66, 68, 70, 72, 74]


def test_three_spatial_crops_run_left_centre_right(videos):
    def ramp(img):  # blue grows with the column: 0 .. 235
        img[..., 2] = np.linspace(0, 235, img.shape[1]).astype(np.uint8)[None, :]
        return img

    path = write_video(videos["v24"].parent / "ramp.mp4", 12, size=(32, 48), pattern=ramp)
    ds = ClipDataset(table(path), spec(num_temporal_clips=2, num_spatial_crops=3), train=False)
    assert len(ds) == 6
    blue = [ds[i]["video"][2].double().mean().item() / 255 for i in range(6)]
    # Views are clip-major: (clip 0: left, centre, right), (clip 1: left, centre, right).
    assert blue[0] < blue[1] < blue[2]
    assert blue[3] < blue[4] < blue[5]
    assert blue[1] == pytest.approx(0.5 * 235 / 255, abs=0.03)


def test_train_clips_are_random_but_seeded(videos):
    ds = ClipDataset(table(videos["v24"]), spec(), train=True)
    assert len(ds) == 1
    torch.manual_seed(3)
    a = [ds[0]["video"] for _ in range(4)]
    torch.manual_seed(3)
    b = [ds[0]["video"] for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(a[0], x) for x in a[1:])
    for x in a:
        ids = frame_ids(x)
        assert x.shape == (3, 5, 32, 32) and x.dtype == torch.uint8
        assert np.diff(ids).tolist() == [2, 2, 2, 2] and 0 <= ids[0] <= 15


@pytest.mark.parametrize("hflip", [False, True])
def test_hflip_follows_the_spec(videos, hflip):
    def halves(img):  # dark left half, bright right half
        img[:, img.shape[1] // 2 :] = 255
        return img

    path = write_video(videos["v24"].parent / "halves.mp4", 12, pattern=halves)
    ds = ClipDataset(table(path), spec(train_scale=(32, 32), hflip=hflip), train=True)
    torch.manual_seed(0)
    flipped = [ds[0]["video"][:, :, :, :8].double().mean().item() > 127.5 for _ in range(16)]
    assert any(flipped) == hflip and not all(flipped)


def test_failing_video_is_replaced_and_counted(videos, caplog):
    ds = ClipDataset(table(videos["bad"], videos["v24"]), spec(), train=True)
    with caplog.at_level(logging.WARNING):
        item = ds[0]
    assert item["video_index"] == 1 and item["label"] == 1
    assert list(ds.failures) == [str(videos["bad"])]
    assert "corrupt.mp4" in caplog.text
    ds[0]  # a known failure is skipped without a second warning
    assert len(caplog.records) == 1

    only_bad = ClipDataset(table(videos["bad"]), spec(), train=True)
    with pytest.raises(RuntimeError, match="every video in the table failed"):
        only_bad[0]


def test_loader_is_reproducible(videos):
    t = table(videos["v24"], videos["v5"], videos["long"], videos["wide"])

    def batches(seed, workers):
        ds = ClipDataset(t, spec(), train=True)
        loader = make_loader(ds, batch_size=2, shuffle=True, num_workers=workers, seed=seed)
        torch.manual_seed(seed)
        return [(b["video"], b["video_index"]) for b in loader]

    first, again, other = batches(0, 0), batches(0, 0), batches(1, 0)
    assert first[0][0].shape == (2, 3, 5, 32, 32)
    assert all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
        for x, y in zip(first, again, strict=True)
    )
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(first, other, strict=True))
    w1, w1_again = batches(0, 1), batches(0, 1)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(w1, w1_again, strict=True))


def test_bad_arguments_raise_clear_errors(videos):
    with pytest.raises(ValueError, match="crop_size <= train_scale"):
        ClipSpec(crop_size=64, train_scale=(48, 60))
    with pytest.raises(ValueError, match="test_scale"):
        ClipSpec(crop_size=48, test_scale=40)
    with pytest.raises(ValueError, match="num_spatial_crops"):
        ClipSpec(num_spatial_crops=2)
    with pytest.raises(ValueError, match=r"lacks columns \['label'\]"):
        ClipDataset(pd.DataFrame({"path": [str(videos["v24"])]}), spec(), train=True)
    ds = ClipDataset(table(videos["v24"]), spec(), train=False)
    with pytest.raises(IndexError):
        ds[1]


def test_cached_frames_give_the_same_clips(videos):
    """Decoding every frame once and sampling from memory equals decoding each clip."""
    t = table(videos["v24"], videos["v5"], videos["long"])
    for train in (False, True):
        plain = ClipDataset(t, spec(), train=train)
        cached = ClipDataset(t, spec(), train=train, cache_frames=True)
        for i in range(len(plain)):
            torch.manual_seed(i)
            a = plain[i]
            torch.manual_seed(i)
            b = cached[i]
            assert torch.equal(a["video"], b["video"]) and a["label"] == b["label"]
    assert len(cached._cache) == len(t)


def test_with_spec_shares_decoded_frames(tmp_path):
    """A second view of the same videos (validation on the test videos) decodes nothing again."""
    path = write_video(tmp_path / "once.mp4", 24)
    test = ClipDataset(table(path), spec(num_spatial_crops=3), train=False, cache_frames=True)
    first = test[0]["video"]
    path.unlink()  # from now on only the cached frames can serve this video
    val = test.with_spec(spec(), train=False)
    assert len(val) == 1 and len(test) == 3
    assert val[0]["video"].shape == first.shape
    assert torch.equal(val[0]["video"], test[1]["video"])  # single view = centre crop
    assert val.failures == {} and test.spec.num_spatial_crops == 3


def test_decoded_array_file_serves_the_same_clips_without_the_videos(tmp_path):
    """write_decoded decodes a manifest's videos once; runs memory-map them instead of decoding."""
    paths = [write_video(tmp_path / f"v{k}.mp4", 12) for k in range(3)]
    pd.DataFrame({"path": [p.name for p in paths], "label": [0, 1, 2]}).to_csv(
        tmp_path / "manifest.csv", index=False
    )
    assert write_decoded(tmp_path).name == "decoded.npy"
    decoded = load_decoded(tmp_path)
    assert set(decoded) == {str(p.resolve()) for p in paths}
    frames, fps = decoded[str(paths[1].resolve())]
    assert frames.shape == (12, 32, 32, 3) and fps == 30 and isinstance(frames.base, np.memmap)
    t = table(*(p.resolve() for p in paths))
    expected = [ClipDataset(t, spec(), train=False)[i]["video"] for i in range(3)]
    for p in paths:
        p.unlink()  # only the array file can serve them now
    served = ClipDataset(t, spec(), train=False, decoded=decoded)
    for i in range(3):
        assert torch.equal(served[i]["video"], expected[i])
    assert served.failures == {}


def test_decoded_array_file_rejects_unequal_videos(tmp_path):
    write_video(tmp_path / "a.mp4", 12)
    write_video(tmp_path / "b.mp4", 12, size=(32, 48))
    pd.DataFrame({"path": ["a.mp4", "b.mp4"], "label": [0, 1]}).to_csv(
        tmp_path / "manifest.csv", index=False
    )
    with pytest.raises(ValueError, match="videos differ in shape or frame rate"):
        write_decoded(tmp_path)
    assert load_decoded(tmp_path) == {}


def test_an_empty_file_says_so_and_failures_reach_the_log_file(videos, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    ds = ClipDataset(table(empty, videos["v24"]), spec(), train=True)
    ds.failure_log = tmp_path / "checkpoints" / "failures.jsonl"
    assert ds[0]["video_index"] == 1
    assert ds.failures == {str(empty): f"ValueError: {empty}: empty file (0 bytes)"}
    other = ClipDataset(table(empty, videos["v24"]), spec(), train=True)  # another process
    other.failure_log = ds.failure_log
    assert other.all_failures() == ds.failures
    with pytest.raises(ValueError, match=r"empty file \(0 bytes\)"):
        decode_video(empty)


@pytest.mark.parametrize("train", [True, False])
def test_masks_follow_the_frames_through_sampling_resize_and_crop(tmp_path, train):
    path = square_video(tmp_path)
    clip_spec = spec(crop_size=24, train_scale=(28, 34), test_scale=30, num_spatial_crops=3)
    data = ClipDataset(table(path), clip_spec, train=train, masks=True)
    torch.manual_seed(0)
    checked = 0
    for i in range(len(data)):
        item = data[i]
        video, obj, distractor = item["video"] / 255, item["object_mask"], item["distractor_mask"]
        assert item["video"].dtype == torch.uint8 and obj.dtype == torch.float32
        assert obj.shape == distractor.shape == video.shape[1:]
        white = (video.min(0).values > 0.8).float()  # the square's pixels, from the frames
        assert white.sum() > 0
        # where the frames show the square the mask says so, frame by frame, to a pixel
        seen = obj.sum((1, 2)) > 20  # frames where more than a sliver is inside the crop
        torch.testing.assert_close(centre_x(obj)[seen], centre_x(white)[seen], atol=0.6, rtol=0)
        step = torch.diff(centre_x(obj)[seen])
        assert (step > 0).all() or (step < 0).all()  # one way (left if flipped), every frame
        red = ((video[0] > 0.5) & (video[1] < 0.25)).float()
        if distractor[0].sum() > 20:  # unless the crop cut it away
            torch.testing.assert_close(centre_x(distractor), centre_x(red), atol=1.0, rtol=0)
        checked += int(seen.sum())
    assert checked >= 4


def test_masks_need_their_file(tmp_path):
    path = write_video(tmp_path / "plain.mp4", 12)
    data = ClipDataset(table(path), spec(), train=False, masks=True)
    with pytest.raises(RuntimeError, match="every video in the table failed"):
        data[0]
    assert "no ground-truth masks" in data.failures[str(path)]


# --- uint8 clips, one decoding pass per test video, resized sources ---------------------------


def _view_decoded_alone(ds: ClipDataset, i: int) -> torch.Tensor:
    """View i as the loader made it before one pass served all views: the window decoded on its
    own (one-window _decode), the stack resized, the crop cut (the float division aside)."""
    from vmp.data import clips as data

    views = ds.spec.views
    j, view = divmod(i, views)
    with data.av.open(ds._paths[j]) as container:
        stream = container.streams.video[0]
        fps = data._fps(stream)
        first, count = data._segment(
            stream, container, fps, ds._start[j], ds._end[j], ds._frames[j]
        )
        window = [first + k for k in ds._window(count, fps, view)]
        (frames,) = data._decode(container, stream, fps, [window])
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    video = data._resize_short(video, ds.spec.test_scale)
    crop = data._fixed_crop(video, ds.spec.crop_size, view % ds.spec.num_spatial_crops, ds.spec)
    return crop.permute(1, 0, 2, 3)


@pytest.mark.parametrize("threads", [1, 0])
def test_one_decoding_pass_serves_every_view_of_a_video(videos, tmp_path, monkeypatch, threads):
    from vmp.data import clips as data

    wide = write_video(tmp_path / "wide.mp4", 40, size=(36, 52), pattern=lambda img: img)
    t = pd.concat(
        [
            table(videos["long"], videos["v5"], wide),
            table(videos["long"], start_sec=[2.0], end_sec=[3.6]),
        ],
        ignore_index=True,
    )
    clip_spec = spec(crop_size=24, test_scale=30, num_temporal_clips=4, num_spatial_crops=3)
    ds = ClipDataset(t, clip_spec, train=False, decode_threads=threads)
    opened, original = [], data.open_video
    monkeypatch.setattr(data, "open_video", lambda p, th: opened.append(p) or original(p, th))
    items = [ds[i] for i in range(len(ds))]
    assert opened == ds._paths  # each video decoded once, for its 12 views
    for i, item in enumerate(items):
        assert item["video"].dtype == torch.uint8 and item["video"].is_contiguous()
        assert torch.equal(item["video"], _view_decoded_alone(ds, i)), f"view {i}"
    again = ClipDataset(t, clip_spec, train=False, cache_frames=True)
    assert all(torch.equal(again[i]["video"], items[i]["video"]) for i in reversed(range(len(ds))))


def test_uint8_clips_reach_the_model_as_the_floats_the_loader_used_to_make(videos):
    from vmp.models import create_model

    torch.manual_seed(0)
    model = create_model("x3d_tiny", 3, num_frames=4, crop_size=32).eval()
    batch = torch.stack([ClipDataset(table(videos["v24"]), spec(), train=False)[0]["video"]] * 2)
    with torch.no_grad():
        got = model(batch)
        expected = model(batch.float().div_(255.0))  # what the loader handed out before
    assert torch.equal(got.logits, expected.logits)


def test_make_loader_pins_memory_where_cuda_is(videos):
    loader = make_loader(ClipDataset(table(videos["v24"]), spec(), train=True), batch_size=1,
                         shuffle=False, num_workers=0, seed=0)  # fmt: skip
    assert loader.pin_memory == torch.cuda.is_available()
    assert next(iter(loader))["video"].dtype == torch.uint8


def test_resize_keeps_frames_and_timing_and_copies_small_videos(tmp_path):
    from vmp.data.resize import main, resize_video

    big = write_video(tmp_path / "src" / "sub" / "big.mp4", 30, fps=25, size=(48, 64))
    small = write_video(tmp_path / "src" / "small.mp4", 10, size=(32, 32))
    (tmp_path / "src" / "manifest.csv").write_text("path,label\nsub/big.mp4,0\nsmall.mp4,1\n")
    main([str(tmp_path / "src"), str(tmp_path / "dst"), "--short-side", "32"])
    out = tmp_path / "dst" / "sub" / "big.mp4"
    frames, fps = decode_video(out)
    assert frames.shape == (30, 32, 42, 3) and fps == 25
    assert (tmp_path / "dst" / "small.mp4").read_bytes() == small.read_bytes()
    assert (tmp_path / "dst" / "manifest.csv").read_text().startswith("path,label")
    # The same frames at the same indices and times: a segment picks the same frames.
    t = table(big, start_sec=[0.4], end_sec=[1.2])
    a = ClipDataset(t, spec(), train=False)[0]["video"]
    b = ClipDataset(t.assign(path=[str(out)]), spec(), train=False)[0]["video"]
    assert frame_ids(a) == frame_ids(b) == [16, 18, 20, 22, 24]
    assert not resize_video(small, tmp_path / "copy.mp4", 32)


def test_one_reformatter_gives_the_bytes_of_to_ndarray(videos, tmp_path):
    import av

    from vmp.data.clips import to_rgb

    odd = write_video(tmp_path / "odd.mp4", 3, size=(36, 52), pattern=lambda img: img)
    for path in (videos["v24"], odd, videos["wide"], videos["v24"]):  # sizes change between
        with av.open(str(path)) as c:
            for frame in c.decode(c.streams.video[0]):
                assert np.array_equal(to_rgb(frame), frame.to_ndarray(format="rgb24"))
