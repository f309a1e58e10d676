"""mrgen langevin: posterior (or prior) sampling by the unadjusted Langevin algorithm."""

from typing import Annotated, Optional

import typer

from .cli import check_output, command, device, info, load, save, settings, show_progress
from .options import AT_LEAST_0, AT_LEAST_1, POSITIVE, SliceOption

SUMMARY = "Langevin posterior sampling with fixed maps: MMSE, variance, samples (Zach, Knoll, Pock 2023, preprint)."


@command("langevin", SUMMARY, inputs=("inputs[:-1]", "mask", "maps",
                                                  "init|ipalm|noise|zf|sense|map"),
         models=("model",), outputs=("inputs[-1]", "var", "samples_out"),
         ranges={"lam": POSITIVE, "ipalm_iters": AT_LEAST_1, "burn_in": AT_LEAST_0,
                 "samples": AT_LEAST_1, "thin": AT_LEAST_1, "step": POSITIVE,
                 "noise_std": AT_LEAST_0, "shape": AT_LEAST_1, "chains": AT_LEAST_1,
                 "tv_eps": POSITIVE},
         choices={"reg": ("", "learned", "tv"), "sampler": ("auto", "ula", "mala")},
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
        "--lam", help="Weight of the data term. Default: the model's lambda fit (as ipalm "
        "--lam auto), else 1 for a learned prior (the paper's choice for sampling) and 1000 "
        "for TV.", show_default=False)] = None,
    maps: Annotated[Optional[str], typer.Option(
        "--maps", metavar="FILE", help="Fixed coil maps, e.g. ipalm --maps-out. Without them "
        "the maps come from a joint iPALM run first (--ipalm-iters), as in the paper; for a "
        "DEEPEN model from ESPIRiT of the calibration region, as mrgen deepen.",
        show_default=False)] = None,
    ipalm_iters: Annotated[int, typer.Option(
        "--ipalm-iters", help="iPALM iterations that estimate the maps when --maps is not "
        "given, and the start image with --init ipalm.")] = 100,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask; default: the non-zero pattern of the "
        "data.", show_default=False)] = None,
    single_coil: Annotated[bool, typer.Option(
        "--single-coil", help="One coil of sensitivity 1 (Zach, Knoll, Pock 2023, preprint, Section 2.5).")] = False,
    burn_in: Annotated[int, typer.Option("--burn-in", help="Steps discarded first.")] = 1000,
    samples: Annotated[int, typer.Option("--samples", help="Samples kept.")] = 200,
    thin: Annotated[int, typer.Option("--thin", help="Keep every k-th state (paper: 15).")] = 15,
    step: Annotated[Optional[float], typer.Option(
        "--step", help="Gradient step of ULA. Default: the prior's own (1 for a learned prior, "
        "eps/10 for TV), lowered to 1/lam when the data term needs it for stability; 1 for "
        "DEEPEN (Eq. 16).",
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
        "default; as the authors for parallel imaging: a short burn-in suffices), uniform "
        "noise in [0, 1] of the scaled data (the single-coil study of Zach, Knoll, Pock 2023, preprint, with a long "
        "burn-in), the zero-filled RSS, or an image file. For DEEPEN: its MAP (map, the "
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
    chains: Annotated[int, typer.Option("--chains", help="Chains for --prior-only.")] = 4,
    magnitude: Annotated[bool, typer.Option(
        "--magnitude", help="DEEPEN: write magnitudes instead of complex images.")] = False,
    tv_eps: Annotated[float, typer.Option("--tv-eps", help="Charbonnier TV smoothing.")] = 1e-3,
    slice_: SliceOption = None,
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
    import torch
    from tqdm import tqdm

    from mrgen import io
    from mrgen.device import generator as make_generator
    from mrgen.deepen.model import KIND as DEEPEN
    from mrgen.io.stream import NpyStackWriter
    from mrgen.priors.loading import build_regulariser, model_kind

    kspace, output = _split_inputs(inputs, prior_only)
    check_output(output, [kspace, mask, maps])
    for extra in (var, samples_out):
        if extra:
            check_output(extra, [kspace, mask, maps, output])
    dev = device()
    if model_kind(model) == DEEPEN:
        _check_deepen_options(reg, lam, single_coil, nonneg, prior_only, init)
        return _langevin_deepen(kspace, output, model, maps, mask, burn_in, samples, thin, step,
                                noise_std, init or "map", var, samples_out, magnitude,
                                slice_, dev, sampler != "ula")
    if magnitude:
        from mrgen.errors import UsageError

        raise UsageError("--magnitude: only for a DEEPEN model (these images are real)")
    init = init or "ipalm"
    regulariser, prior = build_regulariser(model, reg, tv_eps, dev)
    gen = make_generator(settings.seed, dev)
    total = burn_in + samples * thin
    bar = tqdm(total=total, desc="langevin", file=__import__("sys").stderr,
               disable=not show_progress())

    if prior_only:
        step, noise_std = _step_and_noise(step, noise_std, prior, 0.0)
        size = tuple(shape) if shape else (prior.crop or 64,) * 2
        writer = NpyStackWriter(samples_out, samples, (chains, *size)) if samples_out else None
        with bar, (writer or _nothing()):
            from mrgen.posterior import sample_prior

            result = sample_prior(regulariser, size, chains, burn_in, samples, thin, step,
                                  noise_std, gen, dev, nonneg,
                                  writer.write if writer else None, bar.update,
                                  sampler == "mala")
        save(output, result.last, io.roles.IMAGE)
        if var:
            save(var, result.variance, io.roles.IMAGE)
        info(f"langevin: {chains} prior chain(s), {total} steps, {result.count} samples")
        return

    from .ipalm import _load_kspace

    slices = io.parse_slices(slice_)
    data = _load_kspace(kspace, slices, single_coil)
    batched = torch.from_numpy(data if data.ndim == 4 else data[None]).to(dev)
    mask_t = _mask_tensor(mask, data, batched, dev)
    if lam is None:
        lam = prior.lambda_for(batched, mask_t) if prior.lambda_fit else prior.default_lambda
    step, noise_std = _step_and_noise(step, noise_std, prior, lam)
    maps_t, start = _maps_and_start(maps, single_coil, init, data, batched, slices, mask_t,
                                    regulariser, prior, ipalm_iters, lam, dev)
    count_shape = tuple(batched.shape[:1]) + tuple(batched.shape[-2:])
    out_shape = count_shape if data.ndim == 4 else count_shape[1:]
    writer = NpyStackWriter(samples_out, samples, out_shape) if samples_out else None
    info(f"langevin: {prior.description}, lam {lam:.4g}, step {step:.3g}, noise {noise_std:.3g}"
         f", {burn_in} burn-in + {samples} x {thin} steps, {dev}")
    from mrgen.posterior import sample_posterior

    with bar, (writer or _nothing()):
        on_sample = None if writer is None else (
            lambda i, s: writer.write(i, s if data.ndim == 4 else s[0]))
        result, _ = sample_posterior(batched, mask_t, maps_t, regulariser, lam, start, burn_in,
                                     samples, thin, step, noise_std, gen, prior.crop, nonneg,
                                     on_sample, bar.update, sampler == "mala")
    _report_metropolis(result)
    squeeze = (lambda t: t) if data.ndim == 4 else (lambda t: t[0])
    save(output, squeeze(result.mean), io.roles.IMAGE, inputs=[kspace, mask, maps])
    if var:
        save(var, squeeze(result.variance), io.roles.IMAGE, inputs=[kspace, mask, maps])


def _check_deepen_options(reg, lam, single_coil, nonneg, prior_only, init):
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
    ]
    for given, option, reason in unused:
        if given:
            raise UsageError(f"{option}: not used with a DEEPEN model{reason}")


def _langevin_deepen(kspace, output, model, maps, mask, burn_in, samples, thin, step,
                     noise_std, init, var, samples_out, magnitude, slice_, dev, metropolis):
    """langevin with a DEEPEN model: MALA or ULA on its posterior (mrgen.posterior)."""
    import sys

    import numpy as np
    import torch
    from tqdm import tqdm

    from mrgen import io
    from mrgen.deepen.training import sampler_eps
    from mrgen.device import generator as make_generator
    from mrgen.io.stream import NpyStackWriter
    from mrgen.posterior import sample_deepen_posterior
    from mrgen.shapes import fit_image

    from .deepen import load_deepen_problem

    problem = load_deepen_problem("langevin", model, kspace, mask, maps, slice_, dev)
    energy, metadata, batched = problem.energy, problem.metadata, problem.kspace
    start = init if init in ("map", "sense", "noise") else torch.from_numpy(_as_batch(
        fit_image(load(init, io.roles.IMAGE, problem.slices),
                  tuple(batched.shape[1:] if problem.single else batched.shape), init),
        not problem.single)).to(dev)
    step = 1.0 if step is None else step
    noise_std = sampler_eps(metadata) * step ** 0.5 if noise_std is None else noise_std
    info(f"langevin: {problem.description}, {'MALA' if metropolis else 'ULA'} from {init}, "
         f"step {step:.3g}{' (adapted in burn-in)' if metropolis else ''}, noise "
         f"{noise_std:.3g} (T {noise_std ** 2 / (2 * step):.3g}), {burn_in} burn-in + "
         f"{samples} x {thin} steps, {dev}")
    finish = (lambda t: t.abs()) if magnitude else (lambda t: t)
    squeeze = problem.squeeze
    shape = tuple(batched.shape[:1]) + tuple(batched.shape[-2:])
    writer = NpyStackWriter(samples_out, samples, shape[1:] if problem.single else shape,
                            dtype=np.float32 if magnitude else np.complex64) \
        if samples_out else None
    bar = tqdm(total=burn_in + samples * thin, desc="langevin", file=sys.stderr,
               disable=not show_progress())
    with bar, (writer or _nothing()):
        on_sample = None if writer is None else (
            lambda i, x: writer.write(i, squeeze(finish(x))))
        result, _ = sample_deepen_posterior(
            energy, batched, problem.mask, problem.maps, start, burn_in, samples, thin, step,
            noise_std, make_generator(settings.seed, dev), problem.init_std, on_sample,
            bar.update, metropolis)
    _report_metropolis(result)
    inputs = [kspace, mask, maps]
    save(output, finish(squeeze(result.mean)), io.roles.IMAGE, inputs=inputs)
    if var:
        save(var, squeeze(result.variance), io.roles.IMAGE, inputs=inputs)


def _report_metropolis(result):
    if result.acceptance is not None:
        info(f"langevin: MALA acceptance {float(result.acceptance.mean()):.2f} after burn-in, "
             f"step {float(result.step.min()):.3g}..{float(result.step.max()):.3g}")


def _precheck(args):
    """Cheap checks before the body: the positional count, and options that exclude each
    other."""
    from mrgen.errors import UsageError

    _split_inputs(args["inputs"], args["prior_only"])
    if args["nonneg"] and args["sampler"] == "mala":
        raise UsageError("--nonneg with --sampler mala: a projected chain has no Metropolis "
                         "test; use --sampler ula")


def _split_inputs(inputs, prior_only):
    from mrgen.errors import UsageError

    wanted = 1 if prior_only else 2
    if len(inputs) != wanted:
        raise UsageError("expected OUT with --prior-only" if prior_only
                         else "expected KSPACE OUT (or --prior-only OUT)")
    return (None, inputs[0]) if prior_only else (inputs[0], inputs[1])


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _as_batch(array, has_slices):
    return array if has_slices else array[None]


def _mask_tensor(mask, data, batched, dev):
    import torch

    from mrgen import io, shapes

    if mask is None:
        return (batched.abs() > 0).any(dim=1).float()
    fitted = torch.from_numpy(shapes.fit_mask(load(mask, io.roles.MASK), data.shape, mask))
    return (fitted if fitted.dim() == 3 else fitted[None]).to(dev)


def _step_and_noise(step, noise_std, prior, lam):
    """Defaults that keep ULA stable (step < 1/lam, the data term's Lipschitz constant being
    lam) at the prior's own temperature T = noise^2 / (2 step): noise scales as sqrt(step)."""
    if step is None:
        step = prior.sampling_step if lam <= 0 else min(prior.sampling_step, 1.0 / lam)
    if noise_std is None:
        noise_std = prior.sampling_noise * (step / prior.sampling_step) ** 0.5
    return step, noise_std


def _maps_and_start(maps, single_coil, init, data, batched, slices, mask_t, regulariser,
                    prior, iters, lam, dev):
    """The fixed maps (given, ones for one coil, or iPALM's) and the chain's start."""
    import torch

    from mrgen import io, shapes
    from mrgen.ipalm import IpalmOptions, align_map_phase, ipalm

    fixed = None
    if single_coil:
        fixed = torch.ones_like(batched)
    elif maps is not None:
        fitted = shapes.fit_maps(load(maps, io.roles.MAPS, slices), data.shape, maps)
        fixed = torch.from_numpy(fitted if fitted.ndim == 4 else fitted[None]).to(dev)
        fixed = align_map_phase(batched, mask_t, fixed)  # u is real: the maps carry its phase
    result = None
    if fixed is None or init == "ipalm":
        info(f"langevin: {iters} iPALM iterations for the "
             f"{'maps and ' if fixed is None else ''}start")
        options = IpalmOptions(lam=lam, mu=prior.default_mu, iters=iters,
                               scale_crop=prior.crop, estimate_maps=fixed is None,
                               align_map_phase=False)
        result = ipalm(batched, mask_t, regulariser, options, maps=fixed)
        fixed = result.maps if fixed is None else fixed
    if init == "ipalm":
        return fixed, result.image
    if init in ("noise", "zf"):
        return fixed, init
    image = shapes.fit_image(load(init, io.roles.IMAGE, slices), data.shape, init)
    return fixed, torch.from_numpy(_as_batch(image, data.ndim == 4)).to(dev)
