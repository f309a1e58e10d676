"""mrgen djsense: Deep J-Sense / MoDL inference, or plain L2 J-Sense (Arvinte et al. 2021)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save
from .options import AT_LEAST_0, AT_LEAST_1, SliceOption

DEFAULT_MODEL = "djsense-brain-small"  # the shipped demo model, found by name

SUMMARY = "Deep J-Sense: joint image and coil-map reconstruction (trained model or L2 J-Sense)."


@command("djsense", SUMMARY, inputs=("kspace", "mask"), models=("model",),
         outputs=("output", "maps_out", "image_out"), not_images=("maps_out",),
         ranges={"unrolls": AT_LEAST_1, "map_cg": AT_LEAST_1, "image_cg": AT_LEAST_1,
                 "map_kernel": AT_LEAST_1, "lam": AT_LEAST_0}, choices={"mode": ("l2",)},
         precheck=lambda args: _precheck(args))
def djsense(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled multi-coil k-space (coils, H, W) or (slices, "
        "coils, H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="The RSS image (H, W) or (slices, H, W), in the data's units.",
        show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", metavar="FILE.pt|NAME", help="A model of mrgen train djsense (Deep J-Sense "
        "or MoDL), or a shipped one by name. Default (without --mode): the demo model "
        "djsense-brain-small.", show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", metavar="l2", help="l2: plain J-Sense with L2 regularisation, no networks "
        "(instead of --model).", show_default=False)] = None,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask (1 = sampled). Default: the non-zero "
        "pattern of the k-space.", show_default=False)] = None,
    mask_spec: Annotated[Optional[str], typer.Option(
        "--mask-spec", metavar="SPEC", help="Draw the mask from an mrgen mask specification "
        "(with --seed) and apply it to fully sampled k-space.", show_default=False)] = None,
    unrolls: Annotated[Optional[int], typer.Option(
        "--unrolls", metavar="N", help="Outer unrolls (default: the model's; l2: 6).",
        show_default=False)] = None,
    map_cg: Annotated[int, typer.Option("--map-cg", help="l2: CG steps on the maps.")] = 6,
    image_cg: Annotated[int, typer.Option("--image-cg", help="l2: CG steps on the image.")] = 6,
    map_kernel: Annotated[tuple[int, int], typer.Option(
        "--map-kernel", metavar="KH KW", help="l2: map kernel size (odd).")] = (15, 9),
    lam: Annotated[float, typer.Option(
        "--lam", help="l2: the L2 weights lambda_s = lambda_m.")] = 0.01,
    maps_out: Annotated[Optional[str], typer.Option(
        "--maps-out", metavar="FILE", help="Also write the estimated maps (image space; "
        "ESPIRiT for MoDL).", show_default=False)] = None,
    image_out: Annotated[Optional[str], typer.Option(
        "--image-out", metavar="FILE", help="Also write the complex image.",
        show_default=False)] = None,
    slice_: SliceOption = None,
):
    """Reconstruct with Deep J-Sense (Arvinte et al. 2021): alternating CG on the map kernels and the
    image kernel, each followed by its learned denoiser, for N unrolls; the output is the
    RSS of the coil images (Eq. 7). With a MoDL model the maps are ESPIRiT's, fixed. --mode
    l2 runs plain J-Sense (no networks, L2 regularisation) and needs no model. Without --model
    and --mode the shipped demo model djsense-brain-small is used (trained on 64 x 64 8-coil
    brain slices at 4x).

    The k-space is divided by max |ACS| as in training and the output scaled back. Masks of
    other accelerations and ACS sizes than the training ones are fine. Each slice is
    reconstructed on its own.
    """
    import torch

    from mrgen import io
    from mrgen.acquisition import read_acquisition
    from mrgen.apps.djsense import L2JSense, djsense_app, djsense_network

    from .cli import settings

    inputs = [kspace, mask]
    model = DEFAULT_MODEL if model is None and mode is None else model
    dev = device()
    network = djsense_network(model, L2JSense(unrolls or 6, map_cg, image_cg, map_kernel, lam),
                              dev)
    acq = read_acquisition(kspace, mask, None, io.parse_slices(slice_))
    if mask_spec is not None:
        from mrgen.masks import sample_mask

        drawn, mask_info = sample_mask(mask_spec, acq.image_shape, seed=settings.seed,
                                       tolerance=None)
        info(mask_info.summary())
        acq = acq.with_mask(torch.from_numpy(drawn))
    with progress_bar(acq.slice_count, "djsense", unit="slice") as bar:
        result = djsense_app(acq, network, dev, unrolls, bar.update)
    info(f"{result.method}{f' ({model})' if model is not None else ''}: {acq.slice_count} "
         f"slice(s), {result.unrolls} unrolls")
    save(output, acq.squeeze(result.rss), io.roles.REFERENCE, inputs=inputs)
    if image_out is not None:
        save(image_out, acq.squeeze(result.image), io.roles.IMAGE, inputs=inputs)
    if maps_out is not None:
        save(maps_out, acq.squeeze(result.maps), io.roles.MAPS, inputs=inputs)


def _precheck(args):
    """Options that exclude each other, and outputs that would replace the model."""
    from mrgen.errors import UsageError

    model, mode = args["model"], args["mode"]
    if model is not None and mode is not None:
        raise UsageError("give one of --model FILE.pt and --mode l2, not both")
    if mode is not None and mode != "l2":
        raise UsageError(f"--mode {mode}: only l2 (a trained model comes with --model)")
    if args["mask"] is not None and args["mask_spec"] is not None:
        raise UsageError("give at most one of --mask and --mask-spec")
    outputs = [o for o in (args["output"], args["maps_out"], args["image_out"]) if o]
    for out in outputs:
        if model is not None and Path(out).resolve() == Path(model).resolve():
            raise UsageError(f"{out}: the output would overwrite the model {model}")
    if len({str(Path(o).resolve()) for o in outputs}) < len(outputs):
        raise UsageError("OUT, --maps-out and --image-out must be different files")
