"""mrgen sense: CG-SENSE with l2 (Tikhonov) regularisation (as BART pics -l2)."""

import sys
from typing import Annotated, Optional

import typer

from .cli import check_output, command, info, load, save, show_progress
from .options import AT_LEAST_0, AT_LEAST_1, CropOption, SliceOption

SUMMARY = "CG-SENSE: l2-regularised parallel-imaging reconstruction (BART pics -l2)."


@command("sense", SUMMARY, inputs=("kspace", "maps", "mask", "init"), outputs=("output",),
         ranges={"lam": AT_LEAST_0, "iters": AT_LEAST_1, "tol": AT_LEAST_0, "crop": AT_LEAST_1})
def sense(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled multi-coil k-space (coils, H, W) or (slices, coils, "
        "H, W); unsampled points zero.", show_default=False)],
    maps: Annotated[str, typer.Argument(
        metavar="MAPS", help="Sensitivity maps (coils, H, W), per slice (slices, coils, H, W); "
        "of a (sets, ...) stack the first set is used.", show_default=False)],
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
):
    """CG-SENSE: solve (A^H A + lam I) x = A^H y with A = M F S (mask, orthonormal centred
    FFT, maps) by conjugate gradient, each slice independently. The same solution as
    `bart pics -l2 -r LAM -S` on the same k-space and maps."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from mrgen import io, shapes
    from mrgen.errors import UsageError
    from mrgen.resize import center_crop
    from mrgen.sense import sense_reconstruction

    from .cli import device

    if lam < 0:
        raise UsageError(f"--lam {lam}: must be >= 0")
    if iters < 1:
        raise UsageError(f"--iters {iters}: must be at least 1")
    if tol < 0:
        raise UsageError(f"--tol {tol}: must be >= 0")
    check_output(output, [kspace, maps, mask, init])
    slices = io.parse_slices(slice_)
    data = load(kspace, io.roles.KSPACE, slices)
    maps_np = shapes.fit_maps(load(maps, io.roles.MAPS, slices), data.shape, maps)
    mask_np = None
    if mask is not None:
        mask_np = shapes.fit_mask(load(mask, io.roles.MASK), data.shape, mask)
    init_np = None
    if init is not None:
        init_np = load(init, io.roles.IMAGE, slices)
        if init_np.shape != data.shape[:-3] + data.shape[-2:]:
            from mrgen.errors import DataError

            raise DataError(f"{init}: shape {init_np.shape} does not fit the k-space of shape "
                            f"{data.shape} (needs {data.shape[:-3] + data.shape[-2:]})")
    if crop is not None and (crop[0] > data.shape[-2] or crop[1] > data.shape[-1]):
        raise UsageError(f"--crop {crop[0]} {crop[1]}: larger than the image "
                         f"{data.shape[-2]}x{data.shape[-1]}")

    has_slices = data.ndim == 4
    volume = data if has_slices else data[None]
    maps_v = maps_np if maps_np.ndim == 4 else np.broadcast_to(maps_np, volume.shape)
    mask_v = None
    if mask_np is not None:
        mask_v = mask_np if mask_np.ndim == 3 else np.broadcast_to(mask_np, (len(volume),)
                                                                    + mask_np.shape)
    init_v = None if init_np is None else (init_np if has_slices else init_np[None])
    dev = device()
    count, _, height, width = volume.shape
    out_shape = (count,) + (tuple(crop) if crop is not None else (height, width))
    result = np.zeros(out_shape, np.float32 if magnitude else np.complex64)
    chunk = 1 if dev.type == "cpu" else 8
    iterations, worst = 0, 0.0

    def tensor(array, start, stop):
        if array is None:
            return None
        return torch.from_numpy(np.array(array[start:stop])).to(dev)  # a writable copy

    with tqdm(total=count, desc="sense", unit="slice", file=sys.stderr,
              disable=not show_progress()) as bar:
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            image, cg = sense_reconstruction(
                tensor(volume, start, stop), tensor(maps_v, start, stop),
                mask=tensor(mask_v, start, stop), lam=lam, iters=iters, tol=tol,
                x0=tensor(init_v, start, stop), return_info=True)
            if crop is not None:
                image = center_crop(image, tuple(crop))
            result[start:stop] = (image.abs() if magnitude else image).cpu().numpy()
            iterations = max(iterations, cg.iterations)
            worst = max(worst, float(cg.residual.max()))
            bar.update(stop - start)
    info(f"CG: {iterations} iterations (at most), relative residual {worst:.2e} (worst slice)")
    save(output, result if has_slices else result[0], io.roles.IMAGE,
         inputs=[kspace, maps, mask, init])
