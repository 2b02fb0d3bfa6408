"""DDP in 2 forked CPU processes (gloo): each rank its own random stream, rank 0 a single
process's, and a non-finite loss on one rank stops every rank with one message."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

import vmp.data.clips
from vmp.data.clips import _seed_worker, epoch_seed, stream_seed
from vmp.training.fit import OptimConfig, fit


@dataclass
class Output:
    logits: torch.Tensor
    attentions: list = field(default_factory=list)


class TinyNet(torch.nn.Module):
    """A linear classifier of a clip's mean frame: no BatchNorm, no dropout, no prompt layer.

    ``nan_on_rank``: that DDP rank's logits turn NaN from its ``nan_from_step``-th training batch.
    """

    name = "tiny"

    def __init__(self, num_classes: int = 3, nan_on_rank: int | None = None, nan_from_step=1):
        super().__init__()
        self.num_classes = num_classes
        self.head = torch.nn.Linear(3 * 4 * 4, num_classes)
        self.nan_on_rank, self.nan_from_step, self.steps = nan_on_rank, nan_from_step, 0

    def forward(self, video: torch.Tensor) -> Output:
        logits = self.head(video.float().mean(2).flatten(1))
        if self.training and self.nan_on_rank is not None:
            self.steps += 1
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            if rank == self.nan_on_rank and self.steps > self.nan_from_step:
                logits = logits * float("nan")
        return Output(logits)


class NoisyClips(Dataset):
    """Fixed clips (3, 2, 4, 4) plus noise drawn from torch's global RNG, as augmentation draws.

    With ``draws`` set, each process appends (rank, item, noise draw) lines to
    ``draws/<pid>.jsonl``.
    """

    def __init__(self, n: int, num_classes: int = 3, draws: Path | None = None, noise=0.1):
        gen = torch.Generator().manual_seed(n)
        self.videos = torch.randn(n, 3, 2, 4, 4, generator=gen)
        self.labels = torch.arange(n) % num_classes
        self.table = pd.DataFrame(
            {"path": [f"v{i}.mp4" for i in range(n)], "label": self.labels.tolist()}
        )
        self.draws, self.noise = draws, noise

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        draw = torch.rand(())
        if self.draws is not None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self.draws.mkdir(exist_ok=True)
            with open(self.draws / f"{os.getpid()}.jsonl", "a") as f:
                f.write(json.dumps([rank, i, draw.item()]) + "\n")
        return {
            "video": self.videos[i] + self.noise * draw,
            "label": self.labels[i],
            "video_index": i,
        }


def tiny_fit(out: Path, train: Dataset, *, seed: int = 7, devices: int = 1, **optim) -> dict:
    """``fit`` of a :class:`TinyNet` (or ``optim['model']``) on ``train``, tested on 6 clips."""
    model = optim.pop("model", None) or TinyNet()
    cfg = OptimConfig(**{"epochs": 2, "batch_size": 4, "lr": 0.1, "warmup_epochs": 0} | optim)
    return fit(
        model,
        train,
        None,
        NoisyClips(6, noise=0.0),
        cfg,
        out,
        seed=seed,
        settings={"name": out.name},
        accelerator="cpu",
        devices=devices,
        progress_bar=False,
    )


def _draws(folder: Path) -> dict[int, list[list]]:
    """rank -> its [item, draw] pairs, in the order drawn."""
    by_rank: dict[int, list[list]] = {}
    for file in sorted(folder.glob("*.jsonl")):
        for line in file.read_text().splitlines():
            rank, item, draw = json.loads(line)
            by_rank.setdefault(rank, []).append([item, draw])
    return by_rank


def test_each_rank_draws_its_own_stream_and_rank_0_a_single_process_one(tmp_path):
    seed = 7
    tiny_fit(tmp_path / "one", NoisyClips(16, draws=tmp_path / "one_draws"), seed=seed)
    tiny_fit(tmp_path / "two", NoisyClips(16, draws=tmp_path / "two_draws"), seed=seed, devices=2)
    one, two = _draws(tmp_path / "one_draws"), _draws(tmp_path / "two_draws")
    assert sorted(two) == [0, 1] and len(two[0]) == len(two[1]) == 16  # 8 items x 2 epochs
    # The order is shared: the ranks together see every item once per epoch.
    for epoch in (0, 1):
        items = [i for rank in (0, 1) for i, _ in two[rank][8 * epoch : 8 * (epoch + 1)]]
        assert sorted(items) == list(range(16))
    # Before, both ranks seeded from (seed, epoch): the same draws item after item.
    assert [d for _, d in two[0]] != [d for _, d in two[1]]

    def first_draw(stream: int) -> float:
        return torch.rand((), generator=torch.Generator().manual_seed(stream)).item()

    for epoch in (0, 1):
        # Each epoch's first draw: rank r's comes from (seed, epoch, r), rank 0's is one process's.
        assert two[0][8 * epoch][1] == first_draw(epoch_seed(seed, epoch))
        assert two[1][8 * epoch][1] == first_draw(stream_seed(seed, epoch, 1))
        assert one[0][16 * epoch][1] == first_draw(epoch_seed(seed, epoch))
    assert stream_seed(seed, 3, 0) == epoch_seed(seed, 3) != stream_seed(seed, 3, 1)


def test_loader_workers_of_other_ranks_get_their_own_seeds(monkeypatch):
    torch.manual_seed(123)
    _seed_worker(0)
    assert torch.initial_seed() == 123  # rank 0 (one process): torch's seed, as before
    monkeypatch.setattr(vmp.data.clips, "_replica", lambda: (1, 2))
    torch.manual_seed(123)
    _seed_worker(0)
    assert torch.initial_seed() != 123


NAN_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import time
from test_ddp import NoisyClips, TinyNet, tiny_fit
started = time.monotonic()
try:
    tiny_fit(Path(sys.argv[1]), NoisyClips(16), devices=2, model=TinyNet(nan_on_rank=1))
finally:
    print(f"fit ended after {time.monotonic() - started:.1f} s", flush=True)
"""


@pytest.mark.slow  # a fresh interpreter: its imports take most of its 30-70 s on 2 cores
def test_a_nan_on_rank_1_stops_both_ranks_with_one_message(tmp_path):
    job = subprocess.Popen(
        [sys.executable, "-c", NAN_SCRIPT, str(tmp_path / "nan"), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the job and the ranks it forks: one process group
    )
    try:
        output, _ = job.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        pytest.fail("a NaN on rank 1 left the DDP job hanging for 120 s")
    assert job.returncode != 0
    message = "nan: non-finite loss (nan) on rank 1 of 2 at epoch 0, step 1 (global step 1)"
    assert f"FloatingPointError: {message}" in output, output[-3000:]
    seconds = float(re.search(r"fit ended after ([\d.]+) s", output)[1])
    assert seconds < 30  # forking, one step, the NaN step: a few seconds (imports not counted)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # no rank outlives the job
        try:
            os.killpg(job.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("a rank was still running after the job ended")
    assert not (tmp_path / "nan" / "metrics.json").exists()
