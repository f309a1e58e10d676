"""Posterior sampling with fixed coil maps (Zach, Knoll, Pock 2023, preprint, Sections 2.5-2.6; Chand, Jacob 2025, Eq. 16).

The energy is that of iPALM with the maps frozen: H(u) = lam/2 ||M F(u c/|c|) - z||^2 + R(u)
(iPALM's image operator, built once for the chain), sampled by ULA (mrgen.mcmc). With the
data term left out it samples the prior alone (paper Fig. 1). Data are scaled as iPALM
scales them and results scaled back (the variance by the square of the scale).
``sample_deepen_posterior`` runs the same sampler on DEEPEN's posterior (complex image, unit
data weight, its own data scale).
"""

from __future__ import annotations

import torch

from .ipalm import JointProblem, initialise
from .mcmc import FourierPreconditioner, SamplingResult, sample
from .priors.energy import energy_and_grad

# k-space preconditioning (see kspace_preconditioner): the prior's curvature is probed at
# this many random directions and smoothed over this many k-space pixels each way
CURVATURE_PROBES = 4
CURVATURE_WINDOW = 9


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
                          chains: int = 1) -> tuple[FourierPreconditioner, dict]:
    """P = F^H D F with D(k) = 1 / (data(k) + q(k)): the inverse of a k-space-diagonal
    model of the posterior's curvature, the data term's exact diagonal (``data_curvature``)
    plus the prior's smoothed estimate at the start (``prior_curvature``, floored at 5% of
    its median: a probe's noise, or a non-convex spot, must not make a step huge). With it
    one step size s moves every direction at about the rate s per step: the sampled k-space
    (stiff: lam) and the unsampled (soft: the prior alone) alike, where plain ULA's step,
    bounded by the stiffest, leaves the soft directions correlated for hundreds of steps.
    ``x`` (chains * B, ...): the estimate uses the first chain's B images (the chains share
    a start) and is repeated. Returns P and a summary (the curvature's range)."""
    first = x[:x.shape[0] // chains]
    prior = prior_curvature(energy, first, delta, generator, complex_view)
    floor = 0.05 * prior.flatten(1).median(1).values.clamp_min(1e-12)
    prior = torch.maximum(prior, floor.view(-1, 1, 1))
    curvature = data_diagonal[:first.shape[0]] + prior
    weights = (1.0 / curvature).repeat(chains, 1, 1)
    summary = {"prior": (float(prior.min()), float(prior.max())),
               "total": (float(curvature.min()), float(curvature.max()))}
    return FourierPreconditioner(weights, complex_view), summary


def posterior_energy(kspace, mask, maps, regulariser, lam, scale_crop=None, nufft=None):
    """(energy, scale, zero-filled start) for k-space (B, C, H, W) and fixed maps (B, C, H, W)
    (``nufft``: non-Cartesian samples at its points, as ``ipalm``)."""
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u0, _, scale = initialise(kspace, mask, scale_crop, nufft)
    problem = JointProblem(kspace / scale.view(-1, 1, 1, 1), mask, regulariser, lam, nufft)
    data = problem.fixed_maps_data(maps)
    return (lambda u: data(u) + problem.prior(u)), scale, u0


def ipalm_preconditioner(mask, maps, regulariser, lam, x, temperature, generator, chains):
    """``kspace_preconditioner`` for the iPALM posterior (real image, data weight lam):
    the prior's curvature probed at the data's noise scale sqrt(T / lam)."""
    unit = JointProblem.normalise(maps)[0]
    data = data_curvature(mask.expand(unit.shape[0], *mask.shape[-2:]), unit, lam, True)
    return kspace_preconditioner(data, regulariser, x, (temperature / lam) ** 0.5, generator,
                                 chains=chains)


def sample_posterior(kspace, mask, maps, regulariser, lam, init, burn_in, samples, thin,
                     step, noise_std, generator, scale_crop=None, nonneg=False,
                     on_sample=None, progress=None, metropolis=False, nufft=None, chains=1,
                     precondition=False, log=None) -> tuple[SamplingResult, torch.Tensor]:
    """ULA on the posterior; ``init`` is "noise" (uniform [0, 1]), "zf", or an image tensor in
    the data's scale. Returns the moments in the data's scale and the scale used.
    ``nufft``: non-Cartesian samples (``ipalm``); the data term's Lipschitz constant is then
    lam ||A^H A||, not lam, and ``step`` must be chosen for it (``apps.langevin`` checks a
    user's step against it, knowing the norm). ``chains``: that many chains per slice from
    the same start, advanced as one batch; the moments pooled over them (``mcmc.sample``).
    ``precondition``: k-space preconditioned chains (``ipalm_preconditioner``, Cartesian
    only); ``step`` is then the fraction of each direction's relaxation per step (about 0.1,
    dimensionless) and T = noise_std^2 / (2 step) stays the temperature."""
    if precondition and nufft is not None:
        from .errors import UsageError

        raise UsageError("k-space preconditioning needs Cartesian samples (not --traj)")
    if step * lam >= 2 and not metropolis and nufft is None and not precondition:
        from .errors import UsageError

        raise UsageError(f"--step {step:g} with --lam {lam:g}: ULA diverges when step x lam >= 2 "
                         "(the data term's Lipschitz constant is lam); lower one of them")
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:])
    energy, scale, u0 = posterior_energy(*_repeat(chains, kspace, mask, maps), regulariser,
                                         lam, scale_crop, nufft)
    view = scale[:scale.shape[0] // chains].view(-1, 1, 1)
    if isinstance(init, torch.Tensor):
        x = init.to(u0.dtype).repeat(chains, 1, 1) / view.repeat(chains, 1, 1)
    elif init == "zf":
        x = u0
    else:
        x = torch.rand(u0.shape, generator=generator, device=u0.device, dtype=u0.dtype)
    stream = None if on_sample is None else (lambda i, s: on_sample(i, s * view))
    preconditioner = None
    if precondition:
        preconditioner, summary = ipalm_preconditioner(
            mask, maps, regulariser, lam, x, noise_std ** 2 / (2 * step), generator, chains)
        if log is not None:
            log(f"langevin: k-space preconditioner: curvature {summary['total'][0]:.3g}.."
                f"{summary['total'][1]:.3g} (prior {summary['prior'][0]:.3g}.."
                f"{summary['prior'][1]:.3g}, data lam {lam:.4g} where sampled)")
    result = sample(x, energy, burn_in, samples, thin, step, noise_std, generator,
                    project=(lambda v: v.clamp_min(0)) if nonneg else None,
                    on_sample=stream, progress=progress, metropolis=metropolis, chains=chains,
                    preconditioner=preconditioner)
    return SamplingResult(result.mean * view, result.variance * view ** 2, result.count,
                          result.last * view.repeat(chains, 1, 1), result.acceptance,
                          result.step, result.traces, chains), scale[:view.shape[0]]


def deepen_preconditioner(energy, maps, mask, x, temperature, generator, chains=1):
    """``kspace_preconditioner`` for DEEPEN's posterior (complex image as a real view, unit
    data weight, maps (B, C, H, W)): the energy E's curvature (E of complex images) probed at
    ``x`` (chains * B, H, W, 2) at the noise scale sqrt(T) of the data term."""
    data = data_curvature(mask.expand(maps.shape[0], *mask.shape[-2:]), maps, 1.0, False)
    on_views = (lambda v: energy(torch.view_as_complex(v.contiguous())))
    return kspace_preconditioner(data, on_views, x, temperature ** 0.5, generator,
                                 complex_view=True, chains=chains)


def _repeat(chains, *tensors):
    """Each tensor (with a leading slice axis) repeated ``chains`` times, chain-major."""
    if chains == 1:
        return tensors
    return tuple(t.repeat(chains, *([1] * (t.dim() - 1))) for t in tensors)


def sample_prior(regulariser, shape, chains, burn_in, samples, thin, step, noise_std,
                 generator, device, nonneg=False, on_sample=None, progress=None,
                 metropolis=False):
    """ULA on exp(-R) alone from uniform noise: images without data."""
    x = torch.rand((chains, *shape), generator=generator, device=device)
    return sample(x, lambda u: regulariser(u), burn_in, samples, thin, step, noise_std,
                  generator, project=(lambda v: v.clamp_min(0)) if nonneg else None,
                  on_sample=on_sample, progress=progress, metropolis=metropolis)


def sample_deepen_posterior(energy, kspace, mask, maps, init, burn_in, samples, thin, step,
                            noise_std, generator, init_std=1.0, on_sample=None,
                            progress=None, metropolis=False, chains=1, precondition=False,
                            log=None) -> tuple[SamplingResult, torch.Tensor]:
    """ULA on DEEPEN's posterior (Chand, Jacob 2025, Eq. 16) as one chain per slice with burn-in and
    thinning, for ``mrgen langevin --model deepen.pt``.

    DEEPEN differs from the iPALM posterior above in three ways, all taken from the model:
    the image is complex (the chain runs on its real view (B, H, W, 2), so the noise is
    independent in the real and imaginary parts), the data term has unit weight
    (1/2 ||A x - b||^2 with A = M F S: the energy was trained against it), and the data are
    normalised by the maximum of their SENSE image (``mrgen.deepen.model.data_scale``).
    ``init``: "map" (DEEPEN's MAP, ``mrgen.deepen.recon.deepen_map``: the posterior's mode,
    where a chain needs no long burn-in), "sense" (the MAP initialisation), "noise"
    (N(0, init_std^2) per real component, as the paper's chains start) or a complex image in
    the data's scale. ``metropolis``: MALA instead of ULA (``mrgen.mcmc``): the
    published step 1 is far above what this posterior's temperature eps^2/2 allows, so long
    ULA chains leave the posterior. Returns the moments
    in the data's scale (complex mean; variance E|x - mean|^2, the sum of the real and the
    imaginary part's variances) and the scale. ``chains``: that many chains per slice from
    the same start (a "noise" start draws each its own), advanced as one batch, the moments
    pooled over them. ``precondition``: k-space preconditioned chains
    (``deepen_preconditioner``); ``step`` is then dimensionless (about 0.2).
    """
    from .deepen.model import Posterior, data_scale

    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    kspace = kspace * mask.unsqueeze(1)
    scale, sense = data_scale(kspace, maps, mask)
    view = scale.view(-1, 1, 1)
    posterior = Posterior(energy, maps, mask, kspace / scale.view(-1, 1, 1, 1))
    if isinstance(init, torch.Tensor):
        start = init.to(sense.dtype) / view
    elif init == "map":
        from .deepen.recon import deepen_map

        start = deepen_map(energy, kspace, maps, mask, generator=generator).image / view
    elif init == "sense":
        start = sense / view
    else:
        shape = (*sense.shape, 2)
        start = torch.view_as_complex(
            init_std * torch.randn(shape, generator=generator, device=sense.device))
    if chains > 1:
        posterior = Posterior(energy, *_repeat(chains, maps, mask,
                                                kspace / scale.view(-1, 1, 1, 1)))
        if isinstance(init, str) and init == "noise":
            shape = (chains * sense.shape[0], *sense.shape[1:], 2)
            start = torch.view_as_complex(
                init_std * torch.randn(shape, generator=generator, device=sense.device))
        else:
            start = start.repeat(chains, 1, 1)
    stream = None if on_sample is None else (
        lambda i, s: on_sample(i, torch.view_as_complex(s.contiguous()) * view))
    x = torch.view_as_real(start.contiguous()).clone()
    preconditioner = None
    if precondition:
        # probed at the SENSE image for a noise start (the posterior is not where noise is)
        at = x if not (isinstance(init, str) and init == "noise") else \
            torch.view_as_real((sense / view).contiguous()).repeat(chains, 1, 1, 1)
        preconditioner, summary = deepen_preconditioner(
            energy, maps, mask, at, noise_std ** 2 / (2 * step), generator, chains)
        if log is not None:
            log(f"langevin: k-space preconditioner: curvature {summary['total'][0]:.3g}.."
                f"{summary['total'][1]:.3g} (energy {summary['prior'][0]:.3g}.."
                f"{summary['prior'][1]:.3g}, data 1 where sampled)")
    result = sample(x, posterior.real_energy, burn_in, samples, thin, step, noise_std,
                    generator, on_sample=stream, progress=progress, metropolis=metropolis,
                    chains=chains, preconditioner=preconditioner)
    mean = torch.view_as_complex(result.mean.contiguous()) * view
    variance = result.variance.sum(-1) * view ** 2
    last = torch.view_as_complex(result.last.contiguous()) * view.repeat(chains, 1, 1)
    return SamplingResult(mean, variance, result.count, last, result.acceptance,
                          result.step, result.traces, chains), scale
