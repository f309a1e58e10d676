"""Progress on stderr: a bar on a terminal, a line every ~10 s in a log or a pipe."""

import io
import os

import numpy as np

from .conftest import run_mrgen
from mrgen.progress import LineProgress, progress_bar


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_line_every_interval_then_a_last_one():
    stream, clock = io.StringIO(), _Clock()
    with LineProgress(10, "ipalm", stream=stream, interval=10.0, clock=clock) as bar:
        for _ in range(10):
            clock.now += 4.0      # 4 s per step: 0.25 it/s
            bar.update(1)
            bar.set_postfix(energy="12.3")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4      # at 12 s, 24 s, 36 s, and the end (40 s)
    assert lines[0] == "ipalm: 3/10 it (30%), 0.25 it/s, ETA 0:28, energy 12.3"
    assert lines[-1] == "ipalm: 10/10 it (100%), 0.25 it/s, done in 0:40, energy 12.3"


def test_short_work_stays_silent():
    stream, clock = io.StringIO(), _Clock()
    with LineProgress(5, "sense", stream=stream, interval=10.0, clock=clock) as bar:
        clock.now += 3.0
        bar.update(5)
    assert stream.getvalue() == ""


def test_the_kind_of_progress_follows_the_stream():
    assert isinstance(progress_bar(4, "x", stream=io.StringIO()), LineProgress)
    terminal = progress_bar(4, "x", stream=_Terminal())
    assert not isinstance(terminal, LineProgress) and not terminal.disable
    terminal.close()
    quiet = progress_bar(4, "x", enabled=False, stream=io.StringIO())
    assert quiet.disable


def test_a_command_in_a_pipeline_reports_its_progress(tmp_path):
    """stderr is a pipe here: ipalm prints progress lines (every 0 s in this test), not a bar,
    and none with --quiet."""
    kspace = tmp_path / "k.npy"
    assert run_mrgen("phantom", "--size", 32, 32, "--coils", 2, kspace).returncode == 0
    env = {**os.environ, "MRGEN_PROGRESS_SECONDS": "0"}
    done = run_mrgen("ipalm", "--iters", 3, kspace, tmp_path / "u.npy", env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ipalm: ")]
    assert any(line.startswith("ipalm: 1/3 it (33%)") for line in lines), done.stderr
    assert lines[-1].startswith("ipalm: 3/3 it (100%)") and "done in" in lines[-1]
    assert "\r" not in done.stderr
    quiet = run_mrgen("ipalm", "--iters", 3, "--quiet", kspace, tmp_path / "v.npy", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert np.allclose(np.load(tmp_path / "u.npy"), np.load(tmp_path / "v.npy"))
