"""vmp.fetch against a real HTTP server on 127.0.0.1 serving fixture files made here.

The catalogue's own URLs are never contacted: every test passes entries pointing at the server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import tarfile
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from vmp import fetch as F
from vmp.data.sources import LAYOUT
from vmp.io import FetchedFileChanged, check_fetched

ROOT = Path(__file__).resolve().parents[1]

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """GET of ``server.files[path]``, honouring ``Range: bytes=N-``; a path in ``server.cut``
    is answered once with its full Content-Length but only that many bytes, then closed."""

    def do_GET(self):  # noqa: N802
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if (limit := self.server.cut.pop(self.path, None)) is not None:
            body = body[:limit]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.cut, httpd.requests = {}, {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def serve(server, name: str, data: bytes) -> str:
    server.files[f"/{name}"] = data
    return f"{server.url}/{name}"


def quiet(_: str) -> None:
    pass


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def rar4(entries: dict[str, bytes]) -> bytes:
    """A RAR 4 archive of stored (uncompressed) files: marker, archive header, file blocks."""

    def block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
        head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, bytes(6))
    for name, data in entries.items():
        raw = name.encode()
        fields = (len(data), len(data), 3, zlib.crc32(data), 20513 << 16, 20, 0x30, len(raw))
        body = struct.pack("<IIBIIBBHI", *fields, 0o100644) + raw
        out += block(0x74, 0x8000, body, data)
    return out + block(0x7B, 0x4000, b"")


# --- downloads ----------------------------------------------------------------------------------


def test_fetch_verifies_and_places_the_file(server, tmp_path):
    url = serve(server, "model.pyth", PAYLOAD)
    file = F.File("model.pyth", (url,), sha256=sha256(PAYLOAD))
    path = F.download(file, tmp_path, log=quiet)
    assert path == tmp_path / "model.pyth"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.pyth.part").exists()
    assert not (tmp_path / F.LOCK_NAME).exists()


def test_md5_pin_is_verified(server, tmp_path):
    url = serve(server, "splits.rar", PAYLOAD)
    file = F.File("splits.rar", (url,), md5=hashlib.md5(PAYLOAD).hexdigest())
    assert F.download(file, tmp_path, log=quiet).read_bytes() == PAYLOAD


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    url = serve(server, "big.bin", PAYLOAD)
    server.cut["/big.bin"] = 30_000
    messages = []
    path = F.download(
        F.File("big.bin", (url,), sha256=sha256(PAYLOAD)), tmp_path, log=messages.append
    )
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=30000-")]
    assert any("interrupted after 30000 bytes; resuming" in m for m in messages)


def test_interruption_past_retries_keeps_the_part_and_the_next_call_resumes(server, tmp_path):
    url = serve(server, "big.bin", PAYLOAD)
    file = F.File("big.bin", (url,), sha256=sha256(PAYLOAD))
    server.cut["/big.bin"] = 10_000
    with pytest.raises(F.FetchError, match="interrupted after 10000 bytes.*kept: fetch again"):
        F.download(file, tmp_path, retries=0, log=quiet)
    assert (tmp_path / "big.bin.part").stat().st_size == 10_000
    assert not (tmp_path / "big.bin").exists()
    assert F.download(file, tmp_path, log=quiet).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/big.bin", "bytes=10000-")


def test_checksum_mismatch_names_url_and_digests_and_leaves_nothing(server, tmp_path):
    url = serve(server, "model.pyth", PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(F.ChecksumMismatch) as info:
        F.download(F.File("model.pyth", (url,), sha256=wrong), tmp_path, log=quiet)
    message = str(info.value)
    assert url in message and wrong in message and sha256(PAYLOAD) in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_missing_file_names_the_url(server, tmp_path):
    url = f"{server.url}/nowhere.pyth"
    with pytest.raises(F.FetchError, match=rf"not found \(HTTP 404\): {url}$"):
        F.download(F.File("nowhere.pyth", (url,), sha256="0" * 64), tmp_path, log=quiet)
    assert list(tmp_path.iterdir()) == []


def test_second_url_is_tried_when_the_first_is_missing(server, tmp_path):
    url = serve(server, "mirror.bin", PAYLOAD)
    file = F.File("mirror.bin", (f"{server.url}/gone.bin", url), sha256=sha256(PAYLOAD))
    assert F.download(file, tmp_path, log=quiet).read_bytes() == PAYLOAD


def test_present_file_with_the_right_checksum_is_not_downloaded(server, tmp_path):
    url = serve(server, "model.pyth", PAYLOAD)
    (tmp_path / "model.pyth").write_bytes(PAYLOAD)
    messages = []
    F.download(F.File("model.pyth", (url,), sha256=sha256(PAYLOAD)), tmp_path, log=messages.append)
    assert server.requests == []
    assert messages == [f"present {tmp_path / 'model.pyth'}"]


def test_present_file_with_a_wrong_checksum_is_reported_not_replaced(server, tmp_path):
    url = serve(server, "model.pyth", PAYLOAD)
    (tmp_path / "model.pyth").write_bytes(b"other")
    with pytest.raises(F.ChecksumMismatch, match="is present but its sha256 is .* remove it"):
        F.download(F.File("model.pyth", (url,), sha256=sha256(PAYLOAD)), tmp_path, log=quiet)
    assert (tmp_path / "model.pyth").read_bytes() == b"other"
    assert server.requests == []


def test_trust_on_first_use_records_then_verifies(server, tmp_path):
    url = serve(server, "zoo.pyth", PAYLOAD)
    file = F.File("zoo.pyth", (url,))
    with pytest.warns(UserWarning, match="no checksum is pinned.*recorded sha256"):
        F.download(file, tmp_path, log=quiet)
    lock = json.loads((tmp_path / F.LOCK_NAME).read_text())
    assert lock == {"zoo.pyth": {"sha256": sha256(PAYLOAD), "size": len(PAYLOAD), "url": url}}

    (tmp_path / "zoo.pyth").unlink()
    F.download(file, tmp_path, log=quiet)  # same bytes: verified against the record
    server.files["/zoo.pyth"] = b"changed upstream"
    (tmp_path / "zoo.pyth").unlink()
    with pytest.raises(F.ChecksumMismatch, match=f"lock file {tmp_path / F.LOCK_NAME}"):
        F.download(file, tmp_path, log=quiet)
    assert not (tmp_path / "zoo.pyth").exists() and not (tmp_path / "zoo.pyth.part").exists()


def test_lock_path_given_by_the_caller(server, tmp_path):
    url = serve(server, "zoo.pyth", PAYLOAD)
    lock = tmp_path / "locks" / "fetch.json"
    with pytest.warns(UserWarning):
        F.download(F.File("zoo.pyth", (url,)), tmp_path / "dest", lock=lock, log=quiet)
    assert json.loads(lock.read_text())["zoo.pyth"]["sha256"] == sha256(PAYLOAD)
    assert not (tmp_path / "dest" / F.LOCK_NAME).exists()


def test_first_use_warning_is_given_once(server, tmp_path, capsys):
    url = serve(server, "zoo.pyth", PAYLOAD)
    item = F.Item("zoo", base="checkpoints", files=(F.File("zoo.pyth", (url,)),))
    with pytest.warns(UserWarning, match="recorded sha256") as warned:
        assert F.main(["zoo", "--checkpoints", str(tmp_path / "ck")], catalogue={"zoo": item}) == 0
    console = capsys.readouterr()
    assert len(warned) == 1 and "recorded sha256" not in console.out + console.err
    messages = []  # a log of its own (the workflow's log file) gets it as well, once
    with pytest.warns(UserWarning, match="recorded sha256"):
        F.download(F.File("zoo.pyth", (url,)), tmp_path / "other", log=messages.append)
    assert sum("recorded sha256" in m for m in messages) == 1


def recorded_file(tmp_path, name="zoo.pyth", data=PAYLOAD) -> Path:
    """A local file <tmp>/checkpoints/<name>, recorded in that folder's .fetch-lock.json as a
    first fetch records it."""
    dest = tmp_path / "checkpoints"
    path = dest / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    url = f"https://example.org/{name}"
    with pytest.warns(UserWarning, match="recorded sha256"):
        F._record(F.File(name, (url,)), path, dest / F.LOCK_NAME, url, quiet)
    return path


def test_a_fetched_file_is_checked_against_its_record(tmp_path):
    path = recorded_file(tmp_path)
    assert check_fetched(path) is True
    path.write_bytes(b"another checkpoint copied over it")
    with pytest.raises(FetchedFileChanged) as err:
        check_fetched(path)
    message = str(err.value)
    assert str(path) in message and f"33 bytes, not the {len(PAYLOAD)} recorded" in message
    assert "Fix: remove" in message and "remove the entry 'zoo.pyth'" in message
    path.write_bytes(PAYLOAD[::-1])  # same size, other bytes
    with pytest.raises(FetchedFileChanged, match=f"sha256 {sha256(PAYLOAD[::-1])}, not"):
        check_fetched(path)


def test_a_file_in_a_subfolder_and_a_file_without_record(tmp_path):
    weights = recorded_file(tmp_path, "timesformer-base-finetuned-k400/pytorch_model.bin")
    assert check_fetched(weights) is True
    weights.write_bytes(b"x")
    with pytest.raises(FetchedFileChanged, match="'timesformer-base-finetuned-k400/pytorch_"):
        check_fetched(weights)
    (tmp_path / "checkpoints" / "mine.pyth").write_bytes(b"placed by hand, never fetched")
    assert check_fetched(tmp_path / "checkpoints" / "mine.pyth") is False
    assert check_fetched(tmp_path / "elsewhere.pyth") is False


def test_loading_a_replaced_checkpoint_names_the_file(tmp_path):
    import torch

    from vmp.models import create_model, load_pretrained

    model = create_model("c2d_tiny", 5)
    path = tmp_path / "checkpoints" / "C2D_8x8_R50.pyth"
    path.parent.mkdir()
    torch.save({"model_state": model.backbone.state_dict()}, path)
    recorded_file(tmp_path, "C2D_8x8_R50.pyth", path.read_bytes())
    load_pretrained(create_model("c2d_tiny", 5), path)  # as recorded: loads
    torch.save({"model_state": create_model("c2d_tiny", 5).backbone.state_dict()}, path)
    with pytest.raises(FetchedFileChanged, match="C2D_8x8_R50.pyth is not the file vmp.fetch"):
        load_pretrained(create_model("c2d_tiny", 5), path)


# --- extraction ---------------------------------------------------------------------------------


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def item_with_archive(server, name: str, data: bytes, into: str, nested: bool = False) -> F.Item:
    url = serve(server, name, data)
    return F.Item(
        "toy",
        files=(F.File(f"archives/{name}", (url,), sha256=sha256(data)),),
        unpack=(F.Unpack(f"archives/{name}", into, nested=nested),),
    )


@pytest.mark.parametrize(
    ("name", "pack"), [("splits.zip", zip_bytes), ("splits.tar.gz", tar_gz_bytes)]
)
def test_extraction_lands_in_the_layout_once(server, tmp_path, name, pack):
    split_dir = LAYOUT["hmdb51"]["split_dir"]
    data = pack({f"{split_dir}/run_test_split1.txt": b"a.avi 1\n", f"{split_dir}/x.txt": b"x"})
    item = item_with_archive(server, name, data, split_dir)
    produced = F.fetch("toy", tmp_path, catalogue={"toy": item}, log=quiet)
    into = tmp_path / "toy" / split_dir
    assert produced == [tmp_path / "toy" / "archives" / name, into]
    assert (into / "run_test_split1.txt").read_text() == "a.avi 1\n"
    assert (into / F.MARKER).is_file()
    assert [p.name for p in (tmp_path / "toy").iterdir() if p.name.startswith(".")] == []

    (into / "run_test_split1.txt").write_text("edited")  # proves it is not extracted again
    messages = []
    F.fetch("toy", tmp_path, catalogue={"toy": item}, log=messages.append)
    assert (into / "run_test_split1.txt").read_text() == "edited"
    assert f"present {into} (extracted from {name})" in messages
    assert len(server.requests) == 1


def test_interrupted_extraction_leaves_nothing_and_is_redone(server, tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(zip_bytes({"a.txt": b"a"})[:-30])
    with pytest.raises(F.FetchError, match="could not extract"):
        F.extract(archive, tmp_path / "out", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zip"]
    (tmp_path / ".out.dead.extracting").mkdir()  # leftover of a killed process
    archive.write_bytes(zip_bytes({"a.txt": b"a"}))
    F.extract(archive, tmp_path / "out", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zip", "out"]


def test_existing_folder_not_made_by_fetch_is_left_alone(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"a.txt": b"a"}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("mine")
    with pytest.raises(F.FetchError, match="was not extracted by vmp.fetch"):
        F.extract(archive, tmp_path / "out", log=quiet)
    assert files_under(tmp_path / "out") == ["mine.txt"]


def hmdb_like_rar() -> bytes:
    classes = {
        name: rar4({f"{name}/{name}_{i}.avi": f"{name}{i}".encode() for i in range(2)})
        for name in ("brush_hair", "cartwheel")
    }
    return rar4({f"{name}.rar": data for name, data in classes.items()})


@pytest.mark.skipif(F.rar_tool() is None, reason="no RAR extractor (bsdtar, 7z, unrar) here")
def test_nested_rar_becomes_one_folder_per_class(server, tmp_path):
    video_dir = LAYOUT["hmdb51"]["video_dir"]
    item = item_with_archive(server, "hmdb51_org.rar", hmdb_like_rar(), video_dir, nested=True)
    F.fetch("toy", tmp_path, catalogue={"toy": item}, log=quiet)
    assert files_under(tmp_path / "toy" / video_dir) == [
        F.MARKER,
        "brush_hair/brush_hair_0.avi",
        "brush_hair/brush_hair_1.avi",
        "cartwheel/cartwheel_0.avi",
        "cartwheel/cartwheel_1.avi",
    ]
    assert (
        tmp_path / "toy" / video_dir / "cartwheel/cartwheel_1.avi"
    ).read_bytes() == b"cartwheel1"


def test_rar_without_an_extractor_says_how_to_install_one(server, tmp_path, monkeypatch):
    monkeypatch.setattr(F.shutil, "which", lambda name: None)
    item = item_with_archive(server, "hmdb51_org.rar", hmdb_like_rar(), "videos", nested=True)
    with pytest.raises(F.FetchError) as info:
        F.fetch("toy", tmp_path, catalogue={"toy": item}, log=quiet)
    message = str(info.value)
    assert "no RAR extractor" in message and "apt-get install libarchive-tools" in message
    assert "unrar-free" in message and "the archive is kept" in message
    assert (tmp_path / "toy" / "archives" / "hmdb51_org.rar").is_file()
    assert not (tmp_path / "toy" / "videos").exists()


# --- items and the command line -----------------------------------------------------------------


def test_unfetchable_item_names_the_page_and_the_layout(tmp_path):
    with pytest.raises(F.Unfetchable) as info:
        F.fetch("mpii_cooking2", tmp_path / "data", catalogue=F.CATALOGUE, log=quiet)
    message = str(info.value)
    assert "mpii-cooking-2-dataset" in message
    assert f"{tmp_path / 'data'}/mpii_cooking2" in message
    assert "videos/<sequence>-cam-002.avi" in message and "sequencesTest.txt" in message
    assert list(tmp_path.iterdir()) == []


def test_cli_exit_is_nonzero_only_when_the_unfetchable_item_was_asked_for(server, tmp_path, capsys):
    url = serve(server, "zoo.pyth", PAYLOAD)
    catalogue = {
        "checkpoints": F.Item(
            "checkpoints", base="checkpoints", files=(F.File("zoo.pyth", (url,), sha256(PAYLOAD)),)
        ),
        "mpii_cooking2": F.CATALOGUE["mpii_cooking2"],
    }
    args = ["--root", str(tmp_path / "data"), "--checkpoints", str(tmp_path / "ckpt")]
    assert F.main([*args, "mpii_cooking2"], catalogue) == 1
    assert "mpi-inf.mpg.de" in capsys.readouterr().err
    assert F.main([*args, "all"], catalogue) == 0
    assert (tmp_path / "ckpt" / "zoo.pyth").read_bytes() == PAYLOAD
    assert "is not fetched" in capsys.readouterr().err


def test_cli_reports_a_failed_download(server, tmp_path, capsys):
    catalogue = {"toy": F.Item("toy", files=(F.File("a", (f"{server.url}/missing",), "0" * 64),))}
    assert F.main(["--root", str(tmp_path), "toy"], catalogue) == 1
    assert f"toy: error: not found (HTTP 404): {server.url}/missing" in capsys.readouterr().err


def test_finegym_fetches_annotations_and_notes_the_videos(server, tmp_path):
    files = tuple(
        F.File(f.name, (serve(server, f.name, f.name.encode()),), sha256(f.name.encode()))
        for f in F.CATALOGUE["finegym"].files
    )
    toy = F.Item("finegym", files=files, manual=F.CATALOGUE["finegym"].manual)
    messages = []
    produced = F.fetch("finegym", tmp_path, catalogue={"finegym": toy}, log=messages.append)
    assert sorted(p.name for p in produced) == sorted(
        ["gym99_train_element_v1.1.txt", "gym99_val_element.txt",
         "finegym_annotation_info_v1.1.json", "gym99_categories.txt"]
    )  # fmt: skip
    assert all(p.parent == tmp_path / "finegym" for p in produced)
    assert any(
        m.startswith("note: FineGym's videos") and "clips/<element id>.mp4" in m for m in messages
    )


def test_cli_list_prints_the_catalogue(capsys):
    assert F.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_M.pyth" in out
    assert F.TIMESFORMER_REVISIONS["k400"] in out and "recorded on first use" in out
    assert "md5 15e67781e70dcfbdce2d7dbb9b3344b5" in out
    assert "unpack archives/hmdb51_org.rar -> videos" in out
    assert "not fetched: MPII Cooking 2" in out


def test_catalogue_urls_are_https_and_revisions_pinned():
    for item in F.CATALOGUE.values():
        for f in item.files:
            assert all(url.startswith("https://") for url in f.urls)
            assert "/resolve/main/" not in " ".join(f.urls)


# --- what a profile fetches (the workflow's `fetch` checkpoint) ---------------------------------


def test_fetch_only_the_named_files_and_their_archives(server, tmp_path):
    split_dir = LAYOUT["hmdb51"]["split_dir"]
    data = zip_bytes({f"{split_dir}/run_test_split1.txt": b"a.avi 1\n"})
    archive = F.File("archives/splits.zip", (serve(server, "splits.zip", data),), sha256(data))
    videos = F.File("archives/videos.zip", (serve(server, "videos.zip", b"never"),))
    item = F.Item(
        "toy",
        files=(videos, archive),
        unpack=(
            F.Unpack("archives/videos.zip", LAYOUT["hmdb51"]["video_dir"]),
            F.Unpack("archives/splits.zip", split_dir),
        ),
    )
    names = ["archives/splits.zip"]
    F.fetch("toy", tmp_path, catalogue={"toy": item}, names=names, log=quiet)
    assert files_under(tmp_path / "toy") == [
        "archives/splits.zip", f"{split_dir}/{F.MARKER}", f"{split_dir}/run_test_split1.txt"
    ]  # fmt: skip
    assert [path for path, _ in server.requests] == ["/splits.zip"]


def paper_like(tmp_path, **datasets):
    checkpoints = tmp_path / "checkpoints"
    return {
        "data_root": str(tmp_path / "data"),
        "datasets": datasets,
        "backbones": {"i3d_r50": {}, "timesformer": {}, "x3d_m": {}},
        "pretrain": {
            "checkpoints": {
                "i3d_r50": str(checkpoints / "I3D_8x8_R50.pyth"),
                "timesformer": str(checkpoints / "timesformer-base-finetuned-k400"),
                "x3d_m": str(tmp_path / "mine" / "x3d.pyth"),  # not a catalogue name
                "c2d_r50": str(checkpoints / "C2D_8x8_R50.pyth"),  # not a backbone here
            }
        },
    }


def test_profile_downloads_plan_only_what_is_missing(tmp_path):
    hmdb = {"format": "hmdb51", "splits": ["1"], "paths": dict(LAYOUT["hmdb51"])}
    gym = {"format": "finegym", "splits": ["gym99"]}
    elsewhere = {"format": "hmdb51", "splits": ["1"], "root": str(tmp_path / "my_hmdb")}
    config = paper_like(tmp_path, hmdb51=hmdb, finegym=gym, other=elsewhere)
    plan = F.profile_downloads(config)
    assert sorted(plan) == ["checkpoints", "finegym", "hmdb51"]  # not the root named my_hmdb
    checkpoints = tmp_path / "checkpoints"
    assert plan["checkpoints"]["checkpoints"] == str(checkpoints)
    assert plan["checkpoints"]["names"] == [
        "I3D_8x8_R50.pyth",
        "timesformer-base-finetuned-k400/config.json",
        "timesformer-base-finetuned-k400/pytorch_model.bin",
    ]
    assert plan["checkpoints"]["provides"] == [
        str(checkpoints / "I3D_8x8_R50.pyth"), str(checkpoints / "timesformer-base-finetuned-k400")
    ]  # fmt: skip
    assert plan["hmdb51"] | {"names": None} == {
        "root": str(tmp_path / "data"),
        "checkpoints": None,
        "names": None,
        "provides": [str(tmp_path / "data" / "hmdb51")],
        "datasets": ["hmdb51"],
    }
    assert plan["hmdb51"]["names"] == ["archives/hmdb51_org.rar", "archives/test_train_splits.rar"]
    # FineGym: its annotations only, so it provides no root (the videos are placed by hand)
    assert plan["finegym"]["provides"] == [] and len(plan["finegym"]["names"]) == 4

    (tmp_path / "data" / "hmdb51" / LAYOUT["hmdb51"]["video_dir"]).mkdir(parents=True)
    (checkpoints / "I3D_8x8_R50.pyth").parent.mkdir()
    (checkpoints / "I3D_8x8_R50.pyth").touch()
    plan = F.profile_downloads(config)
    assert plan["hmdb51"]["names"] == ["archives/test_train_splits.rar"]
    assert plan["checkpoints"]["provides"] == [str(checkpoints / "timesformer-base-finetuned-k400")]
    (tmp_path / "data" / "hmdb51" / LAYOUT["hmdb51"]["split_dir"]).mkdir()
    tf = checkpoints / "timesformer-base-finetuned-k400"
    tf.mkdir()
    (tf / "config.json").touch()
    (tf / "pytorch_model.bin").touch()
    for name in F.FINEGYM_LISTS + F.FINEGYM_ANNOTATIONS:
        (tmp_path / "data" / "finegym").mkdir(exist_ok=True)
        (tmp_path / "data" / "finegym" / name).touch()
    assert F.profile_downloads(config) == {}


def test_fetch_planned_records_what_it_produced(server, tmp_path, monkeypatch):
    url = serve(server, "model.pyth", PAYLOAD)
    toy = F.Item("checkpoints", base="checkpoints", files=(F.File("model.pyth", (url,)),))
    monkeypatch.setitem(F.CATALOGUE, "checkpoints", toy)
    plan = {"root": None, "checkpoints": str(tmp_path / "ck"), "names": ["model.pyth"]}
    with pytest.warns(UserWarning, match="no checksum is pinned"):
        F.fetch_planned("checkpoints", plan, tmp_path / "fetched.json", tmp_path / "fetch.log")
    record = json.loads((tmp_path / "fetched.json").read_text())
    assert record == {"item": "checkpoints", "produced": [str(tmp_path / "ck" / "model.pyth")]}
    log = (tmp_path / "fetch.log").read_text()
    assert "recorded" in log and f"fetched {tmp_path / 'ck' / 'model.pyth'}" in log


def test_a_mirror_is_tried_first_and_verified(server, tmp_path, monkeypatch):
    serve(server, "mirror/model.pyth", PAYLOAD)
    origin = f"{server.url}/origin/model.pyth"  # not served: only the mirror has it
    toy = {"toy": F.Item("toy", files=(F.File("model.pyth", (origin,), sha256(PAYLOAD)),))}
    monkeypatch.setenv(F.MIRROR_ENV, f"{server.url}/mirror/")
    F.fetch("toy", tmp_path, catalogue=toy, log=quiet)
    assert (tmp_path / "toy" / "model.pyth").read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/mirror/model.pyth"]
    server.files["/mirror/other.pyth"] = b"not the pinned bytes"
    bad = {"toy": F.Item("toy", files=(F.File("other.pyth", (origin,), sha256(PAYLOAD)),))}
    with pytest.raises(F.ChecksumMismatch, match="/mirror/other.pyth"):
        F.fetch("toy", tmp_path, catalogue=bad, log=quiet)


@pytest.mark.slow
def test_the_workflow_fetches_a_checkpoint_then_trains_from_it_and_reruns_nothing(server, tmp_path):
    """A profile with `fetch: true` and a catalogue checkpoint name: the fetch job (from a mirror
    on 127.0.0.1) runs before check_inputs and fine-tuning; a second run has nothing to do; a
    removed download is planned again."""
    from vmp.models import create_model, save_checkpoint

    save_checkpoint(create_model("x3d_tiny", 400), tmp_path / "x3d.pt")
    serve(server, "X3D_M.pyth", (tmp_path / "x3d.pt").read_bytes())
    checkpoint = tmp_path / "checkpoints" / "X3D_M.pyth"
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config |= {
        "results": str(tmp_path / "results"),
        "data_root": str(tmp_path / "data"),
        "fetch": True,
        "pretrain": {"dataset": "kinetics", "checkpoints": {"x3d_tiny": str(checkpoint)}},
        "ablation": None,
        "placement": None,
        "prompt_functions": None,
    }
    config["backbones"] = {"x3d_tiny": {"variants": ["baseline"]}}
    config["datasets"] = {"synth_gym": config["datasets"]["synth_gym"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cell = tmp_path / "results/runs/synth_gym/1/x3d_tiny/baseline/lambda~0"
    metrics = [cell / f"seed~{s}" / "metrics.json" for s in config["seeds"]]

    def snakemake(*args, targets=metrics):
        return subprocess.run(
            ["snakemake", "--cores", "2", *args, *map(str, targets)]
            + ["--configfile", str(tmp_path / "config.yaml")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=os.environ | {F.MIRROR_ENV: server.url},
        )

    first = snakemake()
    assert first.returncode == 0, first.stderr[-3000:]
    assert checkpoint.read_bytes() == (tmp_path / "x3d.pt").read_bytes()
    assert [path for path, _ in server.requests] == ["/X3D_M.pyth"]
    record = json.loads((tmp_path / "results/fetched/checkpoints.json").read_text())
    assert record["produced"] == [str(checkpoint)]
    assert "X3D_M.pyth" in json.loads((checkpoint.parent / F.LOCK_NAME).read_text())
    assert json.loads(metrics[0].read_text())["settings"]["pretrained"] == str(checkpoint)
    assert first.stderr.index("checkpoint fetch:") < first.stderr.index("rule finetune")
    again = snakemake("-n")
    assert "Nothing to be done" in again.stdout + again.stderr  # no rerun after the fetch
    checkpoint.unlink()  # the results trained from it stay valid; what needs it fetches it
    planned = snakemake("-n", "--forceall")
    assert "files of checkpoints are missing again; dropped" in planned.stderr
    assert "checkpoint fetch:" in planned.stdout
