"""Ctrl-C: a running command prints one line "interrupted" within about a second, exits 130
and leaves neither its output nor a temporary file; training keeps its last checkpoint and
--resume continues from it (commands/interrupt.py)."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import expect, mrgen_cmd

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child: POSIX")

LATENCY = 3.0  # seconds from SIGINT to exit, with margin for a loaded 2-core machine


def _torch_loaded(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # no /proc (macOS): the caller's extra wait has to do
        return True


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(args, cwd: Path, ready, settle: float, timeout: float = 90.0):
    """Start mrgen ARGS, wait until ready(stderr_text, pid) and torch is loaded, then
    ``settle`` seconds more (inside the work), send SIGINT; returns (code, stderr, latency)."""
    err_path = cwd / "stderr.txt"
    with err_path.open("w") as err:
        # SIGINT back to its default in the child: a test run started in the background
        # (nohup ... &) inherits SIGINT ignored, and Python then installs no handler.
        proc = subprocess.Popen(mrgen_cmd() + [str(a) for a in args], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=_default_sigint)
    try:
        began = time.monotonic()
        while not (_torch_loaded(proc.pid) and ready(err_path.read_text(), proc.pid)):
            assert proc.poll() is None, f"ended early: {err_path.read_text()}"
            assert time.monotonic() - began < timeout, "never got ready"
            time.sleep(0.1)
        time.sleep(settle)
        assert proc.poll() is None, f"ended before the interrupt: {err_path.read_text()}"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        latency = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err_path.read_text()
    err_path.unlink()
    return code, text, latency


def check_interrupted(code, text, latency, name, folder: Path, outputs):
    assert code == 130, text
    lines = [line for line in text.splitlines() if "interrupted" in line]
    assert lines == [f"mrgen {name}: interrupted"], text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert latency < LATENCY, f"{name}: {latency:.2f} s from SIGINT to exit"
    for out in outputs:
        assert not (folder / out).exists(), f"{out} was left behind"
    left = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    assert left == [], f"temporary files left: {left}"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 64 x 64 4-coil phantom, a 4x mask and ESPIRiT maps (made in-process: fast)."""
    folder = tmp_path_factory.mktemp("interrupt")
    expect("--quiet", "phantom", "--size", 64, 64, "--coils", 4, "--noise", 0.002,
           folder / "d.h5")
    expect("--quiet", "mask", "--like", folder / "d.h5", "--kind", "random-exact", "--accel",
           4, "--center", 0.125, folder / "m.npy")
    expect("--quiet", "espirit", "--mask", folder / "m.npy", folder / "d.h5",
           folder / "maps.npy")
    return folder


def _has(marker):
    return lambda text, pid: marker in text


def test_ipalm_interrupt(scan):
    code, text, latency = interrupt(
        ["ipalm", "--mask", "m.npy", "--iters", 1000000, "d.h5", "out.npy"], scan,
        _has("ipalm:"), settle=1.0)
    check_interrupted(code, text, latency, "ipalm", scan, ["out.npy"])


def test_langevin_interrupt_removes_the_streamed_samples(scan):
    # --samples-out streams into a temporary file for the whole run: it must go too.
    code, text, latency = interrupt(
        ["langevin", "--model", "prior-brain-small", "--maps", "maps.npy", "--mask", "m.npy",
         "--init", "zf", "--burn-in", 0, "--thin", 1, "--samples", 100000, "--samples-out",
         "samples.npy", "--var", "var.npy", "d.h5", "mmse.npy"], scan,
        _has("langevin:"), settle=1.5)
    check_interrupted(code, text, latency, "langevin", scan,
                      ["samples.npy", "var.npy", "mmse.npy"])


def test_convdecoder_interrupt_inside_a_long_iteration(tmp_path):
    # The default network at 128 x 128: one iteration takes seconds on a small CPU, almost
    # all of it inside single torch calls (the backward pass), where Python cannot act on
    # SIGINT; the watchdog ends the process anyway (it took 8-20 s before at 256 x 256).
    expect("--quiet", "phantom", "--size", 128, 128, "--coils", 2, tmp_path / "c.h5")
    expect("--quiet", "mask", "--like", tmp_path / "c.h5", "--kind", "random-exact",
           "--accel", 4, "--center", 0.1, tmp_path / "cm.npy")
    code, text, latency = interrupt(
        ["convdecoder", "--mask", "cm.npy", "--iters", 100000, "c.h5", "out.npy"], tmp_path,
        lambda text, pid: True, settle=4.0)
    check_interrupted(code, text, latency, "convdecoder", tmp_path, ["out.npy"])


def test_train_prior_interrupt_keeps_the_checkpoint_and_resumes(tmp_path):
    expect("--quiet", "phantom", "--kind", "brain", "--size", 32, 32, "--coils", 1,
           "--slices", 4, tmp_path / "t.h5")
    options = ["--preset", "cpu-ml", "--central-slices", 0, "--crop", 32, "--width", 4, "--stages", 2, "--batch", 2,
               "--buffer", 8, "--chain-max", 5, "--checkpoint-every", 2]
    ckpt = tmp_path / "p.ckpt"
    code, text, latency = interrupt(
        ["train", "prior", "t.h5", "p.pt", *options, "--steps", 1000000], tmp_path,
        lambda text, pid: ckpt.exists(), settle=0.5)
    check_interrupted(code, text, latency, "train prior", tmp_path, ["p.pt"])
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # intact, readable
    step = int(state["step"])
    assert step >= 2 and step % 2 == 0
    resumed = subprocess.run(mrgen_cmd() + ["train", "prior", "t.h5", "p.pt"]
                             + [str(o) for o in options]
                             + ["--steps", str(step + 2), "--resume"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from p.ckpt at step {step}" in resumed.stderr
    assert (tmp_path / "p.pt").exists()
    assert int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"]) == step + 2

