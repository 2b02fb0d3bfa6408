"""PySlowFast checkpoints (stage/pathway names) load into the pytorchvideo C2D, I3D and SlowFast."""

from pathlib import Path

import pytest
import torch

from vmp.models import create_model, load_pretrained
from vmp.models.pyslowfast import pyslowfast_names

# Names and shapes of PySlowFast's SLOWFAST_8x8_R50 (Kinetics-400 model zoo): stem of each pathway,
# lateral fusion after stage 1, first and last residual blocks, classifier.
SLOWFAST_R50 = {
    "s1.pathway0_stem.conv.weight": (64, 3, 1, 7, 7),
    "s1.pathway1_stem.conv.weight": (8, 3, 5, 7, 7),
    "s1.pathway1_stem.bn.running_var": (8,),
    "s1_fuse.conv_f2s.weight": (16, 8, 7, 1, 1),
    "s1_fuse.bn.weight": (16,),
    "s2.pathway0_res0.branch1.weight": (256, 80, 1, 1, 1),
    "s2.pathway0_res0.branch1_bn.running_mean": (256,),
    "s2.pathway1_res0.branch2.a.weight": (8, 8, 3, 1, 1),
    "s4_fuse.conv_f2s.weight": (256, 128, 7, 1, 1),
    "s5.pathway0_res2.branch2.b.weight": (512, 512, 1, 3, 3),
    "s5.pathway1_res2.branch2.c_bn.weight": (256,),
    "head.projection.weight": (400, 2304),
}


def test_slowfast_r50_names_and_shapes_are_pyslowfasts():
    model = create_model("slowfast_r50", 400)
    state = model.backbone.state_dict()
    theirs = {name: state[ours].shape for ours, name in pyslowfast_names(model.backbone).items()}
    assert len(theirs) == len(state)
    for name, shape in SLOWFAST_R50.items():
        assert tuple(theirs[name]) == shape, name
    blocks = {n.split("_res")[0] + "_res" for n in theirs if "_res" in n}
    counts = {b: len({n.split(".")[1] for n in theirs if n.startswith(b)}) for b in blocks}
    # ResNet-50 stages of 3, 4, 6, 3 bottlenecks in both pathways, and no s5 fusion.
    assert counts["s2.pathway0_res"] == 3 and counts["s4.pathway1_res"] == 6
    assert not any(n.startswith("s5_fuse") for n in theirs)


def test_i3d_r50_temporal_kernels_sit_in_branch2_a():
    names = pyslowfast_names(create_model("i3d_r50", 400).backbone)
    assert names["blocks.0.conv.weight"] == "s1.pathway0_stem.conv.weight"
    # Stage 3 follows the (weightless) temporal pooling block.
    assert (
        names["blocks.3.res_blocks.0.branch2.conv_a.weight"] == "s3.pathway0_res0.branch2.a.weight"
    )
    assert names["blocks.6.proj.bias"] == "head.projection.bias"


def _write_pyslowfast(model, path, drop=(), extra=None):
    names = pyslowfast_names(model.backbone)
    state = {f"module.{names[k]}": v for k, v in model.backbone.state_dict().items()}
    for key in drop:
        del state[f"module.{key}"]
    state |= extra or {}
    torch.save({"epoch": 196, "model_state": state, "optimizer_state": {}, "cfg": "..."}, path)
    return path


@pytest.mark.parametrize("arch", ["c2d_tiny", "i3d_tiny", "slowfast_tiny"])
def test_pyslowfast_checkpoint_gives_the_outputs_of_the_same_weights(arch, tmp_path):
    torch.manual_seed(0)
    source = create_model(arch, 5).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a swapped mean or var shows
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    pyslowfast = _write_pyslowfast(source, tmp_path / "model.pyth")
    zoo = tmp_path / "zoo.pyth"  # the same weights under pytorchvideo's own names
    torch.save({"model_state": source.backbone.state_dict()}, zoo)

    clip = torch.rand(2, 3, 9, 32, 32)
    outputs = []
    for path in (pyslowfast, zoo):
        torch.manual_seed(1)
        model = create_model(arch, 5)
        load_pretrained(model, path)
        outputs.append(model.eval()(clip).logits)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    torch.testing.assert_close(outputs[0], source(clip).logits, rtol=0, atol=0)


def test_unknown_pyslowfast_layout_names_the_file_and_keys(tmp_path):
    model = create_model("i3d_tiny", 5)
    path = _write_pyslowfast(
        model,
        tmp_path / "i3d_nln.pyth",
        drop=["s2.pathway0_res0.branch1.weight"],
        extra={"s3.pathway0_nonlocal1.conv_g.weight": torch.zeros(1)},
    )
    with pytest.raises(ValueError) as err:
        load_pretrained(create_model("i3d_tiny", 5), path)
    message = str(err.value)
    assert str(path) in message and "s3.pathway0_nonlocal1.conv_g.weight" in message
    assert "s2.pathway0_res0.branch1.weight" in message


def test_other_architectures_refuse_pyslowfast_names(tmp_path):
    path = _write_pyslowfast(create_model("c2d_tiny", 5), tmp_path / "c2d.pyth")
    with pytest.raises(ValueError, match=r"c2d\.pyth: PySlowFast checkpoints are read for the C2D"):
        load_pretrained(create_model("x3d_tiny", 5), path)


# --- PySlowFast's own key names, written down independently of pyslowfast_names ---------------

FIXTURES = Path(__file__).parent / "fixtures" / "pyslowfast_keys"
ZOO = {"SLOWFAST_8x8_R50": "slowfast_r50", "C2D_8x8_R50": "c2d_r50", "I3D_8x8_R50": "i3d_r50"}


def pyslowfast_keys(checkpoint: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a PySlowFast model's state dict, from tests/fixtures/pyslowfast_keys
    (transcribed from PySlowFast's model code by make_keys.py there, which imports no vmp)."""
    keys = {}
    for line in (FIXTURES / f"{checkpoint}.txt").read_text().splitlines():
        name, shape = line.split()
        keys[name] = () if shape == "-" else tuple(int(d) for d in shape.split("x"))
    return keys


@pytest.mark.parametrize("checkpoint", sorted(ZOO))
def test_every_pyslowfast_key_maps_onto_our_model_with_its_shape(checkpoint):
    theirs = pyslowfast_keys(checkpoint)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        backbone = create_model(ZOO[checkpoint], 400).backbone
    state = backbone.state_dict()
    names = pyslowfast_names(backbone)
    assert len(set(names.values())) == len(names), "two of our keys share a PySlowFast name"
    assert sorted(set(names.values()) - set(theirs)) == [], "names PySlowFast does not have"
    assert sorted(set(theirs) - set(names.values())) == [], "PySlowFast keys left unmapped"
    assert sorted(set(state) - set(names)) == [], "our keys without a PySlowFast name"
    wrong = [
        f"{name}: ours {tuple(state[ours].shape)}, PySlowFast {theirs[name]}"
        for ours, name in names.items()
        if tuple(state[ours].shape) != theirs[name]
    ]
    assert wrong == []
    # Both models register their modules in the order the data flows through them, so the map
    # pairs the k-th key of each: a map swapping two keys of one shape (a_bn, b_bn) fails here.
    assert [names[ours] for ours in state] == list(theirs)


def test_fixture_writer_reproduces_the_fixtures():
    """The .txt files are make_keys.py's output (no hand edits drifted from the transcription)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_keys", FIXTURES / "make_keys.py")
    make_keys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_keys)
    for checkpoint, build in make_keys.MODELS.items():
        assert {k: s for k, s in build()} == pyslowfast_keys(checkpoint), checkpoint
    assert set(make_keys.MODELS) == set(ZOO)


def test_a_checkpoint_without_batchnorm_step_counters_loads(tmp_path):
    """Checkpoints converted from Caffe2 have no num_batches_tracked (nothing reads it)."""
    torch.manual_seed(0)
    source = create_model("slowfast_tiny", 5).eval()
    counters = [n for n in pyslowfast_names(source.backbone).values() if "num_batches" in n]
    path = _write_pyslowfast(source, tmp_path / "caffe2.pyth", drop=counters)
    model = create_model("slowfast_tiny", 5)
    load_pretrained(model, path)
    clip = torch.rand(1, 3, 9, 32, 32)
    torch.testing.assert_close(model.eval()(clip).logits, source(clip).logits, rtol=0, atol=0)
