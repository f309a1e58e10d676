"""The README's main job runs as written (the promise a new user reads first)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def main_job_commands():
    text = README.read_text()
    section = text.split("## The main job", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("mrgen") is None, reason="needs the installed mrgen command")
def test_readme_main_job(tmp_path):
    commands = main_job_commands()
    assert commands[0].startswith("mrgen phantom")
    for command in commands:
        run = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, (command, run.stderr)
    assert (tmp_path / "sense.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = subprocess.run("mrgen metrics --json data.h5 zf.npy sense.npy", shell=True,
                           cwd=tmp_path, capture_output=True, text=True)
    import json

    rows = {r["recon"]: r for r in json.loads(table.stdout)}
    assert rows["sense.npy"]["psnr"] > rows["zf.npy"]["psnr"] + 2


def own_data_commands():
    """The first block of 'Your own data': MRD -> reconstruction -> NIfTI."""
    section = README.read_text().split("## Your own data", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("mrgen") is None, reason="needs the installed mrgen command")
def test_readme_own_data(tmp_path):
    pytest.importorskip("ismrmrd")
    nibabel = pytest.importorskip("nibabel")
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    commands = own_data_commands()
    assert [c.split()[1] for c in commands[1:]] == ["mrd", "espirit", "sense"]
    for command in commands:
        run = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, (command, run.stderr)
    image = nibabel.load(tmp_path / "image.nii.gz")
    assert image.shape == (128, 128, 2)
    assert image.header.get_zooms() == pytest.approx((220 / 128, 220 / 128, 5.0))
