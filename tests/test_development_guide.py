"""docs/development.md's walks, followed on toy examples so the guide cannot rot.

Adding a backbone    the guide's toy builder, registered, named in vmp.names, built with
                     and without the prompt layer, one forward and backward each
video_list dataset   the guide's config entry over a small list-file dataset written here:
                     indexed, pre-flight, prepare_data's report, planned by `snakemake -n`
a prompt function    added at the guide's extension points (monkeypatched: the package
                     files stay as they are), through the curve, the layer and a model
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import snakemake, write_config, write_frames

from vmp import names
from vmp.data.official import index, prepare, summary_line
from vmp.data.sources import list_files
from vmp.layer import prompt
from vmp.models import create_model, list_models, list_variants, registry, variant_options
from vmp.workflow.config import ConfigError, check_config
from vmp.workflow.preflight import check_inputs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "development.md"


def guide_block(heading: str, language: str) -> str:
    """The first fenced ``language`` block of the guide's section ``heading`` (dedented)."""
    text = GUIDE.read_text()
    start = text.index(f"\n{heading}\n")
    block = re.search(rf"\n( *)```{language}\n(.*?)\n\1```", text[start:], re.S)
    assert block, f"no ```{language} block under {heading!r} in {GUIDE}"
    indent = len(block.group(1))
    return "\n".join(line[indent:] for line in block.group(2).splitlines()) + "\n"


@pytest.fixture
def fresh_registry(monkeypatch):
    """A copy of the model registry: what a test registers is gone after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def register_guide_backbone() -> dict:
    """Run the guide's toy builder (as if it were in vmp/models/backbones.py)."""
    namespace: dict = {}
    exec(compile(guide_block("## Adding a backbone", "python"), str(GUIDE), "exec"), namespace)
    return namespace


# Adding a backbone ---------------------------------------------------------------------------


def smoke_config_with(backbones: dict) -> dict:
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(backbones=backbones, ablation=None, placement=None, prompt_functions=None)
    return config


def test_a_backbone_added_as_the_guide_says(fresh_registry, monkeypatch):
    # 1. a builder decorated with @register_model(): its keyword-only options are create_model's
    builder = register_guide_backbone()["toy_conv"]
    assert "toy_conv" in list_models()
    assert registry.get_entry("toy_conv").options == ["num_frames", "width"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model()(builder)
    with pytest.raises(ValueError, match=r"unknown options \['depth'\]; allowed: \['num_frames'"):
        create_model("toy_conv", 5, depth=2)
    torch.manual_seed(0)
    clip = torch.rand(2, 3, 5, 16, 16)  # num_frames + 1 frames
    for variant, layers in (("baseline", 0), ("vmp", 1)):
        model = create_model("toy_conv", 5, width=4, **variant_options("toy_conv", variant))
        # the last nn.Linear is the head that load_pretrained replaces
        assert model.head_keys == ("backbone.4.weight", "backbone.4.bias")
        logits, attentions = model(clip)
        assert logits.shape == (2, 5) and len(attentions) == layers
        logits.logsumexp(1).sum().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        if layers:
            assert model.prompt_layers["video"].m.grad.abs() > 0
    with pytest.raises(ValueError, match=r"expects video of shape \(B, 3, 5, H, W\)"):
        model(clip[:, :, :4])

    # 2. its name in vmp/names.py: only then may a profile name it
    config = smoke_config_with({"toy_conv": {"variants": ["baseline", "vmp"]}})
    with pytest.raises(ConfigError, match="unknown value 'toy_conv'"):
        check_config(config)
    monkeypatch.setitem(names.MODELS, "toy_conv", ("video",))
    check_config(config)
    assert names.variants("toy_conv") == list_variants("toy_conv")


# Adding a dataset: video_list ----------------------------------------------------------------

CLASSES = ("wave", "jump")  # label 0, label 1


@pytest.fixture
def guide_dataset(tmp_path) -> tuple[str, dict]:
    """The guide's `datasets:` entry, its root under tmp_path, holding what the entry names: two
    classes, two train, one val and one test video each."""
    ((name, entry),) = yaml.safe_load(guide_block("### Your own videos: `video_list`", "yaml"))[
        "datasets"
    ].items()
    assert entry["format"] == "video_list" and entry["splits"] == ["1"]
    root = tmp_path / name
    entry["root"] = str(root)
    paths = entry["paths"]
    lists, videos = root / paths["list_dir"], root / paths["video_dir"]
    lists.mkdir(parents=True)
    (lists / paths["classes"]).write_text("\n".join(CLASSES) + "\n")
    frames = np.zeros((12, 32, 32, 3), np.uint8)
    frames[..., 0] = (np.arange(12) * 16)[:, None, None]
    for subset, count in (("train", 2), ("val", 1), ("test", 1)):
        lines = []
        for label, cls in enumerate(CLASSES):
            for k in range(count):
                write_frames(videos / cls / f"{subset}_{k}.mp4", frames, 10)
                lines.append(f"{cls}/{subset}_{k}.mp4 {label}")
        (lists / f"{subset}.csv").write_text("\n".join(lines) + "\n")
    return name, entry


def test_a_video_list_dataset_runs_with_the_guide_s_config_entry(guide_dataset, tmp_path):
    name, entry = guide_dataset
    root, paths = Path(entry["root"]), entry["paths"]
    table = index("video_list", root, "1", **paths)
    assert table.groupby("subset").size().to_dict() == {"test": 2, "train": 4, "val": 2}
    assert dict(zip(table["class_name"], table["label"], strict=False)) == {"wave": 0, "jump": 1}
    assert len(list_files("video_list", root, "1", **paths)) == 4  # 3 lists, the classes file

    config = smoke_config_with({"x3d_tiny": {"variants": ["baseline", "vmp"]}})
    config["datasets"] = {name: entry}
    checked = check_inputs(config, [name], [])
    assert checked["split_lists"] == {
        f"{name}/1": {"classes": 2, "train": 4, "test": 2, "unreadable": 0}
    }

    out = tmp_path / "prepared"
    report = prepare("video_list", root, "1", out, **paths)
    assert (report["listed"], report["found"], report["readable"]) == (8, 8, 8)
    assert report["per_class"] == {
        s: {"jump": n, "wave": n} for s, n in [("test", 1), ("train", 2), ("val", 1)]
    }
    assert summary_line(report, "r.md") == (
        "prepare_data video_list split 1: 8 of 8 listed videos found, 0 missing, 0 unreadable, "
        "8 readable (report: r.md)"
    )

    # The smoke profile with this dataset as its only one: the workflow plans its prepare_data.
    profile = write_config(
        tmp_path,
        datasets={name: entry},
        only={"datasets": [name]},
        backbones={"x3d_tiny": {"variants": ["baseline", "vmp"]}},
        placement=None,
        ablation=None,
        prompt_functions=None,
    )
    planned = snakemake("-n", "--configfile", str(profile))
    text = planned.stdout + planned.stderr
    assert "prepare_data" in text
    assert str(tmp_path / "results" / "data" / name / "1" / "manifest.csv") in text
    assert "pre-flight: 1 split(s) of 1 dataset(s)" in text

    # The pre-flight names a class left without a readable test video.
    (root / paths["video_dir"] / "jump" / "test_0.mp4").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"class jump has no readable test video: .*test_0\.mp4"):
        check_inputs(config, [name], [])


# Adding a prompt function --------------------------------------------------------------------


def tanhe(x: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """The guide's example: f = tanh(eta x) / tanh(eta)."""
    return torch.tanh(eta * x) / torch.tanh(eta)


@pytest.fixture
def with_tanhe(monkeypatch, fresh_registry):
    """The guide's steps 1 and 2 for "tanhe". vmp.layer.prompt and the registry read POWER_NORMS
    when imported (a changed names.py is seen by the next process), so here each is patched."""
    monkeypatch.setattr(names, "POWER_NORMS", (*names.POWER_NORMS, "tanhe"))
    monkeypatch.setattr(prompt, "POWER_NORMS", names.POWER_NORMS)
    monkeypatch.setitem(registry._VARIANTS_SINGLE, "vmp_tanhe", {"prompt": "tanhe"})
    monkeypatch.setitem(prompt.PN_ETA_INIT, "tanhe", 2.0)
    signed_pn = prompt._signed_pn

    def with_branch(name, x, eta):
        return tanhe(x, eta) if name == "tanhe" else signed_pn(name, x, eta)

    monkeypatch.setattr(prompt, "_signed_pn", with_branch)


def test_the_guide_s_prompt_function_extension_points_are_the_real_ones():
    # the registry's and names' variants follow POWER_NORMS; the schema lists them (step 3)
    alternatives = [f"vmp_{n}" for n in names.POWER_NORMS if n != "sigmoid"]
    assert list(names.PROMPT_FUNCTION_VARIANTS) == alternatives
    assert [v for v in list_variants("x3d_tiny") if v in alternatives] == alternatives
    assert set(prompt.PN_ETA_INIT) == set(names.POWER_NORMS) - {"sigmoid"}
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]
    enum = schema["prompt_functions"]["properties"]["variants"]["items"]["enum"]
    assert enum == alternatives
    backbone = schema["backbones"]["additionalProperties"]["properties"]["variants"]
    assert [v for v in backbone["items"]["enum"] if v in alternatives] == alternatives


def test_a_prompt_function_added_as_the_guide_says(with_tanhe):
    x = torch.linspace(-1, 1, 41, dtype=torch.float64)
    curve = prompt.power_norm_curve("tanhe", x)
    assert torch.allclose(curve, 0.5 * (1 + tanhe(x, torch.tensor(2.0, dtype=x.dtype))))
    assert float(curve[20]) == pytest.approx(0.5) and torch.allclose(
        curve + curve.flip(0), torch.ones_like(x)
    )
    assert curve.min() >= 0 and curve.max() <= 1

    torch.manual_seed(0)
    clip = torch.rand(2, 3, 5, 16, 16)
    for implementation in ("fused", "eager"):
        layer = prompt.MotionPromptLayer(power_norm="tanhe", implementation=implementation)
        assert float(layer.eta.detach()) == pytest.approx(2.0)
        prompts, attention = layer(clip)
        assert prompts.shape == (2, 3, 4, 16, 16) and 0 <= attention.min() <= attention.max() <= 1
        prompts.square().mean().backward()
        assert torch.isfinite(layer.log_eta.grad) and layer.log_eta.grad != 0

    register_guide_backbone()
    assert "vmp_tanhe" in list_variants("toy_conv")
    model = create_model("toy_conv", 3, **variant_options("toy_conv", "vmp_tanhe"))
    logits, (attention,) = model(clip)
    logits.sum().backward()
    assert model.prompt_layers["video"].power_norm == "tanhe"
    assert model.prompt_layers["video"].log_eta.grad is not None
