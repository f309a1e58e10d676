"""The k-space noise estimate that sets TV's default lambda (mrgen.noise)."""

import math

import pytest
import torch

from mrgen.masks import make_mask
from mrgen.noise import edge_region, noise_std
from mrgen.fft import fft2c


def smooth_scan(sigma, coils=4, size=128, seed=0):
    """Coil images of a smooth object (Gaussian blobs; MR k-space falls off as fast at its
    edge) with complex noise of std sigma: (1, C, H, W) k-space."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre_width = torch.rand(6, 3, generator=g) * torch.tensor([1.0, 1.0, 0.2])
    image = sum(torch.exp(-((x - a + 0.5).square() + (y - b + 0.5).square()) / (2 * (0.1 + w) ** 2))
                for a, b, w in centre_width)
    image = image * ((1 - x.square()) * (1 - y.square())).square()   # smooth to 0 at the FOV
    maps = torch.stack([torch.exp(1j * (c + 1) * x) * (1 + 0.3 * y) for c in range(coils)])
    noise = sigma / math.sqrt(2) * torch.complex(torch.randn(coils, size, size, generator=g),
                                                 torch.randn(coils, size, size, generator=g))
    return (fft2c((image * maps).to(torch.complex64)) + noise)[None]


@pytest.mark.parametrize("sigma", [0.001, 0.01])
def test_noise_std_recovers_the_simulated_noise(sigma):
    kspace = smooth_scan(sigma)
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", (128, 128), seed=1))[None]
    estimate = float(noise_std(kspace * mask[:, None], mask)[0])
    assert estimate == pytest.approx(sigma, rel=0.1)


def test_pure_noise_is_estimated_without_bias():
    g = torch.Generator().manual_seed(0)
    noise = 0.3 / math.sqrt(2) * torch.complex(torch.randn(2, 8, 96, 96, generator=g),
                                torch.randn(2, 8, 96, 96, generator=g))
    assert torch.allclose(noise_std(noise, torch.ones(1, 96, 96)), torch.tensor(0.3), rtol=0.03)


def test_too_few_edge_samples_give_nan():
    kspace = torch.ones(1, 1, 64, 64, dtype=torch.complex64)
    mask = (~edge_region((64, 64))).float()[None]          # nothing sampled at the edge
    assert math.isnan(float(noise_std(kspace, mask)[0]))
    assert edge_region((64, 64)).float().mean() == pytest.approx(1 - math.pi / 16, abs=0.02)


def test_tv_default_lambda_follows_the_noise():
    """ipalm --reg tv without --lam: lambda = 0.4 / s^1.5 (s the noise over the data scale),
    so twice the noise divides it by 2^1.5; noise-free data get the old fixed 1000; --lam
    wins."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import PriorChoice, choose_lambda

    _, prior = PriorChoice().build(torch.device("cpu"))
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", (128, 128), seed=1))[None]

    def default_for(sigma):
        kspace = smooth_scan(sigma) * mask[:, None]
        return choose_lambda("", prior, Acquisition(kspace, mask, None))

    low, high = default_for(0.1), default_for(0.2)
    assert low / high == pytest.approx(2 ** 1.5, rel=0.1)
    assert default_for(0.0) == 1000.0
    kspace = smooth_scan(0.01) * mask[:, None]
    assert choose_lambda("30", prior, Acquisition(kspace, mask, None)) == 30.0


def test_learned_prior_default_lambda_is_the_posterior_weight():
    """ipalm --model (a whole-image prior) without --lam: lambda = c / s^2, the posterior's
    weight of the data term (c = 2 uncalibrated), within [0.1, 100] / sigma^2; --lam
    auto still takes the residual fit."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import choose_lambda
    from mrgen.priors.loading import PriorInfo, posterior_rule, relative_noise

    sigma = 0.03
    prior = PriorInfo("test", default_lambda=1.0, mu_per_lambda=1.0,
                      lambda_fit={"slope": 0.0, "intercept": 50.0, "minimum": 0.01},
                      noise_rule=posterior_rule(sigma, 2.0))
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", (128, 128), seed=1))[None]

    def default_for(noise, text=""):
        kspace = smooth_scan(noise) * mask[:, None]
        return choose_lambda(text, prior, Acquisition(kspace, mask, None)), kspace

    (low, kspace), (high, _) = default_for(0.05), default_for(0.1)
    assert low == pytest.approx(2.0 / float(relative_noise(kspace, mask)[0]) ** 2)
    assert low / high == pytest.approx(4.0, rel=0.1)
    assert default_for(0.0)[0] == pytest.approx(100 / sigma ** 2)     # no noise: the cap
    assert default_for(10.0)[0] == pytest.approx(0.1 / sigma ** 2)    # all noise: the floor
    assert default_for(0.05, "auto")[0] == 50.0


def test_each_slice_gets_the_lambda_of_its_own_noise():
    """Two slices, the second with twice the noise, in one ipalm call: TV's default lambdas
    are each slice's alone (ratio 2^1.5), and each slice's image is the one it gets alone."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, choose_lambda, ipalm_app, \
        slice_lambdas

    _, prior = PriorChoice().build(torch.device("cpu"))
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", (64, 64), seed=1))[None]
    slices = [smooth_scan(s, coils=2, size=64) * mask[:, None] for s in (0.05, 0.1)]
    both = Acquisition(torch.cat(slices), mask, None)
    alone = [Acquisition(k, mask, None) for k in slices]
    lams = slice_lambdas("", prior, both)
    assert lams.tolist() == pytest.approx([choose_lambda("", prior, a) for a in alone])
    assert float(lams[0] / lams[1]) == pytest.approx(2 ** 1.5, rel=0.1)
    settings = IpalmSettings(PriorChoice(), iters=20)
    together = ipalm_app(both, settings)
    assert "each slice's from its noise" in together.description
    for index, acquisition in enumerate(alone):
        assert torch.allclose(together.image[index], ipalm_app(acquisition, settings).image[0],
                              rtol=1e-4, atol=1e-5 * float(together.image.max()))


def test_sharp_edges_do_not_fool_the_calibration_estimate():
    """Shepp-Logan's edges keep signal at the k-space edge (the edge estimate is ~10x the
    noise); the calibration matrix's lower eigenvalues still give the noise."""
    from mrgen.noise import calibration_noise_std, edge_noise_std
    from mrgen.phantom import make_phantom

    ph = make_phantom("shepp-logan", size=(128, 128), coils=8, noise=0.0, seed=3)
    g = torch.Generator().manual_seed(1)
    kspace = torch.from_numpy(ph.kspace).reshape(1, 8, 128, 128)
    kspace = kspace + 0.002 / math.sqrt(2) * torch.complex(
        torch.randn(kspace.shape, generator=g), torch.randn(kspace.shape, generator=g))
    mask = torch.from_numpy(make_mask("random-exact:4:0.16", (128, 128), seed=1))[None]
    kspace = kspace * mask[:, None]
    assert float(edge_noise_std(kspace, mask)[0]) > 0.005
    assert float(calibration_noise_std(kspace, mask)[0]) == pytest.approx(0.002, rel=0.25)
    assert float(noise_std(kspace, mask)[0]) == pytest.approx(0.002, rel=0.25)
