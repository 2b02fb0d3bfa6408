"""Dataset indexing and preparation for SynthMotion, HMDB-51, FineGym (Gym99), MPII Cooking 2 and
your own videos listed in PySlowFast's list files (``video_list``).

``index`` turns a dataset tree in its official layout into one table (one row per clip):

    path        absolute path of the video file (str)
    label       int, index of the class name in the sorted list of class names
    class_name  str
    subset      "train", "val" or "test"
    start_sec   float, start of the clip inside the file (NaN: the whole file is the clip)
    end_sec     float, end of the clip inside the file (NaN: the whole file is the clip)

``prepare`` (the workflow's prepare_data step) validates the tree, cuts annotated segments into
their own files, probes every video once with PyAV and writes a manifest of readable videos
plus a report of what was listed, found, missing and unreadable.

The code never downloads anything; missing files raise an error that says where they come from.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from vmp.data.resize import resize_video
from vmp.data.sources import (
    FINEGYM_ANNOTATIONS,
    FINEGYM_LISTS,
    LAYOUT,
    MPII_LISTS,
    video_list_paths,
)
from vmp.io import atomic_path, write_csv, write_json, write_text

log = logging.getLogger(__name__)

COLUMNS = ["path", "label", "class_name", "subset", "start_sec", "end_sec"]
PROBE_COLUMNS = ["num_frames", "fps", "width", "height", "duration"]
SUBSETS = ("train", "val", "test")

SOURCES = {
    "prepared": "Prepared manifests are written by `vmp.data.official.prepare` (the `prepare_data` rule)",
    "synthmotion": (
        "SynthMotion scenes are created by `vmp.data.synth.generate` (the `synth_data` workflow rule); "
        "run that rule first"
    ),
    "hmdb51": (
        "HMDB-51 comes from the HMDB project page "
        "(https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/): "
        "unpack hmdb51_org.rar into <root>/videos/<class>/ and test_train_splits.rar into "
        "<root>/testTrainMulti_7030_splits/, or run `python -m vmp.fetch hmdb51`"
    ),
    "finegym": (
        "FineGym comes from https://sdolivia.github.io/FineGym/ (Gym99 v1.1 element lists, "
        "finegym_annotation_info_v1.1.json: `python -m vmp.fetch finegym`; and the YouTube "
        "videos cut into events or elements)"
    ),
    "mpii_cooking2": (
        "MPII Cooking 2 comes from the MPI Informatics page "
        "(https://www.mpi-inf.mpg.de/departments/computer-vision-and-machine-learning/research/"
        "human-activity-recognition/mpii-cooking-2-dataset): videos/<sequence>-cam-002.avi, "
        "experimentalSetup/sequences{TrainAttr,Val,Test}.txt and the activity annotations "
        "(the official attributesAnnotations_MPII-Cooking-2.mat, or CSV rows "
        "<sequence>,<start_frame>,<end_frame>,<activity> with 0-based frames; set `annotations`)"
    ),
    "video_list": (
        "A video_list dataset is your own: <root>/train.csv and test.csv (val.csv optional) with "
        "one '<path> <label>' line per video (PySlowFast's list files; MMAction2's have the same "
        "shape), paths relative to <root>, labels 0, 1, ...; `paths` sets list_dir, video_dir, "
        "train_list, val_list, test_list and classes (docs/development.md, 'Adding a dataset')"
    ),
}


def _require(path: Path, dataset: str, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{dataset}: {what} not found: {path}. {SOURCES[dataset]}.")
    return path


def _finish(rows: list[dict], dataset: str, root: Path) -> pd.DataFrame:
    """Build the index table; labels are positions in the sorted class names."""
    if not rows:
        raise ValueError(f"{dataset}: no videos listed for this split under {root}")
    table = pd.DataFrame(rows)
    for col in ("start_sec", "end_sec"):
        if col not in table:
            table[col] = np.nan
        table[col] = table[col].astype(float)
    classes = sorted(table["class_name"].unique())
    table["label"] = table["class_name"].map({c: i for i, c in enumerate(classes)}).astype(int)
    extra = [c for c in table.columns if c not in COLUMNS]
    return table[COLUMNS + extra].reset_index(drop=True)


def _read_manifest(
    root: Path, dataset: str, made_by: str, needed: Iterable[str]
) -> tuple[Path, pd.DataFrame]:
    """``root/manifest.csv`` with at least the ``needed`` columns; errors name what writes it."""
    manifest = root / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(
            f"{dataset}: manifest not found: {manifest}. It is {made_by}; run that rule first."
        )
    table = pd.read_csv(manifest)
    if missing := set(needed) - set(table.columns):
        raise ValueError(f"{dataset}: {manifest} lacks columns {sorted(missing)}")
    return manifest, table


def _index_synthmotion(root: Path, split: str | int) -> pd.DataFrame:
    manifest, table = _read_manifest(
        root,
        "synthmotion",
        "created by `vmp.data.synth.generate` (the `synth_data` workflow rule)",
        ("path", "label", "class_name", "split", "subset"),
    )
    bad = set(table["subset"]) - set(SUBSETS)
    if bad:
        raise ValueError(f"synthmotion: {manifest} has unknown subsets {sorted(bad)}")
    pairs = table[["class_name", "label"]].drop_duplicates()
    if pairs["class_name"].duplicated().any() or pairs["label"].duplicated().any():
        raise ValueError(f"synthmotion: {manifest} maps class names to labels inconsistently")
    try:
        k = int(split)
    except (TypeError, ValueError):
        raise ValueError(f"synthmotion: split must be an integer, got {split!r}") from None
    if k not in set(table["split"]):
        raise ValueError(
            f"synthmotion: split {k} not in {manifest} (splits: {sorted(set(table['split']))})"
        )
    # Labels come from all splits so they do not depend on which split is indexed.
    classes = sorted(table["class_name"].unique())
    table = table[table["split"] == k]
    rows = [
        {
            "path": str((root / p).resolve()),
            "class_name": c,
            "subset": s,
        }
        for p, c, s in zip(table["path"], table["class_name"], table["subset"], strict=True)
    ]
    out = _finish(rows, "synthmotion", root)
    out["label"] = out["class_name"].map({c: i for i, c in enumerate(classes)}).astype(int)
    return out


def _index_hmdb51(
    root: Path,
    split: str | int,
    video_dir: str = LAYOUT["hmdb51"]["video_dir"],
    split_dir: str = LAYOUT["hmdb51"]["split_dir"],
) -> pd.DataFrame:
    k = int(split) if str(split).isdigit() else None
    if k not in (1, 2, 3):
        raise ValueError(f"hmdb51: split must be 1, 2 or 3, got {split!r}")
    sdir = _require(root / split_dir, "hmdb51", "split folder")
    files = sorted(sdir.glob(f"*_test_split{k}.txt"))
    if not files:
        raise FileNotFoundError(
            f"hmdb51: no <class>_test_split{k}.txt files in {sdir}. {SOURCES['hmdb51']}."
        )
    rows = []
    for f in files:
        cls = f.name[: -len(f"_test_split{k}.txt")]
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(
                    f"hmdb51: {f} line {n}: expected '<name>.avi <0|1|2>', got {line!r}"
                )
            if parts[1] == "0":
                continue
            subset = "train" if parts[1] == "1" else "test"
            path = (root / video_dir / cls / parts[0]).resolve()
            rows.append({"path": str(path), "class_name": cls, "subset": subset})
    return _finish(rows, "hmdb51", root)


_ELEMENT = re.compile(r"^(?P<yid>.+)_(?P<event>E_\d+_\d+)_(?P<action>A_\d+_\d+)$")


def _gym_class_names(path: Path) -> dict[int, str]:
    """Read gym99_categories.txt lines 'Clabel: 0; set: 1; Glabel: 1; (VT) name'."""
    names = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*Clabel:\s*(\d+);\s*set:\s*\d+;\s*Glabel:\s*\d+;\s*(.*)$", line)
        if m:
            names[int(m.group(1))] = m.group(2).strip()
    return names


def _index_finegym(
    root: Path,
    split: str | int,
    clip_dir: str = LAYOUT["finegym"]["clip_dir"],
    event_dir: str = LAYOUT["finegym"]["event_dir"],
    annotation_dir: str = LAYOUT["finegym"]["annotation_dir"],
) -> pd.DataFrame:
    if str(split) != "gym99":
        raise ValueError(f"finegym: split must be 'gym99', got {split!r}")
    ann = root / annotation_dir
    lists = {
        "train": _require(ann / FINEGYM_LISTS[0], "finegym", "train element list"),
        "test": _require(ann / FINEGYM_LISTS[1], "finegym", "val element list"),
    }
    cat_file = ann / FINEGYM_ANNOTATIONS[1]
    names = _gym_class_names(cat_file) if cat_file.exists() else {}
    timestamps: dict | None = None
    rows = []
    for subset, f in lists.items():
        for n, line in enumerate(f.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            m = _ELEMENT.match(parts[0]) if len(parts) == 2 and parts[1].isdigit() else None
            if m is None:
                raise ValueError(
                    f"finegym: {f} line {n}: expected "
                    f"'<youtube id>_E_<start>_<end>_A_<start>_<end> <label>', got {line!r}"
                )
            label = int(parts[1])
            # Zero-padded official label first, so sorting class names keeps the official order.
            cls = f"{label:02d} {names[label]}" if label in names else f"{label:02d}"
            row = {"class_name": cls, "subset": subset, "clip_id": parts[0]}
            clip = root / clip_dir / f"{parts[0]}.mp4"
            if clip.exists():
                row["path"] = str(clip.resolve())
            else:
                if timestamps is None:
                    js = ann / FINEGYM_ANNOTATIONS[0]
                    timestamps = json.loads(_require(js, "finegym", "annotation JSON").read_text())
                start, end = _gym_action_span(timestamps, m, js)
                event = root / event_dir / f"{m['yid']}_{m['event']}.mp4"
                row.update(path=str(event.resolve()), start_sec=start, end_sec=end)
            rows.append(row)
    return _finish(rows, "finegym", root)


def _gym_action_span(info: dict, m: re.Match, js: Path) -> tuple[float, float]:
    """Action span in seconds from the start of its event video.

    finegym_annotation_info_v1.1.json is {youtube id: {event id: {"timestamps": [[s, e]]
    (seconds in the YouTube video), "segments": {action id: {"stages": k, "timestamps":
    [[s, e], ...] (k pairs, seconds from the event start)}}}}}; the action spans from the
    first stage's start to the last stage's end.
    """
    try:
        stamps = info[m["yid"]][m["event"]]["segments"][m["action"]]["timestamps"]
        return float(stamps[0][0]), float(stamps[-1][1])
    except (KeyError, TypeError, IndexError):
        raise ValueError(
            f"finegym: {js} has no timestamps for element {m.group(0)} and its clip is not cut"
        ) from None


def _index_mpii(
    root: Path,
    split: str | int,
    video_dir: str = LAYOUT["mpii_cooking2"]["video_dir"],
    annotations: str = LAYOUT["mpii_cooking2"]["annotations"],
    camera: str = LAYOUT["mpii_cooking2"]["camera"],
) -> pd.DataFrame:
    if str(split) != "test":
        raise ValueError(f"mpii_cooking2: split must be 'test', got {split!r}")
    setup = root / "experimentalSetup"
    lists = dict(zip(("train", "val", "test"), MPII_LISTS, strict=True))
    subset_of = {}
    for subset, name in lists.items():
        f = _require(setup / name, "mpii_cooking2", "sequence list")
        for line in f.read_text().splitlines():
            if line.split():
                subset_of[line.split()[0]] = subset
    ann = _require(root / annotations, "mpii_cooking2", "annotation file")
    rows = []
    fps_cache: dict[str, float | None] = {}
    read = _mpii_mat_segments if ann.suffix.lower() == ".mat" else _mpii_csv_segments
    for seq, start, end, activity in read(ann):
        seq = seq.removesuffix(f"-{camera}")
        if seq not in subset_of:
            continue
        video = (root / video_dir / f"{seq}-{camera}.avi").resolve()
        if str(video) not in fps_cache:
            fps_cache[str(video)] = _header_fps(video)
        fps = fps_cache[str(video)]
        # Frames are 0-based and the end frame is inclusive (as in the authors' cutting code).
        rows.append(
            {
                "path": str(video),
                "class_name": activity,
                "subset": subset_of[seq],
                "start_sec": start / fps if fps else np.nan,
                "end_sec": (end + 1) / fps if fps else np.nan,
                "clip_id": f"{seq}-{camera}_{start}",
                "start_frame": start,
                "end_frame": end,
            }
        )
    return _finish(rows, "mpii_cooking2", root)


def _mpii_csv_segments(path: Path) -> Iterator[tuple[str, int, int, str]]:
    """(sequence, start, end, activity) rows of ``<sequence>,<start>,<end>,<activity>`` (0-based)."""
    with path.open(newline="") as fh:
        for n, rec in enumerate(csv.reader(fh), 1):
            if not rec or not "".join(rec).strip():
                continue
            rec = [r.strip() for r in rec]
            if n == 1 and not rec[1].lstrip("-").isdigit():
                continue  # header row
            if len(rec) != 4 or not (rec[1].isdigit() and rec[2].isdigit()):
                raise ValueError(
                    f"mpii_cooking2: {path} line {n}: expected "
                    f"'<sequence>,<start_frame>,<end_frame>,<activity>', got {','.join(rec)!r}"
                )
            yield rec[0], int(rec[1]), int(rec[2]), rec[3]


# Fields of the official annotation file (attributesAnnotations_MPII-Cooking-2.mat, MATLAB v7.3):
# struct `annos` with cell arrays of strings `annoFileMap` (one annotation file per video, e.g.
# ".../s08-d02-cam-002.tsv") and `activity`, and numeric `fileId` (1-based into annoFileMap),
# `startFrame`, `endFrame` (1-based, inclusive).
_MPII_MAT_FIELDS = ("annoFileMap", "activity", "fileId", "startFrame", "endFrame")


def _mpii_mat_segments(path: Path) -> Iterator[tuple[str, int, int, str]]:
    """(sequence, start, end, activity) of the official v7.3 ``.mat`` file, frames made 0-based."""
    import h5py

    try:
        mat = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(
            f"mpii_cooking2: {path} is not a MATLAB v7.3 (HDF5) file ({err}); give the official "
            "attributesAnnotations_MPII-Cooking-2.mat or a CSV <sequence>,<start>,<end>,<activity>"
        ) from None
    with mat:
        annos = mat.get("annos")
        missing = [f for f in _MPII_MAT_FIELDS if annos is None or f not in annos]
        if missing:
            raise ValueError(
                f"mpii_cooking2: {path} has no annos.{', annos.'.join(missing)}; expected the "
                "official activity annotations (attributesAnnotations_MPII-Cooking-2.mat)"
            )

        def strings(name: str) -> list[str]:
            refs = annos[name][()].ravel()
            return ["".join(map(chr, mat[ref][()].ravel())) for ref in refs]

        def integers(name: str) -> np.ndarray:
            return np.asarray(annos[name][()], dtype=np.int64).ravel()

        files, activities = strings("annoFileMap"), strings("activity")
        file_ids, starts, ends = integers("fileId"), integers("startFrame"), integers("endFrame")
    if not len(activities) == len(file_ids) == len(starts) == len(ends):
        raise ValueError(
            f"mpii_cooking2: {path}: annos fields differ in length (activity {len(activities)}, "
            f"fileId {len(file_ids)}, startFrame {len(starts)}, endFrame {len(ends)})"
        )
    sequences = [Path(f.replace("\\", "/")).stem for f in files]
    for file_id, start, end, activity in zip(file_ids, starts, ends, activities, strict=True):
        if not 1 <= file_id <= len(sequences):
            raise ValueError(f"mpii_cooking2: {path}: fileId {file_id} outside annoFileMap")
        yield sequences[file_id - 1], int(start) - 1, int(end) - 1, activity.strip()


def _header_fps(path: Path) -> float | None:
    """Frame rate from the container header, or None when the file cannot be opened."""
    if not path.exists():
        return None
    try:
        with av.open(str(path)) as c:
            rate = c.streams.video[0].average_rate
            return float(rate) if rate else None
    except (av.FFmpegError, IndexError):
        return None


_VL = LAYOUT["video_list"]


def _index_video_list(
    root: Path,
    split: str | int,
    list_dir: str = _VL["list_dir"],
    video_dir: str = _VL["video_dir"],
    train_list: str = _VL["train_list"],
    val_list: str = _VL["val_list"],
    test_list: str = _VL["test_list"],
    classes: str = _VL["classes"],
) -> pd.DataFrame:
    """Your own videos, listed as PySlowFast lists them (MMAction2's video lists alike)::

        <root>/<list_dir>/train.csv   one video per line: <path> <label>   (required)
                          val.csv     (optional: without it, validation uses the test subset)
                          test.csv    (required)
                          <classes>   optional: one class name per line, line k + 1 names label k
        <root>/<video_dir>/<path>     the video; an absolute <path> is used as it is

    Path and label are separated by spaces (PySlowFast) or by one comma (then a path may hold
    spaces); blank lines and lines starting with ``#`` are skipped. Labels are integers from 0
    and stay as listed (they are not re-sorted by name); without a classes file class k is named
    ``class_<k>``. Every label from 0 to the last (to the classes file's last line) must have a
    video. Splits: "{split}" in a list name is replaced by the split (``train_list:
    "train{split}.csv"`` gives split k ``train<k>.csv``); with no "{split}" in any name, the
    lists hold one split, "1".
    """
    names = {"train": train_list, "val": val_list, "test": test_list}
    if str(split) != "1" and not any("{split}" in n for n in names.values()):
        raise ValueError(
            f"video_list: split '{split}', but the list names {sorted(set(names.values()))} hold "
            "one split, '1': use splits: ['1'], or put {split} in paths.train_list, val_list and "
            "test_list (e.g. 'train{split}.csv') for several"
        )
    files = video_list_paths(
        root,
        str(split),
        list_dir=list_dir,
        train_list=train_list,
        val_list=val_list,
        test_list=test_list,
        classes=classes,
    )
    class_file = files.pop("classes", None)
    class_names = _read_class_names(class_file) if class_file else None
    rows = []
    for subset, f in files.items():
        if subset == "val" and not f.exists():
            continue
        _require(f, "video_list", f"{subset} list (paths.{subset}_list)")
        for n, line in enumerate(f.read_text().splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [x.strip() for x in text.split(",")] if "," in text else text.split()
            if (
                len(fields) != 2
                or not fields[0]
                or not (fields[1].isascii() and fields[1].isdigit())
            ):
                raise ValueError(
                    f"video_list: {f} line {n}: expected '<path> <label>' (separated by spaces or "
                    f"one comma, the label an integer from 0), got {line!r}"
                )
            label = int(fields[1])
            if class_names is not None and label >= len(class_names):
                raise ValueError(
                    f"video_list: {f} line {n}: label {label} is out of range of {class_file} "
                    f"({len(class_names)} classes, labels 0-{len(class_names) - 1}); fix the "
                    "label, or add the class's name to that file (line k + 1 names label k)"
                )
            path = (root / video_dir / fields[0]).resolve()
            rows.append({"path": str(path), "label": label, "subset": subset})
    if not rows:
        raise ValueError(f"video_list: no videos listed in {', '.join(map(str, files.values()))}")
    labels = {r["label"] for r in rows}
    count = len(class_names) if class_names is not None else max(labels) + 1
    if absent := sorted(set(range(count)) - labels):
        named = [f"{k} ({class_names[k]})" if class_names else str(k) for k in absent[:10]]
        raise ValueError(
            f"video_list: no video of label {', '.join(named)}{' ...' if len(absent) > 10 else ''} "
            f"in {', '.join(str(f) for f in files.values() if f.exists())}; labels run from 0 "
            f"to {count - 1}"
            + (f" (the lines of {class_file})" if class_file else " (the largest listed)")
            + " and each needs videos: list them, or renumber the labels"
            + (" and remove the class from that file" if class_file else "")
        )
    names_of = class_names or [f"class_{k}" for k in range(count)]
    for r in rows:
        r["class_name"] = names_of[r.pop("label")]
    out = _finish(rows, "video_list", root)
    out["label"] = out["class_name"].map({c: k for k, c in enumerate(names_of)}).astype(int)
    return out


def _read_class_names(path: Path) -> list[str]:
    """One class name per line (line k + 1 names label k); trailing blank lines are ignored."""
    lines = [
        line.strip()
        for line in _require(path, "video_list", "classes file").read_text().splitlines()
    ]
    while lines and not lines[-1]:
        lines.pop()
    for n, name in enumerate(lines, 1):
        if not name:
            raise ValueError(
                f"video_list: {path} line {n} is blank; the file holds one class name per line "
                "(line k + 1 names label k), so a blank line would shift every later label"
            )
    if dup := sorted({x for x in lines if lines.count(x) > 1}):
        raise ValueError(f"video_list: {path} names {', '.join(dup)} more than once")
    if not lines:
        raise ValueError(f"video_list: {path} holds no class name")
    return lines


def _index_prepared(root: Path, split: str | int) -> pd.DataFrame:
    """The manifest ``prepare`` wrote for one split: readable videos, cut clips, stable labels."""
    manifest, table = _read_manifest(
        root,
        "prepared",
        "written by `vmp.data.official.prepare` (the `prepare_data` workflow rule)",
        COLUMNS,
    )
    if table.empty:
        raise ValueError(
            f"prepared: {manifest} lists no readable video; see prepare_report.md beside it"
        )
    return table


_INDEXERS: dict[str, Callable[..., pd.DataFrame]] = {
    "prepared": _index_prepared,
    "synthmotion": _index_synthmotion,
    "hmdb51": _index_hmdb51,
    "finegym": _index_finegym,
    "mpii_cooking2": _index_mpii,
    "video_list": _index_video_list,
}


def index(dataset: str, root: str | Path, split: str | int = 1, **paths: str) -> pd.DataFrame:
    """Index a dataset tree in its official layout.

    Args:
        dataset: "synthmotion", "hmdb51", "finegym", "mpii_cooking2", "video_list" (your own
            videos in list files), or "prepared" (the manifest ``prepare`` wrote into ``root``
            for one split).
        root: dataset root folder.
        split: 1-3 for HMDB-51, the SynthMotion split number, "gym99", "test" for MPII, "1"
            for a video_list (or k where its list names hold "{split}").
        **paths: layout overrides. hmdb51: video_dir, split_dir; finegym: clip_dir, event_dir,
            annotation_dir; mpii_cooking2: video_dir, annotations (CSV), camera; video_list:
            list_dir, video_dir, train_list, val_list, test_list, classes.

    Returns:
        One row per clip with columns ``COLUMNS`` (plus ``clip_id`` and, for MPII,
        ``start_frame``/``end_frame`` where clips are segments of longer videos).
    """
    name = dataset.lower()
    if name not in _INDEXERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(_INDEXERS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: dataset root not found: {root}. {SOURCES[name]}.")
    try:
        return _INDEXERS[name](root, split, **paths)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise TypeError(f"{name}: unknown path option in {sorted(paths)} ({e})") from None
        raise


def probe(path: str | Path) -> dict:
    """Decode a video once and describe it.

    Returns:
        dict with num_frames, fps, width, height, duration; or {"error": reason} when the file
        is empty (0 bytes), cannot be opened, has no video stream, fails to decode, decodes to
        zero frames or is shorter than its header says (truncated).
    """
    try:
        if os.path.getsize(path) == 0:
            return {"error": "empty file (0 bytes)"}
        with av.open(str(path)) as c:
            if not c.streams.video:
                return {"error": "no video stream"}
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate
            header_frames = s.frames
            n, width, height = 0, s.codec_context.width, s.codec_context.height
            try:
                for frame in c.decode(s):
                    n += 1
                    width, height = frame.width, frame.height
            except av.FFmpegError as e:
                return {"error": f"decode error after {n} frames: {e}"}
    except (av.FFmpegError, OSError) as e:
        return {"error": f"cannot open: {e}"}
    if n == 0:
        return {"error": "zero frames decoded"}
    if header_frames and n < header_frames - max(2, 0.05 * header_frames):
        return {"error": f"truncated: header lists {header_frames} frames, decoded {n}"}
    if not rate:
        return {"error": "no frame rate in the header"}
    fps = float(rate)
    return {"num_frames": n, "fps": fps, "width": width, "height": height, "duration": n / fps}


def quick_probe(path: str | Path) -> str | None:
    """Why a video cannot be read, or None: its first frame and a frame near its end are decoded
    (two seeks, not the whole video), which finds empty, headerless, undecodable and truncated
    files at a fraction of :func:`probe`'s cost (the pre-flight probes every listed video)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with av.open(str(path)) as c:
            if not c.streams.video:
                return "no video stream"
            stream = c.streams.video[0]
            if next(c.decode(stream), None) is None:
                return "no frame decodes"
            if stream.duration and stream.time_base:
                # the last tenth of the stream: a file cut short has nothing there
                start = int(stream.start_time or 0)
                c.seek(start + int(stream.duration * 0.9), stream=stream)  # to a keyframe before
                end = start + stream.duration * 0.75
                if not any(f.pts is not None and f.pts >= end for f in c.decode(stream)):
                    return "truncated: no frame in the last quarter its header describes"
    except (av.FFmpegError, OSError, StopIteration) as e:
        return f"cannot read: {e}"
    return None


def cut_clip(
    src: str | Path,
    dst: str | Path,
    start_sec: float,
    end_sec: float,
    *,
    short_side: int | None = None,
    codec: str = "mpeg4",
) -> int:
    """Write the frames of ``src`` with start_sec <= t < end_sec (from the first frame) to ``dst``.

    Args:
        src: source video.
        dst: output file (mp4); written to a temporary name first, so a crash leaves no partial file.
        start_sec: clip start, seconds after the source's first frame.
        end_sec: clip end (exclusive).
        short_side: resize so the shorter side has this many pixels (None: keep the size).
        codec: output codec.

    Returns:
        Number of frames written. Raises ValueError when the range holds no frame.
    """
    with atomic_path(dst) as tmp:
        n = _write_segment(src, tmp, start_sec, end_sec, short_side, codec)
        if n == 0:
            raise ValueError(f"no frames in [{start_sec:.3f}, {end_sec:.3f}) s of {src}")
    return n


def _write_segment(
    src: str | Path, tmp: Path, start_sec: float, end_sec: float, short_side: int | None, codec: str
) -> int:
    """Encode the frames of ``src`` in [start_sec, end_sec) into ``tmp``; return their count."""
    n = 0
    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        t0 = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        rate = s.average_rate or s.guessed_rate
        if start_sec > 1.0:
            inp.seek(int((t0 + start_sec - 1.0) / s.time_base), stream=s, backward=True)
        with av.open(str(tmp), "w", format="mp4") as out:
            ost = None
            for frame in inp.decode(s):
                t = (frame.time if frame.time is not None else t0) - t0
                if t < start_sec - 1e-6:
                    continue
                if t >= end_sec - 1e-6:
                    break
                if ost is None:
                    w, h = frame.width, frame.height
                    if short_side:
                        scale = short_side / min(w, h)
                        w, h = (round(w * scale / 2) * 2, round(h * scale / 2) * 2)
                    ost_rate = Fraction(rate).limit_denominator(100000)
                    ost = out.add_stream(codec, rate=ost_rate)
                    ost.width, ost.height, ost.pix_fmt = w, h, "yuv420p"
                    ost.options = {"qscale": "3"} if codec == "mpeg4" else {}
                img = frame.reformat(width=ost.width, height=ost.height, format="yuv420p")
                img.pts, img.time_base = n, 1 / ost_rate
                for packet in ost.encode(img):
                    out.mux(packet)
                n += 1
            if ost is not None:
                for packet in ost.encode():
                    out.mux(packet)
    return n


def _prepare_one(args: tuple) -> dict:
    """Cut (a segment) or shrink (a whole video larger than ``short_side``) and probe one video;
    runs in a worker process."""
    path, start, end, clip_path, short_side = args
    if clip_path is not None and not math.isnan(start):
        clip_path = Path(clip_path)
        if not clip_path.exists():
            try:
                cut_clip(path, clip_path, start, end, short_side=short_side)
            except (av.FFmpegError, OSError, ValueError, IndexError) as e:
                return {"error": f"cannot cut [{start:.3f}, {end:.3f}) s: {e}"}
        return probe(clip_path) | {"out_path": str(clip_path), "cut": True}
    info = probe(path) | {"out_path": str(path), "cut": False, "resized": False}
    if (
        clip_path is not None
        and "error" not in info
        and min(info["width"], info["height"]) > short_side
    ):
        if not Path(clip_path).exists():  # re-encoded by an earlier preparation
            try:
                resize_video(path, clip_path, short_side)
            except (av.FFmpegError, OSError, ValueError) as e:
                return {"error": f"cannot resize to short side {short_side}: {e}"}
        info = probe(clip_path) | {"out_path": str(clip_path), "cut": False, "resized": True}
    return info


def prepare(
    dataset: str,
    root: str | Path,
    split: str | int,
    out_dir: str | Path,
    *,
    workers: int = 1,
    short_side: int | None = None,
    **paths: str,
) -> dict:
    """Validate a dataset tree, cut segment clips, probe every video and write a manifest.

    Writes ``out_dir/manifest.csv`` (index columns plus num_frames, fps, width, height,
    duration; readable videos only), ``out_dir/clips/`` (segments cut from longer videos),
    and ``out_dir/prepare_report.{json,md}``. Problems are reported by file; the readable
    videos are kept. A class whose every train (or every test) video is missing or unreadable
    stops preparation with :class:`EmptyClassError` naming the class and the files (after the
    report is written): training without it would silently change the task.

    Args:
        dataset, root, split, **paths: as for ``index``.
        out_dir: output folder.
        workers: processes used to cut and probe (1: in this process).
        short_side: resize cut clips to this short side (None: keep the source size).

    Returns:
        The report (also written as JSON).
    """
    table = index(dataset, root, split, **paths)
    out_dir = Path(out_dir)
    clip_dir = out_dir / "clips"
    exists = table["path"].map(os.path.exists)
    missing = sorted(set(table.loc[~exists, "path"]))
    segment = table["start_sec"].notna()
    if segment.any():
        clip_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, row in table[exists].iterrows():
        clip = None
        if segment[i]:
            clip = str(clip_dir / f"{row.get('clip_id', f'clip_{i:07d}')}.mp4")
        elif short_side:  # a whole video larger than short_side is re-encoded here, once
            clip = str(out_dir / "resized" / f"{i:07d}_{Path(row['path']).stem}.mp4")
        jobs.append((row["path"], row["start_sec"], row["end_sec"], clip, short_side))
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_prepare_one, jobs, chunksize=8))
    else:
        results = [_prepare_one(j) for j in jobs]

    keep, unreadable = [], []
    dropped = {i: f"{table.loc[i, 'path']} (listed but missing)" for i in table.index[~exists]}
    for i, res in zip(table.index[exists], results, strict=True):
        row = table.loc[i]
        if "error" in res:
            where = row["path"] if not segment[i] else f"{row['path']} [{row.get('clip_id', i)}]"
            unreadable.append({"path": where, "reason": res["error"]})
            dropped[i] = f"{where} ({res['error']})"
            log.warning("%s: unreadable %s: %s", dataset, where, res["error"])
            continue
        rec = row.to_dict()
        if segment[i]:
            rec.update(path=res["out_path"], start_sec=np.nan, end_sec=np.nan)
        elif res.get("resized"):
            rec.update(path=res["out_path"])
        rec.update({k: res[k] for k in PROBE_COLUMNS})
        keep.append(rec)
    manifest = pd.DataFrame(keep, columns=list(table.columns) + PROBE_COLUMNS)
    write_csv(out_dir / "manifest.csv", manifest)

    per_class = {
        s: {str(c): int(n) for c, n in sorted(g["class_name"].value_counts().items())}
        for s, g in manifest.groupby("subset")
    }
    report = {
        "dataset": dataset,
        "split": str(split),
        "root": str(Path(root).resolve()),
        "listed": len(table),
        "found": int(exists.sum()),
        "missing": missing,
        "unreadable": unreadable,
        "readable": len(manifest),
        "clips_cut": sum(1 for r in results if r.get("cut")),
        "videos_resized": sum(1 for r in results if r.get("resized")),
        "num_classes": int(table["class_name"].nunique()),
        "per_class": per_class,
        "emptied_classes": _emptied_classes(table, per_class, dropped),
    }
    write_json(out_dir / "prepare_report.json", report)
    write_text(out_dir / "prepare_report.md", _report_markdown(report))
    if report["emptied_classes"]:
        raise EmptyClassError(
            f"{dataset} split {split}: "
            + "; ".join(
                f"class {e['class']!r} has no readable {e['subset']} video left, dropped: "
                + ", ".join(e["files"])
                for e in report["emptied_classes"]
            )
            + f". Fix or replace those files; see {out_dir / 'prepare_report.md'}"
        )
    return report


class EmptyClassError(ValueError):
    """A class had train (or test) videos listed, and none of them is readable."""


def _emptied_classes(
    table: pd.DataFrame, per_class: dict[str, dict[str, int]], dropped: dict[int, str]
) -> list[dict]:
    """Classes listed in train or test whose every video there was dropped, with those files."""
    emptied = []
    for subset in ("train", "test"):
        listed = table[table["subset"] == subset]
        for name, rows in listed.groupby("class_name", sort=True):
            if per_class.get(subset, {}).get(str(name), 0) == 0:
                files = [dropped[i] for i in rows.index if i in dropped]
                emptied.append({"class": str(name), "subset": subset, "files": files})
    return emptied


def summary_line(report: dict, report_path: str | Path) -> str:
    """One line for the terminal: what ``prepare`` found, missed and could not read."""
    line = (
        f"prepare_data {report['dataset']} split {report['split']}: "
        f"{report['found']} of {report['listed']} listed videos found, "
        f"{len(report['missing'])} missing, {len(report['unreadable'])} unreadable, "
        f"{report['readable']} readable"
    )
    emptied = report.get("emptied_classes") or []
    if emptied:
        line += ", no readable video left for " + ", ".join(
            f"{e['class']} ({e['subset']})" for e in emptied
        )
    return f"{line} (report: {report_path})"


def _report_markdown(r: dict) -> str:
    lines = [
        f"# prepare_data: {r['dataset']} split {r['split']}",
        "",
        f"Root: `{r['root']}`",
        "",
        "| listed | found | missing | unreadable | readable | classes |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {r['listed']} | {r['found']} | {len(r['missing'])} | {len(r['unreadable'])} "
        f"| {r['readable']} | {r['num_classes']} |",
        "",
        f"Segments cut: {r['clips_cut']}; whole videos re-encoded at a smaller size: "
        f"{r.get('videos_resized', 0)}.",
        "",
        "## Listed but missing",
        "",
        *([f"- `{p}`" for p in r["missing"]] or ["none"]),
        "",
        "## Unreadable",
        "",
        *([f"- `{u['path']}`: {u['reason']}" for u in r["unreadable"]] or ["none"]),
        "",
        "## Classes left without a readable train or test video",
        "",
        *(
            [
                f"- {e['class']} ({e['subset']}): {', '.join(e['files'])}"
                for e in r["emptied_classes"]
            ]
            or ["none"]
        ),
        "",
        "## Readable videos per class",
        "",
    ]
    subsets = [s for s in SUBSETS if s in r["per_class"]]
    classes = sorted({c for counts in r["per_class"].values() for c in counts})
    lines += ["| class | " + " | ".join(subsets) + " |", "| --- |" + " --- |" * len(subsets)]
    for c in classes:
        lines.append(
            f"| {c} | " + " | ".join(str(r["per_class"][s].get(c, 0)) for s in subsets) + " |"
        )
    return "\n".join(lines) + "\n"


def load_splits(
    dataset_format: str, data_root: str | Path, split: str, **paths: str
) -> dict[str, pd.DataFrame]:
    """Index a dataset and return its subsets; 'val' falls back to 'test' where there is none.

    Raises:
        ValueError: the split has no train or no test video, or a class (any label up to the
            largest) has none in train or in test.
    """
    table = index(dataset_format, data_root, split, **paths)
    subsets = {
        name: table[table["subset"] == name].reset_index(drop=True)
        for name in ("train", "val", "test")
    }
    for name in ("train", "test"):
        if subsets[name].empty:
            raise ValueError(
                f"{dataset_format} at {data_root} (split {split}) has no {name} videos"
            )
        labels = set(subsets[name]["label"])
        absent = sorted(set(range(int(table["label"].max()) + 1)) - labels)
        if absent:
            names = table.drop_duplicates("label").set_index("label")["class_name"]
            classes = ", ".join(str(names.get(k, f"label {k}")) for k in absent)
            raise ValueError(
                f"{dataset_format} at {data_root} (split {split}): no {name} video of class "
                f"{classes} (all of them missing or unreadable?); see prepare_report.md"
            )
    if subsets["val"].empty:
        subsets["val"] = subsets["test"]
    return subsets


if __name__ == "__main__":
    # python -m vmp.data.official <out_dir>: the summary line of a prepared split (for the terminal)
    import sys

    report_md = Path(sys.argv[1]) / "prepare_report.md"
    print(summary_line(json.loads(report_md.with_suffix(".json").read_text()), report_md))
