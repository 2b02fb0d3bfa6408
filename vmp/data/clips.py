"""Clip sampling, decoding and augmentation for training and testing.

A clip holds T + 1 frames (the prompt layer turns T + 1 frames into T prompts) taken at a
stride of ``sampling_rate`` frames at ``target_fps``:

    video frames (at target fps)  0 1 2 3 4 5 6 7 8 9 ...
    window, T=4, rate 2           [s   s+2 s+4 s+6 s+8]      (T * rate + 1 frames long)

Training draws the window start, short-side scale, crop position and flip at random from
torch's global RNG; testing takes N evenly spaced windows x K fixed crops per video. Frames are
decoded directly with PyAV (only the needed frames are converted to RGB; see
benchmarks/loader_vs_pyav.py for the measured cost against plain decoding and pytorchvideo, and
benchmarks/loader_gpu_feed.py for the rates at paper size).

A test video is decoded once for all its views: the union of the N windows' frames is decoded
in one pass, each frame resized once, and the N x K views are cut from those frames (kept for
the consecutive view indices of one video)::

    video  --decode union of N windows-->  frames at test scale  --window t, crop k-->  view t*K+k

Clips are handed out as uint8 (resize, crop and flip all run on uint8); the model turns them
into floats in [0, 1] on the device (:meth:`vmp.models.VideoClassifier.forward`) and normalises
after the prompt layer. Sources much larger than the clips (720p FineGym) are best re-encoded
once to a short side near the test scale: ``python -m vmp.data.resize SRC DST --short-side 256``
(``prepare_data`` does it for a dataset with ``short_side``).
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2 import functional as TF

from vmp.data.masks import masks_path, read_masks
from vmp.data.resize import check_not_empty
from vmp.data.sources import DECODED_FRAMES, DECODED_INDEX, video_fingerprint
from vmp.io import atomic_path, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSpec:
    """How clips are sampled and augmented.

    Attributes:
        num_frames: T, frames the backbone sees; every clip holds T + 1 (one extra for the
            prompt layer).
        sampling_rate: stride between sampled frames, in frames at ``target_fps``.
        target_fps: frame rate the stride is counted at (None: the video's own fps).
        crop_size: side of the square crop.
        train_scale: random short-side scale range (inclusive) in training.
        test_scale: short-side scale at test time.
        hflip: random horizontal flip in training (False for direction-sensitive classes).
        num_temporal_clips: N test-time windows per video.
        num_spatial_crops: K test-time crops per window (1: centre; 3: both ends and centre
            of the longer side).
    """

    num_frames: int = 8
    sampling_rate: int = 2
    target_fps: float | None = None
    crop_size: int = 48
    train_scale: tuple[int, int] = (48, 60)
    test_scale: int = 48
    hflip: bool = True
    num_temporal_clips: int = 1
    num_spatial_crops: int = 1

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.sampling_rate < 1:
            raise ValueError(
                f"ClipSpec: num_frames and sampling_rate must be >= 1, got "
                f"{self.num_frames} and {self.sampling_rate}"
            )
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(
                f"ClipSpec: target_fps must be positive or None, got {self.target_fps}"
            )
        lo, hi = self.train_scale
        if not self.crop_size <= lo <= hi:
            raise ValueError(
                f"ClipSpec: need crop_size <= train_scale[0] <= train_scale[1], got "
                f"crop_size={self.crop_size}, train_scale={self.train_scale}"
            )
        if self.test_scale < self.crop_size:
            raise ValueError(
                f"ClipSpec: test_scale ({self.test_scale}) must be >= crop_size ({self.crop_size})"
            )
        if self.num_temporal_clips < 1 or self.num_spatial_crops not in (1, 3):
            raise ValueError(
                "ClipSpec: num_temporal_clips must be >= 1 and num_spatial_crops 1 or 3, got "
                f"{self.num_temporal_clips} and {self.num_spatial_crops}"
            )

    @classmethod
    def from_config(cls, clip: dict) -> ClipSpec:
        """A spec from a ``clip`` section of the configuration (YAML/JSON lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in clip.items()})

    def single_view(self) -> ClipSpec:
        """The same spec with one test view per video (centre crop of the middle window)."""
        return dataclasses.replace(self, num_temporal_clips=1, num_spatial_crops=1)

    @property
    def clip_frames(self) -> int:
        """Frames per clip, T + 1."""
        return self.num_frames + 1

    @property
    def views(self) -> int:
        """Test-time views per video, N x K."""
        return self.num_temporal_clips * self.num_spatial_crops


def frame_indices(
    num_source: int, fps: float, spec: ClipSpec, start: int | None = None
) -> tuple[list[int], int]:
    """Source frame indices of one clip.

    Args:
        num_source: frames in the video (or segment).
        fps: the video's frame rate.
        spec: clip spec (T + 1 frames at stride sampling_rate at target_fps).
        start: window start in target-rate frames; None returns only the number of possible
            starts.

    Returns:
        (indices, num_starts): T + 1 source indices (the last frame repeats where the video is
        too short) and the number of valid window starts (>= 1).
    """
    target = spec.target_fps or fps
    ratio = fps / target
    num_target = max(1, math.floor(num_source / ratio + 1e-6))
    window = spec.num_frames * spec.sampling_rate + 1
    num_starts = max(num_target - window, 0) + 1
    if start is None:
        return [], num_starts
    ks = [start + j * spec.sampling_rate for j in range(spec.clip_frames)]
    return [min(math.floor(k * ratio + 1e-6), num_source - 1) for k in ks], num_starts


FAILURE_LOG = "decode_failures.jsonl"  # in a run's checkpoints/ folder while it trains


# FFmpeg's decoder threads per stream: 1 (no threading) keeps one DataLoader worker on one core,
# which is how a loader with a worker per core gets the most clips per second; 0 lets FFmpeg
# pick (a thread per core: faster for one process that decodes alone, see loader_gpu_feed.py).
DECODE_THREADS = int(os.environ.get("VMP_DECODE_THREADS", "1"))


def open_video(path: str | Path, threads: int | None = None) -> av.container.InputContainer:
    """Open a video with PyAV, its first video stream decoding with ``threads`` frame threads
    (None: :data:`DECODE_THREADS`)."""
    threads = DECODE_THREADS if threads is None else threads
    container = av.open(str(path))
    if threads != 1 and container.streams.video:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads where the codec has them
        stream.thread_count = threads
    return container


_local = threading.local()


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """``frame.to_ndarray(format="rgb24")``, the same bytes, through one single-threaded
    reformatter per thread and process.

    ``to_ndarray`` sets up a new swscale context, with a thread per core, for every frame: on a
    2-core EPYC 1.5 ms against 0.17 ms per 320x240 frame when the process may use both cores (in
    a loader every worker would start threads per frame), the same on one pinned core. A forked
    DataLoader worker makes its own reformatter: swscale's threads do not survive fork.
    """
    pid, reformatter = getattr(_local, "reformatter", (None, None))
    if pid != os.getpid():
        reformatter = VideoReformatter()
        _local.reformatter = (os.getpid(), reformatter)
    return reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()


def decode_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Every frame of a video as uint8 RGB (T, H, W, 3), and its frame rate."""
    check_not_empty(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        frames = [to_rgb(frame) for frame in container.decode(stream)]
        fps = _fps(stream)
    if not frames:
        raise ValueError(f"{path}: no frame decoded")
    return np.stack(frames), fps


def write_decoded(root: str | Path) -> Path:
    """Decode every video of ``root/manifest.csv`` once into ``root/decoded.npy``.

    Small datasets of equal-sized videos (SynthMotion) are then memory-mapped by every training
    run (:func:`load_decoded`) instead of each run decoding every video again. A video that does
    not decode is left out with a warning and listed in ``decoded.json`` ("unreadable"), with the
    fingerprint of the videos it was made from (the workflow rebuilds it when they change).
    ``python -m vmp.data.clips <root>`` runs it (the workflow's ``decode_cache`` rule).
    """
    root = Path(root)
    listed = pd.read_csv(root / "manifest.csv")["path"].drop_duplicates().tolist()
    paths, videos, rates, unreadable = [], [], [], {}
    for path in listed:
        try:
            frames, fps = decode_video(root / path)
        except (av.FFmpegError, OSError, ValueError) as err:
            # left out: a run decodes it itself, fails, replaces it and counts it
            unreadable[path] = str(err).splitlines()[0]
            log.warning("%s: not cached, it does not decode: %s", root / path, unreadable[path])
            continue
        paths.append(path)
        videos.append(frames)
        rates.append(fps)
    if not videos:
        raise ValueError(f"{root}: none of the {len(listed)} videos of manifest.csv decodes")
    shapes = {v.shape for v in videos}
    if len(shapes) > 1 or len(set(rates)) > 1:
        raise ValueError(
            f"{root}: videos differ in shape or frame rate ({sorted(shapes)}, {sorted(set(rates))}); "
            "decoded.npy holds equal-sized videos only, train with cache_frames instead"
        )
    with atomic_path(root / DECODED_FRAMES) as tmp, open(tmp, "wb") as f:
        np.save(f, np.stack(videos))
    index = {"paths": paths, "fps": rates[0], "unreadable": unreadable}
    write_json(root / DECODED_INDEX, index | {"videos": video_fingerprint([root / "videos"])})
    return root / DECODED_FRAMES


def decoded_file(root: str | Path) -> Path | None:
    """``root``'s decoded-frame cache (:func:`write_decoded`), or None where there is none."""
    path = Path(root) / DECODED_FRAMES
    return path if path.exists() else None


def load_decoded(root: str | Path) -> dict[str, tuple[np.ndarray, float]]:
    """Absolute video path -> (memory-mapped frames, fps) from ``write_decoded``'s files (or {})."""
    root = Path(root)
    if not (root / DECODED_FRAMES).exists() or not (root / DECODED_INDEX).exists():
        return {}
    index = json.loads((root / DECODED_INDEX).read_text())
    frames = np.load(root / DECODED_FRAMES, mmap_mode="r")
    if len(frames) != len(index["paths"]):
        raise ValueError(
            f"{root / DECODED_FRAMES} holds {len(frames)} videos but {DECODED_INDEX} lists "
            f"{len(index['paths'])}; delete both files (they are rewritten with the data)"
        )
    return {
        str((root / p).resolve()): (frames[i], index["fps"]) for i, p in enumerate(index["paths"])
    }


class ClipDataset(Dataset):
    """Clips from a table with columns path, label (and optionally start_sec, end_sec, num_frames).

    Training: one random clip per video (``len == len(table)``). Testing: item i is view
    ``i % (N*K)`` of video ``i // (N*K)``, the view v being temporal window ``v // K`` and
    spatial crop ``v % K``; all deterministic.

    A video that fails to decode is logged, recorded in ``failures`` (path -> reason; per
    process when DataLoader workers are used, and appended to ``failure_log`` when set, which
    :meth:`all_failures` reads back) and replaced by the next video of the table.

    With ``cache_frames=True`` each video (or segment) is decoded once, in full, and its frames
    are kept in memory as uint8; later epochs only sample, resize and crop. Meant for small
    videos such as SynthMotion's, where decoding costs several times a tiny model's step.
    ``decoded`` (from :func:`load_decoded`) supplies already decoded videos by path.

    Test views of one video are cut from one decoding pass over the union of its N windows, each
    frame resized once (the frames of the last video are kept, so consecutive view indices, as in
    a loader's batch, decode each video once); every view equals the one decoded on its own.
    ``decode_threads`` is FFmpeg's thread count per stream (None: :data:`DECODE_THREADS`).

    Items are dicts: video (3, T + 1, crop, crop) uint8 (the model divides by 255 on the device,
    see :meth:`vmp.models.VideoClassifier.forward`), label int, video_index int.
    With ``masks=True`` (SynthMotion videos, whose ground truth lies beside them: see
    :func:`vmp.data.synth.write_masks`) items also hold object_mask and distractor_mask, each
    (T + 1, crop, crop) float in [0, 1]: the same frames, resized, cropped and flipped with the
    clip (resizing softens their edges). With ``mask_channel=True`` (the input of an oracle model,
    ``vmp_oracle``: :mod:`vmp.layer.oracle`) video is (4, T + 1, crop, crop) uint8, its fourth
    channel the object mask (0..255; divided by 255 it is object_mask), so the mask reaches the
    model through every consumer of ``batch["video"]``.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        spec: ClipSpec,
        *,
        train: bool,
        log: logging.Logger | None = None,
        cache_frames: bool = False,
        decoded: dict[str, tuple[np.ndarray, float]] | None = None,
        masks: bool = False,
        mask_channel: bool = False,
        decode_threads: int | None = None,
    ) -> None:
        missing = {"path", "label"} - set(table.columns)
        if missing:
            raise ValueError(
                f"ClipDataset: table lacks columns {sorted(missing)}; build it with "
                "vmp.data.official.index or read a manifest written by vmp.data.official.prepare"
            )
        if len(table) == 0:
            raise ValueError("ClipDataset: the table is empty")
        self.table = table.reset_index(drop=True)
        self.spec = spec
        self.train = train
        self.log = log or logging.getLogger(__name__)
        self.failures: dict[str, str] = {}
        self.failure_log: Path | None = None  # where every process appends its failures
        self._paths = self.table["path"].astype(str).tolist()
        self._labels = self.table["label"].astype(int).tolist()
        nan = [math.nan] * len(self.table)
        self._start = self.table["start_sec"].tolist() if "start_sec" in self.table else nan
        self._end = self.table["end_sec"].tolist() if "end_sec" in self.table else nan
        self._frames = self.table["num_frames"].tolist() if "num_frames" in self.table else nan
        self._cache: dict[int, tuple[np.ndarray, float]] | None = {} if cache_frames else None
        self.masks = masks
        self.mask_channel = mask_channel
        self.decode_threads = decode_threads
        # (video, its N test windows' frames at test scale): the views of the last test video.
        self._views: tuple[int, list] | None = None
        if self._with_masks and not all(map(math.isnan, self._start)):
            raise ValueError(
                "ClipDataset: masks=True or mask_channel=True needs whole videos (no "
                "start_sec/end_sec)"
            )
        if decoded:
            self._cache = self._cache if self._cache is not None else {}
            self._cache |= {j: decoded[p] for j, p in enumerate(self._paths) if p in decoded}

    @property
    def _with_masks(self) -> bool:
        """Whether clips are cut with the ground truth's two channels (object, distractors)."""
        return self.masks or self.mask_channel

    def with_spec(self, spec: ClipSpec, *, train: bool) -> ClipDataset:
        """The same videos with another clip spec, sharing cached frames and known failures."""
        other = copy.copy(self)
        other.spec, other.train, other._views = spec, train, None
        return other

    def __len__(self) -> int:
        return len(self.table) * (1 if self.train else self.spec.views)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"ClipDataset index {i} out of range [0, {len(self)})")
        views = 1 if self.train else self.spec.views
        video, view = divmod(i, views)
        n = len(self._paths)
        for k in range(n):
            j = (video + k) % n
            path = self._paths[j]
            if path in self.failures:
                continue
            try:
                clip = self._load(j, view)
            except Exception as e:  # noqa: BLE001 - any decoder error must not end an epoch
                self._failed(path, f"{type(e).__name__}: {e}")
                continue
            return clip | {"label": self._labels[j], "video_index": j}
        raise RuntimeError(
            f"ClipDataset: every video in the table failed to decode ({len(self.failures)} "
            "failures, see dataset.failures); check the files with vmp.data.official.prepare"
        )

    def _failed(self, path: str, reason: str) -> None:
        self.failures[path] = reason
        self.log.warning("cannot decode %s (%s); using another video", path, reason)
        if self.failure_log is not None:
            # One short line per write with O_APPEND: DataLoader workers do not interleave.
            self.failure_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.failure_log, "a") as f:
                f.write(json.dumps({"path": path, "reason": reason}) + "\n")

    def all_failures(self) -> dict[str, str]:
        """Path -> reason of every video that failed to decode, in this and in worker processes."""
        found = dict(self.failures)
        if self.failure_log is not None and self.failure_log.exists():
            for line in self.failure_log.read_text().splitlines():
                record = json.loads(line)
                found[record["path"]] = record["reason"]
        return found

    def _window_start(self, num_starts: int, view: int) -> int:
        """First window position: random in training, evenly spaced test views."""
        if self.train:
            return int(torch.randint(num_starts, ()).item())
        clip_idx = view // self.spec.num_spatial_crops
        n = self.spec.num_temporal_clips
        return round((num_starts - 1) * (clip_idx / (n - 1) if n > 1 else 0.5))

    def _read(
        self,
        j: int,
        windows: Callable[[int, float], Sequence[Sequence[int]]],
        convert: Callable[[np.ndarray], object] | None = None,
    ) -> tuple[list[list], float]:
        """Decode the frames ``windows(count, fps)`` (lists of offsets into video or segment j)
        in one pass: (one list of frames per window, fps), each frame ``convert(rgb array)``."""
        check_not_empty(self._paths[j])
        with open_video(self._paths[j], self.decode_threads) as container:
            stream = container.streams.video[0]
            fps = _fps(stream)
            first, count = _segment(
                stream, container, fps, self._start[j], self._end[j], self._frames[j]
            )
            wanted = [[first + k for k in w] for w in windows(count, fps)]
            return _decode(container, stream, fps, wanted, convert), fps

    def _gather(
        self,
        j: int,
        windows: Callable[[int, float], list[list[int]]],
        convert: Callable[[np.ndarray], object] | None = None,
    ) -> tuple[list, list[list[int]]]:
        """(frames of each window, the windows' offsets) of video j, decoded or from the cache.

        Without ``convert`` a window's frames are one uint8 array (T+1, H, W, 3); with it, a list
        of ``convert(frame)``, converted once per distinct frame.
        """
        chosen: list[list[int]] = []

        def offsets(count: int, fps: float) -> list[list[int]]:
            chosen[:] = windows(count, fps)
            return chosen

        if self._cache is None:
            frames, _ = self._read(j, offsets, convert)
            return (frames if convert else [np.stack(f) for f in frames]), chosen
        if j not in self._cache:  # every frame, decoded once
            (every,), fps = self._read(j, lambda count, fps: [range(count)])
            self._cache[j] = (np.stack(every), fps)
        decoded, fps = self._cache[j]
        offsets(len(decoded), fps)
        if convert is None:
            return [decoded[w] for w in chosen], chosen
        pool = {k: convert(decoded[k].copy()) for k in set().union(*chosen)}
        return [[pool[k] for k in w] for w in chosen], chosen

    def _window(self, count: int, fps: float, view: int) -> list[int]:
        """Frame offsets of the clip for ``view`` in a video of ``count`` frames."""
        _, num_starts = frame_indices(count, fps, self.spec)
        idx, _ = frame_indices(count, fps, self.spec, self._window_start(num_starts, view))
        return idx

    def _clip(self, j: int, frames: np.ndarray, picked: Sequence[int]) -> torch.Tensor:
        """Frames (T+1, H, W, 3) as a uint8 tensor (T+1, 3, H, W), plus the masks' two channels."""
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)
        if self._with_masks:  # two more channels, so every transform treats them as the frames
            video = torch.cat([video, self._masks(j, picked)], 1)
        return video

    def _load(self, j: int, view: int) -> dict[str, torch.Tensor]:
        spec = self.spec
        if self.train:
            (frames,), (picked,) = self._gather(j, lambda count, fps: [self._window(count, fps, 0)])
            video = self._clip(j, frames, picked)
            lo, hi = spec.train_scale
            video = _resize_short(video, int(torch.randint(lo, hi + 1, ()).item()))
            h, w = video.shape[-2:]
            top = int(torch.randint(h - spec.crop_size + 1, ()).item())
            left = int(torch.randint(w - spec.crop_size + 1, ()).item())
            video = TF.crop(video, top, left, spec.crop_size, spec.crop_size)
            if spec.hflip and torch.rand(()).item() < 0.5:
                video = TF.horizontal_flip(video)
            video = video.permute(1, 0, 2, 3)
        else:
            if self._views is None or self._views[0] != j:
                self._views = (j, self._test_windows(j))
            crop = view % spec.num_spatial_crops
            frames = self._views[1][view // spec.num_spatial_crops]
            if self._with_masks:  # one tensor (T+1, 5, h, w) per window
                video = _fixed_crop(frames, spec.crop_size, crop, spec).permute(1, 0, 2, 3)
            else:  # a list of T+1 frames (3, h, w), shared between windows
                video = torch.stack([_fixed_crop(f, spec.crop_size, crop, spec) for f in frames], 1)
        video = video.contiguous()  # (C, T+1, crop, crop) uint8
        if not self._with_masks:
            return {"video": video}
        item = {"video": video[:4] if self.mask_channel else video[:3]}
        if self.masks:
            masks = video[3:].float().div_(255.0)
            item |= {"object_mask": masks[0], "distractor_mask": masks[1]}
        return item

    def _test_windows(self, j: int) -> list:
        """The frames of every test window of video j at test scale, from one decoding pass."""
        spec = self.spec
        step = spec.num_spatial_crops

        def windows(count: int, fps: float) -> list[list[int]]:
            return [self._window(count, fps, t * step) for t in range(spec.num_temporal_clips)]

        if self._with_masks:  # frames and masks resized together, as one tensor per window
            frames, picked = self._gather(j, windows)
            return [
                _resize_short(self._clip(j, f, p), spec.test_scale)
                for f, p in zip(frames, picked, strict=True)
            ]

        def resize(frame: np.ndarray) -> torch.Tensor:  # one frame: the same as in a stack
            resized = _resize_short(
                torch.from_numpy(frame[None]).permute(0, 3, 1, 2), spec.test_scale
            )[0]
            # (3, h, w) contiguous once per frame: each of its N x K crops then copies whole
            # rows (stacking crops of the channels-last frame cost 3/4 of a 10x3 test video)
            return resized.contiguous()

        return self._gather(j, windows, resize)[0]

    def _masks(self, j: int, picked: Sequence[int]) -> torch.Tensor:
        """The ground truth of video j at frames ``picked``: (T+1, 2, H, W) uint8 0 or 255."""
        layers = read_masks(masks_path(self._paths[j]))
        index = np.minimum(np.asarray(picked), len(layers.object) - 1)
        stacked = np.stack([layers.object[index], layers.distractors[index]], 1)
        return torch.from_numpy(stacked.astype(np.uint8) * 255)


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise ValueError("no frame rate in the header")
    return float(rate)


def _segment(
    stream: av.video.stream.VideoStream,
    container: av.container.InputContainer,
    fps: float,
    start_sec: float,
    end_sec: float,
    known_frames: float,
) -> tuple[int, int]:
    """First frame index and frame count of the clip inside the file."""
    if not math.isnan(known_frames) and known_frames > 0:
        total = int(known_frames)
    elif stream.frames > 0:
        total = stream.frames
    elif stream.duration is not None:
        total = max(1, round(float(stream.duration * stream.time_base) * fps))
    else:
        total = sum(1 for p in container.demux(stream) if p.size)
        container.seek(0)
    if math.isnan(start_sec):
        return 0, total
    first = max(0, math.ceil(start_sec * fps - 1e-6))
    last = math.ceil(end_sec * fps - 1e-6) if not math.isnan(end_sec) else total
    return first, max(1, min(last, total) - first)


def _rgb(frame: np.ndarray) -> np.ndarray:
    return frame


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    fps: float,
    windows: Sequence[Sequence[int]],
    convert: Callable[[np.ndarray], object] | None = None,
) -> list[list]:
    """Decode the frames with the given indices, one list per window, in one pass over the
    union of the windows; each distinct frame is ``convert(rgb array)`` (default: the array).

    In each window, indices past the last decoded frame (short or truncated videos) repeat the
    last frame and missing indices take the closest earlier frame of the window: each window
    gets the frames it would get when decoded alone.
    """
    convert = convert or _rgb
    wanted = sorted(set().union(*windows))
    t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    lo = wanted[0]
    if lo / fps > 1.0:
        # Seek to a keyframe shortly before the first needed frame.
        container.seek(int((t0 + lo / fps - 0.5) / stream.time_base), stream=stream, backward=True)
        got, first, last = _scan(container, stream, fps, t0, wanted, convert)
        if first is None or first > lo:  # the seek overshot: decode from the start instead
            container.seek(0)
            got, first, last = _scan(container, stream, fps, t0, wanted, convert)
    else:
        got, first, last = _scan(container, stream, fps, t0, wanted, convert)
    decoded = sorted(got)
    out = []
    for window in windows:
        need, hi = set(window), max(window)
        # What the window's own scan (up to its last index) would have kept.
        have = [k for k in decoded if k in need or (k == last and last < hi)]
        if not have:
            raise ValueError(f"no frame decoded (wanted frames {min(window)}..{hi})")
        picks = [have[max(bisect.bisect_right(have, k) - 1, 0)] for k in window]
        out.append([got[k] for k in picks])
    return out


def _scan(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    fps: float,
    t0: float,
    wanted: list[int],
    convert: Callable[[np.ndarray], object],
) -> tuple[dict[int, object], int | None, int]:
    """Decode forward up to max(wanted); return the wanted frames (plus the last decoded one,
    used when the video ends early), the index of the first decoded frame and of the last."""
    need, hi = set(wanted), max(wanted)
    got: dict[int, object] = {}
    first, last, index = None, None, -1
    for frame in container.decode(stream):
        index = round((frame.time - t0) * fps) if frame.time is not None else index + 1
        if first is None:
            first = index
        if index in need:
            got[index] = convert(to_rgb(frame))
        last = (index, frame)
        if index >= hi:
            break
    if last is not None and last[0] < hi and last[0] not in got:
        got[last[0]] = convert(to_rgb(last[1]))
    return got, first, (last[0] if last is not None else -1)


def _resize_short(video: torch.Tensor, size: int) -> torch.Tensor:
    h, w = video.shape[-2:]
    if min(h, w) == size:
        return video
    if h <= w:
        shape = [size, max(size, round(w * size / h))]
    else:
        shape = [max(size, round(h * size / w)), size]
    return TF.resize(video, shape, antialias=True)


def _fixed_crop(video: torch.Tensor, size: int, crop: int, spec: ClipSpec) -> torch.Tensor:
    """Crop ``crop`` of K along the longer side: 0 = left/top, 1 = centre, 2 = right/bottom."""
    h, w = video.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    if spec.num_spatial_crops == 3 and crop != 1:
        if w >= h:
            left = 0 if crop == 0 else w - size
        else:
            top = 0 if crop == 0 else h - size
    return TF.crop(video, top, left, size, size)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; give numpy and random the same seed.
    # Under DDP every rank's loader draws that seed from a copy of one state (Lightning seeds
    # every rank alike), so rank r > 0 mixes in its rank; rank 0 keeps torch's seed.
    seed = torch.initial_seed() % 2**32
    rank, _ = _replica()
    if rank:
        seed = _digest_seed(f"{seed}:worker:{rank}")
        torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global RNG third-party code uses
    random.seed(seed)


def _digest_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for one epoch of one run, stable across processes and restarts."""
    return _digest_seed(f"{seed}:{epoch}")


def stream_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of DDP rank ``rank``'s augmentation and dropout in one epoch of one run.

    Rank 0 (and a single process) draws from :func:`epoch_seed`, so one process trains as
    before DDP had streams of its own; every other rank from (seed, epoch, rank).
    """
    return epoch_seed(seed, epoch) if rank == 0 else _digest_seed(f"{seed}:{epoch}:{rank}")


def _replica() -> tuple[int, int]:
    """(rank, world size) of this process in an initialised torch.distributed group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSeededSampler(Sampler[int]):
    """Random order that depends only on (seed, epoch); starting an epoch also seeds the global RNGs.

    Lightning calls ``set_epoch`` before every training epoch. When the epoch's first batch is
    requested, ``__iter__`` seeds torch's, numpy's and Python's global generators from (seed, epoch),
    so the sample order, the augmentation drawn in ``ClipDataset`` and dropout depend on (seed,
    epoch) alone, whatever ran before in the process. A run resumed from a checkpoint therefore
    repeats an uninterrupted one exactly (with ``num_workers=0``; worker processes are seeded when
    the loader's iterator is created, which Lightning does at a different moment after a resume).

    Under DDP (an initialised torch.distributed group of N processes) rank r takes every N-th item
    of that order from position r, so with a per-process batch of B / N the k-th batches of all
    ranks together are the k-th batch of B of a single process. Training orders are cut to a
    multiple of N (equal batch counts on every rank) and of ``whole`` (the items of one optimiser
    step: with gradient accumulation the last step of an epoch is then a whole one, as without);
    ``shuffle=False`` keeps the dataset order and every item once. The order is the same on every
    rank; the global generators are not: rank r seeds them from (seed, epoch, r)
    (:func:`stream_seed`), so the ranks draw their own augmentation and dropout, and rank 0 the
    stream a single process draws.
    """

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True, whole: int = 1) -> None:
        self.num_samples, self.seed, self.shuffle, self.epoch = num_samples, seed, shuffle, 0
        self.whole = whole

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _kept(self, world: int) -> int:
        """Items of a training order kept: a multiple of the world size and of ``whole``."""
        step = math.lcm(world, self.whole)
        kept = self.num_samples - self.num_samples % step
        return kept if kept else self.num_samples - self.num_samples % world

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.num_samples))
        rank, world = _replica()
        seed = epoch_seed(self.seed, self.epoch)
        stream = stream_seed(self.seed, self.epoch, rank)
        torch.manual_seed(stream)
        np.random.seed(stream)  # noqa: NPY002 - third-party augmentation code reads the legacy global RNG
        random.seed(stream)
        generator = torch.Generator().manual_seed(seed)  # the order: one for all ranks
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        return order[: self._kept(world)]

    def __iter__(self) -> Iterator[int]:
        rank, world = _replica()
        return iter(self._order()[rank::world])

    def __len__(self) -> int:
        rank, world = _replica()
        total = self._kept(world) if self.shuffle else self.num_samples
        return len(range(rank, total, world))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    drop_last: bool = False,
    whole: int = 1,
) -> DataLoader:
    """DataLoader whose order depends only on ``seed`` and the epoch.

    Augmentation draws from torch's global RNG: in the main process with ``num_workers=0``, else in
    workers seeded from it when each epoch's iterator is created. Seeding the global RNG before an
    epoch (``lightning.seed_everything``) therefore fixes the epoch's batches.

    Args:
        dataset: e.g. a ClipDataset.
        batch_size: clips per batch.
        shuffle: a new order every epoch, else the dataset's order (:class:`EpochSeededSampler`,
            which also splits the items between DDP processes).
        num_workers: decoding processes.
        seed: seeds the order.
        drop_last: drop the last incomplete batch.
        whole: a shuffled order keeps a multiple of this many items (all processes' batches of
            one optimiser step; :class:`EpochSeededSampler`).

    Batches are put in page-locked memory where CUDA is available, so the uint8 clips travel to
    the GPU by DMA (and ``.to(device, non_blocking=True)`` overlaps the copy).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSeededSampler(len(dataset), seed, shuffle, whole),
        num_workers=num_workers,
        drop_last=drop_last,
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
    )


if __name__ == "__main__":
    # python -m vmp.data.clips <scene root>: the decoded-frame cache of a SynthMotion scene
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(write_decoded(sys.argv[1]))
