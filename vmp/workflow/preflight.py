"""Checks of a profile's outside inputs before any job runs: split lists, videos, checkpoints.

The workflow runs :func:`preflight` when it parses (rules/common.smk), in Snakemake's own
process, so a split list that gives a class no training video, a class whose every listed train
or test video is unreadable, or a checkpoint that does not fit its backbone stops the workflow
before any job starts, with one message for every problem of every dataset and split. Jobs do
not depend on a file the check writes, so running it again, narrowing or widening ``only:`` or
fixing a failed check never retrains anything. What a fetch job downloads is checked by that
job, right after the download (:func:`check_inputs` with its item's datasets and backbones)::

    for each real dataset and split:  index its lists -> every class has a train and a test item
                                      probe every listed video -> a readable one of each
    for each pretrain.checkpoints entry:  the backbone built on the meta device (no weights)
                                          <- the checkpoint's names and shapes must fit it

The result is cached in ``<results>/checks/inputs.json`` under a key made of the settings checked
and the size and mtime of every list, video and checkpoint, so a no-op parse probes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vmp.data.sources import list_files, video_fingerprint, video_folders
from vmp.io import FetchedFileChanged, write_json
from vmp.workflow.config import ConfigError, backbone_settings, dataset_root


def check_split_lists(
    config: dict[str, Any], names: Iterable[str] | None = None, probed: dict | None = None
) -> dict[str, dict[str, int]]:
    """Per real dataset (of ``names``, default all) and split, the number of classes and of
    listed train / test items; every listed video is probed (:func:`quick_probe`; ``probed``
    caches the answers by path, size and mtime).

    Raises:
        ConfigError: one message for every split where a class has no train or no test item
            listed, or none readable, naming the dataset's key, the files and the fix.
    """
    # here: av and pandas stay out of the parse when the cache answers
    import pandas as pd

    from vmp.data.official import index, quick_probe

    probed = {} if probed is None else probed
    found, problems = {}, []
    for name, dataset in config["datasets"].items():
        fmt = dataset["format"]
        if fmt == "synthmotion" or (names is not None and name not in names):
            continue
        paths = dataset.get("paths", {})
        root = dataset_root(config, name)
        for split in dataset["splits"]:
            try:
                table = index(fmt, root, split, **paths)
            except (OSError, ValueError) as err:  # a list missing or malformed: says which
                problems.append(f"datasets.{name} split {split}: {err}")
                continue
            unreadable = {}
            for path in table["path"].drop_duplicates():
                stat = os.stat(path) if os.path.exists(path) else None
                key = f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}" if stat else None
                if key is None:
                    unreadable[path] = "missing"
                    continue
                if key not in probed:
                    probed[key] = quick_probe(path)
                if probed[key]:
                    unreadable[path] = probed[key]
            counts = table.groupby(["class_name", "subset"]).size().unstack(fill_value=0)
            readable = table[~table["path"].isin(list(unreadable))]
            usable = readable.groupby(["class_name", "subset"]).size().unstack(fill_value=0)
            for subset in ("train", "test"):
                listed = counts.get(subset, pd.Series(0, index=counts.index))
                empty = listed.index[listed == 0].tolist()
                if empty:
                    files = list_files(fmt, root, split, **paths)
                    # HMDB-51 has a list file per class: name that one.
                    own = [f for f in files if Path(f).name.startswith(f"{empty[0]}_test_split")]
                    problems.append(
                        f"datasets.{name} split {split}: no {subset} item listed for class "
                        f"{', '.join(map(str, empty[:5]))}{' ...' if len(empty) > 5 else ''} in "
                        f"{', '.join(own or files) or root}. Fix the list (every class needs a "
                        "train and a test item), or put back the dataset's official lists."
                    )
                    continue
                left = usable.get(subset, pd.Series(0, index=usable.index))
                for cls in listed.index:
                    if left.get(cls, 0) == 0:
                        rows = table[(table["class_name"] == cls) & (table["subset"] == subset)]
                        bad = [f"{p} ({unreadable[p]})" for p in rows["path"].drop_duplicates()]
                        problems.append(
                            f"datasets.{name} split {split}: class {cls} has no readable "
                            f"{subset} video: {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. "
                            "Fix: replace these files with good copies (or list other videos)."
                        )
            found[f"{name}/{split}"] = {
                "classes": len(counts),
                "train": int(counts.get("train", pd.Series(dtype=int)).sum()),
                "test": int(counts.get("test", pd.Series(dtype=int)).sum()),
                "unreadable": len(unreadable),
            }
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(
            f"{len(problems)} problems in the datasets' lists and videos:\n  "
            + "\n  ".join(problems)
        )
    return found


def check_checkpoints(
    config: dict[str, Any], backbones: Iterable[str] | None = None
) -> dict[str, str]:
    """Every ``pretrain.checkpoints`` file exists and fits its backbone (names and shapes).

    The backbone is built on the meta device, so no weights are allocated; the checkpoint's
    tensors are read memory-mapped where the format allows.

    Raises:
        ConfigError: naming the key ``pretrain.checkpoints.<backbone>``, the file and the first
            keys that do not fit.
    """
    # here, on the first checkpoint to check: torch stays out of the workflow's parse
    import torch

    from vmp.models import create_model
    from vmp.models.checkpoint import fitted_state, read_state_dict

    checked = {}
    for backbone, path in ((config.get("pretrain") or {}).get("checkpoints") or {}).items():
        if backbone not in config["backbones"] or (
            backbones is not None and backbone not in backbones
        ):
            continue
        key = f"pretrain.checkpoints.{backbone}"
        settings = config["backbones"][backbone]
        arch = settings.get("arch", backbone)
        clip = backbone_settings(config, backbone, "clip")
        options = {"num_frames": clip["num_frames"], "crop_size": clip["crop_size"]}
        with torch.device("meta"):
            model = create_model(arch, 2, **options | settings.get("model", {}))
        try:
            fitted_state(model, read_state_dict(model, path), Path(path))
        except FetchedFileChanged as err:  # a fetched file replaced by hand: it says its fix
            raise ConfigError(f"{key}: {err}") from None
        except (OSError, ValueError, RuntimeError, EOFError) as err:  # EOFError: an empty file
            raise ConfigError(
                f"{key}: {str(err).rstrip('.')}. Fix: point {key} at a Kinetics checkpoint of "
                f"{arch} (docs/paper-profile.md, '2. Place what cannot be fetched')."
            ) from None
        checked[backbone] = str(path)
    return checked


def check_inputs(
    config: dict[str, Any],
    datasets: Iterable[str] | None = None,
    backbones: Iterable[str] | None = None,
    probed: dict | None = None,
) -> dict[str, Any]:
    """Both checks, for ``datasets`` and ``backbones`` (default: all); what was checked."""
    return {
        "split_lists": check_split_lists(config, datasets, probed),
        "checkpoints": check_checkpoints(config, backbones),
    }


def _signature(config: dict[str, Any], datasets: list[str], backbones: list[str]) -> str:
    """Changes when a checked setting, list file, video or checkpoint changes (size, mtime)."""
    checkpoints = (config.get("pretrain") or {}).get("checkpoints") or {}
    parts: list[Any] = [
        {name: config["datasets"][name] for name in datasets},
        {b: [config["backbones"][b], checkpoints[b]] for b in backbones},
        {k: config.get(k) for k in ("clip", "backbone_defaults")},
    ]
    for name in datasets:
        dataset = config["datasets"][name]
        root, paths = dataset_root(config, name), dataset.get("paths", {})
        for split in dataset["splits"]:
            for f in list_files(dataset["format"], root, split, **paths):
                stat = os.stat(f)
                parts.append([f, stat.st_size, stat.st_mtime_ns])
        parts.append(video_fingerprint(video_folders(dataset["format"], root, **paths)))
    for backbone in backbones:
        path = Path(checkpoints[backbone])
        parts.append(
            [str(path), *([path.stat().st_size, path.stat().st_mtime_ns] if path.exists() else [])]
        )
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def preflight(config: dict[str, Any], cache: str | Path, pending: Iterable[str] = ()) -> str | None:
    """:func:`check_inputs` for every real dataset and checkpoint of ``config`` except those a
    fetch job will provide (``pending`` paths: roots and checkpoint files), unless ``cache``
    holds a pass for the same signature. Returns a line to print when it checked, None when the
    cache answered.

    Raises:
        ConfigError: as :func:`check_inputs`, all problems in one message.
    """
    pending = {str(Path(p)) for p in pending}
    datasets = [
        name
        for name, d in config["datasets"].items()
        if d["format"] != "synthmotion" and str(Path(dataset_root(config, name))) not in pending
    ]
    checkpoints = (config.get("pretrain") or {}).get("checkpoints") or {}
    backbones = [
        b
        for b, p in checkpoints.items()
        if b in config["backbones"] and str(Path(p)) not in pending
    ]
    if not datasets and not backbones:
        return None
    cache = Path(cache)
    try:
        stored = json.loads(cache.read_text())
    except (OSError, ValueError):
        stored = {}
    key = _signature(config, datasets, backbones)
    if stored.get("key") == key:
        return None
    probed = stored.get("probed", {})
    checked = check_inputs(config, datasets, backbones, probed)
    write_json(cache, {"key": key, "checked": checked, "probed": probed})
    videos = sum(v["unreadable"] for v in checked["split_lists"].values())
    return (
        f"pre-flight: {len(checked['split_lists'])} split(s) of {len(datasets)} dataset(s) and "
        f"{len(checked['checkpoints'])} checkpoint(s) checked, {videos} unreadable video(s) "
        f"left out by prepare_data ({cache})"
    )
