"""k-space preconditioners for Langevin chains: P = F^H D F, D the inverse of a k-space-
diagonal model of the posterior's curvature (the data term's exact diagonal plus the
prior's probed curvature), for iPALM's posterior (``mrgen.posterior``) and DEEPEN's
(``mrgen.deepen.recon``); the chains that use them are ``mrgen.mcmc``'s.
"""

from __future__ import annotations

import torch

from .mcmc import FourierPreconditioner
from .priors.energy import energy_and_grad

# k-space preconditioning (see kspace_preconditioner): the prior's curvature is probed at
# this many random directions and smoothed over this many k-space pixels each way
CURVATURE_PROBES = 4
CURVATURE_WINDOW = 9
# power iterations for the preconditioned Hessian's largest eigenvalue (on the README
# phantom's posterior the largest Rayleigh quotient grew 4% from 10 to 15 iterations)
STIFFNESS_ITERATIONS = 10


def data_curvature(mask, unit_maps, weight: float, real_image: bool) -> torch.Tensor:
    """The k-space diagonal of the data term's Hessian weight A^H A, A = M F S (B, H, W):
    (F A^H A F^H)_kk = (1/N) sum_k' M(k') sum_c |F s_c (k' - k)|^2, the mask correlated
    with the maps' power spectrum (exactly M for maps of constant modulus; smooth maps blur
    it a little). For a real image the mode pair (k, -k) moves together: symmetrised."""
    from .fft import fft2c
    from .mcmc import symmetrise_kspace

    n = mask.shape[-2] * mask.shape[-1]
    power = fft2c(unit_maps).abs().square().sum(-3) / n              # (B, H, W), offset k
    offsets = torch.fft.ifftshift(power, dim=(-2, -1))               # offset 0 at index 0
    m = mask.to(power.dtype).expand(power.shape)
    # circular cross-correlation sum_kappa M(k + kappa) power(kappa), by FFT
    spectrum = torch.fft.fft2(m) * torch.fft.fft2(offsets).conj()
    diagonal = weight * torch.fft.ifft2(spectrum).real.clamp_min(0)
    return symmetrise_kspace(diagonal) if real_image else diagonal


def prior_curvature(energy, x, delta: float, generator, complex_view: bool,
                    probes: int = CURVATURE_PROBES, window: int = CURVATURE_WINDOW):
    """A smooth k-space model q(k) (B, H, W) of the energy's curvature at ``x`` (B, H, W)
    (or real views (B, H, W, 2)): Hutchinson's estimate of the Fourier diagonal of its
    Hessian, sum Re(conj(F v) F(H v)) / sum |F v|^2 over ``probes`` random v, with H v the
    finite difference (grad E(x + delta v) - grad E(x)) / delta (a secant at the scale
    ``delta`` of the chain's moves: it exists for ReLU energies too, whose Hessian is 0
    almost everywhere), averaged over ``window`` x ``window`` neighbouring frequencies."""
    from torch.nn import functional as F

    from .fft import fft2c

    def spectrum(v):
        z = torch.view_as_complex(v.contiguous()) if complex_view else v.to(torch.complex64)
        return fft2c(z)

    x = x.detach()
    _, grad = energy_and_grad(energy, x)
    product = torch.zeros(x.shape[0], *spectrum(x).shape[-2:], device=x.device)
    power = torch.zeros_like(product)
    for _ in range(probes):
        v = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        _, moved = energy_and_grad(energy, x + delta * v)
        fv, fhv = spectrum(v), spectrum((moved - grad) / delta)
        product += (fv.conj() * fhv).real.float()
        power += fv.abs().square().float()
    smooth = (lambda t: F.avg_pool2d(t[:, None], window, 1, window // 2,
                                     count_include_pad=False)[:, 0])
    return smooth(product) / smooth(power).clamp_min(1e-12)


def kspace_preconditioner(data_diagonal, energy, x, delta, generator, complex_view=False,
                          chains: int = 1, posterior=None,
                          step: float = 1.0) -> tuple[FourierPreconditioner, dict]:
    """P = F^H D F with D(k) = 1 / (data(k) + q(k)): the inverse of a k-space-diagonal
    model of the posterior's curvature, the data term's exact diagonal (``data_curvature``)
    plus the prior's smoothed estimate at the start (``prior_curvature``, floored at 5% of
    its median: a probe's noise, or a non-convex spot, must not make a step huge). With it
    one step size s moves every direction at about the rate s per step: the sampled k-space
    (stiff: lam) and the unsampled (soft: the prior alone) alike, where plain ULA's step,
    bounded by the stiffest, leaves the soft directions correlated for hundreds of steps.
    ``x`` (chains * B, ...): the estimate uses the first chain's B images (the chains share
    a start) and is repeated. ``posterior``: the whole energy (data and prior) of those B
    images; given, D is scaled down where the chain's ``step`` times the preconditioned
    Hessian's largest eigenvalue (``preconditioned_stiffness``) exceeds 1, to 1 (ULA
    diverges at 2): the diagonal model misses the coupling of frequencies through the coil
    maps, by 16x on the README phantom at lam 1.1e5, where the step 0.2 then diverged.
    Returns P and a summary (the curvature's range, that eigenvalue and the scaling)."""
    first = x[:x.shape[0] // chains]
    prior = prior_curvature(energy, first, delta, generator, complex_view)
    floor = 0.05 * prior.flatten(1).median(1).values.clamp_min(1e-12)
    prior = torch.maximum(prior, floor.view(-1, 1, 1))
    curvature = data_diagonal[:first.shape[0]] + prior
    summary = {"prior": (float(prior.min()), float(prior.max())),
               "total": (float(curvature.min()), float(curvature.max())),
               "stiffness": None, "scaled": 1.0}
    if posterior is not None:
        stiffness = preconditioned_stiffness(
            posterior, first, FourierPreconditioner(1.0 / curvature, complex_view), delta,
            generator)
        factor = (step * stiffness).clamp_min(1.0).to(curvature.dtype)
        curvature = curvature * factor.view(-1, 1, 1)
        summary["stiffness"], summary["scaled"] = float(stiffness.max()), float(factor.max())
    weights = (1.0 / curvature).repeat(chains, 1, 1)
    return FourierPreconditioner(weights, complex_view), summary


def preconditioned_stiffness(energy, x, preconditioner: FourierPreconditioner, delta: float,
                             generator, iterations: int = STIFFNESS_ITERATIONS) -> torch.Tensor:
    """The largest eigenvalue of P^(1/2) H P^(1/2) per batch element (B,), H the energy's
    Hessian at ``x``: power iteration with secant Hessian products (as ``prior_curvature``,
    each move ``delta`` per pixel on average), the largest Rayleigh quotient seen. A
    preconditioned step s is stable while s times it stays below 2; an exact model of
    the curvature gives 1."""
    x = x.detach()
    _, grad = energy_and_grad(energy, x)

    def per_element(a, b):
        return (a * b).flatten(1).sum(1)

    v = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    largest = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for _ in range(iterations):
        v = v / per_element(v, v).sqrt().clamp_min(1e-30).view(-1, *[1] * (x.dim() - 1))
        u = preconditioner.apply(v, 0.5)
        rms = (per_element(u, u) / u[0].numel()).sqrt().clamp_min(1e-30)
        move = (delta / rms).view(-1, *[1] * (x.dim() - 1))
        _, moved = energy_and_grad(energy, x + move * u)
        w = preconditioner.apply((moved - grad) / move, 0.5)
        largest = torch.maximum(largest, per_element(v, w).double())
        v = w
    return largest


def deepen_preconditioner(energy, maps, mask, x, temperature, generator, chains=1,
                          posterior=None, step: float = 1.0):
    """``kspace_preconditioner`` for DEEPEN's posterior (complex image as a real view, unit
    data weight, maps (B, C, H, W)): the energy E's curvature (E of complex images) probed at
    ``x`` (chains * B, H, W, 2) at the noise scale sqrt(T) of the data term."""
    data = data_curvature(mask.expand(maps.shape[0], *mask.shape[-2:]), maps, 1.0, False)
    on_views = (lambda v: energy(torch.view_as_complex(v.contiguous())))
    return kspace_preconditioner(data, on_views, x, temperature ** 0.5, generator,
                                 complex_view=True, chains=chains, posterior=posterior,
                                 step=step)


def stiffness_note(summary: dict) -> str:
    """The log's words on ``kspace_preconditioner``'s stiffness bound, when it acted."""
    if summary.get("scaled", 1.0) <= 1.0:
        return ""
    return (f"; the diagonal model underestimates the curvature up to "
            f"{summary['stiffness']:.3g}x (coupling through the maps): steps scaled down "
            f"{summary['scaled']:.3g}x to stay stable")
