"""mrgen train calibrate: fit iPALM's lambda and the intensity equaliser of a learned prior."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, settings
from .options import AT_LEAST_0, AT_LEAST_1, POSITIVE
from .train import train_app

SUMMARY = "Fit the lambda regression and intensity equaliser of a prior on validation data."


@command("calibrate", SUMMARY, group=train_app, models=("files[0]",),
         inputs=("files[1:-1]",), files_out=("files[-1]",),
         ranges={"mu": POSITIVE, "iters": AT_LEAST_1, "central_slices": AT_LEAST_0},
         precheck=lambda a: _check_arguments(a["files"], a["grid"], a["sigmas"]))
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
    mu: Annotated[Optional[float], typer.Option(
        "--mu", help="Map smoothness; default: what `mrgen ipalm` uses with this prior, a "
        "ratio to each lambda of the grid (18 x lambda for the paper's network, 30 x for a "
        "whole-image one).",
        show_default=False)] = None,
    iters: Annotated[int, typer.Option("--iters", help="iPALM iterations per solve.")] = 50,
    central_slices: Annotated[Optional[int], typer.Option(
        "--central-slices", help="Use the N central slices of each file (paper: 11); default "
        "all.", show_default=False)] = None,
    sigmas: Annotated[str, typer.Option(
        "--sigmas", metavar="S1,S2,...", help="A prior with a noise level (--head local): "
        "the levels searched, each with the lambdas of --grid divided by sigma^2; the best is "
        "stored in OUT.pt. Other priors ignore it.")] = "0.01,0.02,0.04,0.08",
    equaliser: Annotated[bool, typer.Option(
        "--equaliser/--no-equaliser", help="Also fit the cubic-spline intensity equaliser "
        "(Zach, Knoll, Pock 2023, 2.6) on the reconstructions at the best lambda.")] = True,
    fit_noise: Annotated[bool, typer.Option(
        "--fit-noise-lambda", help="A local prior: also fit c of ipalm's default lambda = c / "
        "s^2 (s the data's noise over iPALM's scale; each slice's best lambda refined between "
        "grid points), to be calibrated across noise levels (validation files built with "
        "several `mrgen dataset --snr`). Without it the default stays the posterior's c = 2, "
        "which was as good as any on the shipped prior's validation slices "
        "(benchmarks/bench_noise_lambda.py).")] = False,
):
    """Calibrate a learned prior for `mrgen ipalm --lam auto` (and `--equalise`), as Zach,
    Knoll, Pock 2023, Section 2.6: for each validation slice, undersample with --mask-spec (seeded per
    slice from --seed), reconstruct with iPALM for every lambda of --grid, keep the lambda
    closest to the reference (squared error) and the initial data residual r0, and fit
    lambda = max(slope r0 + intercept, 0.01). For Cartesian masks r0 is zero up to rounding,
    so the fit then is the mean best lambda. The equaliser maps reconstructed to reference
    intensities by a cubic spline with 5 equally spaced knots. The input model is not changed;
    OUT.pt is a copy with the fit stored in it."""
    from mrgen.apps.train_calibrate import CalibrationOptions, calibrate_app
    from mrgen.errors import UsageError
    from mrgen.model_files import resolve_model, store_fitted_entries

    _check_arguments(files, grid, sigmas)
    model, validation, output = files[0], files[1:-1], files[-1]
    if any(output == f for f in files[:-1]):
        raise UsageError(f"{output}: output would overwrite an input")
    options = CalibrationOptions(mask_spec=mask_spec, lambdas=_grid(grid), mu=mu, iters=iters,
                                 central_slices=central_slices, equaliser=equaliser,
                                 seed=settings.seed, sigmas=_grid(sigmas, "--sigmas"),
                                 fit_noise=fit_noise)
    entries = calibrate_app(model, validation, options, device(), log=info,
                            progress=not settings.quiet)
    store_fitted_entries(resolve_model(model), entries, target=output)


def _check_arguments(files, grid, sigmas) -> None:
    """The checks that need no file: the argument count and the grid."""
    from mrgen.errors import UsageError

    if len(files) < 3:
        raise UsageError("expected MODEL.pt VALIDATION... OUT.pt")
    if not files[-1].endswith(".pt"):
        raise UsageError(f"{files[-1]}: the output model file must end in .pt")
    _grid(grid)
    _grid(sigmas, "--sigmas")


def _grid(text, option="--grid") -> list:
    import math

    from mrgen.errors import UsageError

    try:
        lambdas = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} {text}: expected comma-separated numbers") from None
    if not lambdas or not all(math.isfinite(v) and v > 0 for v in lambdas):
        raise UsageError(f"{option} {text}: needs finite positive values")
    return lambdas
