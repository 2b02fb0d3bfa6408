"""The GPU tier: what only a CUDA device shows (``pytest -m gpu``; the default run deselects it).

Every test is skipped where CUDA is not available, the DDP step below two GPUs. In order of
cost: the prompt layer's implementations on CUDA against the float64 CPU reference (float32,
and under float16 / bfloat16 autocast), ``static_gain`` on CUDA, one optimiser step of every
paper-size backbone with and without its prompt layer(s) in the paper profile's precision, a
two-GPU ``ddp_fork`` run, and ``benchmarks/gpu_check.py`` (6-9 minutes on its own).

    pytest -n0 -m gpu tests/test_gpu.py -k "not gpu_check"  # about 2-3 minutes on one H100
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import prompt_clip_and_grads, prompt_outputs_and_grads, tiny_run_settings

from vmp import MotionPromptLayer, temporal_variation
from vmp.layer.prompt import POWER_NORMS
from vmp.models import create_model, sigmoid_variant, variant_options

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
PRECISION = PAPER["resources"]["precision"]  # "16-mixed": float16 autocast with a GradScaler
AUTOCAST = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# The autograd node of the attention names the implementation that computed it.
GRAD_FNS = {"fused": "_FusedPromptBackward", "compiled": "CompiledFunctionBackward"}
# Sigmoid raw and normalised (the released code's mode); the alternatives raw.
CASES = [("sigmoid", False), ("sigmoid", True)] + [
    (name, False) for name in POWER_NORMS if name != "sigmoid"
]


def twin(implementation: str, power_norm: str, normalized: bool, seed: int = 0):
    torch.manual_seed(seed)
    return MotionPromptLayer(
        power_norm=power_norm, input_normalized=normalized, implementation=implementation
    )


def cpu_references(layer: MotionPromptLayer, inputs) -> tuple[dict, dict]:
    """Outputs and gradients of the eager layer of ``layer``'s parameters on the CPU: in float64
    (the truth) and in float32 (how far float32 itself is from it)."""
    eager = MotionPromptLayer(
        power_norm=layer.power_norm,
        input_normalized=layer.input_normalized,
        implementation="eager",
    )
    eager.load_state_dict({k: v.cpu() for k, v in layer.state_dict().items()})
    inputs = tuple(t.float().cpu() for t in inputs)
    float32 = prompt_outputs_and_grads(eager, *inputs)
    return prompt_outputs_and_grads(eager.double(), *(t.double() for t in inputs)), float32


def assert_path(implementation: str, attention: torch.Tensor) -> None:
    name = type(attention.grad_fn).__name__
    if implementation in GRAD_FNS:
        assert name == GRAD_FNS[implementation], f"{implementation} ran {name}"
    else:
        assert name not in GRAD_FNS.values(), f"{implementation} ran {name}"


def assert_near(got: dict, references: tuple[dict, dict], dtype: torch.dtype) -> None:
    """float32: at most 4x as far from float64 as float32 eager on the CPU is, plus 1e-5 of the
    largest value (1e-4 for the parameters' gradients, sums over every pixel in another order);
    a half dtype: the rounding of its outputs (4 of its eps for the gradients)."""
    truth, float32 = references
    eps = torch.finfo(dtype).eps
    for name, value in truth.items():
        if value is None:
            assert got[name] is None, name
            continue
        scale = value.abs().max().item()
        error = (got[name].double().cpu() - value).abs().max().item()
        if dtype == torch.float32:
            floor = 1e-5 if name in ("prompts", "attention", "video grad") else 1e-4
            reference = (float32[name].double() - value).abs().max().item()
            bound = 4 * reference + floor * scale
        else:
            bound = (4 if name.endswith(" grad") else 1) * eps * max(scale, 1e-3)
        assert error <= bound, f"{name}: error {error:.3g} > {bound:.3g} ({dtype})"


@pytest.mark.parametrize("power_norm, normalized", CASES)
@pytest.mark.parametrize("implementation", ["fused", "eager", "compiled"])
@pytest.mark.filterwarnings("error:MotionPromptLayer.*falls back:RuntimeWarning")
def test_layer_on_cuda_matches_the_float64_cpu_reference(implementation, power_norm, normalized):
    layer = twin(implementation, power_norm, normalized).cuda()
    inputs = prompt_clip_and_grads((2, 3, 9, 56, 56), normalized)
    got = prompt_outputs_and_grads(layer, *(t.cuda() for t in inputs))
    assert got["prompts"].is_cuda and got["prompts"].dtype == torch.float32
    assert_near(got, cpu_references(layer, inputs), torch.float32)
    assert_path(implementation, layer(inputs[0].cuda()).attention)


@pytest.mark.parametrize("autocast", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("implementation", ["fused", "eager", "compiled"])
@pytest.mark.filterwarnings("error:MotionPromptLayer.*falls back:RuntimeWarning")
def test_layer_under_autocast(implementation, autocast):
    """A float32 clip under autocast (16-mixed, bf16-mixed) keeps float32 accuracy: none of the
    layer's operations is one autocast lowers; a clip of the autocast dtype gives outputs in it,
    computed in float32."""
    layer = twin(implementation, "sigmoid", False).cuda()
    inputs = prompt_clip_and_grads((2, 3, 9, 56, 56))
    with torch.autocast("cuda", dtype=autocast):
        got = prompt_outputs_and_grads(layer, *(t.cuda() for t in inputs))
    assert got["prompts"].dtype == torch.float32
    assert_near(got, cpu_references(layer, inputs), torch.float32)

    half = tuple(t.to(autocast) for t in inputs)
    with torch.autocast("cuda", dtype=autocast):
        got = prompt_outputs_and_grads(layer, *(t.cuda() for t in half))
    assert got["prompts"].dtype == autocast and got["m grad"].dtype == torch.float32
    assert_near(got, cpu_references(layer, half), autocast)


def test_static_gain_on_cuda():
    for init in ("paper", "identity"):
        for gate in (False, True):
            torch.manual_seed(3)
            layer = MotionPromptLayer(init=init, gate=gate)
            if gate:
                with torch.no_grad():
                    layer.gate.fill_(0.5)
            on_cpu = layer.static_gain()
            on_cuda = layer.cuda().static_gain()
            assert on_cuda["state"] == on_cpu["state"]
            for key in ("static_attention", "static_gain"):
                assert on_cuda[key] == pytest.approx(on_cpu[key], rel=1e-6, abs=1e-7), key


def paper_backbones() -> list[tuple[str, dict]]:
    """(arch, clip) of each architecture the paper profile trains, with its clip settings."""
    seen = {}
    for name, settings in PAPER["backbones"].items():
        seen.setdefault(settings.get("arch", name), settings["clip"])
    return sorted(seen.items())


@pytest.mark.parametrize("with_layer", [False, True], ids=["baseline", "vmp"])
@pytest.mark.parametrize("arch, clip", paper_backbones(), ids=[a for a, _ in paper_backbones()])
def test_paper_backbone_optimiser_step_in_the_profiles_precision(arch, clip, with_layer):
    """One SGD step as Lightning's precision runs it: autocast, GradScaler for "16-mixed"."""
    dtype = AUTOCAST[PRECISION]
    frames, size, batch = clip["num_frames"], clip.get("crop_size", 224), 2
    options = variant_options(arch, sigmoid_variant(arch)) if with_layer else {}
    torch.manual_seed(0)
    model = create_model(arch, 10, num_frames=frames, crop_size=size, **options).cuda().train()
    video = torch.rand(batch, 3, frames + 1, size, size, device="cuda")
    labels = torch.tensor([1, 7], device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    for _ in range(4):  # a first scale too large for float16 skips the step, then shrinks
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            out = model(video)
            loss = F.cross_entropy(out.logits.float(), labels)
            if with_layer:
                loss = loss + 2.5 * sum(temporal_variation(a.float()) for a in out.attentions)
        assert torch.isfinite(loss)
        scaler.scale(loss).backward()
        scale = scaler.get_scale() if scaler.is_enabled() else 1.0
        scaler.step(optimizer)
        scaler.update()
        if not scaler.is_enabled() or scaler.get_scale() >= scale:
            break  # the step was taken
    else:
        pytest.fail(f"GradScaler skipped every step (scale {scaler.get_scale()})")
    params = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    changed = [k for k, v in before.items() if not torch.equal(v, params[k])]
    assert any(k.startswith("backbone.") for k in changed)
    layers = [k for k in params if k.startswith("prompt_layers.")]
    assert bool(layers) == with_layer
    for key in layers:
        assert params[key].dtype == torch.float32 and key in changed, key
    assert len(out.attentions) == (len(model.prompt_layers) if with_layer else 0)
    del model, optimizer, out
    torch.cuda.empty_cache()


DDP_SCRIPT = """
    import json, sys
    from vmp.training.run import train_run
    settings = json.loads(sys.argv[1])
    result = train_run(**settings)
    keys = ("top1", "prompt", "execution")
    print("RESULT", json.dumps({k: result.get(k) for k in keys}))
"""


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_two_gpu_ddp_fork_run(tiny_scene, tmp_path):
    """Lightning's ddp_fork over two GPUs in the profile's precision, as `devices: 2` runs it.
    In a process of its own: ddp_fork cannot fork once this one has initialised CUDA."""
    settings = tiny_run_settings(
        tiny_scene,
        out_dir=str(tmp_path / "run"),
        accelerator="gpu",
        devices=2,
        precision=PRECISION,
        optim={"epochs": 1, "batch_size": 4},
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DDP_SCRIPT), json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert 0 <= result["top1"] <= 100 and 9.09 <= result["prompt"]["slope"] <= 50
    if execution := result["execution"]:  # the run's record of what it ran on
        assert execution["devices"] == 2 and execution["precision"] == PRECISION
    history = (tmp_path / "run" / "history.csv").read_text()
    assert "nan" not in history.lower()


def test_gpu_check_in_the_profiles_precision():
    """benchmarks/gpu_check.py end to end (6-9 minutes), in config/paper.yaml's precision."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--precision", PRECISION, "--repeats", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"== 2. training step per backbone ({PRECISION} on CUDA) ==" in out
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] and line.split()[0] in {a for a, _ in paper_backbones()}
    ]
    assert sorted(r[0] for r in rows) == sorted(a for a, _ in paper_backbones())
    assert f"smoke DAG on the GPU ({PRECISION})" in out and f"{PRECISION}: data wait" in out
