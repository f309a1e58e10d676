"""mrgen espirit: ESPIRiT coil sensitivity maps (as BART ecalib)."""

import sys
from typing import Annotated, Optional

import typer

from .cli import check_output, command, info, load, save, show_progress
from .options import UNIT, Range, SliceOption

SUMMARY = "ESPIRiT coil sensitivity maps from the fully sampled k-space centre (BART ecalib)."


@command("espirit", SUMMARY, inputs=("kspace", "mask"), outputs=("output", "eigenvalues"),
         ranges={"threshold": UNIT, "crop": UNIT, "sets": Range(1, 2)},
         choices={"phase_ref": ("virtual", "first")})
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
):
    """ESPIRiT (Uecker et al. 2014): the calibration matrix of the fully sampled k-space centre
    gives a per-pixel operator whose eigenvectors with eigenvalue ~1 are the coil sensitivities.
    Defaults follow BART ecalib (kernel 6, threshold 0.001, crop 0.8, calibration up to 24x24)
    with one set of maps (ecalib -m1). The maps agree with BART's to a per-pixel phase."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from mrgen import espirit as esp
    from mrgen import io
    from mrgen.errors import UsageError
    from mrgen.io.layout import COIL, MAPS, PHS1, READ, SLICE

    from .cli import device

    if eigenvalues is not None and eigenvalues == output:
        raise UsageError(f"--eigenvalues {eigenvalues}: same file as the maps output")
    check_output(output, [kspace, mask])
    if eigenvalues is not None:
        check_output(eigenvalues, [kspace, mask])
    kernel_size = _size(kernel, "--kernel")
    calib_size = None if calib is None else _size(calib, "--calib")
    if phase_ref not in ("virtual", "first"):
        raise UsageError(f"--phase-ref {phase_ref}: expected virtual or first")

    slices = io.parse_slices(slice_)
    data = load(kspace, io.roles.KSPACE, slices)
    if mask is not None:
        from mrgen.shapes import fit_mask

        fitted = fit_mask(load(mask, io.roles.MASK), data.shape, mask)
        data = data * (fitted[:, None] if fitted.ndim == 3 else fitted)
    has_slices = data.ndim == 4
    volume = data if has_slices else data[None]
    dev = device()
    ksp = torch.from_numpy(volume)
    size = esp.calibration_size(ksp, calib_size, kernel_size)
    if calib_size is None:
        info(f"calibration region: {size[0]}x{size[1]} (the fully sampled centre, at most "
             f"{esp.DEFAULT_MAX_CALIB}x{esp.DEFAULT_MAX_CALIB}; --calib to change)")
    else:
        missing = esp.unsampled_count(ksp, size)
        info(f"calibration region: {size[0]}x{size[1]} (--calib)")
        if missing:
            info(f"warning: --calib {size[0]}x{size[1]}: {missing} points of the region are "
                 "not sampled (zero); the maps may be poor")

    count, coils, height, width = volume.shape
    maps_out = np.zeros((count, sets, coils, height, width), np.complex64)
    values_out = np.zeros((count, sets, height, width), np.float32)
    kernels = []
    chunk = 1 if dev.type == "cpu" else 8
    options = dict(calib=size, kernel=kernel_size, threshold=threshold, crop=crop,
                   soft_crop=soft_crop, sets=sets, phase_ref=phase_ref,
                   factor=1 if exact else None)
    with tqdm(total=count, desc="espirit", unit="slice", file=sys.stderr,
              disable=not show_progress()) as bar:
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            result = esp.espirit(ksp[start:stop].to(dev), **options)
            maps_out[start:stop] = result.maps.cpu().numpy()
            values_out[start:stop] = result.eigenvalues.cpu().numpy()
            kernels += result.kernels.cpu().tolist()
            bar.update(stop - start)
    total = coils * kernel_size[0] * kernel_size[1]
    low, high = min(kernels), max(kernels)
    kept = f"{low}" if low == high else f"{low}-{high}"
    info(f"kernels kept: {kept} of {total} (--threshold {threshold:g})")

    lead_layout = (SLICE,) if has_slices else ()
    if sets == 1:
        maps_out, values_out = maps_out[:, 0], values_out[:, 0]
        maps_layout, values_layout = lead_layout + (COIL, READ, PHS1), lead_layout + (READ, PHS1)
    else:
        maps_layout = lead_layout + (MAPS, COIL, READ, PHS1)
        values_layout = lead_layout + (MAPS, READ, PHS1)
    if not has_slices:
        maps_out, values_out = maps_out[0], values_out[0]
    save(output, maps_out, io.roles.MAPS, inputs=[kspace, mask], layout=maps_layout)
    if eigenvalues is not None:
        save(eigenvalues, values_out, io.roles.EIGENVALUES, inputs=[kspace, mask],
             layout=values_layout)


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
