"""The Langevin samplers on posteriors with a closed form: for a quadratic energy every
posterior mrgen samples is Gaussian, so its mean and variance are known exactly. MALA must
hit them for every energy the sampler accepts (the general sampler, iPALM's fixed-map
posterior, DEEPEN's posterior); ULA at a small step too, up to its step bias."""

import numpy as np
import pytest
import torch
from torch import nn

from mrgen.fft import fft2c
from mrgen.linops import SenseOp
from mrgen.posterior import sample_deepen_posterior, sample_posterior
from mrgen.mcmc import sample


def dense(op_apply, n):
    """The matrix of a linear map on C^n (columns = images of the unit vectors)."""
    eye = torch.eye(n, dtype=torch.complex128)
    return torch.stack([op_apply(e) for e in eye], dim=1)


def test_general_sampler_on_a_gaussian():
    """E(x) = 1/2 (x - m)^T P (x - m) with a diagonal P spanning 100x: mean m, variance T/P."""
    gen = torch.Generator().manual_seed(0)
    precision = torch.logspace(0, 2, 8, dtype=torch.float64)
    m = torch.linspace(-1, 1, 8, dtype=torch.float64)
    energy = lambda x: 0.5 * ((x - m) ** 2 * precision).sum(1)  # noqa: E731
    T = 0.5
    x = m.repeat(64, 1).clone()                                  # 64 chains
    step = 0.5 / 100
    result = sample(x, energy, 200, 400, 2, step, (2 * step * T) ** 0.5, gen, metropolis=True)
    mean, var = result.mean.mean(0), result.variance.mean(0).double()
    assert torch.allclose(mean, m, atol=4 * (T / precision / (64 * 40)).sqrt().max())
    assert torch.allclose(var, T / precision, rtol=0.15)
    assert 0.4 < float(result.acceptance.mean()) < 0.8
    # ULA with a 10x smaller step: the variance's bias 1 / (1 - step P / 2) is below 3%
    # (checked where the chains mix within the run: relaxation 1 / (step P) < 300 steps).
    step = 0.05 / 100
    ula = sample(x, energy, 2000, 400, 20, step, (2 * step * T) ** 0.5, gen)
    assert torch.allclose(ula.variance.mean(0).double()[3:], T / precision[3:], rtol=0.15)
    # ... and at a step near its stability limit 2 / P_max it is far off: why MALA exists.
    step = 1.8 / 100
    biased = sample(x, energy, 200, 400, 2, step, (2 * step * T) ** 0.5, gen)
    assert float(biased.variance.mean(0)[-1]) > 3 * T / 100


def gaussian_posterior(op, b, prior_mean, prior_precision, T):
    """Mean and per-real-component variance of exp(-(1/2||A x - b||^2 + p/2 ||x - m||^2) / T)
    for complex x (real view): covariance T (A^H A + p I)^-1 in each of Re and Im."""
    n = prior_mean.numel()
    a = dense(lambda e: op(e.view(prior_mean.shape)).flatten(), n)
    h = a.conj().T @ a + prior_precision * torch.eye(n, dtype=torch.complex128)
    rhs = a.conj().T @ b.flatten().to(torch.complex128) + prior_precision * prior_mean.flatten()
    mean = torch.linalg.solve(h, rhs)
    return mean.view(prior_mean.shape), T * torch.linalg.inv(h).diagonal().real.view(
        prior_mean.shape)


class QuadraticEnergy(nn.Module):
    """E(x) = p/2 ||x - m||^2 on complex images (B, H, W)."""

    def __init__(self, mean, precision):
        super().__init__()
        self.mean, self.precision = mean, precision

    def forward(self, x):
        d = x - self.mean
        return 0.5 * self.precision * (d.real ** 2 + d.imag ** 2).flatten(1).sum(1)


def small_problem(seed=0):
    """6 x 6 images, 2 coils, half the k-space lines: a posterior with a wide spread of
    variances (unsampled lines are held by the prior alone)."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(1, 2, 6, 6, 2, generator=g, dtype=torch.float64)
    maps = torch.view_as_complex(maps).to(torch.complex64)
    maps = maps / (maps.abs() ** 2).sum(1, keepdim=True).sqrt()
    mask = torch.zeros(1, 6, 6)
    mask[..., ::2] = 1
    truth = torch.view_as_complex(torch.randn(1, 6, 6, 2, generator=g)) * 0.5
    kspace = fft2c(maps * truth[:, None]) * mask[:, None]
    return kspace, mask, maps


def deepen_gaussian_problem():
    """DEEPEN's posterior with a quadratic energy (prior mean 0.3 + 0.1j, weight 2) at
    eps 0.2: the problem, its data scale and its exact Gaussian posterior mean and variance."""
    from mrgen.deepen.model import data_scale

    kspace, mask, maps = small_problem()
    scale, _ = data_scale(kspace, maps, mask)
    prior_mean = torch.full((1, 6, 6), 0.3 + 0.1j, dtype=torch.complex64)
    energy = QuadraticEnergy(prior_mean, 2.0)
    eps = 0.2
    op = SenseOp(maps.to(torch.complex128), mask.double())
    mean, var = gaussian_posterior(op.forward, (kspace / scale).to(torch.complex128),
                                   prior_mean.to(torch.complex128), 2.0, eps ** 2 / 2)
    return kspace, mask, maps, scale, energy, eps, mean, var


def test_deepen_posterior_sampler_on_a_gaussian():
    """DEEPEN's sampler (unit data weight, data scale, real view) with a quadratic energy."""
    kspace, mask, maps, scale, energy, eps, mean, var = deepen_gaussian_problem()
    gen = torch.Generator().manual_seed(1)
    chains = []
    for seed in range(8):   # one chain per call (a slice); pooled over 8 seeds
        result, _ = sample_deepen_posterior(energy, kspace, mask, maps, "sense", 300, 600, 2,
                                            0.5, eps * 0.5 ** 0.5, gen, metropolis=True)
        chains.append(result)
    got_mean = torch.stack([r.mean for r in chains]).mean(0) / scale
    got_var = torch.stack([r.variance for r in chains]).mean(0) / scale ** 2
    assert torch.allclose(got_mean.to(torch.complex128), mean, atol=0.05)
    # The sampler reports E|x - mean|^2: the real and the imaginary part's variances.
    assert float((got_var.double() / (2 * var)).mean()) == pytest.approx(1.0, rel=0.1)


def test_ipalm_posterior_sampler_on_a_gaussian():
    """iPALM's fixed-map posterior (real image, lam-weighted data, its own data scale) with a
    quadratic regulariser R(u) = p/2 ||u - m||^2."""
    kspace, mask, maps = small_problem(2)
    lam, p, T = 1.0, 0.5, 0.02
    regulariser = lambda u: 0.5 * p * ((u - 0.4) ** 2).flatten(1).sum(1)  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    result, scale = sample_posterior(kspace, mask, maps, regulariser, lam, "zf", 300, 1500, 2,
                                     0.2, (2 * 0.2 * T) ** 0.5, gen, metropolis=True)
    # Real u: the data term acts on u through the real part of A^H A.
    n = 36
    op = SenseOp(maps.to(torch.complex128), mask.double())
    a = dense(lambda e: op.forward(e.view(1, 6, 6)).flatten(), n)
    h = lam * (a.conj().T @ a).real + p * torch.eye(n, dtype=torch.float64)
    z = (kspace / scale.view(-1, 1, 1, 1)).to(torch.complex128).flatten()
    rhs = lam * (a.conj().T @ z).real + p * 0.4
    mean = torch.linalg.solve(h, rhs).view(1, 6, 6)
    var = T * torch.linalg.inv(h).diagonal().view(1, 6, 6)
    got_mean = result.mean.double() / scale.view(-1, 1, 1)
    got_var = result.variance.double() / scale.view(-1, 1, 1) ** 2
    assert torch.allclose(got_mean, mean, atol=4 * float(var.max().sqrt()) / 8)
    assert float((got_var / var).mean()) == pytest.approx(1.0, rel=0.2)


def test_deepen_metropolis_test_resolves_tiny_moves():
    """At DEEPEN's temperature (2e-4) a 256 x 256 posterior's energy (~10^3) must be summed
    precisely enough that a move of negligible energy (step 1e-6) is accepted: with float32
    sums the rounding alone rejected 30-60% of them, and on the README's phantom the adapted
    step collapsed to 1e-12 (a chain that never moves)."""
    from mrgen.deepen.model import Posterior, data_scale
    from mrgen.deepen.training import load_deepen
    from mrgen.masks import make_mask
    from mrgen.phantom import make_phantom
    from mrgen.mcmc import MetropolisChain

    ph = make_phantom("shepp-logan", size=(256, 256), coils=8, noise=0.002, seed=1)
    mask = torch.from_numpy(make_mask("random-exact:4", (256, 256), seed=2))[None]
    kspace = torch.from_numpy(ph.kspace).reshape(1, 8, 256, 256) * mask
    maps = torch.from_numpy(np.array(ph.maps)).reshape(1, 8, 256, 256)
    energy, _ = load_deepen("deepen-brain-small", "cpu")
    scale, sense = data_scale(kspace, maps, mask)
    posterior = Posterior(energy, maps, mask, kspace / scale)
    start = torch.view_as_real((sense / scale).contiguous()).clone()
    chain = MetropolisChain(start, posterior.real_energy, 1e-6, 2e-4,
                            torch.Generator().manual_seed(0))
    assert float(posterior.real_energy(start)) > 500
    for _ in range(20):
        chain.advance(adapt=False)
    assert float(chain.acceptance.mean()) >= 0.95


def circulant_gaussian(size=16, soft=1.0, stiff=1000.0):
    """E(x) = 1/2 x^T H x on real (B, size, size) images with H = F^H diag(h) F: curvature
    h(k) ``soft`` in the centre of k-space and ``stiff`` outside it (symmetric in k, so H is
    real), and every third column stiff, as sampled k-space under a data term."""
    from mrgen.mcmc import symmetrise_kspace

    f = torch.arange(size, dtype=torch.float64) - size // 2
    radius = (f[:, None] ** 2 + f[None] ** 2).sqrt() / (size // 2)
    h = torch.where(radius < 0.5, soft, stiff).to(torch.float64)
    h[:, ::3] = stiff
    h = symmetrise_kspace(h)

    def energy(x):
        k = fft2c(x.to(torch.complex128))
        return 0.5 * (h * k.abs().square()).flatten(1).sum(1)
    return energy, h


def test_fourier_preconditioner_is_a_symmetric_real_square_root():
    from mrgen.mcmc import FourierPreconditioner

    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(2, 8, 6, generator=gen, dtype=torch.float64) + 0.1
    p = FourierPreconditioner(weights)
    u, v = (torch.randn(2, 8, 6, generator=gen, dtype=torch.float64) for _ in range(2))
    assert p.apply(u).dtype == torch.float64
    assert torch.allclose(p.apply(p.apply(u, 0.5), 0.5), p.apply(u))
    assert torch.allclose(p.apply(p.apply(u, -0.5), 0.5), u)
    assert torch.allclose((p.apply(u) * v).sum(), (u * p.apply(v)).sum())
    # complex images as real views: the same algebra
    c = FourierPreconditioner(weights, complex_view=True)
    w = torch.randn(2, 8, 6, 2, generator=gen, dtype=torch.float64)
    assert torch.allclose(c.apply(c.apply(w, 0.5), 0.5), c.apply(w))


def test_preconditioned_ula_samples_a_stiff_gaussian_in_few_steps():
    """H is 1 or 1000 in k-space. With P = H^-1 every mode relaxes at the rate ``step`` per
    step, and the stationary variance is exactly T / h(k) / (1 - step / 2) (ULA's bias, the
    same in every mode): 300 steps give it to a few percent. Plain ULA at its stable step
    (1 / 1000 here) needs ~1000 steps per e-fold in the soft modes, which hold almost all
    the variance: after the same 300 steps from 0 it has about a third of it."""
    from mrgen.mcmc import FourierPreconditioner

    energy, h = circulant_gaussian()
    T, step, chains = 1.0, 0.2, 64
    x = torch.zeros(chains, 16, 16, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    result = sample(x, energy, 50, 125, 2, step, (2 * step * T) ** 0.5, gen, chains=chains,
                    preconditioner=FourierPreconditioner(1.0 / h.expand(chains, -1, -1)))
    # pixel variance of a stationary circulant Gaussian: mean over k of T / h / (1 - s/2)
    expected = float((T / h).mean()) / (1 - step / 2)
    got = result.variance.double()
    assert float(got.mean()) == pytest.approx(expected, rel=0.05)
    assert float(result.mean.double().abs().mean()) < 0.1 * expected ** 0.5
    plain = sample(x, energy, 50, 125, 2, 1.0 / float(h.max()),
                   (2 * T / float(h.max())) ** 0.5, gen, chains=chains)
    assert float(plain.variance.double().mean()) < 0.5 * expected


def test_preconditioned_chains_take_one_lambda_per_slice():
    """Two copies of one slice at lam 1 and 10 in one call: each pooled variance is its own
    Gaussian posterior's (MALA, exact), not the other's or the median's."""
    kspace, mask, maps = small_problem(2)
    kspace, mask, maps = (t.repeat(2, *[1] * (t.dim() - 1)) for t in (kspace, mask, maps))
    lams, p, T = torch.tensor([1.0, 10.0]), 0.5, 0.02
    regulariser = lambda u: 0.5 * p * ((u - 0.4) ** 2).flatten(1).sum(1)  # noqa: E731
    op = SenseOp(maps[:1].to(torch.complex128), mask[:1].double())
    a = dense(lambda e: op.forward(e.view(1, 6, 6)).flatten(), 36)
    gen = torch.Generator().manual_seed(5)
    result, scale = sample_posterior(kspace, mask, maps, regulariser, lams, "zf", 200, 800, 2,
                                     0.5, (2 * 0.5 * T) ** 0.5, gen, metropolis=True, chains=4,
                                     precondition=True)
    got = result.variance.double() / scale.view(-1, 1, 1) ** 2
    for s, lam in enumerate(lams.tolist()):
        h = lam * (a.conj().T @ a).real + p * torch.eye(36, dtype=torch.float64)
        var = T * torch.linalg.inv(h).diagonal().view(6, 6)
        assert float((got[s] / var).mean()) == pytest.approx(1.0, rel=0.2)


def test_preconditioned_mala_is_exact_on_the_ipalm_posterior():
    """The preconditioner of the iPALM posterior (the data term's exact curvature, solved by
    CG, plus the prior's probed curvature) with MALA: the Gaussian posterior's mean and
    variance, and preconditioned ULA at the default step 0.2 within its bias."""
    kspace, mask, maps = small_problem(2)
    lam, p, T = 1.0, 0.5, 0.02
    regulariser = lambda u: 0.5 * p * ((u - 0.4) ** 2).flatten(1).sum(1)  # noqa: E731
    n = 36
    op = SenseOp(maps.to(torch.complex128), mask.double())
    a = dense(lambda e: op.forward(e.view(1, 6, 6)).flatten(), n)
    h = lam * (a.conj().T @ a).real + p * torch.eye(n, dtype=torch.float64)
    var = T * torch.linalg.inv(h).diagonal().view(1, 6, 6)
    for metropolis, step, tolerance in ((True, 0.5, 0.2), (False, 0.2, 0.2)):
        gen = torch.Generator().manual_seed(3)
        result, scale = sample_posterior(kspace, mask, maps, regulariser, lam, "zf", 300, 1500,
                                         2, step, (2 * step * T) ** 0.5, gen,
                                         metropolis=metropolis, chains=4, precondition=True)
        z = (kspace / scale.view(-1, 1, 1, 1)).to(torch.complex128).flatten()
        mean = torch.linalg.solve(h, lam * (a.conj().T @ z).real + p * 0.4).view(1, 6, 6)
        got_mean = result.mean.double() / scale.view(-1, 1, 1)
        got_var = result.variance.double() / scale.view(-1, 1, 1) ** 2
        assert torch.allclose(got_mean, mean, atol=4 * float(var.max().sqrt()) / 8)
        assert float((got_var / var).mean()) == pytest.approx(1.0, rel=tolerance)


@pytest.mark.parametrize("real_image", [False, True])
def test_data_curvature_is_the_kspace_diagonal_of_the_normal_operator(real_image):
    """(F A^H A F^H)_kk for A = M F S, from the dense matrices; for a real image the real
    part of A^H A (the Hessian of the data term on real u)."""
    from mrgen.preconditioning import data_curvature

    g = torch.Generator().manual_seed(0)
    maps = torch.view_as_complex(torch.randn(1, 3, 6, 8, 2, generator=g, dtype=torch.float64))
    maps = maps / (maps.abs() ** 2).sum(1, keepdim=True).sqrt()
    mask = (torch.rand(1, 6, 8, generator=g) > 0.5).double()
    op = SenseOp(maps, mask)
    a = dense(lambda e: op.forward(e.view(1, 6, 8)).flatten(), 48)
    normal = a.conj().T @ a
    if real_image:
        normal = normal.real.to(torch.complex128)
    f = dense(lambda e: fft2c(e.view(6, 8)).flatten(), 48)
    expected = (f @ normal @ f.conj().T).diagonal().real.view(6, 8)
    got = data_curvature(mask, maps, 2.0, real_image)[0]
    assert torch.allclose(got, 2 * expected, atol=1e-10)


def test_preconditioned_mala_is_exact_on_the_deepen_posterior():
    """DEEPEN's posterior (complex image, unit data weight) with a quadratic energy and the
    k-space preconditioner: MALA's mean and variance are the Gaussian posterior's."""
    kspace, mask, maps, scale, energy, eps, mean, var = deepen_gaussian_problem()
    gen = torch.Generator().manual_seed(1)
    result, _ = sample_deepen_posterior(energy, kspace, mask, maps, "sense", 300, 1500, 2, 0.5,
                                        eps * 0.5 ** 0.5, gen, metropolis=True, chains=8,
                                        precondition=True)
    assert torch.allclose((result.mean / scale).to(torch.complex128), mean, atol=0.05)
    got = result.variance / scale ** 2
    assert float((got.double() / (2 * var)).mean()) == pytest.approx(1.0, rel=0.1)


def test_deepen_sample_starts_from_the_sense_image_and_keeps_its_temperature():
    """deepen --mode sample --start sense: a negligible step leaves every chain at the SENSE
    image (zero variance); --precondition at its default step samples the Gaussian
    posterior at the temperature eps^2 / 2 (variance within ULA's bias 1 / (1 - 0.2/2))."""
    from mrgen.deepen.model import data_scale
    from mrgen.deepen.recon import deepen_sample

    kspace, mask, maps = small_problem()
    scale, sense = data_scale(kspace, maps, mask)
    prior_mean = torch.full((1, 6, 6), 0.3 + 0.1j, dtype=torch.complex64)
    energy = QuadraticEnergy(prior_mean, 2.0)
    gen = torch.Generator().manual_seed(0)
    still = deepen_sample(energy, kspace, maps, mask, 1e-6, samples=4, steps=1, chunk=4,
                          generator=gen, start="sense", step=1e-9)
    assert torch.allclose(still.mean, sense, atol=1e-4 * float(sense.abs().max()))
    eps = 0.2
    op = SenseOp(maps.to(torch.complex128), mask.double())
    _, var = gaussian_posterior(op.forward, (kspace / scale).to(torch.complex128),
                                prior_mean.to(torch.complex128), 2.0, eps ** 2 / 2)
    moved = deepen_sample(energy, kspace, maps, mask, eps, samples=64, steps=200, chunk=64,
                          generator=gen, keep=100, start="sense", precondition=True)
    ratio = float((moved.variance.double() / scale ** 2 / (2 * var)).mean())
    assert 0.9 < ratio < 1.1 / (1 - 0.1)


def test_preconditioned_stiffness_is_the_largest_eigenvalue_of_the_preconditioned_hessian():
    """On a circulant Gaussian with P modelling the curvature 3x too low in its stiff modes,
    the power iteration finds 3 (P H is diagonal in k-space: 1 or 3); on the iPALM
    posterior with coil maps (not diagonal in k-space) it finds the dense matrix's largest
    eigenvalue for the k-space-diagonal model, and ``kspace_preconditioner`` given the
    posterior and a step of 1 brings it to 1; the solved preconditioner of
    ``ipalm_preconditioner`` (the data term exact) has 1 from the start."""
    from mrgen.mcmc import FourierPreconditioner
    from mrgen.posterior import ipalm_preconditioner, posterior_energy
    from mrgen.preconditioning import (data_curvature, kspace_preconditioner,
                                       preconditioned_stiffness)

    energy, h = circulant_gaussian()
    model = torch.where(h > 1, h / 3, h)
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 16, 16, dtype=torch.float64)
    stiffness = preconditioned_stiffness(energy, x, FourierPreconditioner(1 / model), 0.1, gen)
    assert torch.allclose(stiffness, torch.full((2,), 3.0, dtype=torch.float64), rtol=0.02)

    kspace, mask, maps = small_problem(2)
    kspace, maps = kspace.to(torch.complex128), maps.to(torch.complex128)
    lam, p = 1000.0, 0.5
    regulariser = lambda u: 0.5 * p * ((u - 0.4) ** 2).flatten(1).sum(1)  # noqa: E731
    posterior, scale, u0 = posterior_energy(kspace, mask, maps, regulariser, lam)
    x = u0.double()
    n = 36
    op = SenseOp(maps, mask.double())
    a = dense(lambda e: op.forward(e.view(1, 6, 6)).flatten(), n)
    hessian = lam * (a.conj().T @ a).real + p * torch.eye(n, dtype=torch.float64)
    data = data_curvature(mask, maps, lam, True)
    plain, _ = kspace_preconditioner(data, regulariser, x, 1e-3, gen)
    root = dense(lambda e: plain.apply(e.view(1, 6, 6), 0.5).to(torch.complex128).flatten(),
                 n).real
    exact = float(torch.linalg.eigvalsh(root @ hessian @ root).max())
    assert exact > 1.5      # the diagonal model misses the maps' coupling here
    got = float(preconditioned_stiffness(posterior, x, plain, 1e-3, gen, iterations=30)[0])
    assert got == pytest.approx(exact, rel=0.05)
    bounded, summary = kspace_preconditioner(data, regulariser, x, 1e-3, gen,
                                             posterior=posterior)
    assert summary["stiffness"] == pytest.approx(exact, rel=0.2)
    after = float(preconditioned_stiffness(posterior, x, bounded, 1e-3, gen, iterations=30)[0])
    assert after == pytest.approx(1.0, rel=0.2)
    # a step small enough for the unscaled P (step x stiffness < 1) leaves P as it was
    _, small = kspace_preconditioner(data, regulariser, x, 1e-3, gen, posterior=posterior,
                                     step=0.5 / exact)
    assert small["scaled"] == 1.0
    # the solved preconditioner: the data term exact, the prior's curvature p exact
    _, solved = ipalm_preconditioner(mask, maps, regulariser, lam, x, 1.0, gen, 1,
                                     posterior=posterior)
    assert solved["stiffness"] == pytest.approx(1.0, rel=0.02)
    assert solved["scaled"] == pytest.approx(1.0, rel=0.02)


def test_a_diverging_chain_stops_with_a_runtime_failure():
    """ULA at step x curvature 10 (above 2) grows 9x per step: the run stops at the first
    non-finite energy with a message, instead of pooling NaNs into the outputs."""
    from mrgen.errors import RuntimeFailure

    def energy(x):
        return 0.5 * 100.0 * x.square().flatten(1).sum(1)

    x = torch.ones(1, 4, 4)
    with pytest.raises(RuntimeFailure, match="diverged at step"):
        sample(x, energy, 100, 100, 1, 0.1, 1e-3, torch.Generator().manual_seed(0))
