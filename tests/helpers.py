"""Helpers shared by the tests: small PyAV videos, tiny training runs, prompt-layer gradients,
the workflow run through Snakemake, and the report page loaded in headless Chromium."""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from vmp.data.masks import SceneLayers, masks_path, write_masks
from vmp.workflow.config import nested_update

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, cwd=ROOT, check=True, env=None):
    """``snakemake *args`` in the repository (its workflow profile applies); raises with the
    output's end if it fails and ``check``."""
    proc = subprocess.run(
        ["snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def write_config(tmp_path, name="config.yaml", base="config/smoke.yaml", **changes):
    """A profile (default: the smoke profile) with its results and data under ``tmp_path``."""
    config = yaml.safe_load((ROOT / base).read_text())
    config = nested_update(
        config, {"results": str(tmp_path / "results"), "data_root": str(tmp_path / "data")}
    )
    config = nested_update(config, changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def workflow_checkout(to: Path) -> Path:
    """The workflow's files (Snakefile, rules, notebooks, config, profiles, report) copied to
    ``to``: a checkout of its own, whose ``.snakemake`` (locks, incomplete markers) no other test's
    Snakemake touches. The package itself is the installed one."""
    to.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "rules", "notebooks", "config", "profiles", "report", "envs"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, to / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, to / name)
    return to


def copy_tree(smoke_run, to: Path, data: str | None = "data", runs: bool = True, **changes) -> Path:
    """A copy of the finished smoke tree (results and data, times kept) under ``to``, its data in
    ``to / data`` (``data=None``: no copy, the tree's own data_root is shared, as by a second
    profile: a moved scene's decoded frames are rebuilt), its settings updated with ``changes``;
    without ``runs``, no fine-tuning run is copied (data, notebooks and pre-training are).
    Returns its config file."""
    config, results = smoke_run
    source = results.parent
    ignore = None if runs else shutil.ignore_patterns("runs")
    shutil.copytree(source / "results", to / "results", symlinks=True, ignore=ignore)
    settings = yaml.safe_load(config.read_text()) | {"results": str(to / "results")}
    if data is not None:
        shutil.copytree(source / "data", to / data, symlinks=True)
        settings["data_root"] = str(to / data)
    path = to / "config.yaml"
    path.write_text(yaml.safe_dump(nested_update(settings, changes), sort_keys=False))
    return path


def write_frames(path: Path, frames: Iterable[np.ndarray], fps: float, size=(32, 32)) -> Path:
    """Encode uint8 RGB frames of ``size`` (H, W) as an mpeg4 file at near-lossless quality."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        s.height, s.width, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"qscale": "2"}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# A training clip small enough for 2-epoch runs in tests.
TINY_CLIP = {
    "num_frames": 4,
    "sampling_rate": 2,
    "crop_size": 32,
    "train_scale": [32, 36],
    "test_scale": 32,
    "hflip": False,
}


def centre_x(weights: torch.Tensor) -> torch.Tensor:
    """x centroid per frame of (T, H, W) weights."""
    xs = torch.arange(weights.shape[-1], dtype=torch.float32)
    return (weights.sum(1) * xs).sum(1) / weights.sum((1, 2))


def square_video(tmp_path: Path) -> Path:
    """16 frames 40 x 56: a white 8 x 8 square on black whose left edge is at x = 4 + 2k in frame
    k (top y = 12), a red 6 x 6 distractor that stays, and the masks saying so."""
    h, w, n = 40, 56, 16
    obj = np.zeros((n, h, w), np.float32)
    distractor = np.zeros((n, h, w), np.float32)
    frames = np.zeros((n, h, w, 3), np.uint8)
    for k in range(n):
        obj[k, 12:20, 4 + 2 * k : 12 + 2 * k] = 1
        distractor[k, 28:34, 40:46] = 1
        frames[k][obj[k] > 0] = 255
        frames[k][distractor[k] > 0] = (255, 0, 0)
    path = write_frames(tmp_path / "square.mp4", frames, 25, (h, w))
    write_masks(masks_path(path), SceneLayers(obj, distractor, np.zeros((n, 2), np.float32)))
    return path


def tiny_run_settings(scene: Path, **changes) -> dict:
    """Keyword arguments of ``vmp.training.run.train_run`` for an x3d_tiny VMP run on ``scene``."""
    settings = dict(
        dataset="synth_gym",
        dataset_format="synthmotion",
        data_root=str(scene),
        split="1",
        backbone="x3d_tiny",
        variant="vmp",
        lambda_reg=2.5,
        seed=0,
        clip=TINY_CLIP,
        optim={"epochs": 2, "batch_size": 4},
        progress_bar=False,
    )
    return settings | changes


def prompt_clip_and_grads(shape=(2, 3, 4, 6, 5), normalized=False, seed=1):
    """A clip (B, 3, T+1, H, W) in [0, 1] (or normalised) and upstream gradients of the prompt
    layer's outputs: (video, g_prompts (B, 3, T, H, W), g_attention (B, T, H, W))."""
    gen = torch.Generator().manual_seed(seed)
    b, _, t1, h, w = shape
    video = torch.rand(shape, generator=gen)
    if normalized:
        video = (video - 0.45) / 0.225
    g_prompts = torch.randn(b, 3, t1 - 1, h, w, generator=gen)
    g_attention = torch.randn(b, t1 - 1, h, w, generator=gen)
    return video, g_prompts, g_attention


def prompt_outputs_and_grads(layer, video, g_prompts, g_attention, loss_on="both", video_grad=True):
    """Outputs of ``layer`` and the gradients of <outputs, upstream gradients> by name.

    ``loss_on`` picks the outputs in the loss ("both", "prompts" or "attention"); the clip's
    gradient is None when ``video_grad`` is False.
    """
    v = video.clone().requires_grad_(video_grad)
    out = layer(v)
    loss = 0
    if loss_on in ("both", "prompts"):
        loss = loss + (out.prompts * g_prompts).sum()
    if loss_on in ("both", "attention"):
        loss = loss + (out.attention * g_attention).sum()
    layer.zero_grad(set_to_none=True)
    loss.backward()
    grads = {f"{name} grad": p.grad for name, p in layer.named_parameters()}
    return {"prompts": out.prompts, "attention": out.attention, "video grad": v.grad, **grads}


def twin_layers(*implementations, seed=0, **kw):
    """Prompt layers of the given implementations with the same parameters."""
    from vmp import MotionPromptLayer

    torch.manual_seed(seed)
    first, *rest = (MotionPromptLayer(implementation=i, **kw) for i in implementations)
    for layer in rest:
        layer.load_state_dict(first.state_dict())
    return (first, *rest)


def assert_near_float64_truth(layer, video, g_prompts, g_attention, **kw):
    """A float32 prompt layer is as accurate as the float32 eager reference.

    Outputs and gradients are compared with the float64 eager layer. Differences of nearby
    frames cancel, the gradients of parameters are sums of terms of both signs, and the gamma
    power norm is steep near zero, so float32 errors depend on the clip; an implementation may
    be at most 4x as far from float64 as float32 eager is, plus 1e-6 of the largest value (1e-5
    for the parameters' gradients: sums over every pixel, whose order differs between them).
    """
    from vmp import MotionPromptLayer

    options = {
        "power_norm": layer.power_norm,
        "input_normalized": layer.input_normalized,
        "grayscale_order": layer.grayscale_order,
    }
    eager = MotionPromptLayer(implementation="eager", **options)
    eager.load_state_dict(layer.state_dict())
    reference = prompt_outputs_and_grads(eager, video, g_prompts, g_attention, **kw)
    got = prompt_outputs_and_grads(layer, video, g_prompts, g_attention, **kw)
    as64 = (t.double() for t in (video, g_prompts, g_attention))
    truth = prompt_outputs_and_grads(eager.double(), *as64, **kw)
    assert got.keys() == truth.keys()
    for name, value in truth.items():
        if value is None:
            assert got[name] is None, name
            continue
        assert got[name].dtype == torch.float32, name
        scale = value.abs().max().item()
        error = (got[name].double() - value).abs().max().item()
        reference_error = (reference[name].double() - value).abs().max().item()
        floor = 1e-6 if name in ("prompts", "attention", "video grad") else 1e-5
        assert error <= 4 * reference_error + floor * scale, (
            f"{name}: error {error:.3g} (float32 eager: {reference_error:.3g}, "
            f"largest value {scale:.3g})"
        )


def comparable_results(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's metrics and history without wall times, resume bookkeeping and who wrote
    them (the files' checksums cover the model file, which names its run folder)."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    for key in ("train_seconds", "test_seconds", "resumed_from_epoch", "files", "provenance"):
        metrics.pop(key)
    metrics.pop("execution", None)  # what ran it: the same machine, but the commit may move
    history = pd.read_csv(Path(run_dir) / "history.csv").drop(columns="seconds")
    return metrics, history


# --- the report page in a real browser --------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)

# What the loaded page holds: images with their decoded width, links with where they point.
_PAGE_STATE = """({
  url: document.URL,
  ready: document.readyState,
  images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
  links: [...document.querySelectorAll('a[href]')].map(a => ({
    href: a.getAttribute('href'), url: a.href.split('#')[0],
    anchor: a.hash ? document.getElementById(decodeURIComponent(a.hash.slice(1))) !== null : null,
  })),
  scrollWidth: document.documentElement.scrollWidth,
  text: document.body.innerText,
})"""


class _DevTools:
    """Chrome DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in NUL)."""

    def __init__(self, write_fd: int, read_fd: int, timeout: float):
        self.write_fd, self.read_fd = write_fd, read_fd
        self.deadline = time.monotonic() + timeout
        self.buffer, self.events, self.last_id = bytearray(), [], 0

    def _receive(self) -> dict:
        while (end := self.buffer.find(b"\0")) < 0:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self.buffer += chunk
        message = json.loads(self.buffer[:end])
        del self.buffer[: end + 1]
        return message

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self.last_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str) -> dict:
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._receive())


def load_in_chromium(page: Path, screenshot: Path, width: int = 1280, height: int = 2000) -> dict:
    """Open ``page`` in headless Chromium at ``width`` x ``height`` px, wait for it to load
    (images included), save a screenshot of the window as PNG and return the page's state:
    ``images`` (src, naturalWidth), ``links`` (href as written, resolved url, whether a
    ``#anchor`` exists), ``scrollWidth`` and ``text``."""
    to_chrome, from_chrome = os.pipe(), os.pipe()
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryFile() as log:
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # Chromium reads commands on fd 3 and answers on fd 4.
        redirect = f'exec "$@" 3<&{to_chrome[0]} 4>&{from_chrome[1]}'
        browser = subprocess.Popen(
            ["bash", "-c", redirect, "chromium", *args],
            pass_fds=(to_chrome[0], from_chrome[1]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_chrome[0])
        os.close(from_chrome[1])
        try:
            tools = _DevTools(to_chrome[1], from_chrome[0], timeout=90)
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            session = tools.call("Target.attachToTarget", targetId=target, flatten=True)
            session = session["sessionId"]
            tools.call("Page.enable", session)
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            url = page.resolve().as_uri()
            tools.call("Page.navigate", session, url=url)
            state = {}
            while state.get("url") != url or state.get("ready") != "complete":
                tools.wait_for("Page.loadEventFired")
                state = tools.call(
                    "Runtime.evaluate", session, expression=_PAGE_STATE, returnByValue=True
                )["result"]["value"]
            shot = tools.call("Page.captureScreenshot", session, format="png")["data"]
            screenshot.write_bytes(base64.b64decode(shot))
            tools.call("Browser.close")
            browser.wait(timeout=30)
        except Exception as error:
            log.seek(0)
            raise AssertionError(
                f"Chromium failed on {page}: {error}\n{log.read()[-3000:]}"
            ) from error
        finally:
            if browser.poll() is None:
                browser.kill()
                browser.wait()
            os.close(to_chrome[1])
            os.close(from_chrome[0])
    return state


def check_report_page(index: Path, screenshot: Path) -> dict:
    """Load the report's ``index`` in Chromium and check what a reader meets at 1280 px: every
    image decoded, every link relative and pointing to a file (or an anchor) that exists, no
    horizontal scrolling, and a 1280-px-wide screenshot that is not blank."""
    from PIL import Image

    state = load_in_chromium(index, screenshot)
    assert state["images"], "the page shows no image"
    broken = [image["src"] for image in state["images"] if image["width"] == 0]
    assert not broken, f"images that did not load: {broken}"
    assert state["links"], "the page has no link"
    for link in state["links"]:
        href = link["href"]
        assert "://" not in href and not href.startswith("/"), f"link not relative: {href}"
        if href.startswith("#"):
            assert link["anchor"], f"no element for the anchor {href}"
            continue
        target = Path(unquote(urlparse(link["url"]).path))
        assert target.is_file(), f"link {href} points to {target}, which does not exist"
    assert state["scrollWidth"] <= 1280, f"the page is {state['scrollWidth']} px wide"
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) blank"
    return state
