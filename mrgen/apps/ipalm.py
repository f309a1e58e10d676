"""Joint image and coil-map reconstruction of an acquisition by iPALM (``mrgen ipalm``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..acquisition import Acquisition
from ..errors import UsageError
from ..ipalm import Annealing, IpalmOptions, MisfitWeighting, ipalm

# The share of the iterations a score-matching prior spends annealing (mrgen.ipalm.Annealing)
ANNEAL_SHARE = 0.7
# iPALM iterations by default; TV on single-coil data takes more (see ``default_iters``)
DEFAULT_ITERS = 100
SINGLE_COIL_TV_ITERS = 1000
# The learned prior's default lambda with joint maps: its lambda from the noise, or that x 0.3,
# whichever predicts held-out k-space best (``held_out_lambdas``); the share held out
HELD_OUT_FACTORS = (1.0, 0.3)
HELD_OUT_FRACTION = 0.15
# ... and on single-coil data the factors up from it (``held_out_factors``)
SINGLE_COIL_HELD_OUT_FACTORS = (1.0, 10.0, 100.0)
# the k-space values within this many samples of the centre (13 values): on single-coil
# data a learned prior cannot restore those the mask leaves out (``lowest_frequency_warning``)
LOWEST_FREQUENCY_RADIUS = 2


@dataclass
class PriorChoice:
    """The regulariser R: a learned energy (``model``: a file or shipped name) or TV."""
    model: str | None = None
    reg: str = ""                 # learned | tv | "" (learned with a model, else tv)
    tv_eps: float = 1e-3          # Charbonnier smoothing of TV

    @property
    def is_tv(self) -> bool:
        return (self.reg or ("learned" if self.model else "tv")) == "tv"

    def build(self, device):
        """(the energy on ``device``, its PriorInfo: defaults, crop, fitted entries)."""
        from ..priors.loading import build_regulariser

        return build_regulariser(self.model, self.reg, self.tv_eps, device)


@dataclass
class IpalmSettings:
    prior: PriorChoice
    lam: str = ""                 # a number, "auto" (the model's fit), "noise" (the noise
                                  # rule alone) or "" (the default: ``held_out_applies``)
    mu: float | None = None       # None: the prior's default
    iters: int | None = None      # None: ``default_iters``
    equalise: bool = False        # map intensities through the model's fitted equaliser
    max_backtracks: int = 40
    strict: bool = False          # the paper's exact sufficient-decrease test (no 1.01 slack)
    anneal: str = ""              # the prior's start level: "" its default, "off", or a number
    anneal_iters: int | None = None   # None: ANNEAL_SHARE of iters
    start: str = ""               # zero-filled | tv | "" (``starting_image``)
    support: str = ""             # auto | off | "" (``estimates_support``)
    seed: int = 0                 # the draw of the held-out k-space (``held_out_lambdas``)


@dataclass
class IpalmReconstruction:
    image: torch.Tensor           # (S, H, W) real, non-negative, in the data's scale
    maps: torch.Tensor            # (S, C, H, W), unit root-sum-of-squares
    energies: torch.Tensor        # (iters, S)
    description: str              # what ran, for the report
    lam: float | torch.Tensor = 0.0   # the data weight: one, or each slice's (S,)


def ipalm_app(acq: Acquisition, settings: IpalmSettings, progress=None,
              log=None) -> IpalmReconstruction:
    """iPALM on the acquisition (on its device): joint maps, or the acquisition's maps fixed
    (phase-aligned to the image unless single-coil). ``progress(k, u, c, energies)`` after
    each iteration; ``log`` gets one line on what runs, before it runs."""
    if acq.nufft is not None and acq.maps is None:
        from ..trajectory import NO_JOINT_MAPS

        raise UsageError(NO_JOINT_MAPS)
    settings = replace(settings, iters=iterations(settings, acq.single_coil),
                       start=starting_image(settings, acq.single_coil))
    regulariser, prior = settings.prior.build(acq.device)
    equaliser = _equaliser(prior) if settings.equalise else None  # fail before the long run
    # annealing by default is for single-coil runs from the zero-filled image only
    anneal_default = acq.single_coil and settings.start != "tv"
    annealing(settings, prior, anneal_default)                    # its usage errors, too
    acq = with_estimated_support(acq, settings.support, "ipalm", log, progress)
    start = None
    if settings.start == "tv":
        start = tv_start(acq, log, progress)
    lam = slice_lambdas(settings.lam, prior, acq)
    chosen = ""
    if held_out_applies(settings, acq):
        lam = held_out_lambdas(acq, settings, (regulariser, prior), lam, progress, log)
        chosen = ", chosen on held-out k-space"
    options = ipalm_options(settings, prior, acq, lam, misfit_weighting(settings, prior, acq),
                            anneal_default)
    report_lowest_frequencies(acq, settings.prior, "ipalm", log)   # once usage is checked
    annealed = "" if options.anneal is None else (
        f", annealed from sigma {options.anneal.start:g} over {options.anneal.iters} "
        f"iterations")
    maps = f"joint maps ({describe_mu(options)})" if options.estimate_maps else "fixed maps"
    started = ", from ipalm-TV's image" if start is not None else ""
    misfit = "" if options.misfit is None else ", lowered where the model misfits the data"
    description = (f"{prior.description}, {describe_lambda(options.lam)}{chosen}{misfit}, "
                   f"{settings.iters} iterations{annealed}{started}, {acq.slice_count} "
                   f"slice(s) of {acq.coils} coil(s), {maps}")
    if log is not None:
        log(f"ipalm: {description}, {acq.device}")
    result = ipalm(acq.kspace, acq.mask, regulariser, options, maps=acq.maps, callback=progress,
                   nufft=acq.nufft, start=start)
    if log is not None and options.misfit is not None:
        report_fallen_lambda(log, "ipalm", options.lam, result.lam.cpu())
    image = result.image
    if equaliser is not None:
        from ..tuning import apply_equaliser

        image = apply_equaliser(image, result.scale, equaliser)
    lam = options.lam if result.lam is None else torch.as_tensor(result.lam).cpu()  # misfit
    return IpalmReconstruction(image, result.maps, result.energies, description, lam)


def estimates_support(text: str, acq: Acquisition) -> bool:
    """--support: whether to estimate the object's support (``mrgen.support``) from a first
    ipalm-TV run and hold the rest at zero. "" (the default): on single-coil Cartesian data,
    where without the k-space centre nothing else settles the lowest frequencies (6
    validation slices, 3x uniform random, mean PSNR: ipalm-TV 35.37 dB without, 56.53
    within it; with an 8% centre 35.45 and 35.62; the heads cropped to fill the image:
    21.96 without, 33.99 within it shrink-wrapped, 24.82 within the first estimate;
    benchmarks/bench_support.py); "auto": also with fixed maps; "off": never."""
    text = text.strip().lower()
    if text not in SUPPORTS:
        raise UsageError(f"--support {text}: choose auto, off or a mask file")
    if text == "":
        return acq.single_coil and acq.nufft is None
    return text == "auto"


def with_estimated_support(acq: Acquisition, text: str, command: str, log=None,
                           progress=None) -> Acquisition:
    """The acquisition restricted to the support estimated from ipalm-TV's image when
    ``estimates_support`` says so, else as it is: first from TV with every pixel free, then
    shrink-wrapped (``mrgen.support.shrink_wrap``, TV re-run within it). ``progress`` hears
    all ``support_iterations`` (the runs it skips once the support holds still, too)."""
    if not estimates_support(text, acq):
        return acq
    from ..support import (MARGIN, NEEDS_FIXED_MAPS, ROUNDS, THRESHOLD, restrict_to_support,
                           shrink_wrap)

    if acq.maps is None:
        raise UsageError(f"--support auto: {NEEDS_FIXED_MAPS}")
    heard = _LastProgress(progress)
    support, runs = shrink_wrap(acq, lambda held: tv_start(held, None, heard))
    heard.replay(1 + ROUNDS - runs)
    if log is not None:
        share = float(support.mean())
        held = "the whole image, nothing held at zero" if share == 1 else \
            f"{100 * share:.0f}% of the image, the rest held at zero"
        log(f"{command}: support from ipalm-TV's image (above {THRESHOLD:g} x its maximum, "
            f"grown {MARGIN} pixels; {runs} TV runs, each within the last support): {held} "
            f"(--support off to keep every pixel)")
    return restrict_to_support(acq, support)


def support_iterations(acq: Acquisition) -> int:
    """The ipalm-TV iterations an estimated support takes at most (``shrink_wrap``)."""
    from ..support import ROUNDS

    return (1 + ROUNDS) * default_iters(PriorChoice(reg="tv"), acq.single_coil)


class _LastProgress:
    """A progress callback that passes each call on and keeps the last one, so that the
    iterations of runs skipped (the support held still) can be counted as done."""

    def __init__(self, progress):
        self.progress, self.last, self.iters = progress, None, 0

    def __call__(self, k, *state):
        self.last, self.iters = state, max(self.iters, k + 1)
        if self.progress is not None:
            self.progress(k, *state)

    def replay(self, runs: int) -> None:
        if self.progress is not None and self.last is not None:
            for _ in range(runs):
                for k in range(self.iters):
                    self.progress(k, *self.last)


def unsampled_lowest_frequencies(mask: torch.Tensor,
                                 radius: int = LOWEST_FREQUENCY_RADIUS) -> tuple[int, int]:
    """(the most that any slice of ``mask`` (..., H, W) leaves out, of the k-space values
    within ``radius`` samples of the centre (the centred FFT's (H // 2, W // 2)), their
    count)."""
    height, width = mask.shape[-2:]
    dy = torch.arange(height, device=mask.device) - height // 2
    dx = torch.arange(width, device=mask.device) - width // 2
    near = (dy[:, None].square() + dx[None, :].square()) <= radius ** 2
    left_out = ((mask.reshape(-1, height, width) == 0) & near).flatten(1).sum(1)
    return int(left_out.max()), int(near.sum())


def lowest_frequency_warning(acq: Acquisition, choice: PriorChoice,
                             command: str) -> str | None:
    """A warning line for a learned prior on single-coil Cartesian data that leaves some of
    the lowest frequencies unsampled, else None. Those carry most of the image's energy, only
    the prior can fill them, and a local energy barely constrains them: on the test split at
    3x uniform random without a centre (``benchmarks/bench_priors.py --sections single``)
    the learned prior gave 15.87 dB against ipalm-TV's 23.70, and started at the truth it
    drifts away (a validation slice: 41.6 dB after 100 iterations, 19.6 after 1000). A
    support (``mrgen.support``; the default there) settles them: no warning then."""
    from ..ipalm import fixed_map_support

    if choice.is_tv or not acq.single_coil or acq.nufft is not None or \
            fixed_map_support(acq.maps) is not None:   # a support settles them
        return None
    missing, count = unsampled_lowest_frequencies(acq.mask)
    if missing == 0:
        return None
    return (f"{command}: warning: {missing} of the {count} k-space values within "
            f"{LOWEST_FREQUENCY_RADIUS} samples of the centre are not sampled: on single-coil "
            f"data a learned prior cannot restore them (7.8 dB below --reg tv on the README's "
            f"test slices); hold the background (--support auto or FILE), sample the centre "
            f"or use --reg tv")


def report_lowest_frequencies(acq: Acquisition, choice: PriorChoice, command: str,
                              log) -> None:
    """``lowest_frequency_warning``'s line to ``log``, where there is one (and a log)."""
    warning = lowest_frequency_warning(acq, choice, command)
    if warning is not None and log is not None:
        log(warning)


def ipalm_options(settings: IpalmSettings, prior, acq: Acquisition, lam,
                  misfit: MisfitWeighting | None, anneal_default: bool) -> IpalmOptions:
    """The settings as ``mrgen.ipalm``'s options at data weight ``lam`` (a number or (S,))."""
    return IpalmOptions(
        lam=lam, iters=settings.iters, mu=settings.mu, mu_per_lambda=prior.mu_per_lambda,
        estimate_maps=acq.maps is None, align_map_phase=not acq.single_coil,
        slack=1.0 if settings.strict else prior.slack, max_backtracks=settings.max_backtracks,
        scale_crop=prior.crop, misfit=misfit,
        anneal=annealing(settings, prior, anneal_default))


def held_out_applies(settings: IpalmSettings, acq: Acquisition) -> bool:
    """The default lambda on Cartesian data of one coil (TV's and a learned prior's), and of
    a learned prior with joint maps on multi-coil data, is chosen on held-out k-space
    (``held_out_lambdas``); everywhere else it is the noise rule's."""
    if settings.lam != "" or acq.nufft is not None:
        return False
    return acq.single_coil or (acq.maps is None and not settings.prior.is_tv)


def held_out_factors(acq: Acquisition) -> tuple[float, ...]:
    """The multiples of the noise rule's lambda that ``held_out_lambdas`` weighs.

    Joint maps: x 1 or x 0.3 (see ``held_out_lambdas``). One coil: x 1, 10 or 100. There the
    noise rule reads whatever fills the k-space edge as noise; where that is the image's own
    texture (a scanner image's noise floor, measured without added noise) the data deserve
    more weight, and between those samples a learned prior drifts in the frequencies no
    sample holds. On 3 noise-free validation slices at the test's field of view (the head
    cropped to fill the image), lambda x 0.01 / 0.1 / 1 of the rule's cap (1 / sigma^2 x
    100): 20.54 / 24.26 / 25.0 dB; at their native 128 x 128 the rule's own lambda x 1 / 10
    / 100: 29.21 / 36.67 / 47.03 dB; the held-out error fell with each step in both. TV on
    the native slices: 28.17 / 40.07 / 54.44 dB on one at x 1 / 10 / 100, held-out error
    1.58 / 0.138 / 0.00827; on the tight ones x 1 kept (benchmarks/bench_single_coil_lambda.py)."""
    return SINGLE_COIL_HELD_OUT_FACTORS if acq.single_coil else HELD_OUT_FACTORS


def held_out_lambdas(acq: Acquisition, settings: IpalmSettings, energy, lam0, progress=None,
                     log=None) -> torch.Tensor:
    """(S,) each slice's lam0 x the HELD_OUT_FACTORS entry whose run on the rest of its
    samples predicts best a HELD_OUT_FRACTION of them held out (``held_out_errors``).

    Why: where the image's phase changes at tissue edges the learned prior's image keeps
    4x aliasing stripes that fit the measured lines to their noise (no residual rule sees
    them) but not lines it never saw. On 3 validation slices, plain and with such a phase
    (benchmarks/bench_lambda_cv.py) the rule picked lam0 x 0.3 on the phased ones (25.70 ->
    30.79, 30.19 -> 33.86, 33.68 -> 35.17 dB) and lam0 on the plain ones, where on one
    x 0.3 was 0.42 dB better. Costs two more iPALM runs on the held-out data."""
    lam0 = torch.as_tensor(lam0, dtype=torch.float32).flatten().expand(acq.slice_count)
    errors = held_out_errors(acq, settings, energy, lam0, progress)
    candidates = held_out_factors(acq)
    factors = torch.tensor(candidates)[errors.argmin(0)]
    if log is not None:
        picked = ", ".join(f"{f:g}" for f in factors.tolist())
        log(f"ipalm: held-out k-space chose lambda x {picked} of the noise rule's (of x "
            f"{', '.join(f'{f:g}' for f in candidates)}; one per slice)")
    return lam0 * factors


def held_out_errors(acq: Acquisition, settings: IpalmSettings, energy, lam0: torch.Tensor,
                    progress=None) -> torch.Tensor:
    """(factors, S): for each ``held_out_factors`` entry, how far ipalm at lam0 x it (fixed,
    (S,)) on all but a HELD_OUT_FRACTION of each slice's samples misses the held-out ones
    (``mrgen.heldout``: whole lines of 1D sampling, never the calibration centre; drawn with
    ``settings.seed``). Each run starts as the real one does (``settings.start``: from
    ipalm-TV's image of the kept samples, else annealed on one coil). ``energy``:
    (regulariser, PriorInfo)."""
    from ..heldout import held_out_samples, prediction_error
    from ..ipalm import ipalm

    regulariser, prior = energy
    settings = replace(settings, iters=iterations(settings, acq.single_coil))
    hold = held_out_samples(acq.mask, HELD_OUT_FRACTION, settings.seed)
    kept = replace(acq, kspace=acq.kspace * (1 - hold)[:, None], mask=acq.mask * (1 - hold))
    start = tv_start(kept, None, progress) if settings.start == "tv" else None
    anneal_default = acq.single_coil and start is None         # as ``ipalm_app``'s
    errors = []
    for factor in held_out_factors(acq):
        options = ipalm_options(settings, prior, acq, lam0 * factor, misfit=None,
                                anneal_default=anneal_default)
        run = ipalm(kept.kspace, kept.mask, regulariser, options, maps=kept.maps,
                    callback=progress, start=start)
        errors.append(prediction_error(run.image, run.maps, acq.kspace, hold).cpu())
    return torch.stack(errors)


STARTS = ("zero-filled", "tv")
SUPPORTS = ("", "auto", "off")


def starting_image(settings: IpalmSettings, single_coil: bool) -> str:
    """--start: zero-filled (Eq. 15) or tv (ipalm-TV's image at its defaults). By default a
    learned prior starts from TV on single-coil data: its own minimum near the zero-filled
    image fills the unmeasured lowest frequencies with blotches; from TV's image it keeps
    TV's. 5 validation cases (benchmarks/bench_start.py), mean PSNR: from the zero-filled
    image (annealed) 20.20 dB, from TV's 28.28, TV alone 28.46 (the prior adds nothing yet).
    From TV's image the prior does not anneal, which would throw that image away (3 of the
    cases: 23.21 / 21.91 / 20.43 dB annealed, 25.92 / 25.46 / 26.79 not)."""
    text = settings.start.strip().lower()
    if text == "":
        return "tv" if single_coil and not settings.prior.is_tv else "zero-filled"
    if text not in STARTS:
        raise UsageError(f"--start {settings.start}: choose zero-filled or tv")
    return text


def tv_start(acq: Acquisition, log, progress=None) -> torch.Tensor:
    """ipalm-TV's image at its noise rule's lambda on ``acq`` as it is (no support estimated,
    no held-out choice: the start of a learned prior's run, and what the support is
    estimated from); ``progress`` hears its iterations first (``total_iterations`` counts
    them)."""
    tv = IpalmSettings(PriorChoice(reg="tv"), lam="noise", start="zero-filled", support="off")
    return ipalm_app(acq, tv, progress, log=None if log is None else
                     (lambda line: log(line.replace("ipalm: ", "ipalm: start: ", 1)))).image


def total_iterations(settings: IpalmSettings, acq: Acquisition) -> int:
    """The iterations ``ipalm_app`` reports to its progress callback: those of the run, and
    before them those of the ipalm-TV run the support is estimated from
    (``estimates_support``), of ipalm-TV's start when it starts there and of the held-out
    runs that choose lambda (``held_out_applies``)."""
    start = starting_image(settings, acq.single_coil)
    tv_iters = default_iters(PriorChoice(reg="tv"), acq.single_coil)
    tv = tv_iters if start == "tv" else 0
    first = support_iterations(acq) if estimates_support(settings.support, acq) else 0
    held_out = held_out_applies(settings, acq)
    runs = 1 + (len(held_out_factors(acq)) if held_out else 0)
    held_out_tv = tv_iters if held_out and start == "tv" else 0
    return first + tv + held_out_tv + runs * iterations(settings, acq.single_coil)


def iterations(settings: IpalmSettings, single_coil: bool) -> int:
    """--iters, or ``default_iters`` when it is not given."""
    return settings.iters if settings.iters is not None else \
        default_iters(settings.prior, single_coil)


def default_iters(prior: PriorChoice, single_coil: bool) -> int:
    """100 iterations, 1000 for TV on single-coil data. There the unmeasured k-space has only
    TV's gradient to move it (no other coil's data), and Charbonnier TV's curvature, 1 / eps,
    keeps the steps short: measured on 7 validation slices (benchmarks/bench_tv_iters.py),
    mean PSNR at 100 / 300 / 1000 / 3000 iterations: 30.20 / 31.85 / 34.62 / 34.21 dB at 3x
    uniform random without the k-space centre, 34.94 / 35.27 / 35.30 / 35.30 at 4x with 8%
    centre, 34.37 / 34.50 / 34.51 / 34.51 with 30 dB noise: 1000 is converged, ~3 s at
    256 x 256 on 2 cores. A learned prior keeps 100 (its annealed run is tuned to them;
    1000 lowered two validation cases from 18.7 / 19.2 to 16.5 / 16.8 dB)."""
    return SINGLE_COIL_TV_ITERS if prior.is_tv and single_coil else DEFAULT_ITERS


def annealing(settings: IpalmSettings, prior, single_coil: bool) -> Annealing | None:
    """--anneal: by default a score-matching prior anneals from its top trained level on
    single-coil data (see ``default_anneal_start``; ``ipalm_app`` passes False for a run from
    TV's image, see ``starting_image``); "off" (or 0) does not; a number is the start
    level."""
    text = settings.anneal.strip().lower()
    if text in ("off", "0", "none"):
        return None
    if text == "":
        start = default_anneal_start(prior, single_coil)
        if start is None:
            return None
    else:
        try:
            start = float(text)
        except ValueError:
            raise UsageError(f"--anneal {settings.anneal}: expected a noise level, or off") \
                from None
        if not start > 0:
            raise UsageError(f"--anneal {settings.anneal}: must be positive (or off)")
        if prior.anneal_from is None:
            raise UsageError(f"--anneal {settings.anneal}: needs a score-matching prior "
                             "(a model trained with --objective dsm), not "
                             f"{prior.description}")
    iters = settings.anneal_iters
    if iters is None:
        return default_annealing(start, settings.iters)
    if not 0 <= iters <= settings.iters:
        raise UsageError(f"--anneal-iters {iters}: between 0 and --iters {settings.iters}")
    return Annealing(start, iters)


def default_annealing(start: float | None, iters: int) -> Annealing | None:
    """From ``start`` over ANNEAL_SHARE of ``iters`` iterations (None: no annealing)."""
    return None if start is None else Annealing(start, round(ANNEAL_SHARE * iters))


def default_anneal_start(prior, single_coil: bool) -> float | None:
    """Annealing by default: single-coil data only, measured on 3 validation slices
    (benchmarks/bench_anneal.py): single coil, 3x uniform random without the k-space
    centre, 33.89 -> 36.29 dB (the smooth content the data miss is the prior's, and only a
    coarse level moves it); 8 coils, 4x 1D with 8% ACS, joint maps, 31.67 -> 20.54 (the
    calibration lines carry the smooth content, and the early small data weight lets the
    maps drift)."""
    return prior.anneal_from if single_coil else None


# --lam words for the prior's rule from the data's noise ("": the default, which may refine it)
NOISE_RULE = ("", "noise")


def slice_lambdas(text: str, prior, acq: Acquisition) -> float | torch.Tensor:
    """ipalm's lambda: ``choose_lambda``'s, except that the default from the data's noise is
    each slice's own (S,): a slice's posterior weight is its own noise's, whatever other
    slices share the file or the process (the rule's validation solved slices alone)."""
    if text in NOISE_RULE and acq.nufft is None and acq.slice_count > 1:
        per_slice = prior.slice_lambdas_for_noise(acq.kspace, acq.mask)
        if per_slice is not None:
            return per_slice
    return choose_lambda(text, prior, acq)


def misfit_weighting(settings: IpalmSettings, prior,
                     acq: Acquisition) -> MisfitWeighting | None:
    """The default lambda from the data's noise follows the noise the model sees (the
    residual's, when larger: ``mrgen.ipalm.MisfitWeighting``); None for a given --lam, where
    lambda does not come from the noise (no rule, no estimate, non-Cartesian data), and on
    single-coil data: there the real image fits any data, and the residual of TV's slow
    1000 iterations without the k-space centre measures how far the run still is from its
    minimum, not a misfit."""
    if settings.lam not in NOISE_RULE or acq.nufft is not None or acq.single_coil or \
            prior.noise_rule is None:
        return None
    if prior.lambda_for_noise(acq.kspace, acq.mask) is None:
        return None
    return MisfitWeighting(prior.noise_rule.lambdas_at)


def report_fallen_lambda(log, command: str, before, after) -> None:
    """One log line where a misfit-weighted run ended below its lambda from the noise."""
    if bool((torch.as_tensor(after) < torch.as_tensor(before)).any()):
        log(f"{command}: where the data's misfit exceeds their noise, lambda fell: "
            f"{describe_lambda(after)}")


def describe_lambda(lam) -> str:
    """The log's words for lambda: one number, or the per-slice range."""
    if not isinstance(lam, torch.Tensor):
        return f"lam {lam:.4g}"
    low, high = float(lam.min()), float(lam.max())
    if low == high:
        return f"lam {low:.4g}"
    return f"lam {low:.4g}..{high:.4g} (each slice's from its noise)"


def describe_mu(options: IpalmOptions) -> str:
    """The log's words for the map smoothness: the number asked for, or its ratio to lam."""
    if options.mu is not None:
        return f"mu {options.mu:.4g}"
    return f"mu {options.mu_per_lambda:.3g} x lam"


def choose_lambda(text: str, prior, acq: Acquisition | None = None) -> float:
    """--lam: a positive number; "auto" the prior's fitted regression on the initial residual
    (an error without one); "" or "noise" the prior's rule from the data's noise level
    (Cartesian data with an estimate), else its fit, else its default."""
    if text == "auto" and prior.lambda_fit is None:
        raise UsageError("--lam auto: the prior has no lambda fit (fit one with "
                         "`mrgen train calibrate`) or give a number")
    # the noise estimate and the fit's initial residual are of Cartesian data
    cartesian = acq is not None and acq.nufft is None
    if text in NOISE_RULE and cartesian:
        from_noise = prior.lambda_for_noise(acq.kspace, acq.mask)
        if from_noise is not None:
            return from_noise
    if text in ("auto", *NOISE_RULE):
        if prior.lambda_fit is not None and cartesian:
            return prior.lambda_for(acq.kspace, acq.mask)
        return prior.default_lambda
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--lam {text}: expected a number or auto") from None
    if value <= 0:
        raise UsageError(f"--lam {text}: must be positive")
    return value


def _equaliser(prior):
    if prior.equaliser is None:
        raise UsageError("--equalise: the prior has no fitted equaliser (fit one with "
                         "`mrgen train calibrate`)")
    return prior.equaliser
