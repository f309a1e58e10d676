"""mrgen ipalm: joint image and coil-map reconstruction with a generative or TV prior."""

from typing import Annotated, Optional

import typer

from .cli import check_output, command, device, info, load, save, show_progress
from .options import AT_LEAST_1, POSITIVE, Range, SliceOption

SUMMARY = "Joint image + coil-map reconstruction by iPALM with a learned or TV prior (Zach, Knoll, Pock 2023, preprint)."


@command("ipalm", SUMMARY, inputs=("kspace", "mask", "maps"), models=("model",),
         outputs=("output", "maps_out"), files_out=("energy_log",),
         ranges={"lam": Range(0, low_open=True, words=("", "auto")), "mu": POSITIVE,
                 "iters": AT_LEAST_1, "tv_eps": POSITIVE, "max_backtracks": AT_LEAST_1},
         choices={"reg": ("", "learned", "tv")})
def ipalm(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled multi-coil k-space (coils, H, W) or (slices, "
        "coils, H, W); with --single-coil also (H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="The image (H, W) or (slices, H, W), float32, real and "
        "non-negative, in the scale of the data.", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", metavar="FILE.pt|NAME", help="Learned energy prior from `mrgen train prior`"
        " or a shipped one (prior-brain-small). Without it the prior is TV (--reg tv).",
        show_default=False)] = None,
    reg: Annotated[str, typer.Option(
        "--reg", metavar="learned|tv", help="Regulariser; learned needs --model. Default: "
        "learned with --model, else tv.", show_default=False)] = "",
    lam: Annotated[str, typer.Option(
        "--lam", metavar="VALUE|auto", help="Weight of the data term (the authors' code "
        "convention: H = lam/2 ||data residual||^2 + R(u)). auto: the linear fit on the initial "
        "residual stored in the model (Zach, Knoll, Pock 2023, preprint, Section 2.6). Default: auto for a model "
        "that has a fit, else 1000 for TV and 1 for a learned prior.", show_default=False)] = "",
    mu: Annotated[Optional[float], typer.Option(
        "--mu", help="Weight of the map smoothness (Eq. 12). Default: 10 for a learned prior "
        "(paper), 1000 for TV (TV needs a large --lam, and the map step only sees lam/mu).",
        show_default=False)] = None,
    iters: Annotated[int, typer.Option("--iters", help="iPALM iterations.")] = 100,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask (1 = sampled); default: the non-zero "
        "pattern of the data.", show_default=False)] = None,
    maps: Annotated[Optional[str], typer.Option(
        "--maps", metavar="FILE", help="Fixed coil maps (coils, H, W), e.g. from `mrgen "
        "espirit`: only the image is estimated.", show_default=False)] = None,
    single_coil: Annotated[bool, typer.Option(
        "--single-coil", help="One coil with sensitivity 1 (the real-valued simulation study of "
        "Zach, Knoll, Pock 2023, preprint, Section 2.5).")] = False,
    maps_out: Annotated[Optional[str], typer.Option(
        "--maps-out", metavar="FILE", help="Write the estimated maps (coils, H, W), normalised "
        "to unit root-sum-of-squares.", show_default=False)] = None,
    energy_log: Annotated[Optional[str], typer.Option(
        "--energy-log", metavar="FILE", help="Write the energy after each iteration, (iters,) or"
        " (iters, slices): .txt for text, else an array file.", show_default=False)] = None,
    tv_eps: Annotated[float, typer.Option(
        "--tv-eps", help="Charbonnier smoothing of TV (Zach, Knoll, Pock 2023, Eq. 18).")] = 1e-3,
    equalise: Annotated[bool, typer.Option(
        "--equalise", help="Map intensities through the model's fitted spline equaliser "
        "(Zach, Knoll, Pock 2023, 2.6; fitted by `mrgen train calibrate`).")] = False,
    max_backtracks: Annotated[int, typer.Option(
        "--max-backtracks", help="Backtracking tries per block and iteration (the authors' "
        "code: 10; the paper: until the test passes).")] = 40,
    strict: Annotated[bool, typer.Option(
        "--strict-backtracking", help="The paper's exact sufficient-decrease test instead of "
        "the code's 1.01 slack.")] = False,
    slice_: SliceOption = None,
):
    """Reconstruct an image u >= 0 and coil maps jointly by iPALM (Zach, Knoll, Pock 2023,
    Algorithms 1 and 2): minimise lam/2 sum_c ||M F(u c / |c|) - z_c||^2 + R(u) + mu F(c),
    with F the Dirichlet smoothness of the maps (prox exact by the discrete sine transform),
    inertia k/(k+3) and Lipschitz backtracking for each block. R is a learned energy
    (--model) or Charbonnier TV (--reg tv). The data are scaled by the maximum of the
    zero-filled RSS image (within the prior's crop) and the result scaled back.

    Modes: joint (default); --maps FILE fixes the maps; --single-coil has one coil of
    sensitivity 1. Slices are reconstructed together as one batch."""
    import torch
    from tqdm import tqdm

    from mrgen import io, shapes
    from mrgen.errors import UsageError
    from mrgen.ipalm import IpalmOptions, ipalm as run_ipalm
    from mrgen.priors.loading import build_regulariser

    if maps is not None and single_coil:
        raise UsageError("--maps and --single-coil exclude each other")
    check_output(output, [kspace, mask, maps])
    for extra in (maps_out, energy_log):
        if extra is not None:
            check_output(extra, [kspace, mask, maps]) if not extra.endswith(".txt") else None
    dev = device()
    slices = io.parse_slices(slice_)
    data = _load_kspace(kspace, slices, single_coil)
    batched = data if data.ndim == 4 else data[None]
    mask_array = shapes.fit_mask(load(mask, io.roles.MASK), data.shape, mask) if mask \
        else (abs(batched) > 0).any(axis=1)
    mask_t = torch.as_tensor(mask_array, dtype=torch.float32, device=dev)
    mask_t = mask_t if mask_t.dim() == 3 else mask_t[None]
    maps_t = None
    if maps is not None:
        fitted = shapes.fit_maps(load(maps, io.roles.MAPS, slices), data.shape, maps)
        maps_t = torch.from_numpy(fitted if fitted.ndim == 4 else fitted[None]).to(dev)
    elif single_coil:
        maps_t = torch.ones(batched.shape, dtype=torch.complex64, device=dev)

    regulariser, prior = build_regulariser(model, reg, tv_eps, dev)
    if equalise:
        _equaliser(prior)  # fail before the long run, not after
    options = IpalmOptions(
        lam=_choose_lambda(lam, prior), mu=mu if mu is not None else prior.default_mu,
        iters=iters, estimate_maps=maps_t is None, align_map_phase=not single_coil,
        slack=1.0 if strict else 1.01, max_backtracks=max_backtracks,
        scale_crop=prior.crop)
    k_t = torch.from_numpy(batched).to(dev)
    if prior.lambda_fit is not None and lam in ("", "auto"):
        options.lam = prior.lambda_for(k_t, mask_t)
    info(f"ipalm: {prior.description}, lam {options.lam:.4g}, mu {options.mu:.4g}, "
         f"{iters} iterations, {batched.shape[0]} slice(s) of {batched.shape[1]} coil(s), "
         f"{'joint maps' if options.estimate_maps else 'fixed maps'}, {dev}")

    with tqdm(total=iters, desc="ipalm", file=__import__("sys").stderr,
              disable=not show_progress()) as bar:
        def advance(k, u, c, energies):
            if k % 5 == 0 or k == iters - 1:
                bar.set_postfix(energy=f"{energies.sum().item():.4g}")
            bar.update(1)

        result = run_ipalm(k_t, mask_t, regulariser, options, maps=maps_t, callback=advance)

    image = result.image
    if equalise:
        from mrgen.tuning import apply_equaliser

        image = apply_equaliser(image, result.scale, _equaliser(prior))
    image = image if data.ndim == 4 else image[0]
    save(output, image, io.roles.IMAGE, inputs=[kspace, mask, maps])
    if maps_out is not None:
        save(maps_out, result.maps if data.ndim == 4 else result.maps[0], io.roles.MAPS,
             inputs=[kspace, mask, maps])
    if energy_log is not None:
        _write_energy_log(energy_log, result.energies, data.ndim == 4, [kspace, mask, maps])


def _equaliser(prior):
    from mrgen.errors import UsageError

    if prior.equaliser is None:
        raise UsageError("--equalise: the prior has no fitted equaliser (fit one with "
                         "`mrgen train calibrate`)")
    return prior.equaliser


def _load_kspace(path, slices, single_coil):
    from mrgen import io

    if not single_coil:
        return load(path, io.roles.KSPACE, slices)
    data = load(path, io.roles.COIL_IMAGES, slices)
    if data.dtype.kind != "c":
        from mrgen.errors import DataError

        raise DataError(f"{path}: the k-space must be complex, got {data.dtype}")
    if data.ndim == 4 and data.shape[1] != 1:
        from mrgen.errors import DataError

        raise DataError(f"{path}: --single-coil needs (H, W), (slices, H, W) or (slices, 1, H, "
                        f"W) k-space, got {data.shape[1]} coils (shape {data.shape})")
    # (H, W) -> (1, H, W); (S, H, W) single-coil slices -> (S, 1, H, W)
    return data[None] if data.ndim == 2 else data[:, None] if data.shape[-3] != 1 else data


def _choose_lambda(text, prior):
    from mrgen.errors import UsageError

    if text in ("", "auto"):
        if text == "auto" and prior.lambda_fit is None:
            raise UsageError("--lam auto: the prior has no lambda fit (train one with "
                             "`mrgen train prior --calibrate-lambda`) ; give a number")
        return prior.default_lambda
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--lam {text}: expected a number or auto") from None
    if value <= 0:
        raise UsageError(f"--lam {text}: must be positive")
    return value


def _write_energy_log(path, energies, has_slices, inputs):
    import numpy as np

    from mrgen import io

    values = energies.cpu().numpy() if has_slices else energies[:, 0].cpu().numpy()
    if path.endswith(".txt"):
        np.savetxt(path, values, fmt="%.8g", header="energy per iteration (columns: slices)")
    else:
        save(path, values.astype(np.float32), io.roles.ANY, inputs=inputs)
