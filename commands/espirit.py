"""mrgen espirit: ESPIRiT coil sensitivity maps (as BART ecalib)."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save
from .options import AT_LEAST_1, UNIT, GridOption, Range, SliceOption, TrajOption

SUMMARY = "ESPIRiT coil sensitivity maps from the fully sampled k-space centre (BART ecalib)."


@command("espirit", SUMMARY, inputs=("kspace", "mask", "traj"),
         outputs=("output", "eigenvalues"), not_images=("output",),
         ranges={"threshold": UNIT, "crop": UNIT, "sets": Range(1, 2),
                 "grid": AT_LEAST_1},
         choices={"phase_ref": ("virtual", "first")}, precheck=lambda args: _precheck(args))
def espirit(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Multi-coil k-space (coils, H, W) or (slices, coils, H, W) with "
        "a fully sampled centre.", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="Maps (coils, H, W), (sets, coils, H, W) with --sets 2; a leading "
        "slice axis when the k-space has one. Complex64, unit norm over coils.",
        show_default=False)],
    calib: Annotated[Optional[str], typer.Option(
        "--calib", metavar="N|HxW", help="Calibration region: the centred HxW block (N: NxN). "
        "Default: the largest centred fully-sampled block, at most 24x24 (BART's ecalib -r 24).",
        show_default=False)] = None,
    kernel: Annotated[str, typer.Option(
        "--kernel", metavar="K|KHxKW", help="Kernel size in k-space.")] = "6",
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Signal subspace: keep kernels whose squared singular value is above "
        "this fraction of the largest (BART ecalib -t; sigpy's thresh t is t^2 here).")] = 0.001,
    crop: Annotated[float, typer.Option(
        "--eigen-crop", help="Zero the maps where the eigenvalue is <= this (BART ecalib -c)."
        )] = 0.8,
    soft_crop: Annotated[bool, typer.Option(
        "--soft-crop", help="Weight the maps smoothly around --eigen-crop instead of cutting (BART "
        "ecalib -S).")] = False,
    sets: Annotated[int, typer.Option(
        "--sets", help="Sets of maps: 1, or 2 for data whose field of view is too small (BART "
        "ecalib -m).")] = 1,
    phase_ref: Annotated[str, typer.Option(
        "--phase-ref", metavar="virtual|first", help="Phase reference: the first principal "
        "component of the calibration data (a virtual body coil, as BART) or the first coil "
        "(as sigpy).")] = "virtual",
    exact: Annotated[bool, typer.Option(
        "--exact", help="Eigen-decompose at every pixel, as BART, instead of on a 4x coarser "
        "grid followed by cubic interpolation (same maps to ~1e-5; several times slower).")]
    = False,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Apply this sampling mask first (calibrate from the "
        "undersampled data, as a scan would); default: the data as they are.",
        show_default=False)] = None,
    eigenvalues: Annotated[Optional[str], typer.Option(
        "--eigenvalues", metavar="FILE", help="Also write the eigenvalue maps (H, W), or "
        "(sets, H, W), float32 (BART ecalib's third output).", show_default=False)] = None,
    slice_: SliceOption = None,
    traj: TrajOption = None,
    grid: GridOption = None,
    size: Annotated[Optional[tuple[int, int]], typer.Option(
        "--size", metavar="H W", help="Maps on an H x W image grid: KSPACE, a smaller fully "
        "sampled Cartesian calibration scan of the same field of view (e.g. 24 x 24 for a "
        "radial scan), is zero-padded to it.", show_default=False)] = None,
):
    """ESPIRiT (Uecker et al. 2014): the calibration matrix of the fully sampled k-space centre
    gives a per-pixel operator whose eigenvectors with eigenvalue ~1 are the coil sensitivities.
    Defaults follow BART ecalib (kernel 6, threshold 0.001, crop 0.8, calibration up to 24x24)
    with one set of maps (ecalib -m1). The maps agree with BART's to a per-pixel phase.
    With --traj: the calibration block is the centre of the k-space of each coil's
    least-squares image (20 CG iterations of the inverse NUFFT, as bart nufft -i). Or from a separate Cartesian
    calibration scan of the same field of view: its small fully sampled k-space with --size
    H W, the image grid of the scan to reconstruct."""
    from mrgen import io
    from mrgen.acquisition import read_acquisition
    from mrgen.apps.espirit import EspiritOptions, espirit_app

    inputs = [kspace, mask, traj]
    options = EspiritOptions(None if calib is None else _size(calib, "--calib"),
                             _size(kernel, "--kernel"), threshold, crop, soft_crop, sets,
                             phase_ref, exact, size)
    acq = read_acquisition(kspace, mask, None, io.parse_slices(slice_), trajectory=traj,
                           grid=grid)
    dev = device(nufft=acq.nufft is not None)   # its note before the bar
    with progress_bar(acq.slice_count, "espirit", unit="slice") as bar:
        result = espirit_app(acq, options, dev, bar.update)
    _report(result, options, acq.coils)
    maps_layout, values_layout = _layouts(sets, acq.has_slices)
    one_set = (lambda t: t[:, 0]) if sets == 1 else (lambda t: t)
    save(output, acq.squeeze(one_set(result.maps)), io.roles.MAPS, inputs=inputs,
         layout=maps_layout)
    if eigenvalues is not None:
        save(eigenvalues, acq.squeeze(one_set(result.eigenvalues)), io.roles.EIGENVALUES,
             inputs=inputs, layout=values_layout)


def _precheck(args):
    from mrgen.errors import UsageError

    if args["traj"] is not None and args["mask"] is not None:
        raise UsageError("--mask and --traj exclude each other: a trajectory's samples are "
                         "all sampled")
    if args["traj"] is not None and args["size"] is not None:
        raise UsageError("--size and --traj exclude each other: give the grid by --grid")
    if args["size"] is not None and min(args["size"]) < 1:
        raise UsageError(f"--size {args['size'][0]} {args['size'][1]}: must be positive")


def _report(result, options, coils):
    from mrgen.espirit import DEFAULT_MAX_CALIB

    size = result.calib
    if options.calib is None:
        info(f"calibration region: {size[0]}x{size[1]} (the fully sampled centre, at most "
             f"{DEFAULT_MAX_CALIB}x{DEFAULT_MAX_CALIB}; --calib to change)")
    else:
        info(f"calibration region: {size[0]}x{size[1]} (--calib)")
        if result.unsampled:
            info(f"warning: --calib {size[0]}x{size[1]}: {result.unsampled} points of the "
                 "region are not sampled (zero); the maps may be poor")
    total = coils * options.kernel[0] * options.kernel[1]
    low, high = min(result.kernels), max(result.kernels)
    kept = f"{low}" if low == high else f"{low}-{high}"
    info(f"kernels kept: {kept} of {total} (--threshold {options.threshold:g})")


def _layouts(sets, has_slices):
    """BART dims of the maps and eigenvalue outputs: (slice,) [maps,] (coil,) read, phase."""
    from mrgen.io.layout import COIL, MAPS, PHS1, READ, SLICE

    lead = (SLICE,) if has_slices else ()
    if sets == 1:
        return lead + (COIL, READ, PHS1), lead + (READ, PHS1)
    return lead + (MAPS, COIL, READ, PHS1), lead + (MAPS, READ, PHS1)


def _size(text: str, option: str) -> tuple:
    """'N' -> (N, N); 'HxW' (or H:W, H,W) -> (H, W); positive integers."""
    from mrgen.errors import UsageError

    parts = text.lower().replace(":", "x").replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UsageError(f"{option} {text}: expected N or HxW with positive integers")
    return tuple(values)
