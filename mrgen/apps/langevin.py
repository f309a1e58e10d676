"""Langevin sampling of an acquisition's posterior, or of a prior alone (``mrgen langevin``).

Three energies, one sampler (``mrgen.mcmc``): the iPALM posterior of a learned prior or TV with
the maps fixed (given, ones for one coil, or a joint iPALM run's), the prior alone (no data),
and DEEPEN's posterior (complex image, unit data weight)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..acquisition import Acquisition
from .ipalm import PriorChoice


@dataclass
class ChainSettings:
    burn_in: int = 100                 # the command's defaults (see its --help)
    samples: int = 50
    thin: int = 3
    step: float | None = None          # None: the energy's default (see step_and_noise)
    noise_std: float | None = None     # None: sqrt(2 step T) at the energy's temperature
    metropolis: bool = False           # MALA instead of ULA
    nonneg: bool = False               # project on u >= 0 after each step (ULA only)
    chains: int = 4                    # chains per slice, advanced as one batch, pooled
    precondition: bool | None = None   # preconditioned chains (not the paper's); None:
                                       # on for the iPALM posterior of Cartesian data
    precision: str = "auto"            # the chains' network energy: auto, float32, bfloat16
    support: str = ""                  # auto | off | "": ipalm's (``estimates_support``)

    @property
    def total_steps(self) -> int:
        return self.burn_in + self.samples * self.thin


PRECONDITIONED_STEP = 0.2   # preconditioned chains: the fraction of relaxation per step


def default_start(settings: ChainSettings, acq) -> str:
    """The chains' start without --init: "zf" (the zero-filled RSS) for preconditioned ULA
    chains with fixed maps on multi-coil data, "ipalm" (ipalm's MAP) otherwise. Preconditioned
    chains relax every direction at the rate of their step, so their burn-in forgets the
    start, and a 100-iteration MAP of a learned prior costs as much as ~100 chain steps. On
    the README file (prior-brain-small, --maps of ipalm-TV, 4 chains x 250 steps) the MMSE was
    39.12 dB from the zero-filled image against 39.08 from the MAP, split R-hat 1.118 against
    1.112, in 335 s against 555 (one thread, loaded machine). Joint maps need the iPALM run
    anyway; plain ULA relaxes too slowly to forget its start; a single-coil learned prior
    starts from ipalm-TV's image (``apps.ipalm.starting_image``)."""
    fixed = acq.maps is not None and not acq.single_coil
    if fixed and not settings.metropolis and preconditioned(settings, acq):
        return "zf"
    return "ipalm"


def preconditioned(settings: ChainSettings, acq) -> bool:
    """Whether the iPALM posterior's chains are preconditioned by its curvature
    (``mrgen.posterior.ipalm_preconditioner``): by default on Cartesian samples. On the
    README file (prior-brain-small, lam 1.1e5, 4 chains x 250 steps from the start) they
    reached split R-hat 1.10-1.13 (ESS 25-55 over runs as the code changed) where plain
    ULA's step, bounded by 1 / lam, left it at 2.52 (ESS 2); a step costs about 1.7x (the CG
    solve). ULA's bias inflates the variance by
    1 / (1 - step / 2) (11% at the default 0.2) in the directions the model fits."""
    if settings.precondition and acq.nufft is not None:
        from ..errors import UsageError

        raise UsageError("--precondition needs Cartesian samples (not --traj)")
    if settings.nonneg:      # the projection on u >= 0 would have to be in P's norm
        if settings.precondition:
            from ..errors import UsageError

            raise UsageError("--nonneg projects each step on u >= 0 in the plain norm, which "
                             "preconditioned chains do not sample correctly; drop one of "
                             "--nonneg and --precondition")
        return False
    if settings.precondition is None:
        return acq.nufft is None
    return settings.precondition


def step_and_noise(settings: ChainSettings, prior, lam: float,
                   precondition: bool = False) -> tuple[float, float]:
    """Defaults that keep ULA stable (step < 1/lam, the data term's Lipschitz constant being
    lam) at the prior's own temperature T = noise^2 / (2 step): noise scales as sqrt(step).
    Preconditioned: the dimensionless PRECONDITIONED_STEP at the same temperature."""
    step, noise_std = settings.step, settings.noise_std
    temperature = prior.sampling_noise ** 2 / (2 * prior.sampling_step)
    if step is None:
        if precondition:
            step = PRECONDITIONED_STEP
        else:
            step = prior.sampling_step if lam <= 0 else min(prior.sampling_step, 1.0 / lam)
    if noise_std is None:
        noise_std = (2 * step * temperature) ** 0.5
    return step, noise_std


def sample_prior_app(choice: PriorChoice, shape, chains: int, settings: ChainSettings,
                     generator, device, on_sample=None, progress=None):
    """Chains on exp(-R) alone from uniform noise: SamplingResult of (chains, H, W) images;
    ``shape`` None: the prior's crop (64 for TV)."""
    from ..posterior import sample_prior

    regulariser, prior = choice.build(device)
    step, noise_std = step_and_noise(settings, prior, 0.0)
    size = tuple(shape) if shape else (prior.crop or 64,) * 2
    chain, _ = chain_energy(regulariser, settings, device)
    return sample_prior(chain, size, chains, settings.burn_in, settings.samples,
                        settings.thin, step, noise_std, generator, device, settings.nonneg,
                        on_sample, progress, settings.metropolis)


def sample_posterior_app(acq: Acquisition, choice: PriorChoice, settings: ChainSettings,
                         start, generator, lam: float | None = None,
                         ipalm_iters: int | None = None, on_sample=None, progress=None, log=None):
    """Chains on the iPALM posterior with fixed maps: SamplingResult (mean, variance (S, H, W)
    in the data's scale). ``start``: "ipalm", "noise", "zf" or an image (S, H, W).
    ``ipalm_iters``: of the iPALM run for the maps or start; None: ipalm's default."""
    from ..posterior import sample_posterior

    from ..posterior import largest_lambda
    from .ipalm import (IpalmSettings, choose_lambda, describe_lambda, misfit_weighting,
                        report_lowest_frequencies, slice_lambdas, with_estimated_support)

    regulariser, prior = choice.build(acq.device)
    if acq.nufft is not None and acq.maps is None:
        from ..trajectory import NO_JOINT_MAPS
        from ..errors import UsageError

        raise UsageError(NO_JOINT_MAPS)
    fixed = _fixed_maps(acq)
    # ULA's step bound is 1 / Lipschitz: lam for a Cartesian (orthonormal) model, lam ||A^H A||
    # for a NUFFT, whose dense centre makes ||A^H A|| several times 1 (known before any
    # iPALM run: the maps are given with a trajectory)
    norm = 1.0 if acq.nufft is None else _nufft_norm(acq, fixed)
    precondition = preconditioned(settings, acq)
    misfit, lam_given = None, lam
    if lam is None:                  # the posterior whose MAP ipalm computes by default:
        # preconditioned chains take each slice's own (their step is dimensionless); plain
        # ULA's step is bounded by 1 / lam, one for the batch: the slices' median
        lam = slice_lambdas("", prior, acq) if precondition else choose_lambda("", prior, acq)
        misfit = misfit_weighting(IpalmSettings(choice), prior, acq)
    _check_step(settings, largest_lambda(lam), norm, precondition)
    held = with_estimated_support(acq, settings.support, "langevin", log)   # usage checked
    if held is not acq:      # (a NUFFT's norm above, of the whole maps, bounds the held one's)
        acq, fixed = held, _fixed_maps(held)
    if lam_given is None:
        lam = _held_out_lambda(acq, (regulariser, prior, choice), lam, ipalm_iters,
                               precondition, log)
        _check_step(settings, largest_lambda(lam), norm, precondition)
    bound = largest_lambda(lam)
    maps, start, lam = _maps_and_start(acq, fixed, start, (regulariser, prior, choice),
                                       ipalm_iters, lam, log, misfit)
    step, noise_std = step_and_noise(settings, prior, bound * norm, precondition)
    chain_prior, precision = chain_energy(regulariser, settings, acq.device)
    report_lowest_frequencies(acq, choice, "langevin", log)    # once usage is checked
    warning = single_coil_mean_warning(acq, choice)
    if warning is not None and log is not None:
        log(warning)
    if log is not None:
        kind = ("preconditioned " if precondition else "") + \
            ("MALA" if settings.metropolis else "ULA")
        log(f"langevin: {prior.description}, {describe_lambda(lam)}, {kind}, step {step:.3g}, "
            f"noise {noise_std:.3g}, {settings.chains} chain(s) x ({settings.burn_in} burn-in + "
            f"{settings.samples} x {settings.thin}) steps, {acq.device}, {precision}")
    result, _ = sample_posterior(acq.kspace, acq.mask, maps, regulariser, lam, start,
                                 settings.burn_in, settings.samples, settings.thin, step,
                                 noise_std, generator, prior.crop, settings.nonneg, on_sample,
                                 progress, settings.metropolis, nufft=acq.nufft,
                                 chains=settings.chains, precondition=precondition, log=log,
                                 chain_prior=chain_prior)
    return result


def single_coil_mean_warning(acq: Acquisition, choice: PriorChoice) -> str | None:
    """A warning line for a learned prior's posterior on single-coil data, else None. There
    the prior's own minimum lies further from the image than ipalm's MAP (100 iterations from
    TV's image stop short of it), and the chains find it: chains at T = 0.01 end where those at
    T = 1 do (README, "Within the shrink-wrapped support"). On the test split
    (``benchmarks/bench_priors.py --sections single``) the MMSE gave 19.41 dB, the MAP 29.25."""
    if choice.is_tv or not acq.single_coil:
        return None
    return ("langevin: warning: on single-coil data a learned prior's posterior mean lies "
            "below ipalm's image (README's test slices: 19.4 against 29.3 dB): take the image "
            "from ipalm and read the variance as the prior's spread, not the data's")


def chain_energy(energy, settings: ChainSettings, device):
    """(the energy the chains' steps evaluate, a few words on its precision): a network in
    bfloat16 where ``settings.precision`` asks for it (``mrgen.precision``)."""
    from ..precision import in_precision, resolve_precision

    dtype, why = resolve_precision(settings.precision, device, settings.metropolis)
    chain = in_precision(energy, dtype)
    return chain, (why if chain is not energy else "float32")


def _fixed_maps(acq):
    """The acquisition's maps, phase-aligned (u is real, so the maps carry its phase; ones for
    one coil), or None (a joint iPALM run estimates them)."""
    from ..ipalm import align_map_phase

    fixed = acq.maps
    if fixed is not None and not acq.single_coil:
        fixed = align_map_phase(acq.kspace, acq.mask, fixed, nufft=acq.nufft)
    return fixed


def _check_step(settings: ChainSettings, lam: float, norm: float, precondition: bool) -> None:
    """Refuse a user's --step for which ULA diverges: step lam ||A^H A|| >= 2 (MALA's
    Metropolis test rejects such steps instead); preconditioned, the step is a fraction of
    each direction's relaxation: 1 or more overshoots."""
    from ..errors import UsageError

    if precondition and settings.step is not None and settings.step >= 1:
        raise UsageError(f"--step {settings.step:g} with preconditioned chains: the step is "
                         "the fraction of each direction's relaxation per step and must be "
                         f"below 1 (default {PRECONDITIONED_STEP})")
    if precondition or settings.step is None or settings.metropolis or \
            settings.step * lam * norm < 2:
        return

    bound = 2.0 / (lam * norm)
    model = "" if norm == 1.0 else f" x ||A^H A|| ({norm:.3g} for this trajectory and maps)"
    raise UsageError(f"--step {settings.step:g} with --lam {lam:g}: ULA diverges when step x "
                     f"lam{model} >= 2; use a --step below {bound:.3g} (or lower --lam)")


def _held_out_lambda(acq, energy, lam, iters, precondition: bool, log):
    """ipalm's default lambda on single-coil data, chosen on held-out k-space from the noise
    rule's ``lam`` (``apps.ipalm.held_out_applies``), so that the chains sample the
    posterior whose MAP ipalm computes; plain ULA's one step takes the slices' median. Else
    ``lam``. ``energy``: (regulariser, PriorInfo, PriorChoice)."""
    from .ipalm import IpalmSettings, held_out_applies, held_out_lambdas, starting_image

    regulariser, prior, choice = energy
    settings = IpalmSettings(choice, iters=iters)
    if not acq.single_coil or not held_out_applies(settings, acq):
        return lam
    settings = replace(settings, start=starting_image(settings, acq.single_coil))
    if log is not None:      # no progress bar runs yet: say what the wait is for
        from .ipalm import held_out_factors, iterations

        log(f"langevin: choosing lambda on held-out k-space: "
            f"{len(held_out_factors(acq))} iPALM runs of "
            f"{iterations(settings, acq.single_coil)} iterations first")
    said = None if log is None else (lambda line: log(line.replace("ipalm: ", "langevin: ", 1)))
    chosen = held_out_lambdas(acq, settings, (regulariser, prior), lam, log=said)
    return chosen if precondition else float(chosen.median())


def _maps_and_start(acq, fixed, start, energy, iters, lam, log, misfit=None):
    """The fixed maps (``_fixed_maps``'s; else a joint iPALM run's) and the chain's start.
    ``energy``: (regulariser, PriorInfo, PriorChoice). The iPALM start is the MAP that ipalm
    computes by default: on single-coil data a learned prior's run starts from ipalm-TV's
    image (``starting_image``), else from the zero-filled one; neither anneals (ipalm
    anneals only a single-coil run from the zero-filled image). Returns (maps, start, lam):
    with ``misfit`` (ipalm's default ``MisfitWeighting``) the chains' lam is the one the
    iPALM run ended at, each slice's (a number stays one: the slices' median), so that they
    sample the posterior whose MAP ipalm computes; else the lam given."""
    from ..ipalm import IpalmOptions, ipalm
    from .ipalm import IpalmSettings, default_iters, starting_image, tv_start

    regulariser, prior, choice = energy
    from_ipalm = isinstance(start, str) and start == "ipalm"
    if fixed is None or from_ipalm:
        iters = default_iters(choice, acq.single_coil) if iters is None else iters
        from_tv = starting_image(IpalmSettings(choice), acq.single_coil) == "tv"
        if log is not None:
            log(f"langevin: {iters} iPALM iterations for the "
                f"{'maps and ' if fixed is None else ''}start"
                + (" (from ipalm-TV's image)" if from_tv else ""))
        image = tv_start(acq, log) if from_tv else None
        options = IpalmOptions(lam=lam, mu=None, mu_per_lambda=prior.mu_per_lambda,
                               iters=iters, slack=prior.slack,
                               scale_crop=prior.crop, estimate_maps=fixed is None,
                               align_map_phase=False, misfit=misfit)
        result = ipalm(acq.kspace, acq.mask, regulariser, options, maps=fixed,
                       nufft=acq.nufft, start=image)
        fixed = result.maps if fixed is None else fixed
        if misfit is not None:
            lam = _chain_lambda(lam, result.lam, log)
        if from_ipalm:
            return fixed, result.image, lam
    return fixed, start, lam


def _chain_lambda(lam, ended, log):
    """The chains' lam after a misfit-weighted iPALM run that ``ended`` at (B,): per slice,
    or their median where one number was given; logged where it fell."""
    import torch

    ended = ended.cpu()
    if not isinstance(lam, torch.Tensor):
        ended = float(ended.median())
    if log is not None:
        from .ipalm import report_fallen_lambda

        report_fallen_lambda(log, "langevin", lam, ended)
    return ended


def _nufft_norm(acq, maps) -> float:
    """||A^H A|| of the posterior's data term: NUFFT of the image times the normalised maps."""
    import torch

    from ..ipalm import JointProblem
    from ..linops import NufftSenseOp
    from ..linops.base import normal_norm

    unit = JointProblem.normalise(maps)[0]
    start = torch.ones(unit.shape[0], *unit.shape[-2:], device=unit.device)
    return normal_norm(NufftSenseOp(unit, acq.nufft, real_image=True), start)


def sample_deepen_app(acq: Acquisition, model, settings: ChainSettings, start, generator,
                      on_sample=None, progress=None, log=None):
    """Chains on DEEPEN's posterior (Chand, Jacob 2025, Eq. 16) with burn-in and thinning:
    SamplingResult (complex mean, variance (S, H, W)). ``model``: an apps.deepen.DeepenModel;
    ``start``: "map", "sense", "noise" or a complex image (S, H, W). Step 1 and the model's
    eps by default."""
    from ..posterior import sample_deepen_posterior

    precondition = bool(settings.precondition)
    step = (PRECONDITIONED_STEP if precondition else 1.0) if settings.step is None \
        else settings.step
    noise_std = model.eps * step ** 0.5 if settings.noise_std is None else settings.noise_std
    chain, precision = chain_energy(model.energy, settings, acq.device)
    if log is not None:
        mala = settings.metropolis
        kind = ("preconditioned " if precondition else "") + ("MALA" if mala else "ULA")
        log(f"langevin: {model.description}, {kind} from "
            f"{start if isinstance(start, str) else 'an image'}, step {step:.3g}"
            f"{' (adapted in burn-in)' if mala else ''}, noise {noise_std:.3g} (T "
            f"{noise_std ** 2 / (2 * step):.3g}), {settings.chains} chain(s) x "
            f"({settings.burn_in} burn-in + {settings.samples} x {settings.thin}) steps, "
            f"{acq.device}, {precision}")
    result, _ = sample_deepen_posterior(
        model.energy, acq.kspace, acq.mask, acq.maps, start, settings.burn_in,
        settings.samples, settings.thin, step, noise_std, generator, model.init_std,
        on_sample, progress, settings.metropolis, settings.chains, precondition, log,
        chain_energy=chain)
    return result


def convergence_report(result) -> str | None:
    """A line with the ESS and split-R-hat of the run's traces (energy and watched pixels per
    slice; ``mrgen.convergence``), or None without traces."""
    if result.traces is None or result.traces.shape[1] < 4:
        return None
    from ..convergence import report

    return "langevin: " + report(result.traces, ": energy and 8 pixels per slice")


def metropolis_report(result) -> str | None:
    """A line on MALA's acceptance and adapted steps, or None for ULA."""
    if result.acceptance is None:
        return None
    return (f"langevin: MALA acceptance {float(result.acceptance.mean()):.2f} after burn-in, "
            f"step {float(result.step.min()):.3g}..{float(result.step.max()):.3g}")
