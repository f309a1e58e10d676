"""The shipped demo models: found by name, self-describing, and helpful on held-out slices."""

import numpy as np
import pytest
import torch

from .conftest import invoke

pytest.importorskip("nilearn")


def test_demo_prior_is_found_by_name_and_self_describing():
    from mrgen.model_files import resolve_model
    from mrgen.training.prior import load_prior

    model, metadata = load_prior(resolve_model("prior-brain-small"), "cpu")
    assert metadata["architecture"]["head"] == "local"    # covers the whole image
    assert "train prior" in metadata["training"]["command"]
    assert metadata["training"]["objective"].startswith("denoising score matching")
    assert metadata["fitted"]["lambda_fit"]["intercept"] > 0
    assert 0.005 <= metadata["fitted"]["sigma"] <= 0.2
    assert sum(p.numel() for p in model.parameters()) < 2_000_000  # "a few MB"


def test_demo_prior_on_held_out_slices(tmp_path):
    """The corpus's test split (BrainWeb) was never seen in training or calibration."""
    from mrgen.metrics import psnr

    pytest.importorskip("pydicom")
    built = invoke("--seed", 0, "dataset", tmp_path / "c", "--split", "test", "--size", 128,
                   128, "--coils", 4, "--max-slices", 2)
    if built.exit_code != 0 and "insighttoolkit5-examples" in built.stderr:
        pytest.skip("the ITK example data are not installed")
    assert built.exit_code == 0, built.stderr
    data = tmp_path / "c" / "test.h5"
    assert invoke("mask", "--like", data, "--kind", "random-exact", "--accel", 3,
                  tmp_path / "m.npy").exit_code == 0
    args = ["--mask", tmp_path / "m.npy", data]
    assert invoke("zf", *args, tmp_path / "zf.npy").exit_code == 0
    run = invoke("ipalm", "--model", "prior-brain-small", "--lam", "auto", "--iters", 30, *args,
                 tmp_path / "map.npy")
    assert run.exit_code == 0, run.stderr
    mmse = invoke("langevin", "--model", "prior-brain-small", "--ipalm-iters", 10, "--burn-in",
                  20, "--samples", 10, "--thin", 2, *args, tmp_path / "mmse.npy",
                  "--var", tmp_path / "var.npy")
    assert mmse.exit_code == 0, mmse.stderr
    from mrgen import io

    reference = torch.from_numpy(io.read_array(str(data), io.roles.REFERENCE))
    score = {name: float(psnr(reference, torch.from_numpy(np.load(tmp_path / f"{name}.npy"))))
             for name in ("zf", "map", "mmse")}
    assert score["map"] > score["zf"] + 3, score
    assert score["mmse"] > score["zf"] + 3, score
    assert np.isfinite(np.load(tmp_path / "var.npy")).all()


@pytest.fixture(scope="module")
def heldout8(tmp_path_factory):
    """Two slices of the corpus's test split (BrainWeb; never trained on) at 128 x 128 with 8
    coils at 30 dB, as bench_priors.py has them at 256 x 256."""
    pytest.importorskip("pydicom")
    folder = tmp_path_factory.mktemp("heldout8")
    built = invoke("--seed", 0, "dataset", folder / "c", "--split", "test", "--size", 128,
                   128, "--coils", 8, "--max-slices", 2)
    if built.exit_code != 0 and "insighttoolkit5-examples" in built.stderr:
        pytest.skip("the ITK example data are not installed")
    assert built.exit_code == 0, built.stderr
    return folder / "c" / "test.h5"


def _truth(data):
    from mrgen import io

    return torch.from_numpy(io.read_array(f"{data}:image", io.roles.IMAGE)).abs()


def test_demo_djsense_on_held_out_slices(tmp_path, heldout8):
    """Trained at 4x with 8% ACS: beats ESPIRiT + SENSE at 4x with 8% ACS, and by far with 4%
    (where ESPIRiT's calibration fails; bench_priors.py measures both at 256 x 256)."""
    from mrgen.metrics import psnr

    data, truth = heldout8, _truth(heldout8)
    for center, margin in ((0.08, 0.3), (0.04, 3.0)):
        mask = tmp_path / f"m{center}.npy"
        assert invoke("mask", "--like", data, "--kind", "random-exact", "--accel", 4,
                      "--center", center, mask).exit_code == 0
        assert invoke("espirit", "--mask", mask, data, tmp_path / "maps.npy").exit_code == 0
        assert invoke("sense", "--mask", mask, "--magnitude", data, tmp_path / "maps.npy",
                      tmp_path / "sense.npy").exit_code == 0
        run = invoke("djsense", "--model", "djsense-brain-small", "--mask", mask, data,
                     tmp_path / "dj.npy")
        assert run.exit_code == 0, run.stderr
        sense, dj = (float(psnr(truth, torch.from_numpy(np.load(tmp_path / f"{n}.npy"))))
                     for n in ("sense", "dj"))
        assert dj > sense + margin, (center, sense, dj)


def test_demo_deepen_on_held_out_slices(tmp_path, heldout8):
    """Trained at 2D 4x: its MAP improves on its SENSE start at 2D 4x, and at 1D 2x (Chand,
    Jacob 2025, Table II: a mask it was not trained on)."""
    from mrgen import io
    from mrgen.deepen.model import data_scale
    from mrgen.metrics import psnr, ssim

    data, truth = heldout8, _truth(heldout8)
    kspace = torch.from_numpy(io.read_array(str(data), io.roles.KSPACE))
    maps = torch.from_numpy(io.read_array(f"{data}:maps", io.roles.MAPS))
    for kind, accel in (("poisson", 4), ("random-exact", 2)):
        mask = tmp_path / f"{kind}.npy"
        assert invoke("mask", "--like", data, "--kind", kind, "--accel", accel, "--seed", 5,
                      mask).exit_code == 0
        run = invoke("deepen", "--model", "deepen-brain-small", "--mask", mask, "--maps",
                     f"{data}:maps", "--magnitude", "--iters", 50, data, tmp_path / "map.npy")
        assert run.exit_code == 0, run.stderr
        deepen = torch.from_numpy(np.load(tmp_path / "map.npy"))
        m = torch.from_numpy(np.load(mask)).expand(2, 128, 128)
        _, sense = data_scale(kspace * m.unsqueeze(1), maps, m)
        score = {name: (float(psnr(truth, image)), float(ssim(truth, image)))
                 for name, image in (("sense", sense.abs()), ("deepen", deepen))}
        assert score["deepen"][0] > score["sense"][0] + 1, (kind, score)
        assert score["deepen"][1] > score["sense"][1] + 0.02, (kind, score)
