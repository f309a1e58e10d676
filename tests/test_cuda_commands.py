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
