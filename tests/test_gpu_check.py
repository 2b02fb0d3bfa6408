"""benchmarks/gpu_check.py runs in its CPU --dry mode, so the GPU check cannot rot between GPU runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vmp.models import list_models

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_gpu_check_names_only_registered_paper_models():
    import gpu_check

    names = [name for name, *_ in gpu_check.PAPER_MODELS + gpu_check.DRY_MODELS]
    assert set(names) <= set(list_models())
    assert {n for n in names if not n.endswith("_tiny")} == {
        "slowfast_r50",
        "c2d_r50",
        "i3d_r50",
        "x3d_m",
        "timesformer",
    }


@pytest.mark.slow
def test_gpu_check_dry_run_prints_every_part():
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "ratio fused forward+backward / copy:" in out and "fused fwd+bwd bandwidth" in out
    rows = [line.split() for line in out.splitlines() if line.endswith("nan")]
    assert [r[0] for r in rows] == [
        "slowfast_tiny",
        "c2d_tiny",
        "i3d_tiny",
        "x3d_tiny",
        "timesformer_tiny",
    ]
    assert all(float(r[3]) > 0 and float(r[4]) > 0 and r[5].endswith("%") for r in rows)
    assert "smoke DAG with accelerator gpu, 16-mixed, planned" in out
    assert "== 2. training step per backbone (16-mixed on CUDA) ==" in out


def test_gpu_check_runs_the_paper_profiles_precision():
    import gpu_check
    import yaml

    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert gpu_check.PAPER_PRECISION == paper["resources"]["precision"] == "16-mixed"
    assert gpu_check.AUTOCAST_DTYPES["16-mixed"] == torch.float16
    assert gpu_check.grad_scaler("cuda", "16-mixed").is_enabled() == torch.cuda.is_available()
    assert not gpu_check.grad_scaler("cuda", "bf16-mixed").is_enabled()
    assert not gpu_check.grad_scaler("cpu", "16-mixed").is_enabled()


def test_gpu_check_step_on_cpu_updates_the_model():
    """The step the GPU check times (autocast and GradScaler are off on the CPU)."""
    import gpu_check

    from vmp.models import create_model

    torch.manual_seed(0)
    model = create_model("x3d_tiny", 3, prompt="vmp")
    before = model.prompt_layers["video"].m.item()
    step = gpu_check.training_step(
        model, torch.rand(2, 3, 9, 32, 32), torch.tensor([0, 2]), "cpu", "16-mixed"
    )
    step()
    assert model.prompt_layers["video"].m.item() != before
