"""The multiscale energy prior (--head multiscale): the tent downsampling, R = R_fine + w
R_coarse(D x), whole-image coverage, equivariance for shifts by the factor, CLI training on
top of a trained fine energy (issue #13)."""

import numpy as np
import pytest
import torch

from mrgen.model_files import load_model, store_fitted_entries
from mrgen.priors.energy import build_model, energy_and_grad
from mrgen.priors.local_energy import LocalEnergyConfig
from mrgen.priors.multiscale_energy import (MultiScaleConfig, MultiScaleEnergy, downsample,
                                            noise_gain)

from .conftest import invoke
from .test_local_energy import _brain_like, _same_weights

FINE = LocalEnergyConfig(width=4, dilations=(1, 2))
COARSE = LocalEnergyConfig(width=4, dilations=(1,))
CONFIG = MultiScaleConfig(fine=FINE.to_dict(), coarse=COARSE.to_dict(), factor=4,
                          coarse_weight=3.0)

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0):
    model = build_model(CONFIG.to_dict())
    g = torch.Generator().manual_seed(seed)
    for part in (model.fine, model.coarse):   # random residual layers, not the zero start
        for p in part.parameters():
            p.data.normal_(0, 0.3, generator=g)
    return model


def test_downsampling_keeps_constants_and_scales_white_noise_by_the_gain():
    flat = downsample(torch.ones(2, 64, 48), 8)
    assert flat.shape == (2, 8, 6) and torch.equal(flat, torch.ones(2, 8, 6))
    noise = torch.randn(64, 128, 128, generator=torch.Generator().manual_seed(0))
    assert float(downsample(noise, 8).std()) == pytest.approx(noise_gain(8), rel=0.03)
    block = torch.zeros(1, 16, 16)
    block[0, 8:, :8] = 1.0
    assert torch.equal(downsample(block, 8)[0], torch.tensor([[0.0, 0.0], [1.0, 0.0]]))


def test_energy_is_the_fine_plus_the_weighted_coarse_and_levels_follow_the_gain():
    model = _model()
    x = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = model.fine(x) + 3.0 * model.coarse(downsample(x, 4))
    assert torch.allclose(model(x), expected)
    model.set_sigma(0.05)
    assert float(model.sigma) == pytest.approx(0.05)
    assert float(model.coarse.sigma) == pytest.approx(0.05 * noise_gain(4))
    with pytest.raises(ValueError):
        MultiScaleConfig(fine=FINE.to_dict(), coarse=COARSE.to_dict(), factor=3)


def test_every_region_of_a_256_image_gets_a_gradient_and_the_coarse_part_reaches_far():
    model = _model()
    image = torch.rand(1, 256, 256, generator=torch.Generator().manual_seed(2))
    _, grad = energy_and_grad(model, image)
    assert grad[0].abs().reshape(8, 32, 8, 32).amax(dim=(1, 3)).min() > 0
    # one pixel changes the coarse energy's gradient far beyond the fine field (radius 4)
    coarse_only = build_model(CONFIG.to_dict())
    coarse_only.load_state_dict(model.state_dict())
    for p in coarse_only.fine.parameters():
        p.data.zero_()
    poked = image.clone()
    poked[0, 128, 128] += 1.0
    _, g0 = energy_and_grad(coarse_only, image)
    _, g1 = energy_and_grad(coarse_only, poked)
    fine_only = energy_and_grad(coarse_only.fine, poked)[1] - energy_and_grad(
        coarse_only.fine, image)[1]
    far = (g1 - g0 - fine_only).abs()[0]
    assert far[128, 128 + 24] > 0


@pytest.mark.parametrize("shift", [(4, -8), (12, 4)])
def test_shifts_by_the_factor_keep_the_energy_and_shift_the_gradient(shift):
    model = _model()
    image = _brain_like(128, 44)[None]   # the fields (4 and 3 x 4 pixels) stay inside
    e, g = energy_and_grad(model, image)
    e_s, g_s = energy_and_grad(model, torch.roll(image, shift, dims=(1, 2)))
    assert float(e_s) == pytest.approx(float(e), rel=1e-5)
    inner = (slice(None), slice(48, 80), slice(48, 80))   # 2 fields from the padded border
    assert torch.allclose(torch.roll(g, shift, dims=(1, 2))[inner], g_s[inner], rtol=1e-4,
                          atol=1e-4 * float(g.abs().max()))
    # a shift by less than the factor moves the sampling grid: another coarse image
    e_odd, _ = energy_and_grad(model, torch.roll(image, (1, 0), dims=(1, 2)))
    assert abs(float(e_odd) - float(e)) > 1e-4 * abs(float(e))


def _fine_model(tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, torch.stack([_brain_like(32, 4, s) for s in range(6)]).numpy())
    fine = tmp_path / "fine.pt"
    made = invoke("train", "prior", data, fine, "--preset", "cpu", "--width", "4",
                  "--dilations", "1,2", "--patch", "16", "--batch", "4", "--crop", "32",
                  "--steps", "2")
    assert made.exit_code == 0, made.stderr
    store_fitted_entries(fine, {"sigma": 0.04})
    return data, fine


def test_cli_trains_the_coarse_energy_on_a_fixed_fine_one_and_resumes(tmp_path):
    from mrgen.priors.loading import build_regulariser

    data, fine = _fine_model(tmp_path)
    args = ["train", "prior", data, tmp_path / "a.pt", "--preset", "cpu", "--head",
            "multiscale", "--fine", fine, "--factor", "4", "--width", "4", "--dilations",
            "1", "--batch", "4", "--crop", "32", "--sigma-range", "0.002", "0.3"]
    whole = invoke(*args, "--steps", "4")
    assert whole.exit_code == 0, whole.stderr
    assert "multiscale" in whole.stderr
    trained, meta = load_model(tmp_path / "a.pt", "cpu", kind="energy-prior")
    original, _ = load_model(fine, "cpu", kind="energy-prior")
    for (name, p), q in zip(trained.fine.state_dict().items(), original.state_dict().values()):
        assert torch.equal(p, q), name                      # the fine energy is kept
    assert float(trained.coarse.last.weight.abs().sum()) > 0  # the coarse one trained
    assert meta["fitted"]["sigma"] == 0.04
    assert meta["training"]["data"]["fine"]["file"].endswith("fine.pt")
    network, info = build_regulariser(str(tmp_path / "a.pt"), "learned", 1e-3, "cpu")
    assert isinstance(network, MultiScaleEnergy)
    assert float(network.sigma) == pytest.approx(0.04)
    assert info.anneal_from == pytest.approx(0.2)           # the fine energy's top level
    assert info.sampling_step == pytest.approx(0.25 * 0.04 ** 2 / 5)   # 1 + w: curvature
    args[3] = tmp_path / "b.pt"
    assert invoke(*args, "--steps", "2", "--checkpoint-every", "2").exit_code == 0
    rest = invoke(*args, "--steps", "4", "--resume")
    assert rest.exit_code == 0, rest.stderr
    _same_weights(tmp_path / "a.pt", tmp_path / "b.pt")


def test_cli_refuses_a_multiscale_head_without_a_usable_fine_energy(tmp_path):
    data, fine = _fine_model(tmp_path)
    base = ["train", "prior", data, tmp_path / "m.pt", "--preset", "cpu", "--crop", "32",
            "--steps", "1"]
    missing = invoke(*base, "--head", "multiscale")
    assert missing.exit_code == 2 and "--fine" in missing.stderr
    stray = invoke(*base, "--fine", fine)
    assert stray.exit_code == 2 and "--fine" in stray.stderr
    odd = invoke(*base, "--head", "multiscale", "--fine", fine, "--factor", "3")
    assert odd.exit_code == 2 and "--factor 3" in odd.stderr
    glob = tmp_path / "g.pt"
    made = invoke("train", "prior", data, glob, "--preset", "cpu-ml", "--width", "2",
                  "--stages", "2", "--crop", "32", "--batch", "2", "--buffer", "4",
                  "--chain-max", "2", "--steps", "1")
    assert made.exit_code == 0, made.stderr
    wrong = invoke(*base, "--head", "multiscale", "--fine", glob, "--factor", "2")
    assert wrong.exit_code == 2 and "--head global" in wrong.stderr
