"""Motion representations of Fig. 1 on tiny clips with closed-form answers."""

import numpy as np
import pytest
import torch

from vmp.layer.motion import (
    frame_differences,
    grayscale,
    signed_to_unit,
    taylor_video,
    time_colour_reordering,
)


def moving_dot(num_frames: int, width: int = 8) -> np.ndarray:
    """(T+1, 1, width, 3): a white pixel moving one column right per frame on black."""
    video = np.zeros((num_frames, 1, width, 3))
    for t in range(num_frames):
        video[t, 0, t] = 1.0
    return video


def one_hot(width: int, *cols_values: tuple[int, float]) -> np.ndarray:
    row = np.zeros(width)
    for col, value in cols_values:
        row[col] += value
    return row


def test_grayscale_uses_bt601_weights_in_both_layouts():
    video = np.zeros((2, 1, 3, 3))
    video[:, 0, 0] = (1, 0, 0)
    video[:, 0, 1] = (0, 1, 0)
    video[:, 0, 2] = (0, 0, 1)
    expected = np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(grayscale(video)[0, 0], expected)
    channels_first = torch.from_numpy(video).permute(3, 0, 1, 2).float()
    np.testing.assert_allclose(grayscale(channels_first)[1, 0], expected, rtol=1e-6)


def test_frame_differences_of_still_clip_are_zero():
    still = np.repeat(np.random.default_rng(0).random((1, 4, 5, 3)), 4, axis=0)
    diff = frame_differences(still)
    assert diff.shape == (3, 4, 5)
    assert np.all(diff == 0)


def test_frame_differences_of_moving_dot():
    diff = frame_differences(moving_dot(3, width=4))
    assert diff.shape == (2, 1, 4)
    np.testing.assert_allclose(diff[0, 0], [-1, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(diff[1, 0], [0, -1, 1, 0], atol=1e-12)


def test_gray_reordering_puts_consecutive_frames_in_r_g_b():
    video = np.zeros((4, 1, 1, 3))
    for t, level in enumerate([0.1, 0.2, 0.3, 0.4]):
        video[t] = level  # gray frames: luma equals the level
    out = time_colour_reordering(video, mode="gray")
    assert out.shape == (2, 1, 1, 3)
    np.testing.assert_allclose(out[0, 0, 0], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(out[1, 0, 0], [0.2, 0.3, 0.4])


def test_tc_reordering_cycles_the_colour_channel():
    # frame t has value 10 t + c in channel c, so each output value names its source.
    video = np.zeros((5, 1, 1, 3))
    for t in range(5):
        video[t, 0, 0] = [10 * t + c for c in range(3)]
    out = time_colour_reordering(video / 100, mode="tc") * 100
    np.testing.assert_allclose(out[:, 0, 0], [[0, 10, 20], [11, 21, 31], [22, 32, 42]])


def test_reordering_of_still_gray_clip_is_gray():
    video = np.full((3, 2, 2, 3), 0.25)
    out = time_colour_reordering(torch.from_numpy(video).permute(3, 0, 1, 2))
    np.testing.assert_allclose(out, 0.25)


def test_taylor_video_of_still_clip_is_zero():
    still = np.repeat(np.random.default_rng(1).random((1, 3, 3, 3)), 7, axis=0)
    out = taylor_video(still, order=2)
    assert out.shape == (7 - 6 + 1, 3, 3, 3)
    np.testing.assert_allclose(out, 0, atol=1e-12)


def test_taylor_video_order0_is_block_length_times_differences():
    # order 0: M_c = L * Δ^c G_s with L = 4 frames per block.
    out = taylor_video(moving_dot(4, width=4), order=0)
    assert out.shape == (1, 1, 4, 3)
    e = np.eye(4)
    np.testing.assert_allclose(out[0, 0, :, 0], 4 * (e[1] - e[0]), atol=1e-12)
    np.testing.assert_allclose(out[0, 0, :, 1], 4 * (e[2] - 2 * e[1] + e[0]), atol=1e-12)
    np.testing.assert_allclose(out[0, 0, :, 2], 4 * (e[3] - 3 * e[2] + 3 * e[1] - e[0]), atol=1e-12)


def test_taylor_video_order1_adds_the_offset_term():
    # L = 5. S_1 = sum_i (G_i - G_0): -4 at column 0 (dot leaves), +1 at columns 1..4.
    out = taylor_video(moving_dot(5, width=5), order=1)
    e = np.eye(5)
    s1 = np.array([-4.0, 1, 1, 1, 1])
    d1, d2 = e[1] - e[0], e[2] - 2 * e[1] + e[0]
    np.testing.assert_allclose(out[0, 0, :, 0], 5 * d1 + s1 * d2, atol=1e-12)


def test_taylor_video_slides_with_step_one():
    out = taylor_video(moving_dot(8), order=1)
    assert out.shape == (8 - 5 + 1, 1, 8, 3)
    # the dot pattern moves one column per block
    np.testing.assert_allclose(out[1, 0, 1:], out[0, 0, :-1], atol=1e-12)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"order=3 needs blocks of 7 frames"):
        taylor_video(moving_dot(6), order=3)
    with pytest.raises(ValueError, match="mode='rgb'"):
        time_colour_reordering(moving_dot(4), mode="rgb")
    with pytest.raises(ValueError, match=r"expected \(3, T\+1, H, W\)"):
        frame_differences(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="dtype uint8"):
        frame_differences(np.zeros((3, 2, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 3 frames"):
        time_colour_reordering(moving_dot(2))


def test_signed_to_unit():
    np.testing.assert_allclose(signed_to_unit(np.array([-2.0, 0.0, 1.0])), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(signed_to_unit(np.zeros(3)), 0.5)


def test_layout_when_both_end_axes_are_three():
    # 3 frames of 2 x 3 pixels: arrays are channels-last, tensors channels-first.
    frames = np.random.default_rng(2).random((3, 2, 3, 3))
    from_array = frame_differences(frames)
    from_tensor = frame_differences(torch.from_numpy(np.moveaxis(frames, -1, 0)).clone())
    np.testing.assert_allclose(from_array, from_tensor)
    assert from_array.shape == (2, 2, 3)
