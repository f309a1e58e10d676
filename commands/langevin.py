"""mrgen langevin: posterior (or prior) sampling by the unadjusted Langevin algorithm."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save, settings
from .options import (AT_LEAST_0, AT_LEAST_1, POSITIVE, PRECISIONS, GridOption,
                      PrecisionOption, SliceOption, SupportOption, TrajOption,
                      read_held_acquisition, support_file)

SUMMARY = "Langevin posterior sampling with fixed maps: MMSE, variance, samples (Zach, Knoll, Pock 2023, preprint)."


@command("langevin", SUMMARY, inputs=("inputs[:-1]", "mask", "maps", "traj",
                                                  "init|ipalm|noise|zf|sense|map",
                                                  "support||auto|off"),
         models=("model",), outputs=("inputs[-1]", "var", "samples_out"),
         ranges={"lam": POSITIVE, "ipalm_iters": AT_LEAST_1, "burn_in": AT_LEAST_0,
                 "samples": AT_LEAST_1, "thin": AT_LEAST_1, "step": POSITIVE,
                 "noise_std": AT_LEAST_0, "shape": AT_LEAST_1, "chains": AT_LEAST_1,
                 "tv_eps": POSITIVE, "grid": AT_LEAST_1},
         choices={"reg": ("", "learned", "tv"), "sampler": ("auto", "ula", "mala"),
                  "precision": PRECISIONS},
         precheck=lambda args: _precheck(args))
def langevin(
    inputs: Annotated[list[str], typer.Argument(
        metavar="[KSPACE] OUT", help="Undersampled k-space (coils, H, W) or (slices, coils, H, "
        "W), then the output: the MMSE image (posterior mean). With --prior-only only OUT: the "
        "final states of the chains (chains, H, W).", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", metavar="FILE.pt|NAME", help="Learned energy prior (as for ipalm), or a "
        "DEEPEN model of mrgen train deepen (its posterior: complex image, unit data weight, "
        "ESPIRiT maps unless --maps); without it, TV.", show_default=False)] = None,
    reg: Annotated[str, typer.Option(
        "--reg", metavar="learned|tv", help="Regulariser, as for ipalm.",
        show_default=False)] = "",
    lam: Annotated[Optional[float], typer.Option(
        "--lam", help="Weight of the data term. Default: ipalm's default (from the data's "
        "noise, on single-coil data chosen on held-out k-space as ipalm does: the posterior "
        "whose MAP ipalm computes).", show_default=False)] = None,
    maps: Annotated[Optional[str], typer.Option(
        "--maps", metavar="FILE", help="Fixed coil maps, e.g. ipalm --maps-out. Without them "
        "the maps come from a joint iPALM run first (--ipalm-iters), as in the paper; for a "
        "DEEPEN model from ESPIRiT of the calibration region, as mrgen deepen.",
        show_default=False)] = None,
    ipalm_iters: Annotated[Optional[int], typer.Option(
        "--ipalm-iters", help="iPALM iterations that estimate the maps when --maps is not "
        "given, and the start image with --init ipalm. Default: ipalm's (100; 1000 for TV "
        "on single-coil data).", show_default=False)] = None,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask; default: the non-zero pattern of the "
        "data.", show_default=False)] = None,
    single_coil: Annotated[bool, typer.Option(
        "--single-coil", help="One coil of sensitivity 1 (Zach, Knoll, Pock 2023, preprint, Section 2.5).")] = False,
    burn_in: Annotated[int, typer.Option(
        "--burn-in", help="Steps discarded first (per chain; the paper: 1000).")] = 100,
    samples: Annotated[int, typer.Option(
        "--samples", help="Samples kept per chain (the paper: 200 of one chain).")] = 50,
    thin: Annotated[int, typer.Option("--thin", help="Keep every k-th state (paper: 15).")] = 3,
    step: Annotated[Optional[float], typer.Option(
        "--step", help="Gradient step. Preconditioned chains (the default on Cartesian data, "
        "see --precondition): the fraction of each direction's relaxation per step, 0.2, below "
        "1. Plain ULA: the prior's own (0.25 sigma^2 for a whole-image learned prior, 1 for "
        "the paper's crop head, eps/10 for TV), "
        "lowered to 1/lam (with --traj 1/(lam ||A^H A||)) when the data term needs it for "
        "stability; 1 for DEEPEN (Eq. 16). ULA refuses a step of 2/(lam ||A^H A||) or more.",
        show_default=False)] = None,
    noise_std: Annotated[Optional[float], typer.Option(
        "--noise-std", help="Std of the ULA noise. Default: sqrt(2 step T) at the prior's "
        "temperature T: that of training for a learned prior (7.5e-3 at step 1, the authors' "
        "code), T = 1e-3 for TV (at T = 1 TV samples are mostly noise); for DEEPEN the eps "
        "it was trained with.",
        show_default=False)] = None,
    sampler: Annotated[str, typer.Option(
        "--sampler", metavar="auto|ula|mala", help="ula: the papers' unadjusted Langevin "
        "steps; mala: the same proposal with a Metropolis test (exact for any step; the step "
        "is adapted during burn-in to an acceptance of 0.574 at the temperature of --step and "
        "--noise-std). auto: mala for DEEPEN (at its published step 1 no ULA move would pass "
        "the test: long ULA chains leave its posterior), ula otherwise.")] = "auto",
    init: Annotated[Optional[str], typer.Option(
        "--init", metavar="ipalm|noise|zf|sense|FILE", help="Start: the iPALM image (the "
        "default without --maps, with one coil or unpreconditioned chains; as the authors "
        "for parallel imaging: a short burn-in suffices; the MAP ipalm computes by default, "
        "on single-coil data from ipalm-TV's image), uniform "
        "noise in [0, 1] of the scaled data (the single-coil study of Zach, Knoll, Pock 2023, preprint, with a long "
        "burn-in), the zero-filled RSS (zf: the default for preconditioned chains with "
        "--maps, which relax from it within their burn-in), or an image file. For DEEPEN: "
        "its MAP (map, the "
        "default: the posterior's mode, mrgen deepen), the SENSE image (sense), Gaussian "
        "noise as in training (noise), or a complex image file.",
        show_default=False)] = None,
    nonneg: Annotated[bool, typer.Option(
        "--nonneg", help="Project the chain on u >= 0 after each step (the paper does not).")]
    = False,
    var: Annotated[Optional[str], typer.Option(
        "--var", metavar="FILE", help="Write the pixel-wise posterior variance.",
        show_default=False)] = None,
    samples_out: Annotated[Optional[str], typer.Option(
        "--samples-out", metavar="FILE.npy", help="Stream every kept sample to this .npy "
        "(samples, [slices,] H, W) without holding them in memory.", show_default=False)] = None,
    prior_only: Annotated[bool, typer.Option(
        "--prior-only", help="Sample the prior alone (no data): images from the model.")]
    = False,
    shape: Annotated[Optional[tuple[int, int]], typer.Option(
        "--shape", metavar="H W", help="Image size for --prior-only (default: the prior's "
        "crop).", show_default=False)] = None,
    chains: Annotated[int, typer.Option(
        "--chains", help="Chains per slice, advanced together as one batch from the same "
        "start; MMSE and variance pool all chains' kept samples, and the run ends with their "
        "effective sample size and split R-hat (< 1.1: long enough). With --prior-only: the "
        "prior chains.")] = 4,
    precondition: Annotated[Optional[bool], typer.Option(
        "--precondition/--no-precondition", help="Preconditioned Langevin: x <- x - step P "
        "grad H + sqrt(2 step T) P^(1/2) n. For the learned prior or TV P = (lam A^H A + Q)^-1, "
        "the data term's exact curvature plus the prior's (probed at the start, by k-space "
        "frequency), applied by CG with the noise drawn by perturbation, so the stiff sampled "
        "and the soft unsampled directions move at the same rate; --step is then that rate "
        "(default 0.2, dimensionless; ULA's bias inflates the variance by 1/(1 - step/2) "
        "where the model fits). For DEEPEN P is a k-space-diagonal model of its curvature. "
        "Cartesian samples only. Default: on for the learned prior and TV (on the README's "
        "file 4 chains x 250 steps end at split R-hat 1.10-1.28, by machine, plain ULA's at "
        "2.52), off for "
        "DEEPEN, --traj and --nonneg.", show_default=False)] = None,
    precision: PrecisionOption = "auto",
    magnitude: Annotated[bool, typer.Option(
        "--magnitude", help="DEEPEN: write magnitudes instead of complex images.")] = False,
    tv_eps: Annotated[float, typer.Option("--tv-eps", help="Charbonnier TV smoothing.")] = 1e-3,
    support: SupportOption = "",
    slice_: SliceOption = None,
    traj: TrajOption = None,
    grid: GridOption = None,
):
    """Sample the posterior p(u | z, maps) ~ exp(-H(u)) with H(u) = lam/2 ||M F(u c/|c|) -
    z||^2 + R(u) by the unadjusted Langevin algorithm, u <- u - step grad H(u) + noise_std n
    (Zach, Knoll, Pock 2023, Sections 2.5-2.6), with the maps fixed (given, or from iPALM). Mean and
    variance are accumulated on the fly (Welford); samples are streamed to disk on request.
    --prior-only draws images from the prior alone (paper Fig. 1). The sampler is general:
    any energy mrgen knows can be sampled: with a DEEPEN model (mrgen train deepen) the chain
    runs on DEEPEN's posterior (Chand, Jacob 2025, Eq. 16: complex image, H(x) = 1/2 ||A x - b||^2 +
    E(x)), with burn-in and thinning instead of mrgen deepen --mode sample's independent
    chains. --seed makes the chain reproducible."""
    from mrgen import io
    from mrgen.apps import langevin as sampling
    from mrgen.device import generator
    from mrgen.io.stream import SampleStream

    kspace, output = _split_inputs(inputs, prior_only)
    dev, slices = device(nufft=traj is not None), io.parse_slices(slice_)
    deepen = _is_deepen(model, reg, lam, single_coil, nonneg, prior_only, init, magnitude, traj,
                        support)
    chain = sampling.ChainSettings(burn_in, samples, thin, step, noise_std,
                                   sampler == "mala" or (sampler == "auto" and deepen), nonneg,
                                   1 if prior_only else chains, precondition, precision)
    choice, gen = sampling.PriorChoice(model, reg, tv_eps), generator(settings.seed, dev)
    finish = (lambda t: t.abs()) if magnitude else (lambda t: t)
    with progress_bar(chain.total_steps, "langevin") as bar, \
            SampleStream(samples_out, samples * chain.chains) as stream:
        if prior_only:
            return _prior_only(choice, shape, chains, chain, gen, dev, stream, bar, output, var)
        acq, start = _acquisition_and_start(kspace, mask, maps, slices, single_coil, traj,
                                            grid, support, dev, init, deepen, chain)
        on_sample = (lambda i, s: stream.write(i, acq.squeeze(finish(s))))
        if deepen:
            from mrgen.apps.deepen import load_deepen_model, with_deepen_maps

            acq = with_deepen_maps(acq, info, "langevin")
            result = sampling.sample_deepen_app(acq, load_deepen_model(model, dev), chain, start,
                                           gen, on_sample, bar.update, info)
        else:
            result = sampling.sample_posterior_app(acq, choice, chain, start, gen, lam, ipalm_iters,
                                              on_sample, bar.update, info)
    for line in filter(None, (sampling.metropolis_report(result),
                              sampling.convergence_report(result))):
        info(line)
    files = [kspace, mask, maps, traj, *support_file(support)]
    save(output, finish(acq.squeeze(result.mean)), io.roles.IMAGE, inputs=files)
    if var:
        save(var, acq.squeeze(result.variance), io.roles.IMAGE, inputs=files)


def _acquisition_and_start(kspace, mask, maps, slices, single_coil, traj, grid, support, dev,
                           init, deepen, chain):
    """(the acquisition, held to a --support file; the chains' start: a word or an image),
    ``chain.support`` set to the --support word left for the app."""
    from mrgen.acquisition import read_matching_image
    from mrgen.apps.langevin import default_start

    acq, chain.support = read_held_acquisition(kspace, mask, maps, slices, single_coil, traj,
                                               grid, support, dev)
    start = init or ("map" if deepen else default_start(chain, acq))
    if start not in (("map", "sense", "noise") if deepen else ("ipalm", "noise", "zf")):
        start = read_matching_image(start, acq, slices).to(dev)
    return acq, start


def _prior_only(choice, shape, chains, chain, gen, dev, stream, bar, output, var):
    """--prior-only: images from the prior alone; OUT holds the chains' final states."""
    from mrgen import io
    from mrgen.apps.langevin import sample_prior_app

    result = sample_prior_app(choice, shape, chains, chain, gen, dev, stream.write, bar.update)
    save(output, result.last, io.roles.IMAGE)
    if var:
        save(var, result.variance, io.roles.IMAGE)
    info(f"langevin: {chains} prior chain(s), {chain.total_steps} steps, {result.count} samples")


def _is_deepen(model, reg, lam, single_coil, nonneg, prior_only, init, magnitude,
               traj=None, support="") -> bool:
    """Whether --model is a DEEPEN model; options that the chosen posterior does not have
    are refused."""
    from mrgen.deepen.model import KIND as DEEPEN_KIND
    from mrgen.errors import UsageError
    from mrgen.priors.loading import model_kind

    if model_kind(model) != DEEPEN_KIND:
        if magnitude:
            raise UsageError("--magnitude: only for a DEEPEN model (these images are real)")
        return False
    _check_deepen_options(reg, lam, single_coil, nonneg, prior_only, init, traj, support)
    return True


def _check_deepen_options(reg, lam, single_coil, nonneg, prior_only, init, traj=None,
                          support=""):
    """Options of the iPALM posterior that a DEEPEN model does not have."""
    from mrgen.errors import UsageError

    unused = [
        (reg, "--reg", ""),
        (lam is not None, "--lam", ": DEEPEN's data term has unit weight (its energy was "
                                   "trained against it)"),
        (single_coil, "--single-coil", ""),
        (nonneg, "--nonneg", ": DEEPEN images are complex"),
        (prior_only, "--prior-only", ": DEEPEN learns a posterior for a forward operator, "
                                     "not a prior to sample alone"),
        (init in ("ipalm", "zf"), f"--init {init}", ": use map, sense, noise or an image file"),
        (traj, "--traj", ": DEEPEN's posterior is Cartesian"),
        (support, f"--support {support}", ": its image is complex, held by its maps"),
    ]
    for given, option, reason in unused:
        if given:
            raise UsageError(f"{option}: not used with a DEEPEN model{reason}")


def _precheck(args):
    """Cheap checks before the body: the positional count, and options that exclude each
    other."""
    from mrgen.errors import UsageError

    _split_inputs(args["inputs"], args["prior_only"])
    if args["traj"] is not None and args["maps"] is None and not args["prior_only"]:
        from mrgen.trajectory import NO_JOINT_MAPS

        raise UsageError(NO_JOINT_MAPS)
    if args["support"] and args["prior_only"]:
        raise UsageError(f"--support {args['support']}: not with --prior-only (no data)")
    if args["nonneg"] and args["sampler"] == "mala":
        raise UsageError("--nonneg with --sampler mala: a projected chain has no Metropolis "
                         "test; use --sampler ula")
    if args["sampler"] == "mala" and args["precision"] == "bfloat16":
        raise UsageError("--precision bfloat16 with --sampler mala: the Metropolis test "
                         "compares energies below bfloat16's rounding; use --sampler ula")


def _split_inputs(inputs, prior_only):
    from mrgen.errors import UsageError

    wanted = 1 if prior_only else 2
    if len(inputs) != wanted:
        raise UsageError("expected OUT with --prior-only" if prior_only
                         else "expected KSPACE OUT (or --prior-only OUT)")
    return (None, inputs[0]) if prior_only else (inputs[0], inputs[1])

