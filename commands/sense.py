"""mrgen sense: CG-SENSE with l2 (Tikhonov) regularisation (as BART pics -l2)."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save
from .options import (AT_LEAST_0, AT_LEAST_1, CropOption, GridOption, SliceOption,
                      TrajOption)

SUMMARY = "CG-SENSE: l2-regularised parallel-imaging reconstruction (BART pics -l2)."


@command("sense", SUMMARY, inputs=("kspace", "maps", "mask", "init", "traj"),
         outputs=("output",),
         ranges={"lam": AT_LEAST_0, "iters": AT_LEAST_1, "tol": AT_LEAST_0, "crop": AT_LEAST_1,
                 "grid": AT_LEAST_1})
def sense(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled multi-coil k-space (coils, H, W) or (slices, coils, "
        "H, W); unsampled points zero.", show_default=False)],
    maps: Annotated[str, typer.Argument(
        metavar="MAPS", help="Sensitivity maps (coils, H, W), per slice (slices, coils, H, W); "
        "of a (sets, ...) stack the first set is used. With --out-dir, after the k-spaces: one "
        "file for all, or a folder or glob whose file of each k-space's name is its maps.",
        show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="Complex image (H, W) or (slices, H, W).", show_default=False)],
    lam: Annotated[float, typer.Option(
        "--lam", help="Tikhonov weight: minimise ||M F S x - y||^2 + lam ||x||^2. Equals BART "
        "pics -l2 -r lam (with pics -S for the same intensity scale).")] = 0.01,
    iters: Annotated[int, typer.Option(
        "--iters", help="Most conjugate-gradient iterations.")] = 30,
    tol: Annotated[float, typer.Option(
        "--tol", help="Stop a slice once the residual of the normal equations falls below tol "
        "times ||A^H y||.")] = 1e-5,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask (1 = sampled; (W,), (H, W) or (slices, H, "
        "W)). Without it, the non-zero pattern of the k-space is the sampling.",
        show_default=False)] = None,
    init: Annotated[Optional[str], typer.Option(
        "--init", metavar="FILE", help="Warm start: an image (H, W) or (slices, H, W), e.g. an "
        "earlier reconstruction.", show_default=False)] = None,
    magnitude: Annotated[bool, typer.Option(
        "--magnitude", help="Write the magnitude (float32) instead of the complex image.")]
    = False,
    crop: CropOption = None,
    slice_: SliceOption = None,
    traj: TrajOption = None,
    grid: GridOption = None,
):
    """CG-SENSE: solve (A^H A + lam I) x = A^H y with A = M F S (mask, orthonormal centred
    FFT, maps) by conjugate gradient, each slice independently. The same solution as
    `bart pics -l2 -r LAM -S` on the same k-space and maps. With --traj, A = NUFFT S (normal
    operator by Toeplitz embedding), as `bart pics -l2 -r LAM -t TRAJ`."""
    from mrgen import io
    from mrgen.acquisition import read_acquisition, read_matching_image
    from mrgen.apps.sense import SenseOptions, sense_app

    inputs = [kspace, maps, mask, init, traj]
    slices = io.parse_slices(slice_)
    acq = read_acquisition(kspace, mask, maps, slices, trajectory=traj, grid=grid)
    start = None if init is None else read_matching_image(init, acq, slices)
    options = SenseOptions(lam, iters, tol, magnitude, crop)
    dev = device(nufft=acq.nufft is not None)   # its note before the bar
    with progress_bar(acq.slice_count, "sense", unit="slice") as bar:
        result = sense_app(acq, options, start, dev, bar.update)
    info(f"CG: {result.iterations} iterations (at most), relative residual "
         f"{result.worst_residual:.2e} (worst slice)")
    save(output, acq.squeeze(result.image), io.roles.IMAGE, inputs=inputs)
