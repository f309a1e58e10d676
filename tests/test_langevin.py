"""Langevin sampling: Welford moments, posterior variance where data are missing, CLI."""

import numpy as np
import pytest
import torch

from mrgen.fft import fft2c
from mrgen.masks import make_mask
from mrgen.phantom import make_phantom
from mrgen.posterior import sample_posterior
from mrgen.priors.tv import CharbonnierTV
from mrgen.mcmc import RunningMoments, sample

from .conftest import invoke


def test_running_moments_match_numpy():
    data = torch.randn(50, 4, 3, dtype=torch.float64)
    moments = RunningMoments()
    for x in data:
        moments.update(x)
    assert torch.allclose(moments.mean, data.mean(0))
    assert torch.allclose(moments.variance, data.var(0))


def test_chain_pooling_equals_the_moments_of_the_concatenated_samples():
    """Chains in one batch: the pooled Welford moments are those of every chain's kept
    samples put together (what --samples-out streams, chain by chain)."""
    chains, batch = 3, 2
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(chains * batch, 5, 4, dtype=torch.float64, generator=gen)
    kept = []
    result = sample(x, lambda v: (v ** 2).sum((1, 2)) / 2, burn_in=3, samples=7, thin=2,
                    step=0.1, noise_std=0.5, generator=gen, chains=chains,
                    on_sample=lambda i, v: kept.append((i, v.clone())))
    assert [i for i, _ in kept] == list(range(7 * chains))
    stacked = torch.stack([v for _, v in kept])                 # (21, B, 5, 4)
    assert result.count == 7 * chains and result.mean.shape == (batch, 5, 4)
    assert torch.allclose(result.mean, stacked.mean(0))
    assert torch.allclose(result.variance.double(), stacked.var(0), rtol=1e-5)
    assert result.traces.shape == (chains, 7, batch * 9)        # energy + 8 pixels each


def test_pooled_moments_of_a_complex_batch():
    data = torch.randn(40, 6, 3, dtype=torch.complex128)
    moments = RunningMoments()
    for a, b in zip(data[:20], data[20:]):
        moments.update(torch.stack([a, b]))               # chain 0 and chain 1
    mean, variance, count = moments.pooled(2)
    assert count == 40
    assert torch.allclose(mean[0], data.mean(0))
    assert torch.allclose(variance[0], (data - data.mean(0)).abs().square().sum(0) / 39)


def test_same_seed_same_chains_on_cpu():
    """Several chains in one batch, ULA and MALA: the same seed gives the same output."""
    energy = lambda v: (v ** 2).sum(1) / 2   # noqa: E731

    def run(metropolis):
        gen = torch.Generator().manual_seed(5)
        return sample(torch.zeros(4, 3), energy, 5, 6, 2, 0.1, 0.3, gen,
                      metropolis=metropolis, chains=4)

    for metropolis in (False, True):
        a, b = run(metropolis), run(metropolis)
        assert torch.equal(a.mean, b.mean) and torch.equal(a.variance, b.variance)
        assert torch.equal(a.traces, b.traces)


def test_ula_samples_a_gaussian():
    """E = x^2 / (2 s^2): the stationary variance of ULA is close to s^2 for a small step."""
    s, step = 1.5, 0.2
    gen = torch.Generator().manual_seed(0)
    result = sample(torch.zeros(2000), lambda x: x ** 2 / (2 * s * s), burn_in=200, samples=100,
                    thin=20, step=step, noise_std=(2 * step) ** 0.5, generator=gen)
    exact = 2 * step / (1 - (1 - step / s ** 2) ** 2)  # ULA's own stationary variance
    assert result.variance.mean().item() == pytest.approx(exact, rel=0.1)


@pytest.fixture(scope="module")
def single_coil():
    ph = make_phantom("shepp-logan", size=(32, 32), coils=1, phase=0.0, seed=0)
    truth = torch.from_numpy(np.abs(ph.image))
    return fft2c(truth.to(torch.complex64)), truth


def test_variance_is_larger_where_kspace_was_not_sampled(single_coil):
    kspace, _ = single_coil
    mask = torch.from_numpy(make_mask("random-exact:2:0.2", (32, 32), seed=1))
    gen = torch.Generator().manual_seed(0)
    kept = []
    result, scale = sample_posterior(
        kspace, mask[None], torch.ones_like(kspace), CharbonnierTV(), 1000.0, "zf",
        burn_in=100, samples=60, thin=3, step=1e-4, noise_std=(2e-4 * 1e-2) ** 0.5,
        generator=gen, on_sample=lambda i, x: kept.append(x.clone()))
    assert result.count == 60 and torch.isfinite(result.variance).all()
    spectra = fft2c(torch.stack(kept)[:, 0].to(torch.complex64))
    k_var = spectra.var(0).abs() if not spectra.is_complex() else \
        (spectra - spectra.mean(0)).abs().pow(2).mean(0)
    sampled = mask.bool().expand_as(k_var)
    assert k_var[~sampled].mean() > 3 * k_var[sampled].mean()
    # The Welford mean equals the mean of the streamed samples.
    assert torch.allclose(result.mean[0], torch.stack(kept)[:, 0].mean(0), atol=1e-5)


def test_cli_langevin_outputs_and_reproducibility(tmp_path, single_coil):
    assert invoke("phantom", "--size", 32, 32, "--coils", 4, tmp_path / "d.h5").exit_code == 0
    assert invoke("mask", "--like", tmp_path / "d.h5", "--kind", "random-exact", "--accel", 2,
                  tmp_path / "m.npy").exit_code == 0
    args = ["langevin", "--mask", tmp_path / "m.npy", "--ipalm-iters", 5, "--burn-in", 10,
            "--samples", 4, "--thin", 2, "--seed", 3, tmp_path / "d.h5"]
    first = invoke(*args, tmp_path / "a.npy", "--var", tmp_path / "v.npy", "--samples-out",
                   tmp_path / "s.npy")
    assert first.exit_code == 0, first.stderr
    assert invoke(*args, tmp_path / "b.npy").exit_code == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4 * 4, 32, 32)           # 4 kept per chain, 4 chains (default)
    assert "split R-hat" in first.stderr
    assert np.allclose(samples.mean(0), np.load(tmp_path / "a.npy"), atol=1e-5)
    assert np.allclose(samples.var(0, ddof=1), np.load(tmp_path / "v.npy"), rtol=1e-3,
                       atol=1e-9)


def test_cli_prior_only(tmp_path):
    result = invoke("langevin", "--prior-only", "--shape", 16, 16, "--chains", 2, "--burn-in", 5,
                    "--samples", 2, "--thin", 1, tmp_path / "p.npy")
    assert result.exit_code == 0, result.stderr
    assert np.load(tmp_path / "p.npy").shape == (2, 16, 16)
    wrong = invoke("langevin", "--prior-only", tmp_path / "x.npy", tmp_path / "y.npy")
    assert wrong.exit_code == 2


def test_cli_preconditioned_langevin_is_reproducible_and_says_so(tmp_path):
    """Chains preconditioned by the posterior's curvature by default: the same output for
    the same seed, the prior's curvature range and the CG work in the log; a step of 1 or
    more is refused; --no-precondition runs the paper's plain ULA."""
    assert invoke("phantom", "--size", 32, 32, "--coils", 4, tmp_path / "d.h5").exit_code == 0
    assert invoke("mask", "--like", tmp_path / "d.h5", "--kind", "random-exact", "--accel", 2,
                  tmp_path / "m.npy").exit_code == 0
    args = ["langevin", "--mask", tmp_path / "m.npy", "--ipalm-iters", 5, "--burn-in", 10,
            "--samples", 4, "--seed", 3, tmp_path / "d.h5"]
    first = invoke(*args, tmp_path / "a.npy", "--var", tmp_path / "v.npy")
    assert first.exit_code == 0, first.stderr
    assert "preconditioned ULA" in first.stderr
    assert "preconditioned by the posterior's curvature" in first.stderr
    assert "CG iterations per step" in first.stderr
    assert invoke(*args, "--precondition", tmp_path / "b.npy").exit_code == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert np.isfinite(np.load(tmp_path / "v.npy")).all()
    refused = invoke(*args, "--step", 1.5, tmp_path / "c.npy")
    assert refused.exit_code == 2 and "--step" in refused.stderr
    plain = invoke(*args, "--no-precondition", tmp_path / "p.npy")
    assert plain.exit_code == 0, plain.stderr
    assert "preconditioned" not in plain.stderr
    # --nonneg's projection is in the plain norm: plain ULA by default, refused with both
    projected = invoke(*args, "--nonneg", tmp_path / "n.npy")
    assert projected.exit_code == 0 and "preconditioned" not in projected.stderr
    both = invoke(*args, "--nonneg", "--precondition", tmp_path / "both.npy")
    assert both.exit_code == 2 and "--nonneg" in both.stderr


def test_watched_pixels_are_among_the_pixels_that_move():
    """With most of the image off the maps' support (held at zero), the traced pixels are
    still pixels of the object: a zero one would read as a stuck chain."""
    from mrgen.mcmc import watched_pixels

    x = torch.zeros(2, 20, 20)
    x[:, 5:10, 5:10] = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(0)) + 0.1
    picks = watched_pixels(x, chains=2)
    assert bool((x[0].flatten()[picks[0]] > 0).all())


def test_preconditioned_chains_with_fixed_maps_start_from_the_zero_filled_image():
    """Without --init: "zf" where preconditioned ULA chains get fixed multi-coil maps (their
    burn-in forgets the start; the MAP would cost ~100 steps), ipalm's MAP otherwise."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.langevin import ChainSettings, default_start

    kspace = torch.zeros(1, 3, 8, 8, dtype=torch.complex64)
    mask = torch.ones(1, 8, 8)
    maps = torch.ones_like(kspace)
    fixed, joint = Acquisition(kspace, mask, maps), Acquisition(kspace, mask, None)
    single = Acquisition(kspace[:, :1], mask, maps[:, :1], single_coil=True)
    assert default_start(ChainSettings(), fixed) == "zf"
    assert default_start(ChainSettings(), joint) == "ipalm"
    assert default_start(ChainSettings(), single) == "ipalm"
    assert default_start(ChainSettings(precondition=False), fixed) == "ipalm"
    assert default_start(ChainSettings(metropolis=True), fixed) == "ipalm"


def test_a_learned_priors_single_coil_posterior_mean_is_warned_of():
    """Only a learned prior on single-coil data: there its MMSE falls below ipalm's MAP."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import PriorChoice
    from mrgen.apps.langevin import single_coil_mean_warning

    kspace = torch.zeros(1, 1, 8, 8, dtype=torch.complex64)
    mask = torch.ones(1, 8, 8)
    single = Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)
    learned = PriorChoice(model="prior-brain-small")
    line = single_coil_mean_warning(single, learned)
    assert line.startswith("langevin: warning:") and "19.4 against 29.3 dB" in line
    assert single_coil_mean_warning(single, PriorChoice(reg="tv")) is None
    multi = Acquisition(kspace.expand(1, 3, 8, 8), mask, torch.ones(1, 3, 8, 8))
    assert single_coil_mean_warning(multi, learned) is None
