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

from .coils import compress_maps
from .ipalm import JointProblem, fixed_map_support, initialise
from .mcmc import SamplingResult, sample
from .linops import SenseOp
from .preconditioning import (data_curvature, deepen_preconditioner, solved_preconditioner,
                              stiffness_note)

# The preconditioner's data term uses the virtual coils that hold this share of the maps'
# energy (``coils.compress_maps``): on the README phantom 4 of 8 (99.8%)
PRECONDITIONER_MAP_ENERGY = 0.995


def posterior_energy(kspace, mask, maps, regulariser, lam, scale_crop=None, nufft=None):
    """(energy, scale, zero-filled start) for k-space (B, C, H, W) and fixed maps (B, C, H, W)
    (``nufft``: non-Cartesian samples at its points, as ``ipalm``)."""
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u0, _, scale = initialise(kspace, mask, scale_crop, nufft)
    problem = JointProblem(kspace / scale.view(-1, 1, 1, 1), mask, regulariser, lam, nufft)
    data = problem.fixed_maps_data(maps)
    return (lambda u: data(u) + problem.prior(u)), scale, u0


def ipalm_preconditioner(mask, maps, regulariser, lam, x, temperature, generator, chains,
                         posterior=None, step: float = 1.0):
    """``solved_preconditioner`` for the iPALM posterior (real image, the maps' SENSE
    operator, data weight lam: a number or one per slice (B,)): the prior's curvature probed
    at the data's noise scale sqrt(T / lam); ``posterior`` (the energy of one chain's
    images) keeps the chain's ``step`` stable. The data term's Hessian is that of the maps'
    principal virtual coils (``PRECONDITIONER_MAP_ENERGY``): P only has to be a fixed
    positive-definite matrix (its noise is drawn from the same K), and CG's work falls with
    the coil count. On the README phantom (4 of 8 coils, one thread) the run took 179.8
    against 255.5 s, its MMSE 40.29 against 40.31 dB, the two MMSEs 47.5 dB apart and the
    object's mean variance 0.75% (the chains' own spread: a 2x longer run, 47.8 dB and
    0.6%); the stability bound scaled the steps down 1.09x."""
    unit = compress_maps(JointProblem.normalise(maps)[0], PRECONDITIONER_MAP_ENERGY)
    mask = mask.expand(unit.shape[0], *mask.shape[-2:])
    if isinstance(lam, torch.Tensor):       # one per slice: on image-shaped arrays
        lam = lam.to(unit.real.dtype).view(-1, 1, 1)
    data = data_curvature(mask, unit, lam, True)
    operator = SenseOp(unit, mask, real_image=True)
    return solved_preconditioner(operator, lam, data, regulariser, x,
                                 (temperature / lam) ** 0.5, generator, chains=chains,
                                 posterior=posterior, step=step)


def sample_posterior(kspace, mask, maps, regulariser, lam, init, burn_in, samples, thin,
                     step, noise_std, generator, scale_crop=None, nonneg=False,
                     on_sample=None, progress=None, metropolis=False, nufft=None, chains=1,
                     precondition=False, log=None, chain_prior=None
                     ) -> tuple[SamplingResult, torch.Tensor]:
    """ULA on the posterior; ``init`` is "noise" (uniform [0, 1]), "zf", or an image tensor in
    the data's scale. Returns the moments in the data's scale and the scale used.
    ``nufft``: non-Cartesian samples (``ipalm``); the data term's Lipschitz constant is then
    lam ||A^H A||, not lam, and ``step`` must be chosen for it (``apps.langevin`` checks a
    user's step against it, knowing the norm). ``chains``: that many chains per slice from
    the same start, advanced as one batch; the moments pooled over them (``mcmc.sample``).
    ``precondition``: chains preconditioned by the posterior's curvature
    (``ipalm_preconditioner``, Cartesian only; ``lam`` may then be one per slice (B,));
    ``step`` is then the fraction of each direction's relaxation per step (dimensionless,
    below 1) and T = noise_std^2 / (2 step) stays the temperature. ``chain_prior``: the
    prior the chains' steps evaluate (e.g. in bfloat16, ``mrgen.precision``); the
    preconditioner's probes keep ``regulariser``."""
    if precondition and nufft is not None:
        from .errors import UsageError

        raise UsageError("preconditioned chains need Cartesian samples (not --traj)")
    if isinstance(lam, torch.Tensor):
        lam = lam.to(device=kspace.device, dtype=kspace.real.dtype)
    if not (precondition or metropolis or nufft is not None) and step * largest_lambda(lam) >= 2:
        from .errors import UsageError

        raise UsageError(f"--step {step:g} with --lam {lam:g}: ULA diverges when step x lam >= 2 "
                         "(the data term's Lipschitz constant is lam); lower one of them")
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:])
    every_chain_lam = _repeat(chains, lam)[0] if isinstance(lam, torch.Tensor) else lam
    energy, scale, u0 = posterior_energy(*_repeat(chains, kspace, mask, maps),
                                         chain_prior or regulariser, every_chain_lam,
                                         scale_crop, nufft)
    view = scale[:scale.shape[0] // chains].view(-1, 1, 1)
    if isinstance(init, torch.Tensor):
        x = init.to(u0.dtype).repeat(chains, 1, 1) / view.repeat(chains, 1, 1)
    elif init == "zf":
        x = u0
    else:
        x = torch.rand(u0.shape, generator=generator, device=u0.device, dtype=u0.dtype)
    # Pixels no map covers get no data (ESPIRiT's crop): as in ipalm they stay at zero,
    # the chains running on the covered ones (E of S x, the state projected on S after each
    # step: drift S P S grad E and noise S P^(1/2) n, matched for any preconditioner P).
    # MALA's proposal density has no such projection: its chains keep every pixel.
    support = None if metropolis else fixed_map_support(maps)
    if support is not None:
        support = _repeat(chains, support.to(u0.dtype))[0]
        full_energy = energy
        energy = (lambda u: full_energy(u * support))
        x = x * support
    stream = None if on_sample is None else (lambda i, s: on_sample(i, s * view))
    preconditioner = None
    if precondition:
        one_chain = posterior_energy(kspace, mask, maps, regulariser, lam, scale_crop)[0]
        preconditioner, summary = ipalm_preconditioner(
            mask, maps, regulariser, lam, x, noise_std ** 2 / (2 * step), generator, chains,
            posterior=one_chain, step=step)
        if log is not None:
            log(f"langevin: preconditioned by the posterior's curvature: the data term's "
                f"solved by CG, the prior's {summary['prior'][0]:.3g}.."
                f"{summary['prior'][1]:.3g} by k-space frequency{stiffness_note(summary)}")
    result = sample(x, energy, burn_in, samples, thin, step, noise_std, generator,
                    project=_projection(nonneg, support), on_sample=stream,
                    progress=progress, metropolis=metropolis, chains=chains,
                    preconditioner=preconditioner)
    if preconditioner is not None and log is not None and preconditioner.iterations:
        log(f"langevin: {sum(preconditioner.iterations) / len(preconditioner.iterations):.1f} "
            f"CG iterations per step")
    return SamplingResult(result.mean * view, result.variance * view ** 2, result.count,
                          result.last * view.repeat(chains, 1, 1), result.acceptance,
                          result.step, result.traces, chains), scale[:view.shape[0]]


def _projection(nonneg: bool, support):
    """The chains' projection after each step: on u >= 0 (``nonneg``) and on ``support``
    (pixels some map covers), or None."""
    if support is None:
        return (lambda v: v.clamp_min(0)) if nonneg else None
    return (lambda v: v.clamp_min(0) * support) if nonneg else (lambda v: v * support)


def largest_lambda(lam) -> float:
    """The largest data weight of a number or a per-slice tensor (ULA's step bound)."""
    return float(lam.max()) if isinstance(lam, torch.Tensor) else lam


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
                            log=None, chain_energy=None) -> tuple[SamplingResult, torch.Tensor]:
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
    ``chain_energy``: the network the chains' steps evaluate (e.g. in bfloat16,
    ``mrgen.precision``); the MAP start and the preconditioner's probes keep ``energy``.
    """
    from .deepen.model import Posterior, data_scale

    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    kspace = kspace * mask.unsqueeze(1)
    scale, sense = data_scale(kspace, maps, mask)
    view = scale.view(-1, 1, 1)
    posterior = one_chain = Posterior(energy, maps, mask, kspace / scale.view(-1, 1, 1, 1))
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
    chain_energy = energy if chain_energy is None else chain_energy
    if chains > 1 or chain_energy is not energy:
        posterior = Posterior(chain_energy, *_repeat(chains, maps, mask,
                                                      kspace / scale.view(-1, 1, 1, 1)))
        if chains > 1 and isinstance(init, str) and init == "noise":
            shape = (chains * sense.shape[0], *sense.shape[1:], 2)
            start = torch.view_as_complex(
                init_std * torch.randn(shape, generator=generator, device=sense.device))
        elif chains > 1:
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
            energy, maps, mask, at, noise_std ** 2 / (2 * step), generator, chains,
            posterior=one_chain.real_energy, step=step)
        if log is not None:
            log(f"langevin: k-space preconditioner: curvature {summary['total'][0]:.3g}.."
                f"{summary['total'][1]:.3g} (energy {summary['prior'][0]:.3g}.."
                f"{summary['prior'][1]:.3g}, data 1 where sampled){stiffness_note(summary)}")
    result = sample(x, posterior.real_energy, burn_in, samples, thin, step, noise_std,
                    generator, on_sample=stream, progress=progress, metropolis=metropolis,
                    chains=chains, preconditioner=preconditioner)
    mean = torch.view_as_complex(result.mean.contiguous()) * view
    variance = result.variance.sum(-1) * view ** 2
    last = torch.view_as_complex(result.last.contiguous()) * view.repeat(chains, 1, 1)
    return SamplingResult(mean, variance, result.count, last, result.acceptance,
                          result.step, result.traces, chains), scale
