"""Download what the paper profile can fetch: Kinetics checkpoints, HMDB-51, FineGym's annotations.

``python -m vmp.fetch [--root data] [--checkpoints checkpoints] ITEM...`` (``--list`` shows the
catalogue), from Python ``fetch(item, root, checkpoints)`` returning the paths produced, or the
workflow: with ``fetch: true`` its ``fetch`` checkpoint downloads what :func:`profile_downloads`
finds missing (:func:`fetch_planned`)::

    CATALOGUE[item] -> Item(files, unpack, manual)
        File: urls -> <dest>/<name>.part (streamed; resumed with an HTTP Range request)
              -> checksum (pinned, or recorded in <dest>/.fetch-lock.json on first use)
              -> os.replace to <dest>/<name>          (a present, verified file is not fetched)
        Unpack: archive -> .<into>.<random>.extracting/ beside the destination (zip and tar with
              the standard library, RAR with bsdtar, 7z, unrar-free or unrar; archives inside,
              such as HMDB-51's per-class RARs, become folders of their own)
              -> marker .fetch-extracted written inside -> os.replace to <into>
        manual: what cannot be fetched (FineGym's YouTube videos, MPII Cooking 2): its official
              page and the folder layout `vmp.data.official` expects

Destinations: data items under ``<root>/<item>/`` in the layout of ``vmp.data.sources.LAYOUT``
(archives are kept in ``<root>/<item>/archives/``, so an extraction can be redone without a
download); checkpoints under ``<checkpoints>/``: the pytorchvideo ``.pyth`` files and, for
TimeSformer, transformers directories ``timesformer-base-finetuned-k400/`` and ``-k600/``
(``config.json`` + ``pytorch_model.bin``, which `vmp.models.checkpoint` reads).

Checksums. Pinned: HMDB-51's ``test_train_splits.rar`` (md5, as torchvision publishes it) and
TimeSformer K400's ``pytorch_model.bin`` (sha256 of its Git LFS object at the pinned revision,
as the Hugging Face hub shows it). Recorded on first use (``sha256: None``; nothing is
published): the four pytorchvideo model-zoo checkpoints, TimeSformer K600's weights and both
``config.json`` files, ``hmdb51_org.rar`` and FineGym's annotation files. The first download
of such a file records its sha256 in ``<dest>/.fetch-lock.json`` (or the ``lock`` path given)
with a warning; every later fetch verifies against that record. A mismatch removes the
downloaded bytes and stops with the URL, the expected and the actual digest.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from vmp.data.sources import FINEGYM_ANNOTATIONS, FINEGYM_LISTS, LAYOUT, MPII_LISTS, layout
from vmp.io import (
    FETCH_LOCK,
    disk_full,
    file_digest,
    read_fetch_lock,
    write_json,
)
from vmp.workflow.config import dataset_root

CHUNK = 1 << 20
# A base URL tried before each file's own URLs, as <mirror>/<file name> (a lab's local copy, an
# air-gapped cluster's file server); the checksums are verified all the same.
MIRROR_ENV = "VMP_FETCH_MIRROR"
LOCK_NAME = FETCH_LOCK
MARKER = ".fetch-extracted"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".rar")
RAR_INSTALL = (
    "install one of them, e.g. `apt-get install libarchive-tools` (bsdtar), `apt-get install "
    "7zip` (7z), `apt-get install unrar-free`, or `conda install -c conda-forge libarchive`"
)


class FetchError(RuntimeError):
    """A download or extraction failed; the message says what, where, and what to do."""


class ChecksumMismatch(FetchError):
    """The bytes downloaded are not the ones the catalogue (or the lock file) expects."""


class Unfetchable(FetchError):
    """The item cannot be downloaded by code; the message names its page and layout."""


class _Interrupted(FetchError):
    """A transfer ended early; its ``.part`` file is kept for a resume."""


@dataclass(frozen=True)
class File:
    """One file to download to ``<dest>/<name>``; ``urls`` are tried in order."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Unpack:
    """Extract the downloaded ``archive`` into ``<dest>/<into>``.

    ``nested``: archives found inside are extracted too, each into a folder named after it.
    A single top-level folder inside an archive is unwrapped (its content becomes ``into``).
    """

    archive: str
    into: str
    nested: bool = False


@dataclass(frozen=True)
class Item:
    """A catalogue entry: files to download and unpack, and a note on what cannot be fetched.

    ``base`` is "data" (destination ``<root>/<name>``) or "checkpoints" (``<checkpoints>``).
    An item with only ``manual`` cannot be fetched at all.
    """

    name: str
    base: str = "data"
    files: tuple[File, ...] = ()
    unpack: tuple[Unpack, ...] = ()
    manual: str = ""


PYTORCHVIDEO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
HF = "https://huggingface.co/facebook"
TIMESFORMER_REVISIONS = {
    # main after "update weight and config to reflect latest changes from the pr (#1)"
    "k400": "72d580cae9d3a854630da97a8cfd8e42ab97dbca",
    # main after "update weight and config to reflect latest changes from the pr (#2)"
    "k600": "3da1913755c70f6ca2200e38dde125d4abbe6cc0",
}
TIMESFORMER_WEIGHTS_SHA256 = {
    "k400": "bdb264469ffc423fb86c78932268a290bfbd69bd768b7ce8595c047a2dc54089",
    "k600": None,
}
HMDB = "https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10"
FINEGYM = "https://sdolivia.github.io/FineGym/resources/dataset"


def _timesformer(kinetics: str) -> tuple[File, ...]:
    repo = f"timesformer-base-finetuned-{kinetics}"
    base = f"{HF}/{repo}/resolve/{TIMESFORMER_REVISIONS[kinetics]}"
    return (
        File(f"{repo}/config.json", (f"{base}/config.json",)),
        File(
            f"{repo}/pytorch_model.bin",
            (f"{base}/pytorch_model.bin",),
            sha256=TIMESFORMER_WEIGHTS_SHA256[kinetics],
        ),
    )


def _layout_lines(dataset: str) -> str:
    return ", ".join(f"{key}: {value}" for key, value in LAYOUT[dataset].items())


CATALOGUE: dict[str, Item] = {
    "checkpoints": Item(
        "checkpoints",
        base="checkpoints",
        files=tuple(
            File(f"{name}.pyth", (f"{PYTORCHVIDEO}/{name}.pyth",))
            for name in ("SLOWFAST_8x8_R50", "C2D_8x8_R50", "I3D_8x8_R50", "X3D_M")
        )
        + _timesformer("k400")
        + _timesformer("k600"),
    ),
    "hmdb51": Item(
        "hmdb51",
        files=(
            File("archives/hmdb51_org.rar", (f"{HMDB}/hmdb51_org.rar",)),
            File(
                "archives/test_train_splits.rar",
                (f"{HMDB}/test_train_splits.rar",),
                md5="15e67781e70dcfbdce2d7dbb9b3344b5",
            ),
        ),
        unpack=(
            Unpack("archives/hmdb51_org.rar", LAYOUT["hmdb51"]["video_dir"], nested=True),
            Unpack("archives/test_train_splits.rar", LAYOUT["hmdb51"]["split_dir"]),
        ),
    ),
    "finegym": Item(
        "finegym",
        files=tuple(
            File(str(Path(LAYOUT["finegym"]["annotation_dir"]) / name), (f"{FINEGYM}/{name}",))
            for name in FINEGYM_LISTS + FINEGYM_ANNOTATIONS
        ),
        manual=(
            "FineGym's videos are YouTube videos and are not fetched: download them yourself "
            "(see https://sdolivia.github.io/FineGym/) and place either element clips as "
            f"{LAYOUT['finegym']['clip_dir']}/<element id>.mp4 or event videos as "
            f"{LAYOUT['finegym']['event_dir']}/<youtube id>_E_<start>_<end>.mp4 under <root>/finegym"
        ),
    ),
    "mpii_cooking2": Item(
        "mpii_cooking2",
        manual=(
            "MPII Cooking 2 is distributed under its own licence and is not fetched: request it "
            "from https://www.mpi-inf.mpg.de/departments/computer-vision-and-machine-learning/"
            "research/human-activity-recognition/mpii-cooking-2-dataset and place under "
            f"<root>/mpii_cooking2: {LAYOUT['mpii_cooking2']['video_dir']}/<sequence>-"
            f"{LAYOUT['mpii_cooking2']['camera']}.avi, experimentalSetup/"
            f"{{{','.join(MPII_LISTS)}}} and the activity annotations "
            "(attributesAnnotations_MPII-Cooking-2.mat as downloaded, or "
            f"{LAYOUT['mpii_cooking2']['annotations']})"
        ),
    ),
}


# --- checksums and the lock file ---------------------------------------------------------------


def read_lock(lock: Path) -> dict[str, dict]:
    """The recorded checksums: {file name: {"sha256", "size", "url"}}; empty when there is no
    lock (:func:`vmp.io.read_fetch_lock`)."""
    try:
        return read_fetch_lock(lock)
    except ValueError as err:
        raise FetchError(str(err)) from None


def _expected(file: File, lock: Path) -> tuple[str, str] | None:
    """(algorithm, digest) the file must have: pinned, else recorded; None when neither."""
    if file.sha256:
        return "sha256", file.sha256
    if file.md5:
        return "md5", file.md5
    recorded = read_lock(lock).get(file.name)
    return ("sha256", recorded["sha256"]) if recorded else None


def _record(file: File, path: Path, lock: Path, url: str, log: Callable[[str], None]) -> None:
    sha = file_digest(path)
    entry = {"sha256": sha, "size": path.stat().st_size, "url": url}
    write_json(lock, read_lock(lock) | {file.name: entry})
    message = (
        f"{file.name}: no checksum is pinned for {url}; recorded sha256 {sha} in {lock} on first "
        "use. Later fetches verify against it; compare it with a trusted copy if you can."
    )
    warnings.warn(message, stacklevel=2)
    if log is not print:  # on the console the warning above is already the one message
        log(f"warning: {message}")


def _verify(path: Path, file: File, lock: Path) -> bool:
    """Whether ``path`` matches the expected digest (True when nothing is expected yet)."""
    expected = _expected(file, lock)
    return expected is None or file_digest(path, expected[0]) == expected[1]


def _mismatch(path: Path, file: File, lock: Path, url: str) -> ChecksumMismatch:
    algorithm, expected = _expected(file, lock)  # type: ignore[misc]
    actual = file_digest(path, algorithm)
    where = "the catalogue" if (file.sha256 or file.md5) else f"the lock file {lock}"
    return ChecksumMismatch(
        f"checksum mismatch for {url}: expected {algorithm} {expected} ({where}), got {actual}. "
        f"The downloaded bytes were removed and {path.name} was not written. The file on the "
        "server differs from the one pinned: check the URL, or, if the change is legitimate, "
        "update the pinned checksum (or remove its entry from the lock file) and fetch again."
    )


# --- downloads ----------------------------------------------------------------------------------


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "vmp-fetch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None  # the .part already holds the whole file
        if err.code == 404:
            raise FetchError(f"not found (HTTP 404): {url}") from None
        raise FetchError(f"HTTP {err.code} {err.reason}: {url}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"could not reach {url}: {reason}") from None


def _expected_size(response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append ``url``'s bytes to ``part`` (resuming with a Range request); raise if cut short."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout)
    if response is None:
        return
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start again
        total = _expected_size(response, offset)
        received, cut = offset, False
        try:
            with open(part, "ab" if offset else "wb") as out:
                try:
                    while block := response.read(CHUNK):
                        out.write(block)
                        received += len(block)
                except (ConnectionError, TimeoutError, http.client.HTTPException):
                    cut = True
                out.flush()
                os.fsync(out.fileno())
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(part) from None
            raise
    if cut or (total is not None and received < total):
        raise _Interrupted(f"{url}: transfer interrupted after {part.stat().st_size} bytes")


def download(
    file: File,
    dest: str | Path,
    *,
    lock: str | Path | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    log: Callable[[str], None] = print,
) -> Path:
    """Download ``file`` to ``<dest>/<file.name>``, verified; return its path.

    An already-present file with the expected checksum is kept without a request. A ``.part``
    file left by an interrupted transfer is resumed with a Range request; up to ``retries``
    interruptions are resumed within one call, after that the ``.part`` is kept for the next.
    """
    dest = Path(dest)
    lock = Path(lock) if lock else dest / LOCK_NAME
    final = dest / file.name
    if final.is_file():
        return _keep_present(file, final, lock, log)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    errors = []
    for url in file.urls:
        try:
            _download_from(url, part, retries, timeout, log)
        except _Interrupted as err:
            raise FetchError(
                f"{err}; the partial file {part} is kept: fetch again to resume"
            ) from None
        except ChecksumMismatch:
            raise
        except FetchError as err:
            errors.append(str(err))
            continue
        return _finish(file, part, final, lock, url, log)
    raise FetchError("; ".join(errors))


def _download_from(
    url: str, part: Path, retries: int, timeout: float, log: Callable[[str], None]
) -> None:
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout)
            return
        except _Interrupted as err:
            if attempt == retries:
                raise
            log(f"{err}; resuming")


def _finish(
    file: File, part: Path, final: Path, lock: Path, url: str, log: Callable[[str], None]
) -> Path:
    if not _verify(part, file, lock):
        error = _mismatch(part, file, lock, url)
        part.unlink(missing_ok=True)
        raise error
    if _expected(file, lock) is None:
        _record(file, part, lock, url, log)
    os.replace(part, final)
    log(f"fetched {final}")
    return final


def _keep_present(file: File, final: Path, lock: Path, log: Callable[[str], None]) -> Path:
    url = file.urls[0]
    if _expected(file, lock) is None:
        _record(file, final, lock, url, log)
    elif not _verify(final, file, lock):
        algorithm, expected = _expected(file, lock)  # type: ignore[misc]
        raise ChecksumMismatch(
            f"{final} is present but its {algorithm} is {file_digest(final, algorithm)}, not "
            f"{expected} as expected for {url}; remove it and fetch again"
        )
    log(f"present {final}")
    return final


# --- extraction ---------------------------------------------------------------------------------


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def rar_tool() -> list[str] | None:
    """The command prefix of an installed RAR extractor (archive and folder appended)."""
    for name, prefix in (
        ("bsdtar", ["-x", "-f"]),
        ("7z", ["x", "-y", "-bd"]),
        ("7zz", ["x", "-y", "-bd"]),
        ("7za", ["x", "-y", "-bd"]),
        ("unrar-free", ["-x", "-f"]),
        ("unrar", ["x", "-o+", "-idq"]),
    ):
        if found := shutil.which(name):
            return [found, *prefix]
    return None


def _extract_rar(archive: Path, folder: Path) -> None:
    tool = rar_tool()
    if tool is None:
        raise FetchError(
            f"{archive.name} is a RAR archive and no RAR extractor (bsdtar, 7z, unrar-free, "
            f"unrar) is on PATH: {RAR_INSTALL}; then fetch again (the archive is kept)"
        )
    name = Path(tool[0]).name
    if name == "bsdtar":
        command = [*tool, str(archive), "-C", str(folder)]
    elif name.startswith("7z"):
        command = [*tool, f"-o{folder}", str(archive)]
    else:
        command = [*tool, str(archive), f"{folder}{os.sep}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-500:]
        raise FetchError(f"{name} could not extract {archive} (exit {result.returncode}): {tail}")


def _extract_one(archive: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lower = archive.name.lower()
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(folder)
        elif lower.endswith(".rar"):
            _extract_rar(archive, folder)
        else:
            with tarfile.open(archive) as t:
                t.extractall(folder, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError) as err:
        raise FetchError(f"could not extract {archive}: {err}") from None


def _content(folder: Path) -> Path:
    """``folder``, or its only entry when that is a folder (an archive's top-level folder)."""
    entries = list(folder.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def _extract_inner(root: Path) -> None:
    for inner in sorted(p for p in root.iterdir() if _is_archive(p)):
        stem = inner.name[
            : -len(next(s for s in ARCHIVE_SUFFIXES if inner.name.lower().endswith(s)))
        ]
        scratch = root / f".{stem}.extracting"
        _extract_one(inner, scratch)
        os.replace(_content(scratch), root / stem)
        shutil.rmtree(scratch, ignore_errors=True)
        inner.unlink()


def extract(
    archive: str | Path,
    into: str | Path,
    *,
    nested: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Extract ``archive`` into the folder ``into``, all or nothing; return ``into``.

    Work happens in ``.<into>.<random>.extracting`` beside ``into``, renamed into place when
    complete, with a ``.fetch-extracted`` marker inside so a finished extraction is not redone.
    Leftovers of an interrupted extraction are removed first. A folder ``into`` without the
    marker was not made here: it is left alone and reported.
    """
    archive, into = Path(archive), Path(into)
    if (into / MARKER).is_file():
        log(f"present {into} (extracted from {archive.name})")
        return into
    if into.exists():
        raise FetchError(
            f"{into} exists but was not extracted by vmp.fetch (no {MARKER} inside): move it "
            f"away to extract {archive.name} there, or keep it and leave this item out"
        )
    into.parent.mkdir(parents=True, exist_ok=True)
    for stale in into.parent.glob(f".{into.name}.*.extracting"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = into.with_name(f".{into.name}.{secrets.token_hex(4)}.extracting")
    try:
        _extract_one(archive, scratch)
        content = _content(scratch)
        if nested:
            _extract_inner(content)
        (content / MARKER).write_text(json.dumps({"archive": archive.name}) + "\n")
        os.replace(content, into)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"extracted {archive.name} -> {into}")
    return into


# --- items and the command line -----------------------------------------------------------------


def destination(item: Item, root: str | Path, checkpoints: str | Path) -> Path:
    """Where an item's files go."""
    return Path(checkpoints) if item.base == "checkpoints" else Path(root) / item.name


def unfetchable_message(item: Item, root: str | Path) -> str:
    """The note for what ``item`` cannot fetch, with ``<root>`` filled in."""
    return item.manual.replace("<root>", str(root))


def fetch(
    item: str,
    root: str | Path = "data",
    checkpoints: str | Path = "checkpoints",
    *,
    catalogue: dict[str, Item] | None = None,
    lock: str | Path | None = None,
    names: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Download and unpack one catalogue item; return the files and folders produced.

    ``names``: only these of the item's files (``File.name``), and the unpacking of those that
    are archives; all of them when None. With ``VMP_FETCH_MIRROR`` set, ``<mirror>/<name>`` is
    tried before a file's own URLs.

    Raises:
        Unfetchable: the item has nothing to download (its message names the official page
            and the expected layout). For an item fetched in part (FineGym), the note on the
            rest is logged instead.
        FetchError: a download or extraction failed (the message names the URL or file).
    """
    catalogue = CATALOGUE if catalogue is None else catalogue
    if item not in catalogue:
        raise FetchError(f"unknown item {item!r}; choose from {', '.join(catalogue)} or all")
    entry = catalogue[item]
    if not entry.files:
        raise Unfetchable(unfetchable_message(entry, root))
    dest = destination(entry, root, checkpoints)
    wanted = None if names is None else set(names)
    files = [f for f in entry.files if wanted is None or f.name in wanted]
    if mirror := os.environ.get(MIRROR_ENV, "").rstrip("/"):
        files = [replace(f, urls=(f"{mirror}/{f.name}", *f.urls)) for f in files]
    produced = [download(f, dest, lock=lock, log=log) for f in files]
    for unpack in entry.unpack:
        if unpack.archive not in {f.name for f in files}:
            continue
        produced.append(
            extract(dest / unpack.archive, dest / unpack.into, nested=unpack.nested, log=log)
        )
    if entry.manual:
        log(f"note: {unfetchable_message(entry, root)}")
    return produced


# --- what a profile fetches (the workflow's `fetch` checkpoint) ----------------------------------


def missing_files(item: Item, dest: str | Path) -> list[str]:
    """The names of ``item``'s files still needed at ``dest``: an archive whose folder is not
    there yet, any other file that is not present."""
    into = {u.archive: u.into for u in item.unpack}
    return [f.name for f in item.files if not (Path(dest) / into.get(f.name, f.name)).exists()]


def profile_downloads(config: dict) -> dict[str, dict]:
    """What a profile with ``fetch: true`` still has to download, per catalogue item.

    Returns ``{item: {"root", "checkpoints", "names", "provides", "datasets"}}``: the arguments
    of :func:`fetch` (``names``: the missing files), the paths the download creates that the
    profile names (a dataset root, checkpoint files and folders) and the profile's datasets it
    serves. Only what is missing is planned, so a profile whose files are in place plans nothing.

    - checkpoints: each ``pretrain.checkpoints`` path of the profile's backbones that the
      catalogue provides (named as it names it: ``<folder>/SLOWFAST_8x8_R50.pyth``,
      ``<folder>/timesformer-base-finetuned-k400``), into the folder of the first;
    - datasets: each real dataset whose format is a catalogue item with files, whose root is
      ``<somewhere>/<item>`` and which keeps the standard layout (``paths`` as
      ``vmp.data.sources.LAYOUT`` or absent). A dataset whose
      videos cannot be fetched (FineGym) gets its annotations; its root must exist.
    """
    plan = {}
    provided = {f.name.split("/")[0] for f in CATALOGUE["checkpoints"].files}
    wanted, folder = {}, None
    for backbone, path in ((config.get("pretrain") or {}).get("checkpoints") or {}).items():
        path = Path(path)
        if (
            backbone in config["backbones"]
            and path.name in provided
            and folder in (None, path.parent)
        ):
            folder = path.parent
            wanted[path.name] = str(path)
    if wanted:
        names = [
            name
            for name in missing_files(CATALOGUE["checkpoints"], folder)
            if name.split("/")[0] in wanted
        ]
        if names:
            plan["checkpoints"] = {
                "root": None,
                "checkpoints": str(folder),
                "names": names,
                "provides": sorted({wanted[name.split("/")[0]] for name in names}),
                "datasets": [],
            }
    for name, dataset in config["datasets"].items():
        fmt = dataset["format"]
        item = CATALOGUE.get(fmt)
        root = Path(dataset_root(config, name))
        standard = layout(fmt, **dataset.get("paths", {})) == LAYOUT.get(fmt)
        if not item or not item.files or not standard or root.name != item.name:
            continue
        names = missing_files(item, root)
        if names:
            plan[item.name] = {
                "root": str(root.parent),
                "checkpoints": None,
                "names": names,
                "provides": [] if item.manual else [str(root)],
                "datasets": [name],
            }
    return plan


def fetch_planned(item: str, plan: dict, record: str | Path, log_path: str | Path) -> None:
    """The workflow's ``fetch`` job: :func:`fetch` one item of :func:`profile_downloads`, its
    messages to ``log_path``, then ``record`` (JSON: the item and what it produced)."""
    with open(log_path, "a", encoding="utf-8") as log_file:

        def log(line: str) -> None:
            print(line, file=log_file, flush=True)

        produced = fetch(
            item,
            plan["root"] or "data",
            plan["checkpoints"] or "checkpoints",
            names=plan["names"],
            log=log,
        )
    write_json(record, {"item": item, "produced": [str(p) for p in produced]})


def describe(catalogue: dict[str, Item]) -> str:
    """The catalogue as text: each item, its files, URLs and checksum status."""
    lines = []
    for item in catalogue.values():
        lines.append(
            f"{item.name} ({'checkpoints folder' if item.base == 'checkpoints' else 'data'})"
        )
        for f in item.files:
            pin = (
                f"sha256 {f.sha256}"
                if f.sha256
                else f"md5 {f.md5}"
                if f.md5
                else "recorded on first use"
            )
            lines.append(f"  {f.name}  [{pin}]")
            lines.extend(f"    {url}" for url in f.urls)
        lines.extend(f"  unpack {u.archive} -> {u.into}" for u in item.unpack)
        if item.manual:
            lines.append(f"  not fetched: {item.manual}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vmp.fetch",
        description="Download the checkpoints and datasets of the paper profile that public "
        "URLs provide, verified against pinned (or first-use recorded) checksums.",
        epilog=f"{MIRROR_ENV}=URL: try URL/<file name> first (a local mirror of the files).",
    )
    parser.add_argument("items", nargs="*", metavar="ITEM", help=f"{', '.join(CATALOGUE)} or all")
    parser.add_argument("--root", default="data", help="datasets go to <root>/<item> (data)")
    parser.add_argument("--checkpoints", default="checkpoints", help="checkpoint folder")
    parser.add_argument("--lock", help="lock file of first-use checksums (default: per folder)")
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    return parser


def main(argv: Iterable[str] | None = None, catalogue: dict[str, Item] | None = None) -> int:
    """The command line; returns the exit status (0, or 1 when a requested item failed)."""
    catalogue = CATALOGUE if catalogue is None else catalogue
    parser = _parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.list:
        print(describe(catalogue))
        return 0
    if not args.items:
        parser.error("name at least one item (or --list)")
    items = list(catalogue) if "all" in args.items else list(dict.fromkeys(args.items))
    status = 0
    for item in items:
        try:
            fetch(item, args.root, args.checkpoints, catalogue=catalogue, lock=args.lock)
        except Unfetchable as err:
            print(f"{item}: {err}", file=sys.stderr)
            status = status or int(item in args.items)
        except FetchError as err:
            print(f"{item}: error: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
