"""What a new user met (issue 12, part 4): defaults that work and advice that can help."""

import numpy as np
import pytest

from .conftest import expect, invoke


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frictions")
    expect("--quiet", "phantom", "--size", 64, 64, "--coils", 4, "--noise", 0.002,
           folder / "d.h5")
    return folder


def test_djsense_without_model_or_mode_uses_the_shipped_model(scan, tmp_path):
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           "--center", 0.125, tmp_path / "m.npy")
    result = expect("djsense", "--mask", tmp_path / "m.npy", scan / "d.h5", tmp_path / "o.npy")
    assert "Deep J-Sense (djsense-brain-small): 1 slice(s), 4 unrolls" in result.stderr
    named = expect("djsense", "--model", "djsense-brain-small", "--mask", tmp_path / "m.npy",
                   scan / "d.h5", tmp_path / "named.npy")
    assert "Deep J-Sense (djsense-brain-small)" in named.stderr
    # the default is exactly the named model
    assert np.array_equal(np.load(tmp_path / "o.npy"), np.load(tmp_path / "named.npy"))
    both = invoke("djsense", "--mode", "l2", "--model", "djsense-brain-small", "--mask",
                  tmp_path / "m.npy", scan / "d.h5", tmp_path / "both.npy")
    assert both.exit_code == 2
    assert "mrgen djsense: give one of --model FILE.pt and --mode l2, not both" in both.stderr
    assert not (tmp_path / "both.npy").exists()


def test_equispaced_default_centre_fits_256_lines(tmp_path):
    # The default centre (0.32 / R = 0.08: 20 of 256 lines) has no integer spacing within 2%
    # of 4x; the default moves to the nearest centre that fits (18 lines, spacing 5).
    result = expect("mask", "--shape", 256, 256, "--kind", "equispaced", "--accel", 4,
                    tmp_path / "e.npy")
    assert "18 centre lines" in result.stderr and "spacing 5" in result.stderr
    assert "default centre 20 lines moved to 18 to fit (--center 0.0703)" in result.stderr
    mask = np.load(tmp_path / "e.npy")
    lines = mask[0] > 0
    assert abs(256 / lines.sum() - 4) / 4 <= 0.02
    assert lines[128 - 9:128 + 9].all()  # the 18 centre lines
    # An explicit --center is taken as given: the error names one that fits.
    given = invoke("mask", "--shape", 256, 256, "--kind", "equispaced", "--accel", 4,
                   "--center", 0.08, tmp_path / "g.npy")
    assert given.exit_code == 2 and "try --center 0.0703" in given.stderr
    assert not (tmp_path / "g.npy").exists()
    # Where the default fits it is unchanged (64 lines: 5 centre lines at 4x).
    small = expect("mask", "--shape", 64, 64, "--kind", "equispaced", "--accel", 4,
                   tmp_path / "s.npy")
    assert "moved" not in small.stderr


def test_espirit_too_few_centre_lines_advises_what_helps(scan, tmp_path):
    # The default 4x mask on 64 lines has 5 centre lines: less than the 6x6 kernel. --calib
    # cannot help (a larger block takes in unsampled lines); more lines or a smaller kernel do.
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           tmp_path / "m5.npy")
    result = invoke("espirit", "--mask", tmp_path / "m5.npy", scan / "d.h5",
                    tmp_path / "maps.npy")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "mrgen espirit: k-space: the fully-sampled centre is 24x5, smaller than the 6x6 kernel "
        "(--kernel); sample more centre lines (mrgen mask --center) or a kernel that fits "
        "(--kernel 6x5)")
    assert "--calib" not in result.stderr
    assert not (tmp_path / "maps.npy").exists()
    # Both pieces of advice work.
    expect("--quiet", "espirit", "--kernel", "6x5", "--mask", tmp_path / "m5.npy",
           scan / "d.h5", tmp_path / "maps.npy")
    expect("--quiet", "mask", "--like", scan / "d.h5", "--kind", "random-exact", "--accel", 4,
           "--center", 0.1, tmp_path / "m6.npy")
    expect("--quiet", "espirit", "--mask", tmp_path / "m6.npy", scan / "d.h5",
           tmp_path / "maps6.npy")


def test_train_prior_default_on_cpu_is_the_cpu_preset(tmp_path):
    # The paper's network (21.4 M parameters, an 85 MB model) is a named preset; on a CPU
    # the default is the shipped prior's recipe: a fully convolutional energy, score matching.
    import torch

    import mrgen
    from mrgen.apps.train_prior import PRESETS, resolve_preset
    from mrgen.priors.energy import EnergyConfig, EnergyNet
    from mrgen.priors.local_energy import LocalEnergyConfig, LocalEnergyNet

    def parameters(name):
        p = PRESETS[name]
        if p["head"] == "local":
            config = LocalEnergyConfig(width=p["width"], dilations=tuple(
                int(d) for d in p["dilations"].split(",")))
            return sum(t.numel() for t in LocalEnergyNet(config).parameters())
        config = EnergyConfig(base_width=p["width"], stages=p["stages"], crop=p["crop"])
        return sum(t.numel() for t in EnergyNet(config).parameters())

    assert parameters("paper") == 21_350_640 and parameters("cpu-ml") == 230_544
    assert parameters("cpu") == 65_633
    assert resolve_preset("auto", torch.device("cpu")) == "cpu"
    assert resolve_preset("auto", torch.device("cuda")) == "paper"
    assert resolve_preset("paper", torch.device("cpu")) == "paper"
    # the cpu preset is the shipped model's architecture
    shipped = torch.load(mrgen.__path__[0] + "/data/prior-brain-small.pt",
                         weights_only=True)["architecture"]
    assert shipped["head"] == "local" and shipped["width"] == PRESETS["cpu"]["width"]
    assert shipped["dilations"] == [int(d) for d in PRESETS["cpu"]["dilations"].split(",")]

    expect("--quiet", "phantom", "--kind", "brain", "--size", 32, 32, "--coils", 1,
           "--slices", 2, tmp_path / "t.h5")
    result = expect("--device", "cpu", "train", "prior", tmp_path / "t.h5", tmp_path / "p.pt",
                    "--central-slices", 0, "--steps", 0, "--crop", 64)
    assert ("preset cpu (auto on cpu): local head, width 32, dilations 1,2,4,8,4,2,1 (radius "
            "24), 65,633 parameters; denoising score matching, 0 steps of 16 patches 64 x 64"
            ) in result.stderr
    model = torch.load(tmp_path / "p.pt", weights_only=True)
    assert model["architecture"]["width"] == 32 and model["architecture"]["head"] == "local"
    assert (tmp_path / "p.pt").stat().st_size < 2_000_000
    # options given override the preset
    result = expect("--device", "cpu", "train", "prior", tmp_path / "t.h5", tmp_path / "q.pt",
                    "--central-slices", 0, "--steps", 0, "--preset", "cpu-ml", "--width", 8,
                    "--crop", 32, "--stages", 3)
    assert "preset cpu-ml (--preset): width 8, 3 stages, crop 32" in result.stderr
    bad = invoke("train", "prior", tmp_path / "t.h5", tmp_path / "r.pt", "--preset", "gpu")
    assert bad.exit_code == 2 and "--preset gpu: expected auto | paper | cpu | cpu-ml" \
        in bad.stderr


def test_readme_training_block_runs(tmp_path, monkeypatch):
    # The README builds the training corpus, then trains on it (cut to 4 slices, 2 steps).
    import re
    import shlex
    from pathlib import Path

    pytest.importorskip("pydicom")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S)
                 if "corpus/train.h5" in b)
    lines = [line.split("  #")[0].strip() for line in block.splitlines()
             if line.startswith("mrgen ")]
    assert lines[0].startswith("mrgen dataset corpus --split train")
    assert lines[1].startswith("mrgen train prior corpus/train.h5:image ")
    monkeypatch.chdir(tmp_path)
    expect(*shlex.split(lines[0])[1:], "--max-slices", 4)
    result = expect(*shlex.split(lines[1])[1:], "--steps", 2, "--device", "cpu")
    assert "4 training slices" in result.stderr and "preset cpu" in result.stderr
    assert (tmp_path / "prior.pt").exists()


def test_examples_output_is_ignored_by_git():
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout")
    check = subprocess.run(["git", "check-ignore", "-q", "examples/out/metrics.txt"], cwd=root)
    assert check.returncode == 0
