"""The solved preconditioner P = (lam A^*A + Q)^-1 of the iPALM posterior
(mrgen.preconditioning.SolvedPreconditioner): P inverts K to CG's tolerance, its noise has
covariance P, and chains preconditioned with it sample a Gaussian posterior: MALA exactly,
ULA within its step bias 1 / (1 - step / 2) when Q is the prior's exact curvature."""

import pytest
import torch

from mrgen.fft import fft2c
from mrgen.ipalm import JointProblem
from mrgen.linops import SenseOp
from mrgen.preconditioning import SolvedPreconditioner, data_curvature

SIZE = (6, 8)


def problem(seed=0, coils=3, lam=50.0):
    """A small real-image posterior: maps, a random mask with its centre, data."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.view_as_complex(torch.randn(1, coils, *SIZE, 2, generator=g,
                                             dtype=torch.float64))
    unit = JointProblem.normalise(maps)[0]
    mask = (torch.rand(1, *SIZE, generator=g) > 0.6).double()
    mask[..., 2:4, 3:5] = 1
    truth = torch.rand(1, *SIZE, generator=g, dtype=torch.float64)
    kspace = fft2c(unit * truth[:, None].to(unit.dtype)) * mask[:, None]
    return unit, mask, kspace, lam


def dense_real(apply, shape):
    n = shape[-2] * shape[-1]
    eye = torch.eye(n, dtype=torch.float64)
    return torch.stack([apply(e.view(1, *shape[-2:])).flatten() for e in eye], 1)


def preconditioner(unit, mask, lam, prior_weight, tol=1e-10):
    op = SenseOp(unit, mask, real_image=True)
    q = torch.full((1, *SIZE), prior_weight, dtype=torch.float64)
    data = data_curvature(mask, unit, lam, True)
    return SolvedPreconditioner(op, lam, q, data, tol=tol, iters=200), op


def test_apply_inverts_the_posterior_curvature_and_noise_has_covariance_p():
    unit, mask, _, lam = problem()
    pre, op = preconditioner(unit, mask, lam, 0.7)
    k = dense_real(lambda v: lam * op.normal(v) + 0.7 * v, SIZE)
    p = dense_real(pre.apply, SIZE)
    assert torch.allclose(p @ k, torch.eye(k.shape[0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(p, p.T, atol=1e-6)
    v = torch.randn(1, *SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert float(pre.inverse_quadratic(v)) == pytest.approx(float(v.flatten() @ k @ v.flatten()))
    gen = torch.Generator().manual_seed(2)
    draws = torch.cat([pre.noise(torch.zeros(1, *SIZE, dtype=torch.float64), gen)
                       for _ in range(4000)]).flatten(1)
    covariance = draws.T @ draws / draws.shape[0]
    assert torch.allclose(covariance.diagonal(), p.diagonal(), rtol=0.1)
    assert float((covariance - p).abs().max()) < 0.1 * float(p.diagonal().max())


@pytest.mark.parametrize("metropolis, step, tolerance", [(True, 0.6, 0.12), (False, 0.2, 0.12)])
def test_chains_sample_the_gaussian_posterior(metropolis, step, tolerance):
    """E(u) = lam/2 ||A u - z||^2 + p/2 ||u - 0.4||^2: mean H^-1 (lam A^* z + 0.4 p) and
    covariance T H^-1, H = lam A^*A + p I. With Q = p I the preconditioner is exactly
    H^-1: ULA's variance is T diag(H^-1) / (1 - step / 2), MALA's exact."""
    from mrgen.mcmc import sample

    unit, mask, kspace, lam = problem(3)
    p, T, chains = 0.7, 0.05, 32
    pre, op = preconditioner(unit, mask, lam, p, tol=1e-8)   # one slice, every chain
    energy = (lambda u: 0.5 * lam * (op.forward(u) - kspace).abs().square().flatten(1).sum(1)
              + 0.5 * p * (u - 0.4).square().flatten(1).sum(1))
    h = dense_real(lambda v: lam * op.normal(v) + p * v, SIZE)
    mean = torch.linalg.solve(h, lam * op.adjoint(kspace).flatten() + 0.4 * p).view(1, *SIZE)
    var = T * torch.linalg.inv(h).diagonal().view(1, *SIZE)
    gen = torch.Generator().manual_seed(4)
    x = torch.zeros(chains, *SIZE, dtype=torch.float64)
    result = sample(x, energy, 40, 100, 2, step, (2 * step * T) ** 0.5, gen,
                    metropolis=metropolis, chains=chains, preconditioner=pre)
    expected = var if metropolis else var / (1 - step / 2)
    assert torch.allclose(result.mean.double(), mean, atol=4 * float(var.max().sqrt()) / 20)
    assert float((result.variance.double() / expected).mean()) == pytest.approx(
        1.0, rel=tolerance)


@pytest.mark.parametrize("size", [(6, 8), (7, 8), (6, 5)])
def test_real_ffts_with_half_spectrum_weights_are_the_centred_diagonal(size):
    """F^H diag(w) F by the bare real FFT with ``half_spectrum``'s weights equals the centred
    complex transform's, for symmetric w at even and odd sizes; and P inverts lam A^*A + Q
    with a Q that varies over k-space."""
    from mrgen.fft import ifft2c
    from mrgen.mcmc import symmetrise_kspace
    from mrgen.preconditioning import half_spectrum

    g = torch.Generator().manual_seed(3)
    w = symmetrise_kspace(torch.rand(2, *size, generator=g, dtype=torch.float64))
    v = torch.randn(2, *size, generator=g, dtype=torch.float64)
    expected = ifft2c(w * fft2c(v.to(torch.complex128))).real
    assert torch.allclose(SolvedPreconditioner._fourier(v, half_spectrum(w)), expected,
                          atol=1e-12)
    unit, mask, _, lam = problem()
    q = symmetrise_kspace(0.2 + torch.rand(1, *SIZE, generator=g, dtype=torch.float64))
    op = SenseOp(unit, mask, real_image=True)
    pre = SolvedPreconditioner(op, lam, q, data_curvature(mask, unit, lam, True), tol=1e-10,
                               iters=200)
    k = dense_real(lambda x: lam * op.normal(x) + ifft2c(q * fft2c(x.to(unit.dtype))).real,
                   SIZE)
    p = dense_real(pre.apply, SIZE)
    assert torch.allclose(p @ k, torch.eye(k.shape[0], dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("width", [8, 7, 1])
def test_half_spectrum_weights_keep_parseval(width):
    """The CG's variables sqrt(m) rfft2(y): their real inner products are the images'."""
    from mrgen.preconditioning import half_spectrum_weights

    g = torch.Generator().manual_seed(5)
    a, b = (torch.randn(2, 6, width, generator=g, dtype=torch.float64) for _ in range(2))
    m = half_spectrum_weights(width, a.device, a.dtype)
    sa, sb = (torch.fft.rfft2(v, norm="ortho") * m for v in (a, b))
    assert float((sa.conj() * sb).real.sum()) == pytest.approx(float((a * b).sum()), rel=1e-12)
