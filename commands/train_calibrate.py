"""mrgen train calibrate: fit iPALM's lambda and the intensity equaliser of a learned prior."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, settings, show_progress
from .options import AT_LEAST_1, POSITIVE
from .train import train_app

SUMMARY = "Fit the lambda regression and intensity equaliser of a prior on validation data."


@command("calibrate", SUMMARY, group=train_app, models=("files[0]",),
         inputs=("files[1:-1]",), files_out=("files[-1]",),
         ranges={"mu": POSITIVE, "iters": AT_LEAST_1, "central_slices": AT_LEAST_1},
         precheck=lambda args: _check_arguments(args["files"], args["grid"]))
def calibrate(
    files: Annotated[list[str], typer.Argument(
        metavar="MODEL.pt VALIDATION... OUT.pt", help="The prior from `mrgen train prior`, "
        "validation .h5 files with fully sampled `kspace` and a reference "
        "(`reconstruction_rss`, else the RSS of the k-space), and the output model file.",
        show_default=False)],
    mask_spec: Annotated[str, typer.Option(
        "--mask-spec", metavar="KIND:ACCEL[:CENTER]", help="Sampling drawn per slice (paper: "
        "4-fold Cartesian, 8% ACS).")] = "random-exact:4:0.08",
    grid: Annotated[str, typer.Option(
        "--grid", metavar="L1,L2,...", help="Lambda values searched per slice.")]
    = "0.05,0.1,0.2,0.5,1,2,5,10,20",
    mu: Annotated[float, typer.Option("--mu", help="Map smoothness (paper: 10).")] = 10.0,
    iters: Annotated[int, typer.Option("--iters", help="iPALM iterations per solve.")] = 50,
    central_slices: Annotated[Optional[int], typer.Option(
        "--central-slices", help="Use the N central slices of each file (paper: 11); default "
        "all.", show_default=False)] = None,
    equaliser: Annotated[bool, typer.Option(
        "--equaliser/--no-equaliser", help="Also fit the cubic-spline intensity equaliser "
        "(Zach, Knoll, Pock 2023, 2.6) on the reconstructions at the best lambda.")] = True,
):
    """Calibrate a learned prior for `mrgen ipalm --lam auto` (and `--equalise`), as papers
    000/001, Section 2.6: for each validation slice, undersample with --mask-spec (seeded per
    slice from --seed), reconstruct with iPALM for every lambda of --grid, keep the lambda
    closest to the reference (squared error) and the initial data residual r0, and fit
    lambda = max(slope r0 + intercept, 0.01). For Cartesian masks r0 is zero up to rounding,
    so the fit then is the mean best lambda. The equaliser maps reconstructed to reference
    intensities by a cubic spline with 5 equally spaced knots. The input model is not changed;
    OUT.pt is a copy with the fit stored in it."""
    import sys

    import numpy as np
    import torch
    from tqdm import tqdm

    from mrgen.tuning import fit_equaliser, fit_lambda, grid_search_lambda
    from mrgen.errors import UsageError
    from mrgen.ipalm import IpalmOptions, initial_residual, initialise
    from mrgen.masks import make_mask, parse_mask_spec
    from mrgen.priors.loading import build_regulariser
    from mrgen.model_files import store_fitted_entries

    _check_arguments(files, grid)
    model, validation, output = files[0], files[1:-1], files[-1]
    if any(output == f for f in files[:-1]):
        raise UsageError(f"{output}: output would overwrite an input")
    lambdas = _grid(grid)
    spec = parse_mask_spec(mask_spec)
    dev = device()
    regulariser, prior = build_regulariser(model, "learned", 1e-3, dev)
    options = IpalmOptions(mu=mu, iters=iters, scale_crop=prior.crop)

    kspace, reference = _validation_slices(validation, central_slices)
    generator = np.random.default_rng(settings.seed)
    masks = np.stack([make_mask(spec, kspace.shape[-2:], seed=generator, tolerance=None)
                      for _ in range(kspace.shape[0])])
    k_t, m_t = torch.from_numpy(kspace).to(dev), torch.from_numpy(masks).to(dev)
    ref_t = torch.from_numpy(reference).to(dev)
    info(f"calibrate: {kspace.shape[0]} validation slice(s), {len(lambdas)} lambdas, "
         f"{iters} iterations each, mask {mask_spec}")
    with tqdm(total=len(lambdas), desc="lambda grid", file=sys.stderr,
              disable=not show_progress()) as bar:
        best, _, chosen = grid_search_lambda(k_t, m_t, ref_t, regulariser, lambdas, options,
                                             progress=bar.update)
    r0 = initial_residual(k_t, m_t, prior.crop).cpu().numpy()
    scale = initialise(k_t, m_t, prior.crop)[2]
    energy = ((k_t * m_t[:, None]).abs() ** 2).flatten(1).sum(1) / scale ** 2
    entries = {"lambda_fit": fit_lambda(r0, best, energy.cpu().numpy()),
               "calibration": {"files": list(validation), "mask_spec": mask_spec,
                               "grid": lambdas, "mu": mu, "iters": iters,
                               "best_lambdas": best.tolist(), "seed": settings.seed}}
    info(f"calibrate: best lambdas {np.round(best, 4).tolist()} -> fit "
         f"{entries['lambda_fit']['slope']:.4g} r0 + {entries['lambda_fit']['intercept']:.4g}")
    if equaliser:
        # The same normalisation ipalm applies: the max of the zero-filled RSS (prior's crop).
        view = scale.view(-1, 1, 1)
        entries["equaliser"] = fit_equaliser((chosen / view).cpu().numpy(),
                                             (ref_t / view).cpu().numpy())
    store_fitted_entries(_model_path(model), entries, target=output)


def _model_path(model):
    from mrgen.model_files import resolve_model

    return resolve_model(model)


def _validation_slices(paths, central):
    """Fully sampled k-space (S, C, H, W) and references (S, h, w) from validation files."""
    import numpy as np

    from mrgen import io
    from mrgen.errors import DataError
    from mrgen.training.data import central_range

    kspaces, references = [], []
    for path in paths:
        count = io.read_shape(path, io.roles.KSPACE)
        slices = None
        if len(count) == 4:
            start, stop = central_range(count[0], central)
            slices = slice(start, stop)
        k = io.read_array(path, io.roles.KSPACE, slices)
        try:
            ref = io.read_array(f"{path}:reconstruction_rss" if path.endswith(".h5") else path,
                                io.roles.REFERENCE, slices)
        except DataError:
            ref = None
        k = k if k.ndim == 4 else k[None]
        if ref is None:
            from mrgen.coils import rss
            from mrgen.fft import ifft2c
            import torch

            ref = rss(ifft2c(torch.from_numpy(k))).numpy()
        kspaces.append(k)
        references.append(ref if ref.ndim == 3 else ref[None])
    try:
        return np.concatenate(kspaces), np.concatenate(references)
    except ValueError:
        raise DataError("validation files differ in shape; calibrate on files of one size") \
            from None


def _check_arguments(files, grid) -> None:
    """The checks that need no file: the argument count and the grid."""
    from mrgen.errors import UsageError

    if len(files) < 3:
        raise UsageError("expected MODEL.pt VALIDATION... OUT.pt")
    if not files[-1].endswith(".pt"):
        raise UsageError(f"{files[-1]}: the output model file must end in .pt")
    _grid(grid)


def _grid(text) -> list:
    import math

    from mrgen.errors import UsageError

    try:
        lambdas = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--grid {text}: expected comma-separated numbers") from None
    if not lambdas or not all(math.isfinite(v) and v > 0 for v in lambdas):
        raise UsageError(f"--grid {text}: needs finite positive values")
    return lambdas
