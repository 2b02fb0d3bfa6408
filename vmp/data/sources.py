"""What a real dataset's prepared manifest is built from: its list files and its videos.

Torch-, pandas- and av-free: the workflow reads these when it parses (``rules/data.smk``), so
that editing a split list reruns the split's ``prepare_data`` job (the lists are its inputs) and
adding, replacing, emptying or removing a video reruns it too (the videos' fingerprint is one
of its params)::

    LAYOUT[format]            default folder and file names, overridden by a dataset's `paths`
    list_files(...)           split lists and annotation files one split is indexed from
    video_list_paths(...)     a `video_list` dataset's train/val/test lists and classes file
    video_fingerprint(...)    hash of (path, size, mtime) of every file in the video folders
    stale_decoded_cache(...)  whether a SynthMotion scene's decoded frames predate its videos
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

LAYOUT: dict[str, dict[str, str]] = {
    "hmdb51": {"video_dir": "videos", "split_dir": "testTrainMulti_7030_splits"},
    "finegym": {"clip_dir": "clips", "event_dir": "events", "annotation_dir": "."},
    "mpii_cooking2": {
        "video_dir": "videos",
        "annotations": "annotations.csv",
        "camera": "cam-002",
    },
    # Your own dataset in PySlowFast's (and MMAction2's) list-file shape: `<path> <label>` lines.
    # "{split}" in a list name is replaced by the split; without it the lists hold one split, "1".
    # classes: a file of class names, one a line (line k + 1 names label k); "": class_<k>.
    "video_list": {
        "list_dir": ".",
        "video_dir": ".",
        "train_list": "train.csv",
        "val_list": "val.csv",
        "test_list": "test.csv",
        "classes": "",
    },
}
FINEGYM_LISTS = ("gym99_train_element_v1.1.txt", "gym99_val_element.txt")
FINEGYM_ANNOTATIONS = ("finegym_annotation_info_v1.1.json", "gym99_categories.txt")
MPII_LISTS = ("sequencesTrainAttr.txt", "sequencesVal.txt", "sequencesTest.txt")


def layout(dataset_format: str, **paths: str) -> dict[str, str]:
    """The folder and file names of ``dataset_format`` with a dataset's ``paths`` overrides."""
    return LAYOUT.get(dataset_format, {}) | paths


def list_files(dataset_format: str, root: str | Path, split: str, **paths: str) -> list[str]:
    """The split lists and annotation files that exist for one split (sorted paths).

    hmdb51: ``<split_dir>/*_test_split<k>.txt``; finegym: the Gym99 element lists, the
    annotation JSON and the category names; mpii_cooking2: ``experimentalSetup`` sequence
    lists and the activity annotations; video_list: the train, val and test lists and the
    classes file. Missing files are left out (indexing names them).
    """
    root, names = Path(root), layout(dataset_format, **paths)
    if dataset_format == "video_list":
        return sorted(
            str(f) for f in video_list_paths(root, split, **paths).values() if f.is_file()
        )
    if dataset_format == "hmdb51":
        files = (root / names["split_dir"]).glob(f"*_test_split{split}.txt")
    elif dataset_format == "finegym":
        folder = root / names["annotation_dir"]
        files = (folder / name for name in FINEGYM_LISTS + FINEGYM_ANNOTATIONS)
    elif dataset_format == "mpii_cooking2":
        files = [root / "experimentalSetup" / name for name in MPII_LISTS]
        files.append(root / names["annotations"])
    else:
        return []
    return sorted(str(f) for f in files if f.is_file())


def video_list_paths(root: str | Path, split: str, **paths: str) -> dict[str, Path]:
    """A ``video_list`` split's files: ``train``, ``val``, ``test`` (the lists, in ``list_dir``,
    "{split}" in a name replaced by ``split``) and ``classes`` (in ``list_dir``, only when set)."""
    names = layout("video_list", **paths)
    folder = Path(root) / names["list_dir"]
    files = {
        subset: folder / names[f"{subset}_list"].replace("{split}", str(split))
        for subset in ("train", "val", "test")
    }
    if names["classes"]:
        files["classes"] = folder / names["classes"]
    return files


def video_folders(dataset_format: str, root: str | Path, **paths: str) -> list[Path]:
    """The folders a dataset's videos are read from."""
    names = layout(dataset_format, **paths)
    keys = {"finegym": ("clip_dir", "event_dir")}.get(dataset_format, ("video_dir",))
    return [Path(root) / names[k] for k in keys if k in names]


def video_fingerprint(folders: list[Path]) -> str:
    """Hash of every file's relative path, size and modification time under ``folders``.

    A stat per file (no reading): about 30 ms for HMDB-51's 6,766 videos. Missing folders
    count as empty.
    """
    digest = hashlib.sha256()
    for folder in folders:
        found = []
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(dirpath, name)
                stat = os.stat(path)
                found.append(f"{os.path.relpath(path, folder)}\t{stat.st_size}\t{stat.st_mtime_ns}")
        digest.update(f"{folder}\n".encode())
        digest.update("\n".join(sorted(found)).encode())
    return digest.hexdigest()[:16]


DECODED_FRAMES = "decoded.npy"  # every video's frames, uint8 (videos, T, H, W, 3), manifest order
DECODED_INDEX = "decoded.json"  # the videos' paths (as in the manifest), frame rate, fingerprint


def stale_decoded_cache(root: str | Path) -> str | None:
    """Why a scene's decoded-frame cache (vmp.data.clips.write_decoded) no longer matches its
    videos (one was added, removed, replaced or emptied since it was made), or None (also when
    there is no cache, or it predates the recorded fingerprint)."""
    index = Path(root) / DECODED_INDEX
    try:
        recorded = json.loads(index.read_text()).get("videos")
    except (OSError, ValueError):
        return None
    if recorded is None or recorded == video_fingerprint([Path(root) / "videos"]):
        return None
    return f"a video under {Path(root) / 'videos'} changed since {index} was written"
