"""mrgen zf: zero-filled reconstruction."""

from typing import Annotated, Optional

import typer

from .cli import check_output, command, load, save
from .options import AT_LEAST_1, CropOption, SliceOption

SUMMARY = "Zero-filled reconstruction: RSS (or map-combined) inverse FFT of k-space."


@command("zf", SUMMARY, inputs=("kspace", "mask", "maps"), outputs=("output",),
         ranges={"crop": AT_LEAST_1})
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
):
    """Zero-filled reconstruction: the inverse centred FFT of the (masked) k-space, combined
    over coils by root-sum-of-squares or, with --maps, by the maps. Magnitude by default."""
    import torch

    from mrgen import io, shapes
    from mrgen.errors import UsageError
    from mrgen.zerofill import zero_filled

    from .cli import device

    if complex_output and maps is None:
        raise UsageError("--complex: needs --maps (an RSS image has no phase)")
    check_output(output, [kspace, mask, maps])
    slices = io.parse_slices(slice_)
    data = load(kspace, io.roles.KSPACE, slices)
    dev = device()
    mask_t = maps_t = None
    if mask is not None:
        mask_t = torch.from_numpy(shapes.fit_mask(load(mask, io.roles.MASK), data.shape,
                                                  mask)).to(dev)
    if maps is not None:
        maps_t = torch.from_numpy(shapes.fit_maps(load(maps, io.roles.MAPS, slices), data.shape,
                                                  maps)).to(dev)
    image = zero_filled(torch.from_numpy(data).to(dev), mask_t, maps_t,
                        crop=_crop(crop, data.shape), magnitude=not complex_output)
    save(output, image, io.roles.IMAGE, inputs=[kspace, mask, maps])


def _crop(crop, shape):
    from mrgen.errors import UsageError

    if crop is None:
        return None
    if crop[0] > shape[-2] or crop[1] > shape[-1]:
        raise UsageError(f"--crop {crop[0]} {crop[1]}: larger than the image "
                         f"{shape[-2]}x{shape[-1]}")
    return tuple(crop)
