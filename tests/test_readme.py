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
