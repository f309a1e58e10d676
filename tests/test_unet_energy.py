"""The U-Net energy prior (--head unet): whole-image coverage, equivariance for shifts by its
pooling period, model files, ipalm and CLI training (issue #13, part 2)."""

import numpy as np
import pytest
import torch

from mrgen.priors.energy import build_model, energy_and_grad
from mrgen.priors.unet_energy import UNetEnergyConfig, UNetEnergyNet

from .conftest import invoke
from .test_local_energy import _brain_like, _round_trip, _same_weights
from .test_local_energy import _trained_on_64 as trained_on_64

SMALL = UNetEnergyConfig(width=4, stages=2, dilations=(1, 2))
NARROW = UNetEnergyConfig(width=4, stages=1, dilations=(1,))     # radius 13, period 2

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained_on_64(config=SMALL):
    return trained_on_64(config=config)


def test_a_64_trained_unet_prior_regularises_every_region_of_a_256_image():
    model = _trained_on_64()
    image = torch.rand(1, 256, 256, generator=torch.Generator().manual_seed(1))
    _, grad = energy_and_grad(model, image)
    blocks = grad[0].abs().reshape(8, 32, 8, 32).amax(dim=(1, 3))
    assert blocks.min() > 0
    # sizes that are no multiple of the pooling period work too (padded, cropped back)
    energy, odd = energy_and_grad(model, image[:, :101, :67])
    assert odd.shape == (1, 101, 67) and torch.isfinite(energy).all()


def test_the_field_reaches_beyond_the_local_heads():
    # a change at one pixel moves the energy map 36 pixels away with 2 stages and dilations
    # 1, 2 (the local head's default radius is 24), and no further than the bound ``radius``
    model = _trained_on_64(SMALL)
    image = _brain_like(128, 10)[None]
    poked = image.clone()
    poked[0, 64, 64] += 0.5
    with torch.no_grad():
        change = (model.energy_map(poked) - model.energy_map(image)).abs()[0]
    assert change[64, 64 + 36] > 0 and change[64 - 36, 64] > 0
    beyond = torch.ones_like(change, dtype=torch.bool)
    r = SMALL.radius
    beyond[64 - r:64 + r + 1, 64 - r:64 + r + 1] = False
    assert change[beyond].max() == 0
    # the shipped shape (3 stages, dilations to 8) reaches across a 256 image
    wide = _trained_on_64(UNetEnergyConfig(width=4))
    image = _brain_like(256, 10)[None]
    poked = image.clone()
    poked[0, 128, 128] += 0.5
    with torch.no_grad():
        change = (wide.energy_map(poked) - wide.energy_map(image)).abs()[0]
    assert change[128, 0] > 0 and change[0, 128] > 0 and change[255, 128] > 0


@pytest.mark.parametrize("shift", [(2, -4), (6, 8)])
def test_shifts_by_the_pooling_period_shift_energy_map_and_gradient(shift):
    model = _trained_on_64(NARROW)
    size, r = 120, NARROW.radius
    image = _brain_like(size, 2 * r + 10)[None]
    shifted = torch.roll(image, shift, dims=(1, 2))
    e, g = energy_and_grad(model, image)
    e_s, g_s = energy_and_grad(model, shifted)
    with torch.no_grad():
        m, m_s = model.energy_map(image), model.energy_map(shifted)
    margin = 2 * r + max(abs(s) for s in shift)
    inner = (slice(None), slice(margin, size - margin), slice(margin, size - margin))
    for field, moved in ((m, m_s), (g, g_s)):
        assert torch.allclose(torch.roll(field, shift, dims=(1, 2))[inner], moved[inner],
                              rtol=1e-4, atol=1e-7)
    # an odd shift is not one of the period's: the pooling grid sees another image
    odd = torch.roll(image, (1, 0), dims=(1, 2))
    with torch.no_grad():
        m_odd = model.energy_map(odd)
    assert not torch.allclose(torch.roll(m, (1, 0), dims=(1, 2))[inner], m_odd[inner],
                              rtol=1e-4, atol=1e-7)


def test_unet_model_file_round_trip_and_ipalm_regulariser(tmp_path):
    from mrgen.priors.loading import build_regulariser

    model = UNetEnergyNet(SMALL)
    path = tmp_path / "u.pt"
    loaded, metadata = _round_trip(model, SMALL, 0.03, path)
    assert isinstance(loaded, UNetEnergyNet) and metadata["architecture"]["head"] == "unet"
    x = torch.rand(2, 24, 24)
    assert torch.equal(loaded(x), model(x))
    assert isinstance(build_model(SMALL.to_dict()), UNetEnergyNet)
    network, info = build_regulariser(str(path), "learned", 1e-3, "cpu")
    assert info.crop is None and "whole image" in info.description
    assert info.noise_rule is not None and float(network.sigma) == pytest.approx(0.03)


def test_cli_trains_a_unet_prior_and_resumes_bit_identically(tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, torch.stack([_brain_like(32, 4, s) for s in range(4)]).numpy())
    args = ["train", "prior", data, tmp_path / "a.pt", "--preset", "cpu", "--head", "unet",
            "--width", "4", "--stages", "2", "--dilations", "1,2", "--patch", "24",
            "--batch", "4", "--crop", "32"]
    whole = invoke(*args, "--steps", "4")
    assert whole.exit_code == 0, whole.stderr
    assert "U-Net head" in whole.stderr
    args[3] = tmp_path / "b.pt"
    assert invoke(*args, "--steps", "2", "--checkpoint-every", "2").exit_code == 0
    rest = invoke(*args, "--steps", "4", "--resume")
    assert rest.exit_code == 0, rest.stderr
    meta = _same_weights(tmp_path / "a.pt", tmp_path / "b.pt")
    assert meta["architecture"] == {**SMALL.to_dict(), "sigma": pytest.approx(0.02)}
    bad = invoke(*args[:4], "--head", "unet", "--stages", "0", "--steps", "1")
    assert bad.exit_code == 2 and "--stages 0" in bad.stderr
