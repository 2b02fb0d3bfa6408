"""Indexing and preparation of dataset trees in their official layouts (vmp.data.official)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import av
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import write_frames

from vmp.data.official import (
    COLUMNS,
    PROBE_COLUMNS,
    EmptyClassError,
    index,
    prepare,
    probe,
    summary_line,
)
from vmp.data.sources import list_files, video_folders


def write_video(path: Path, n: int, fps: float = 10, size=(32, 32)) -> Path:
    """mpeg4 video whose frame k has red = (8 * k + 4) % 256, so k < 32 reads back after coding."""
    frames = np.zeros((n, *size, 3), np.uint8)
    frames[..., 0] = ((8 * np.arange(n) + 4) % 256)[:, None, None]
    return write_frames(path, frames, fps, size)


def first_frame_id(path: str | Path) -> int:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return round((frame[..., 0].mean() - 4) / 8)


def counts(report: dict) -> tuple[int, int, int, int]:
    return tuple(report[k] for k in ("listed", "found", "readable", "clips_cut"))


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# HMDB-51 -------------------------------------------------------------------------------------


@pytest.fixture
def hmdb(tmp_path) -> Path:
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in ("catch", "brush_hair", "cartwheel"):
        for name in ("a", "b", "c"):
            if (cls, name) != ("catch", "a"):  # listed but missing
                write_video(root / "videos" / cls / f"{cls}_{name}.avi", 40)
        lines = f"{cls}_a.avi 1 \n{cls}_b.avi 2  \n{cls}_c.avi 0 \n\n"
        (splits / f"{cls}_test_split1.txt").write_text(lines)
    truncate(root / "videos" / "cartwheel" / "cartwheel_b.avi", 0.85)
    return root


def test_hmdb51_index(hmdb):
    t = index("hmdb51", hmdb, 1)
    assert list(t.columns[: len(COLUMNS)]) == COLUMNS
    assert len(t) == 6  # tag 0 rows are not used
    assert t.groupby("subset").size().to_dict() == {"test": 3, "train": 3}
    labels = dict(zip(t["class_name"], t["label"], strict=False))
    assert labels == {"brush_hair": 0, "cartwheel": 1, "catch": 2}
    row = t[(t["class_name"] == "catch") & (t["subset"] == "test")].iloc[0]
    assert row["path"] == str((hmdb / "videos" / "catch" / "catch_b.avi").resolve())
    assert t["start_sec"].isna().all() and t["end_sec"].isna().all()


def test_hmdb51_layout_options_and_errors(hmdb, tmp_path):
    (hmdb / "testTrainMulti_7030_splits").rename(hmdb / "lists")
    assert len(index("hmdb51", hmdb, "1", split_dir="lists")) == 6
    with pytest.raises(FileNotFoundError, match=r"test_split2\.txt.*serre-lab"):
        index("hmdb51", hmdb, 2, split_dir="lists")
    with pytest.raises(FileNotFoundError, match="split folder not found"):
        index("hmdb51", hmdb, 1)
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        index("hmdb51", hmdb, 4, split_dir="lists")
    with pytest.raises(FileNotFoundError, match=r"dataset root not found.*serre-lab"):
        index("hmdb51", tmp_path / "nowhere")
    with pytest.raises(TypeError, match="unknown path option"):
        index("hmdb51", hmdb, 1, video_folder="v")
    with pytest.raises(ValueError, match="unknown dataset 'ucf101'"):
        index("ucf101", hmdb)
    bad = hmdb / "lists" / "catch_test_split1.txt"
    bad.write_text("catch_a.avi 1\ncatch_b.avi train\n")
    with pytest.raises(ValueError, match=r"catch_test_split1\.txt line 2"):
        index("hmdb51", hmdb, 1, split_dir="lists")


def test_hmdb51_prepare_reports_missing_and_unreadable(hmdb, tmp_path):
    out = tmp_path / "prepared"
    missing = str((hmdb / "videos" / "catch" / "catch_a.avi").resolve())
    truncated = str((hmdb / "videos" / "cartwheel" / "cartwheel_b.avi").resolve())
    # catch's only train video is missing, cartwheel's only test video truncated: training
    # without them would silently drop two classes, so preparation stops naming both.
    with pytest.raises(EmptyClassError) as error:
        prepare("hmdb51", hmdb, 1, out)
    assert (
        f"class 'catch' has no readable train video left, dropped: {missing} (listed but missing)"
        in str(error.value)
    )
    assert (
        f"class 'cartwheel' has no readable test video left, dropped: {truncated} (truncated"
        in str(error.value)
    )
    assert str(out / "prepare_report.md") in str(error.value)
    report = json.loads((out / "prepare_report.json").read_text())
    assert [(e["class"], e["subset"]) for e in report["emptied_classes"]] == [
        ("catch", "train"),
        ("cartwheel", "test"),
    ]
    assert (report["listed"], report["found"], report["readable"]) == (6, 5, 4)
    assert report["missing"] == [missing]
    assert [u["path"] for u in report["unreadable"]] == [truncated]
    assert "truncated: header lists 40 frames" in report["unreadable"][0]["reason"]
    assert report["per_class"] == {
        "test": {"brush_hair": 1, "catch": 1},
        "train": {"brush_hair": 1, "cartwheel": 1},
    }
    md = (out / "prepare_report.md").read_text()
    assert missing in md and "truncated" in md and "| brush_hair | 1 | 1 |" in md
    assert f"- catch (train): {missing} (listed but missing)" in md
    assert summary_line(report, out / "prepare_report.md") == (
        "prepare_data hmdb51 split 1: 5 of 6 listed videos found, 1 missing, 1 unreadable, "
        "4 readable, no readable video left for catch (train), cartwheel (test) "
        f"(report: {out / 'prepare_report.md'})"
    )

    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == COLUMNS + PROBE_COLUMNS
    assert len(manifest) == 4 and truncated not in set(manifest["path"])
    assert (manifest["num_frames"] == 40).all() and (manifest["fps"] == 10).all()
    assert (manifest["width"] == 32).all() and (manifest["duration"] == 4.0).all()


def test_a_class_keeping_one_readable_video_per_subset_is_prepared(hmdb, tmp_path):
    for cls, name in (("catch", "a"), ("cartwheel", "b")):
        write_video(hmdb / "videos" / cls / f"{cls}_{name}.avi", 40)
    report = prepare("hmdb51", hmdb, 1, tmp_path / "prepared")
    assert report["emptied_classes"] == [] and report["readable"] == 6
    line = summary_line(report, "r.md")
    assert line == (
        "prepare_data hmdb51 split 1: 6 of 6 listed videos found, 0 missing, 0 unreadable, "
        "6 readable (report: r.md)"
    )


def test_probe_reasons(tmp_path):
    good = write_video(tmp_path / "good.mp4", 6, fps=12, size=(16, 24))
    assert probe(good) == {"num_frames": 6, "fps": 12.0, "width": 24, "height": 16, "duration": 0.5}
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk" * 100)
    assert probe(junk)["error"].startswith("cannot open")
    assert probe(tmp_path / "absent.mp4")["error"].startswith("cannot open")
    (tmp_path / "empty.mp4").touch()
    assert probe(tmp_path / "empty.mp4") == {"error": "empty file (0 bytes)"}


# FineGym -------------------------------------------------------------------------------------

EVENT = "ab_c-D1_E_000010_000020"  # YouTube ids may contain '_' and '-'


@pytest.fixture
def gym(tmp_path) -> Path:
    root = tmp_path / "finegym"
    root.mkdir()
    (root / "gym99_train_element_v1.1.txt").write_text(
        f"{EVENT}_A_0001_0002 3\n{EVENT}_A_0000_0002 7\nxyz_E_000001_000005_A_0000_0001 3\n"
    )
    (root / "gym99_val_element.txt").write_text(
        f"{EVENT}_A_0002_0003 7 \nmissing_E_000001_000002_A_0000_0001 3\n\n"
    )
    (root / "gym99_categories.txt").write_text(
        "Clabel: 3; set: 1; Glabel: 4; (VT) round-off\nClabel: 7; set: 2; Glabel: 9; (FX) salto\n"
    )
    segments = {
        "A_0001_0002": {"stages": 1, "timestamps": [[1.0, 2.0]]},
        "A_0000_0002": {"stages": 2, "timestamps": [[0.5, 1.0], [1.2, 2.5]]},
        "A_0002_0003": {"stages": 1, "timestamps": [[2.2, 2.9]]},
    }
    info = {
        "ab_c-D1": {
            "E_000010_000020": {"event": 1, "segments": segments, "timestamps": [[10, 20]]}
        },
        "missing": {
            "E_000001_000002": {
                "segments": {"A_0000_0001": {"stages": 1, "timestamps": [[0.0, 1.0]]}}
            }
        },
    }
    (root / "finegym_annotation_info_v1.1.json").write_text(json.dumps(info))
    write_video(root / "events" / f"{EVENT}.mp4", 30)
    write_video(root / "clips" / "xyz_E_000001_000005_A_0000_0001.mp4", 8)
    return root


def test_finegym_index(gym):
    t = index("finegym", gym, "gym99")
    assert t.groupby("subset").size().to_dict() == {"test": 2, "train": 3}
    assert sorted(set(zip(t["label"], t["class_name"], strict=True))) == [
        (0, "03 (VT) round-off"),
        (1, "07 (FX) salto"),
    ]
    by_id = t.set_index("clip_id")
    multi = by_id.loc[f"{EVENT}_A_0000_0002"]
    assert (multi["start_sec"], multi["end_sec"]) == (0.5, 2.5)  # first stage start, last stage end
    assert multi["path"] == str((gym / "events" / f"{EVENT}.mp4").resolve())
    cut = by_id.loc["xyz_E_000001_000005_A_0000_0001"]
    assert cut["path"].endswith("clips/xyz_E_000001_000005_A_0000_0001.mp4")
    assert math.isnan(cut["start_sec"]) and math.isnan(cut["end_sec"])


def test_finegym_errors(gym):
    with pytest.raises(ValueError, match="split must be 'gym99'"):
        index("finegym", gym, "gym288")
    (gym / "finegym_annotation_info_v1.1.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotation JSON.*sdolivia\.github\.io/FineGym"):
        index("finegym", gym, "gym99")
    (gym / "gym99_val_element.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val element list"):
        index("finegym", gym, "gym99")


def test_finegym_prepare_cuts_elements_from_events(gym, tmp_path):
    out = tmp_path / "prepared"
    # The only test (val) element of class 3 is missing: preparation stops, naming it.
    emptied = r"class '03 \(VT\) round-off' has no readable test video left, dropped: .*missing_E"
    with pytest.raises(EmptyClassError, match=emptied):
        prepare("finegym", gym, "gym99", out, workers=2)
    report = json.loads((out / "prepare_report.json").read_text())
    assert counts(report) == (5, 4, 4, 3)
    assert report["missing"] == [str((gym / "events" / "missing_E_000001_000002.mp4").resolve())]
    m = pd.read_csv(out / "manifest.csv").set_index("clip_id")
    assert m["start_sec"].isna().all()
    # 10 fps event: [1.0, 2.0) -> frames 10..19; [0.5, 2.5) -> 5..24; [2.2, 2.9) -> 22..28.
    for clip, frames, first in [
        ("A_0001_0002", 10, 10),
        ("A_0000_0002", 20, 5),
        ("A_0002_0003", 7, 22),
    ]:
        row = m.loc[f"{EVENT}_{clip}"]
        assert row["path"] == str(out / "clips" / f"{EVENT}_{clip}.mp4")
        assert row["num_frames"] == frames and row["fps"] == 10
        assert first_frame_id(row["path"]) == first
    # A second run reuses the cut clips.
    stamp = (out / "clips" / f"{EVENT}_A_0001_0002.mp4").stat().st_mtime_ns
    with pytest.raises(EmptyClassError):
        prepare("finegym", gym, "gym99", out)
    assert (out / "clips" / f"{EVENT}_A_0001_0002.mp4").stat().st_mtime_ns == stamp


# MPII Cooking 2 ------------------------------------------------------------------------------


@pytest.fixture
def mpii(tmp_path) -> Path:
    root = tmp_path / "mpii"
    setup = root / "experimentalSetup"
    setup.mkdir(parents=True)
    (setup / "sequencesTrainAttr.txt").write_text("s08-d02\n")
    (setup / "sequencesVal.txt").write_text("s09-d03 \n")
    (setup / "sequencesTest.txt").write_text("s10-d04\n\n")
    (root / "annotations.csv").write_text(
        "sequence,start_frame,end_frame,activity\n"
        "s08-d02-cam-002,0,9,cut apart\n"
        "s08-d02,20,29,peel\n"
        "s09-d03,0,5,peel\n"
        "s10-d04, 10, 19 ,cut apart\n"
        "s10-d04,100,110,peel\n"
        "s99-d99,0,5,wash\n"
    )
    write_video(root / "videos" / "s08-d02-cam-002.avi", 30, fps=20)
    write_video(root / "videos" / "s10-d04-cam-002.avi", 30, fps=20)
    return root


def test_mpii_index(mpii):
    t = index("mpii_cooking2", mpii, "test")
    assert t.groupby("subset").size().to_dict() == {"test": 2, "train": 2, "val": 1}
    assert dict(zip(t["class_name"], t["label"], strict=False)) == {"cut apart": 0, "peel": 1}
    # 0-based frames with an inclusive end at 20 fps.
    peel = t[t["clip_id"] == "s08-d02-cam-002_20"].iloc[0]
    assert (peel["start_sec"], peel["end_sec"]) == (1.0, 1.5)
    assert peel["path"] == str((mpii / "videos" / "s08-d02-cam-002.avi").resolve())
    assert math.isnan(t[t["subset"] == "val"].iloc[0]["start_sec"])  # its video is missing


def test_mpii_prepare_cuts_segments(mpii, tmp_path):
    out = tmp_path / "prepared"
    with pytest.raises(EmptyClassError, match="class 'peel' has no readable test video left"):
        prepare("mpii_cooking2", mpii, "test", out, short_side=16)
    report = json.loads((out / "prepare_report.json").read_text())
    assert counts(report) == (5, 4, 3, 3)
    # A segment past the end of its 30-frame video cannot be cut; it is reported (and fatal
    # here only because it was peel's one test segment).
    [beyond] = report["unreadable"]
    assert beyond["path"].endswith("s10-d04-cam-002.avi [s10-d04-cam-002_100]")
    assert beyond["reason"].startswith("cannot cut [5.000, 5.550) s: no frames")
    assert report["missing"] == [str((mpii / "videos" / "s09-d03-cam-002.avi").resolve())]
    m = pd.read_csv(out / "manifest.csv").set_index("clip_id")
    assert (m["num_frames"] == 10).all() and (m["width"] == 16).all() and (m["height"] == 16).all()
    firsts = {c: first_frame_id(p) for c, p in m["path"].items()}
    assert firsts == {"s08-d02-cam-002_0": 0, "s08-d02-cam-002_20": 20, "s10-d04-cam-002_10": 10}


def write_matlab_v73(path: Path, annos: dict) -> Path:
    """A MATLAB v7.3 file as MATLAB writes one: HDF5 after a 512-byte text header, strings and cell
    arrays as uint16 characters behind object references in #refs#, numbers as (1, N) doubles."""
    with h5py.File(path, "w", userblock_size=512) as mat:
        group, refs = mat.create_group("annos"), mat.create_group("#refs#")
        for name, values in annos.items():
            if isinstance(values[0], str):
                cells = []
                for i, text in enumerate(values):
                    chars = np.array([[ord(c)] for c in text], dtype=np.uint16)
                    cells.append(refs.create_dataset(f"{name}_{i}", data=chars).ref)
                group.create_dataset(name, data=np.array([cells], dtype=h5py.ref_dtype))
            else:
                group.create_dataset(name, data=np.array([values], dtype=np.float64))
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Nov 30 2026 HDF5 schema")
    return path


def test_mpii_official_mat_annotations_index_like_the_csv(mpii):
    # The fixture's CSV rows, as the official file stores them: per-video file map, 1-based frames.
    write_matlab_v73(
        mpii / "attributesAnnotations_MPII-Cooking-2.mat",
        {
            "annoFileMap": [
                "/BS/cooking2/tsv/s08-d02-cam-002.tsv",
                "/BS/cooking2/tsv/s09-d03-cam-002.tsv",
                "/BS/cooking2/tsv/s10-d04-cam-002.tsv",
                "/BS/cooking2/tsv/s99-d99-cam-002.tsv",
            ],
            "activity": ["cut apart", "peel", "peel", "cut apart", "peel", "wash"],
            "fileId": [1, 1, 2, 3, 3, 4],
            "startFrame": [1, 21, 1, 11, 101, 1],
            "endFrame": [10, 30, 6, 20, 111, 6],
        },
    )
    from_csv = index("mpii_cooking2", mpii, "test")
    from_mat = index(
        "mpii_cooking2", mpii, "test", annotations="attributesAnnotations_MPII-Cooking-2.mat"
    )
    pd.testing.assert_frame_equal(from_mat, from_csv)


def test_mpii_mat_errors_name_the_file(mpii):
    (mpii / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(ValueError, match=r"broken\.mat is not a MATLAB v7\.3 \(HDF5\) file"):
        index("mpii_cooking2", mpii, "test", annotations="broken.mat")
    write_matlab_v73(mpii / "other.mat", {"activity": ["peel"], "fileId": [1]})
    with pytest.raises(
        ValueError, match=r"other\.mat has no annos\.annoFileMap, annos\.startFrame"
    ):
        index("mpii_cooking2", mpii, "test", annotations="other.mat")


def test_mpii_errors(mpii):
    with pytest.raises(ValueError, match="split must be 'test'"):
        index("mpii_cooking2", mpii, 1)
    (mpii / "annotations.csv").write_text("s08-d02,0,x,peel\n")
    with pytest.raises(ValueError, match=r"annotations\.csv line 1"):
        index("mpii_cooking2", mpii, "test")
    with pytest.raises(FileNotFoundError, match=r"annotation file.*mpi-inf\.mpg\.de"):
        index("mpii_cooking2", mpii, "test", annotations="other.csv")
    (mpii / "experimentalSetup" / "sequencesVal.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sequencesVal\.txt"):
        index("mpii_cooking2", mpii, "test")


# video_list: your own videos in PySlowFast's list files --------------------------------------


@pytest.fixture
def video_list(tmp_path) -> Path:
    """Three classes; labels as listed (not in the names' order); one val list; one video of
    class 2 listed in test but missing."""
    root = tmp_path / "mine"
    for name in ("a0", "a1", "b0", "b1", "c0", "c1 copy"):
        write_video(root / "clips" / f"{name}.mp4", 12)
    (root / "lists").mkdir()
    (root / "lists" / "train.csv").write_text("a0.mp4 2\nb0.mp4 0\n\n# a comment\nc0.mp4 1\n")
    (root / "lists" / "val.csv").write_text("a1.mp4,2\n")
    (root / "lists" / "test.csv").write_text("a1.mp4 2\nb1.mp4  0\nc1 copy.mp4 , 1\nc2.mp4 1\n")
    (root / "lists" / "names.txt").write_text("zebra\napple\nmango\n\n")
    return root


VL_PATHS = {"list_dir": "lists", "video_dir": "clips", "classes": "names.txt"}


def test_video_list_index_keeps_the_listed_labels(video_list):
    t = index("video_list", video_list, "1", **VL_PATHS)
    assert list(t.columns) == COLUMNS
    assert t.groupby("subset").size().to_dict() == {"test": 4, "train": 3, "val": 1}
    assert dict(zip(t["class_name"], t["label"], strict=False)) == {
        "zebra": 0,
        "apple": 1,
        "mango": 2,
    }
    first = t.iloc[0]
    assert (first["path"], first["class_name"], first["subset"]) == (
        str((video_list / "clips" / "a0.mp4").resolve()),
        "mango",
        "train",
    )
    assert str((video_list / "clips" / "c1 copy.mp4").resolve()) in set(t["path"])
    assert t["start_sec"].isna().all()
    # Without a classes file class k is class_<k>; the labels stay as listed.
    t = index("video_list", video_list, 1, list_dir="lists", video_dir="clips")
    assert dict(zip(t["class_name"], t["label"], strict=False)) == {
        "class_0": 0,
        "class_1": 1,
        "class_2": 2,
    }
    assert list_files("video_list", video_list, "1", **VL_PATHS) == [
        str(video_list / "lists" / name)
        for name in ("names.txt", "test.csv", "train.csv", "val.csv")
    ]
    assert video_folders("video_list", video_list, **VL_PATHS) == [video_list / "clips"]


def test_video_list_defaults_splits_and_absolute_paths(video_list, tmp_path):
    root = tmp_path / "flat"  # the default layout: lists and videos in the root
    write_video(root / "x.mp4", 6)
    elsewhere = write_video(tmp_path / "elsewhere" / "y.mp4", 6)
    (root / "train.csv").write_text(f"x.mp4 0\n{elsewhere} 1\n")
    (root / "test.csv").write_text("x.mp4 0\nx.mp4 1\n")
    t = index("video_list", root)
    assert set(t["subset"]) == {"train", "test"}  # no val.csv: load_splits uses test
    assert str(elsewhere.resolve()) in set(t["path"])
    with pytest.raises(ValueError, match=r"split '2'.*hold one split, '1'.*\{split\}"):
        index("video_list", root, 2)
    for k in (1, 2):
        (root / f"train{k}.csv").write_text(f"x.mp4 0\nx.mp4 {k}\n")
    names = {"train_list": "train{split}.csv", "test_list": "test.csv"}
    assert index("video_list", root, 2, **names)["label"].max() == 2
    assert list_files("video_list", root, "2", **names) == [
        str(root / "test.csv"),
        str(root / "train2.csv"),
    ]


def test_video_list_errors_name_the_file_and_the_fix(video_list):
    lists = video_list / "lists"
    with pytest.raises(
        ValueError, match=r"train\.csv line 2: label 3 is out of range of .*names\.txt \(3 classes"
    ):
        (lists / "train.csv").write_text("a0.mp4 2\nb0.mp4 3\n")
        index("video_list", video_list, 1, **VL_PATHS)
    (lists / "train.csv").write_text("a0.mp4 2\nb0.mp4 0 12\n")
    with pytest.raises(ValueError, match=r"train\.csv line 2: expected '<path> <label>'"):
        index("video_list", video_list, 1, **VL_PATHS)
    (lists / "train.csv").write_text("a0.mp4 two\n")
    with pytest.raises(ValueError, match=r"train\.csv line 1: expected"):
        index("video_list", video_list, 1, **VL_PATHS)
    (lists / "train.csv").write_text("a0.mp4 2\nb0.mp4 0\n")  # no video of apple (label 1) left
    (lists / "test.csv").write_text("a1.mp4 2\n")
    (lists / "val.csv").unlink()
    with pytest.raises(ValueError, match=r"no video of label 1 \(apple\).*names\.txt"):
        index("video_list", video_list, 1, **VL_PATHS)
    (lists / "names.txt").write_text("zebra\n\nmango\n")
    with pytest.raises(ValueError, match=r"names\.txt line 2 is blank"):
        index("video_list", video_list, 1, **VL_PATHS)
    with pytest.raises(FileNotFoundError, match=r"classes file not found: .*other\.txt"):
        index("video_list", video_list, 1, **VL_PATHS | {"classes": "other.txt"})
    (lists / "names.txt").write_text("zebra\napple\nmango\n")
    (lists / "test.csv").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"test list \(paths\.test_list\) not found: .*test\.csv.*'<path> <label>'",
    ):
        index("video_list", video_list, 1, **VL_PATHS)
    with pytest.raises(TypeError, match="unknown path option"):
        index("video_list", video_list, 1, label_file="x")


def test_video_list_prepare_reports_the_missing_video(video_list, tmp_path):
    report = prepare("video_list", video_list, "1", tmp_path / "out", **VL_PATHS)
    assert counts(report) == (8, 7, 7, 0)
    assert report["missing"] == [str((video_list / "clips" / "c2.mp4").resolve())]
    assert report["num_classes"] == 3 and report["emptied_classes"] == []
    assert report["per_class"]["test"] == {"apple": 1, "mango": 1, "zebra": 1}
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert dict(zip(manifest["class_name"], manifest["label"], strict=False)) == {
        "zebra": 0,
        "apple": 1,
        "mango": 2,
    }
    assert (manifest["num_frames"] == 12).all()


# SynthMotion ---------------------------------------------------------------------------------


def test_prepare_shrinks_whole_videos_larger_than_short_side_once(tmp_path):
    root = tmp_path / "synth"
    rows = []
    for i, (cls, subset, size) in enumerate(
        [("up", "train", (48, 64)), ("down", "train", (16, 16)), ("up", "test", (48, 64))]
    ):
        name = f"videos/{cls}_{i}.mp4"
        write_video(root / name, 6, size=size)
        rows.append((name, {"down": 0, "up": 1}[cls], cls, 1, subset))
    pd.DataFrame(rows, columns=["path", "label", "class_name", "split", "subset"]).to_csv(
        root / "manifest.csv", index=False
    )
    report = prepare("synthmotion", root, 1, tmp_path / "out", short_side=24)
    assert report["videos_resized"] == 2 and report["readable"] == 3 and report["clips_cut"] == 0
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    resized = manifest[manifest["path"].str.contains("/out/resized/")]
    assert len(resized) == 2 and set(zip(resized["height"], resized["width"], strict=True)) == {
        (24, 32)
    }
    small = manifest[~manifest.index.isin(resized.index)]
    assert small["path"].tolist() == [str((root / "videos/down_1.mp4").resolve())]
    assert (manifest["num_frames"] == 6).all()
    # A second preparation re-encodes nothing that is already there.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "resized").iterdir()}
    prepare("synthmotion", root, 1, tmp_path / "out", short_side=24)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "resized").iterdir()} == before


def test_synthmotion_index_and_prepare(tmp_path):
    root = tmp_path / "synth"
    rows = []
    for split in (1, 2):
        for i, (cls, subset) in enumerate([("up", "train"), ("down", "train"), ("up", "test")]):
            name = f"videos/{cls}_{split}_{i}.mp4"
            write_video(root / name, 6)
            rows.append((name, {"down": 0, "up": 1}[cls], cls, split, subset))
    pd.DataFrame(rows, columns=["path", "label", "class_name", "split", "subset"]).to_csv(
        root / "manifest.csv", index=False
    )
    t = index("synthmotion", root, 2)
    assert len(t) == 3 and t["path"].str.contains("_2_").all()
    assert t["path"].map(lambda p: Path(p).is_absolute() and Path(p).exists()).all()
    assert dict(zip(t["class_name"], t["label"], strict=False)) == {"down": 0, "up": 1}
    report = prepare("synthmotion", root, 2, tmp_path / "out")
    assert report["readable"] == 3 and report["missing"] == [] and report["unreadable"] == []
    with pytest.raises(ValueError, match="split 3 not in"):
        index("synthmotion", root, 3)
    (root / "manifest.csv").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"manifest\.csv.*vmp\.data\.synth\.generate.*synth_data"
    ):
        index("synthmotion", root, 1)


# The prepare_data rule: one line per dataset on the terminal -------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _prepare_config(tmp_path: Path, hmdb: Path) -> Path:
    """The paper profile reduced to HMDB-51 split 1 at ``hmdb`` and one tiny backbone, whose
    Kinetics checkpoint is a freshly initialised x3d_tiny (it fits, so the checks pass)."""
    from vmp.models import create_model, save_checkpoint

    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config["results"], config["data_root"] = str(tmp_path / "results"), str(tmp_path / "data")
    config["datasets"] = {"hmdb51": config["datasets"]["hmdb51"] | {"root": str(hmdb)}}
    config["datasets"]["hmdb51"]["splits"] = ["1"]
    config["backbones"] = {"x3d_tiny": {"variants": ["baseline"]}}
    config["ablation"] = None
    checkpoint = save_checkpoint(create_model("x3d_tiny", 400), tmp_path / "x3d_tiny.pyth")
    config["pretrain"]["checkpoints"] = {"x3d_tiny": str(checkpoint)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_prepare_data_rule_prints_one_summary_line(hmdb, tmp_path):
    config = _prepare_config(tmp_path, hmdb)
    out = tmp_path / "results" / "data" / "hmdb51" / "1"

    def run():
        return subprocess.run(
            ["snakemake", "--cores", "1", str(out / "manifest.csv"), "--configfile", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    failed = run()  # two classes lose their only train / test video: the pre-flight says so
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert said.count("problems in the datasets' lists and videos") == 1
    assert "split 1: class catch has no readable train video" in said
    assert "split 1: class cartwheel has no readable test video" in said
    assert "rule prepare_data" not in said and not out.exists()  # before any job

    for cls, name in (("catch", "a"), ("cartwheel", "b")):
        write_video(hmdb / "videos" / cls / f"{cls}_{name}.avi", 40)
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    line = (
        "prepare_data hmdb51 split 1: 6 of 6 listed videos found, 0 missing, 0 unreadable, "
        f"6 readable (report: {out / 'prepare_report.md'})"
    )
    assert [x for x in done.stderr.splitlines() if x.startswith("prepare_data hmdb51")] == [line]


@pytest.mark.slow
def test_prepare_data_reruns_when_a_list_or_a_video_changes(hmdb, tmp_path):
    for cls, name in (("catch", "a"), ("cartwheel", "b")):  # every class keeps a readable pair
        write_video(hmdb / "videos" / cls / f"{cls}_{name}.avi", 40)
    config = _prepare_config(tmp_path, hmdb)
    manifest = tmp_path / "results" / "data" / "hmdb51" / "1" / "manifest.csv"

    def snakemake(*args):
        done = subprocess.run(
            ["snakemake", "--cores", "1", str(manifest), "--configfile", str(config), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    snakemake()
    assert "Nothing to be done" in snakemake("-n")
    split = hmdb / "testTrainMulti_7030_splits" / "catch_test_split1.txt"
    split.write_text(split.read_text().replace("catch_c.avi 0", "catch_c.avi 1"))  # a list edited
    assert "rule prepare_data" in snakemake("-n")
    snakemake()
    assert len(pd.read_csv(manifest)) == 7  # catch_c.avi is a training video now
    assert "Nothing to be done" in snakemake("-n")
    write_video(hmdb / "videos" / "kick" / "catch_b.avi", 40)  # a video added (unlisted)
    assert "rule prepare_data" in snakemake("-n")
    snakemake()
    write_video(hmdb / "videos" / "catch" / "catch_b.avi", 20)  # a video replaced
    planned = snakemake("-n")
    assert "rule prepare_data" in planned and "rule check_inputs" not in planned
