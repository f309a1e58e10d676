"""mrgen mask: sampling patterns on the Cartesian grid."""

from typing import Annotated, Optional

import typer

from .cli import check_output, command, info, save, settings
from .options import AT_LEAST_1, FRACTION, Range

SUMMARY = "Sampling masks: fastMRI-style 1D lines, Poisson-disc, Gaussian, radial, spiral."


@command("mask", SUMMARY, inputs=("like",), outputs=("output",),
         ranges={"accel": Range(1, low_open=True), "center": FRACTION, "spokes": AT_LEAST_1,
                 "arms": AT_LEAST_1, "shape": AT_LEAST_1}, one_of=[("like", "shape")])
def mask(
    output: Annotated[str, typer.Argument(
        metavar="OUTPUT", help="Output mask (H, W) float32, 1 = sampled.", show_default=False)],
    like: Annotated[Optional[str], typer.Option(
        "--like", metavar="KSPACE", help="Take H W from the last two axes of this k-space.",
        show_default=False)] = None,
    shape: Annotated[Optional[tuple[int, int]], typer.Option(
        "--shape", metavar="H W", help="Mask size, instead of --like.",
        show_default=False)] = None,
    kind: Annotated[str, typer.Option(
        "--kind", help="random | random-exact | equispaced | equispaced-fraction | poisson | "
        "sigpy-poisson | gaussian | uniform | radial | spiral.")] = "random",
    accel: Annotated[Optional[float], typer.Option(
        "--accel", metavar="R", help="Acceleration H*W / sampled entries (needed except for "
        "radial with --spokes).", show_default=False)] = None,
    center: Annotated[Optional[float], typer.Option(
        "--center", metavar="FRACTION", help="Fully sampled centre as a fraction of the lines "
        "(1D) or of each dimension (2D). Default 0.32/R (0.08 at 4x); 0 for radial and "
        "spiral; uniform has none.", show_default=False)] = None,
    spokes: Annotated[Optional[int], typer.Option(
        "--spokes", metavar="N", help="radial: number of spokes (default: as many as reach "
        "--accel).", show_default=False)] = None,
    arms: Annotated[int, typer.Option(
        "--arms", metavar="N", help="spiral: number of interleaved arms.")] = 1,
    swap: Annotated[bool, typer.Option(
        "--swap", help="Undersample along H (rows) instead of W: draw on the transposed grid.",
        show_default=False)] = False,
):
    """Write a sampling mask (H, W), float32, 1 = sampled. The size comes from --like
    KSPACE (its last two axes) or --shape H W; random choices from --seed (same seed, same
    mask). The report on stderr gives the achieved acceleration H*W / sampled entries, the
    centre and the request; an acceleration that cannot be met within 2% is an error and
    nothing is written.

    1D kinds sample whole lines along W (phase encoding; --swap: along H).
    Their centre is n_low = round(W * FRACTION) lines from (W - n_low + 1) // 2,
    as in fastMRI.

    random: fastMRI RandomMaskFunc. Each other line is drawn with probability
    (W/R - n_low) / (W - n_low): R is the expected acceleration, the achieved
    one varies.

    random-exact: the centre plus exactly round(W/R) - n_low other lines at random.

    equispaced: lines at one exact integer spacing from a random offset (truly
    equispaced), the spacing whose net acceleration is closest to R. With a fixed
    centre, integer spacings often miss R by more than 2%; the error then names
    a --center that fits.

    equispaced-fraction: fastMRI EquispacedMaskFractionFunc. Fractional spacing
    R (n_low - W) / (n_low R - W), offset random in [0, round(spacing)), lines at
    np.around(np.arange(offset, W - 1, spacing)).

    2D kinds pick single grid points. FRACTION is the fully sampled centre's share
    of each dimension: a rectangle for poisson, sigpy-poisson and gaussian, an
    ellipse for radial and spiral.

    poisson: variable-density Poisson-disc after sigpy.mri.poisson: disc radius
    1 + slope * r pixels beyond the centre, corners outside the inscribed ellipse
    left out; drawn by random sequential dart throwing on the grid, the slope
    searched to reach R.

    sigpy-poisson: sigpy.mri.poisson's code (dart throwing, Bridson 2007): the mask
    sigpy gives; the centre rectangle is its calib, its seed drawn from --seed (the
    report names it). Seconds per mask, where poisson takes a tenth of a second.

    gaussian: the centre plus points drawn without replacement with a 2D Gaussian
    density (sigma: half the half-width); exactly round(H*W/R) points in all.

    uniform: exactly round(H*W/R) points uniformly at random; no dense centre.

    radial: pseudo-radial. --spokes N straight lines through the centre at uniform
    angles pi*n/N plus a random rotation, rasterised to the nearest grid points up
    to the grid's edge; without --spokes, the N that comes closest to R.

    spiral: --arms Archimedean spiral interleaves from the centre out to the
    inscribed ellipse, rasterised; the number of turns is bisected to reach R.
    """
    from mrgen import io
    from mrgen.errors import UsageError
    from mrgen.masks import MaskSpec, sample_mask

    if (like is None) == (shape is None):
        raise UsageError("give exactly one of --like KSPACE and --shape H W")
    check_output(output, [like])
    spec = MaskSpec(kind=kind, accel=accel, center=center, spokes=spokes, arms=arms, swap=swap)
    spec.validate()
    if shape is not None:
        if shape[0] < 1 or shape[1] < 1:
            raise UsageError(f"--shape {shape[0]} {shape[1]}: sizes must be positive")
        size = tuple(shape)
    else:
        size = tuple(io.read_shape(like, io.roles.KSPACE)[-2:])
    result, report = sample_mask(spec, size, seed=settings.seed)
    if report.sampled == 0:
        raise UsageError(f"--accel {accel:g}: the drawn mask samples nothing; lower --accel or "
                         "give a --center")
    info(f"mask: {report.summary()}")
    save(output, result, io.roles.MASK, inputs=[like])
