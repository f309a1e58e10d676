"""bfloat16 network energies for Langevin chains (mrgen.precision, --precision)."""

import numpy as np
import pytest
import torch

from mrgen.errors import UsageError
from mrgen.precision import AutocastEnergy, in_precision, resolve_precision
from mrgen.priors.energy import energy_and_grad
from mrgen.priors.local_energy import LocalEnergyConfig, LocalEnergyNet
from mrgen.priors.tv import CharbonnierTV

from .conftest import invoke
from .test_local_energy import _brain_like, _round_trip, _trained_on_64

SMALL = LocalEnergyConfig(width=6, dilations=(1, 2, 1))

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resolve_precision_choices():
    assert resolve_precision("float32", "cpu") == (None, "float32")
    assert resolve_precision("bfloat16", "cpu")[0] is torch.bfloat16
    assert resolve_precision("auto", "cpu", metropolis=True)[0] is None
    with pytest.raises(UsageError, match="--precision half"):
        resolve_precision("half", "cpu")
    with pytest.raises(UsageError, match="MALA"):
        resolve_precision("bfloat16", "cpu", metropolis=True)


def test_the_commands_offer_the_library_choices():
    from commands.options import PRECISIONS as offered
    from mrgen.precision import PRECISIONS

    assert offered == PRECISIONS


def test_tv_and_float32_stay_as_they_are():
    tv = CharbonnierTV()
    net = LocalEnergyNet(SMALL)
    assert in_precision(tv, torch.bfloat16) is tv          # closed-form gradient
    assert in_precision(net, None) is net
    assert isinstance(in_precision(net, torch.bfloat16), AutocastEnergy)


def test_the_high_pass_start_keeps_full_precision_under_autocast():
    """A fresh network's residual is the high pass alone (its last layer is zero): under
    bfloat16 autocast the energy must equal float32's to float32 rounding, which it would
    miss by per cents if x - G x were rounded to bfloat16."""
    net = LocalEnergyNet(SMALL)
    x = _brain_like(48, 6)[None] + 0.01 * torch.randn(1, 48, 48,
                                                       generator=torch.Generator().manual_seed(0))
    exact = net(x)
    fast = AutocastEnergy(net, torch.bfloat16)(x)
    assert fast.dtype == torch.float32
    assert torch.allclose(fast, exact, rtol=1e-5)


def test_bfloat16_energy_and_gradient_are_close_to_float32():
    net = _trained_on_64()
    x = torch.stack([_brain_like(64, 8, s) for s in (7, 8)])
    x = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    e32, g32 = energy_and_grad(net, x)
    e16, g16 = energy_and_grad(AutocastEnergy(net, torch.bfloat16), x)
    assert e16.dtype == torch.float32
    assert torch.allclose(e16, e32, rtol=2e-2)
    assert float((g16 - g32).norm() / g32.norm()) < 5e-2


def test_cli_langevin_precision(tmp_path):
    """--precision bfloat16 runs the chains in bfloat16 (the log says so) and their MMSE
    stays close to float32's; MALA refuses it; deepen's MAP refuses it."""
    assert invoke("phantom", "--size", 32, 32, "--coils", 2, tmp_path / "d.h5").exit_code == 0
    assert invoke("mask", "--like", tmp_path / "d.h5", "--kind", "random-exact", "--accel", 2,
                  tmp_path / "m.npy").exit_code == 0
    _round_trip(_trained_on_64(), SMALL, 0.05, tmp_path / "prior.pt")
    args = ["langevin", "--model", tmp_path / "prior.pt", "--mask", tmp_path / "m.npy",
            "--ipalm-iters", 5, "--burn-in", 10, "--samples", 5, "--thin", 2, "--seed", 3,
            tmp_path / "d.h5"]
    full = invoke(*args, "--precision", "float32", tmp_path / "f.npy")
    assert full.exit_code == 0, full.stderr
    fast = invoke(*args, "--precision", "bfloat16", tmp_path / "b.npy")
    assert fast.exit_code == 0, fast.stderr
    assert "bfloat16" in fast.stderr and "bfloat16" not in full.stderr
    a, b = np.load(tmp_path / "f.npy"), np.load(tmp_path / "b.npy")
    assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(a)
    mala = invoke(*args, "--sampler", "mala", "--precision", "bfloat16", tmp_path / "x.npy")
    assert mala.exit_code == 2 and "--precision" in mala.stderr


def test_bfloat16_score_matching_tracks_float32_and_resumes_bit_identically(tmp_path):
    from mrgen.training.distributed import DistContext
    from mrgen.training.score import ScoreConfig, ScoreTraining

    from .test_local_energy import _same_weights

    images = torch.stack([_brain_like(32, 4, s) for s in range(4)])
    losses = {}
    for precision in ("float32", "bfloat16"):
        method = ScoreTraining(images, SMALL, ScoreConfig(batch=4, patch=24,
                                                          precision=precision), DistContext())
        method.bind(DistContext())
        losses[precision] = [method.train_step(k, torch.Generator().manual_seed(k))["loss"]
                             for k in range(3)]
    assert np.allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
    data = tmp_path / "d.npy"
    np.save(data, images.numpy())
    args = ["train", "prior", data, tmp_path / "a.pt", "--preset", "cpu", "--width", "4",
            "--dilations", "1,2,1", "--patch", "24", "--batch", "4", "--crop", "32",
            "--precision", "bfloat16"]
    assert invoke(*args, "--steps", "4").exit_code == 0
    args[3] = tmp_path / "b.pt"
    assert invoke(*args, "--steps", "2", "--checkpoint-every", "2").exit_code == 0
    assert invoke(*args, "--steps", "4", "--resume").exit_code == 0
    meta = _same_weights(tmp_path / "a.pt", tmp_path / "b.pt")
    assert "bfloat16" in str(meta["training"])
    ml = invoke("train", "prior", data, tmp_path / "c.pt", "--preset", "cpu-ml",
                "--precision", "bfloat16")
    assert ml.exit_code == 2 and "--precision bfloat16" in ml.stderr


def test_the_global_head_energy_is_summed_in_float32_under_autocast():
    from mrgen.priors.energy import EnergyConfig, EnergyNet

    net = EnergyNet(EnergyConfig(base_width=4, stages=2, crop=16))
    energies = AutocastEnergy(net, torch.bfloat16)(torch.rand(2, 16, 16))
    assert energies.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.rand(2, 16, 16)).dtype == torch.float32


def test_float32_runs_keep_their_resume_fingerprint():
    """Checkpoints written before --precision existed resume: float32 is not recorded."""
    from mrgen.training.score import ScoreConfig

    assert "precision" not in ScoreConfig().to_dict()
    assert ScoreConfig(precision="bfloat16").to_dict()["precision"] == "bfloat16"
