"""The model-based and learned commands on CUDA agree with the CPU (run by `pytest -m cuda`,
as benchmarks/gpu_checks.sh does; skipped without a GPU).

The GPU sums in another order and runs convolutions in TF32, so outputs are compared by the
PSNR of one against the other (data range = the CPU output's maximum), not bit for bit; a
device mix-up or a wrong transfer gives garbage or an error, far below these bounds.
"""

import numpy as np
import pytest
import torch

from .conftest import invoke

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 64 x 64 Shepp-Logan scan with 8 coils and a 3x random-column mask."""
    folder = tmp_path_factory.mktemp("scan")
    data, mask = folder / "scan.h5", folder / "mask.npy"
    assert invoke("phantom", "--size", 64, 64, "--coils", 8, "--noise", 0.002,
                  data).exit_code == 0
    assert invoke("mask", "--like", data, "--kind", "random-exact", "--accel", 3,
                  mask).exit_code == 0
    return {"data": data, "mask": mask, "maps": f"{data}:maps"}


def agreement_db(a, b):
    a, b = np.abs(np.load(a)), np.abs(np.load(b))
    return 10 * np.log10(a.max() ** 2 / np.mean((a - b) ** 2))


def run_on_both(tmp_path, *args):
    """Run one command line with --device cpu and --device cuda; the two output paths."""
    outputs = []
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.npy"
        result = invoke(*args, out, "--device", device)
        assert result.exit_code == 0, (device, result.stderr)
        outputs.append(out)
    return outputs


@pytest.mark.parametrize("regulariser", [["--reg", "tv", "--lam", 300],
                                         ["--model", "prior-brain-small", "--lam", 10]])
def test_ipalm(tmp_path, scan, regulariser):
    cpu, cuda = run_on_both(tmp_path, "ipalm", *regulariser, "--iters", 20, "--mask",
                            scan["mask"], scan["data"])
    assert agreement_db(cpu, cuda) > 30


def test_deepen_map(tmp_path, scan):
    cpu, cuda = run_on_both(tmp_path, "deepen", "--model", "deepen-brain-small", "--mask",
                            scan["mask"], "--maps", scan["maps"], "--magnitude", scan["data"])
    assert agreement_db(cpu, cuda) > 30


def test_djsense(tmp_path, scan):
    cpu, cuda = run_on_both(tmp_path, "djsense", "--model", "djsense-brain-small", "--mask",
                            scan["mask"], scan["data"])
    assert agreement_db(cpu, cuda) > 30


def test_langevin_mmse(tmp_path, scan):
    """The chains draw other random numbers on the GPU: compare quality, not values."""
    from mrgen import io
    from mrgen.metrics import psnr

    cpu, cuda = run_on_both(tmp_path, "langevin", "--model", "prior-brain-small", "--maps",
                            scan["maps"], "--ipalm-iters", 10, "--burn-in", 20, "--samples",
                            10, "--thin", 2, "--mask", scan["mask"], scan["data"])
    reference = torch.from_numpy(io.read_array(str(scan["data"]), io.roles.REFERENCE))
    cpu_db, cuda_db = (float(psnr(reference, torch.from_numpy(np.abs(np.load(p)))))
                       for p in (cpu, cuda))
    assert abs(cpu_db - cuda_db) < 2, (cpu_db, cuda_db)


def test_train_prior_runs_on_cuda(tmp_path, scan):
    from mrgen.training.prior import load_prior

    out = tmp_path / "prior.pt"
    result = invoke("train", "prior", scan["data"], out, "--crop", 32, "--width", 4,
                    "--stages", 3, "--buffer", 64, "--batch", 8, "--chain-max", 10,
                    "--chain-tau", 3, "--lr", 1e-3, "--steps", 4, "--device", "cuda")
    assert result.exit_code == 0, result.stderr
    model, _ = load_prior(out, "cpu")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def psnr_db(scan, path):
    """PSNR of an output against the scan's fully sampled reference."""
    from mrgen import io
    from mrgen.metrics import psnr

    reference = torch.from_numpy(io.read_array(str(scan["data"]), io.roles.REFERENCE))
    return float(psnr(reference, torch.from_numpy(np.abs(np.load(path)))))


def test_espirit_and_sense(tmp_path, scan):
    maps = run_on_both(tmp_path, "espirit", "--mask", scan["mask"], scan["data"])
    images = []
    for device, path in zip(("cpu", "cuda"), maps):
        out = tmp_path / f"sense-{device}.npy"
        result = invoke("sense", "--mask", scan["mask"], "--magnitude", scan["data"], path, out,
                        "--device", device)
        assert result.exit_code == 0, (device, result.stderr)
        images.append(out)
    assert agreement_db(*images) > 30


def test_single_coil_ipalm(tmp_path):
    """The learned prior's single-coil default: ipalm-TV's image, then the prior."""
    data, mask = tmp_path / "one.h5", tmp_path / "mask.npy"
    assert invoke("phantom", "--size", 48, 48, "--coils", 1, data).exit_code == 0
    assert invoke("mask", "--like", data, "--kind", "poisson", "--accel", 3, mask).exit_code == 0
    cpu, cuda = run_on_both(tmp_path, "ipalm", "--single-coil", "--model", "prior-brain-small",
                            "--iters", 10, "--mask", mask, data)
    assert agreement_db(cpu, cuda) > 30


@pytest.mark.parametrize("command", [
    ["langevin", "--reg", "tv", "--ipalm-iters", 10, "--burn-in", 20, "--samples", 10],
    ["deepen", "--model", "deepen-brain-small", "--mode", "sample", "--samples", 4,
     "--steps", 30, "--start", "sense", "--magnitude"],
    ["convdecoder", "--preset", "cpu", "--iters", 300]])
def test_samplers_and_fits_reach_the_same_quality(tmp_path, scan, command):
    """Random draws and TF32 convolutions differ on the GPU: compare quality, not values
    (zero-filled: 17.4 dB; on the CPU langevin 29.9, deepen 24.8, convdecoder 28.5)."""
    maps = ["--maps", scan["maps"]] if command[0] != "convdecoder" else []
    cpu, cuda = run_on_both(tmp_path, *command, *maps, "--mask", scan["mask"], scan["data"])
    zero_filled = tmp_path / "zf.npy"
    assert invoke("zf", "--mask", scan["mask"], scan["data"], zero_filled).exit_code == 0
    cpu_db, cuda_db = psnr_db(scan, cpu), psnr_db(scan, cuda)
    assert abs(cpu_db - cuda_db) < 2, (cpu_db, cuda_db)
    assert cuda_db > psnr_db(scan, zero_filled) + 5, cuda_db


@pytest.mark.parametrize("command", [
    ["train", "deepen", "--width", 8, "--depth", 3, "--batch", 2, "--steps", 4,
     "--chain-steps", 10, "--lr", 1e-3],
    ["train", "djsense", "--unrolls", 2, "--map-cg", 3, "--image-cg", 3, "--map-kernel", 7, 5,
     "--width", 8, "--blocks", 2, "--mask", "random-exact:4:0.16", "--steps", 3,
     "--central-slices", 0]])
def test_training_runs_on_cuda(tmp_path, scan, command):
    out = tmp_path / "model.pt"
    result = invoke(*command[:2], scan["data"], out, *command[2:], "--device", "cuda")
    assert result.exit_code == 0, result.stderr
    state = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
