"""mrgen zf: zero-filled reconstruction."""

from typing import Annotated, Optional

import typer

from .cli import command, device, save
from .options import AT_LEAST_1, CropOption, GridOption, SliceOption, TrajOption

SUMMARY = "Zero-filled reconstruction: RSS (or map-combined) inverse FFT of k-space."


@command("zf", SUMMARY, inputs=("kspace", "mask", "maps", "traj"), outputs=("output",),
         ranges={"crop": AT_LEAST_1, "grid": AT_LEAST_1})
def zf(
    kspace: Annotated[str, typer.Argument(help="Multi-coil k-space (coils, H, W) or "
                                          "(slices, coils, H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(help="Output image (H, W) or (slices, H, W).",
                                          show_default=False)],
    mask: Annotated[Optional[str], typer.Option(
        help="Sampling mask to apply (1 = sampled). Without it, the non-zero pattern of the "
        "data is the sampling.")] = None,
    maps: Annotated[Optional[str], typer.Option(
        help="Sensitivity maps (coils, H, W): combine coils with them instead of RSS.")] = None,
    crop: CropOption = None,
    complex_output: Annotated[bool, typer.Option(
        "--complex", help="Keep the complex image (needs --maps; RSS has no phase).")] = False,
    slice_: SliceOption = None,
    traj: TrajOption = None,
    grid: GridOption = None,
):
    """Zero-filled reconstruction: the inverse centred FFT of the (masked) k-space, combined
    over coils by root-sum-of-squares or, with --maps, by the maps. Magnitude by default.
    With --traj: gridding, the adjoint NUFFT of the samples weighted by Pipe-Menon density
    compensation."""
    from mrgen import io
    from mrgen.acquisition import read_acquisition
    from mrgen.apps.zf import zero_filled_app

    acq = read_acquisition(kspace, mask, maps, io.parse_slices(slice_),
                           trajectory=traj, grid=grid)
    acq = acq.to(device(nufft=traj is not None))
    image = zero_filled_app(acq, crop, magnitude=not complex_output)
    save(output, acq.squeeze(image), io.roles.IMAGE, inputs=[kspace, mask, maps, traj])

