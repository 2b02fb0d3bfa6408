"""Checks of a profile's outside inputs before any job runs: split lists and checkpoints.

The workflow's ``check_inputs`` rule calls :func:`check_inputs` in Snakemake's own process; every
``prepare_data`` and training job waits for it, and it reruns only when a list file, an
annotation file or a checkpoint changes. So a split list that gives a class no training video,
or a checkpoint that does not fit its backbone, stops the workflow before any job starts, and
before Snakemake removes any earlier result a job would replace::

    for each real dataset and split:  index its lists -> every class has a train and a test item
    for each pretrain.checkpoints entry:  the backbone built on the meta device (no weights)
                                          <- the checkpoint's names and shapes must fit it
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmp.data.sources import list_files
from vmp.workflow.config import ConfigError, backbone_settings, dataset_root


def check_split_lists(config: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per real dataset and split, the number of classes and of listed train / test items.

    Raises:
        ConfigError: a class has no train or no test item in the split's lists; the message
            names the dataset's key, the list files and the fix.
    """
    from vmp.data.official import index  # here: av and pandas stay out of the workflow's parse

    found = {}
    for name, dataset in config["datasets"].items():
        fmt = dataset["format"]
        if fmt == "synthmotion":
            continue
        paths = dataset.get("paths", {})
        root = dataset_root(config, name)
        for split in dataset["splits"]:
            table = index(fmt, root, split, **paths)
            counts = table.groupby(["class_name", "subset"]).size().unstack(fill_value=0)
            for subset in ("train", "test"):
                empty = counts.index[counts.get(subset, 0) == 0].tolist()
                if empty:
                    files = list_files(fmt, root, split, **paths)
                    # HMDB-51 has a list file per class: name that one.
                    own = [f for f in files if Path(f).name.startswith(f"{empty[0]}_test_split")]
                    raise ConfigError(
                        f"datasets.{name} split {split}: no {subset} item listed for class "
                        f"{', '.join(map(str, empty[:5]))}{' ...' if len(empty) > 5 else ''} in "
                        f"{', '.join(own or files) or root}. Fix the list (every class needs a "
                        "train and a test item), or put back the dataset's official lists."
                    )
            found[f"{name}/{split}"] = {
                "classes": len(counts),
                "train": int(counts.get("train", 0).sum()),
                "test": int(counts.get("test", 0).sum()),
            }
    return found


def check_checkpoints(config: dict[str, Any]) -> dict[str, str]:
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
        if backbone not in config["backbones"]:
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
        except (OSError, ValueError, RuntimeError) as err:
            raise ConfigError(
                f"{key}: {err}. Fix: point {key} at a Kinetics checkpoint of {arch} "
                "(README, 'The paper profile: what you need')."
            ) from None
        checked[backbone] = str(path)
    return checked


def check_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """Both checks; returns what was checked (the ``check_inputs`` rule writes it as JSON)."""
    return {"split_lists": check_split_lists(config), "checkpoints": check_checkpoints(config)}
