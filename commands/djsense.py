"""mrgen djsense: Deep J-Sense / MoDL inference, or plain L2 J-Sense (Arvinte et al. 2021)."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import check_output, command, info, load, save, show_progress
from .options import AT_LEAST_0, AT_LEAST_1, SliceOption

DEFAULT_MODEL = "djsense-brain-small"  # the shipped demo model, found by name

SUMMARY = "Deep J-Sense: joint image and coil-map reconstruction (trained model or L2 J-Sense)."


@command("djsense", SUMMARY, inputs=("kspace", "mask"), models=("model",),
         outputs=("output", "maps_out", "image_out"),
         ranges={"unrolls": AT_LEAST_1, "map_cg": AT_LEAST_1, "image_cg": AT_LEAST_1,
                 "map_kernel": AT_LEAST_1, "lam": AT_LEAST_0}, choices={"mode": ("l2",)})
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
    import numpy as np
    import torch
    from tqdm import tqdm

    from mrgen import io, shapes
    from mrgen.djsense.model import DJSense, DJSenseConfig
    from mrgen.djsense.training import load_djsense, reconstruct
    from mrgen.errors import DataError, UsageError
    from mrgen.sense import sampling_mask

    from .cli import device, settings

    if model is not None and mode is not None:
        raise UsageError("give one of --model FILE.pt and --mode l2, not both")
    if model is None and mode is None:
        model = DEFAULT_MODEL
    if mode is not None and mode != "l2":
        raise UsageError(f"--mode {mode}: only l2 (a trained model comes with --model)")
    if mask is not None and mask_spec is not None:
        raise UsageError("give at most one of --mask and --mask-spec")
    if unrolls is not None and unrolls < 1:
        raise UsageError(f"--unrolls {unrolls}: must be at least 1")
    inputs = [kspace, mask]
    outputs = [o for o in (output, maps_out, image_out) if o is not None]
    for out in outputs:
        check_output(out, inputs)
        if model is not None and Path(out).resolve() == Path(model).resolve():
            raise UsageError(f"{out}: the output would overwrite the model {model}")
    if len({str(Path(o).resolve()) for o in outputs}) < len(outputs):
        raise UsageError("OUT, --maps-out and --image-out must be different files")
    dev = device()
    if model is not None:
        net, _ = load_djsense(model, dev)
    else:
        config = DJSenseConfig(mode="l2", unrolls=unrolls or 6, map_cg=map_cg,
                               image_cg=image_cg, map_kernel=tuple(map_kernel), lam_map=lam,
                               lam_image=lam)
        net = DJSense(config).to(dev).eval()
    slices = io.parse_slices(slice_)
    data = load(kspace, io.roles.KSPACE, slices)
    has_slices = data.ndim == 4
    volume = data if has_slices else data[None]
    count, coils, height, width = volume.shape
    if mask is not None:
        mask_np = shapes.fit_mask(load(mask, io.roles.MASK), data.shape, mask)
        mask_np = np.broadcast_to(mask_np, (count, height, width)) if mask_np.ndim == 2 \
            else mask_np
    elif mask_spec is not None:
        from mrgen.masks import sample_mask

        drawn, mask_info = sample_mask(mask_spec, (height, width), seed=settings.seed,
                                       tolerance=None)
        info(mask_info.summary())
        mask_np = np.broadcast_to(drawn, (count, height, width))
    else:
        mask_np = None
    rss_out = np.zeros((count, height, width), np.float32)
    image_all = np.zeros((count, height, width), np.complex64) if image_out else None
    maps_all = np.zeros((count, coils, height, width), np.complex64) if maps_out else None
    with tqdm(total=count, desc="djsense", unit="slice", file=sys.stderr,
              disable=not show_progress()) as bar:
        for i in range(count):
            k = torch.from_numpy(np.array(volume[i:i + 1])).to(dev)
            m = (sampling_mask(k) if mask_np is None
                 else torch.from_numpy(np.array(mask_np[i:i + 1], np.float32)).to(dev))
            if not bool((m > 0).any()):
                raise DataError(f"{kspace}: slice {i} has no sampled k-space")
            result = reconstruct(net, k, m, unrolls=unrolls)
            rss_out[i] = result["rss"][0].cpu().numpy()
            if image_all is not None:
                image_all[i] = result["image"][0].cpu().numpy()
            if maps_all is not None:
                maps_all[i] = result["maps"][0].cpu().numpy()
            bar.update(1)
    squeeze = (lambda a: a) if has_slices else (lambda a: a[0])
    what = "MoDL" if net.config.mode == "modl" else \
        ("L2 J-Sense" if net.config.mode == "l2" else "Deep J-Sense")
    info(f"{what}{f' ({model})' if model is not None else ''}: {count} slice(s), "
         f"{unrolls or net.config.unrolls} unrolls")
    save(output, squeeze(rss_out), io.roles.REFERENCE, inputs=inputs)
    if image_all is not None:
        save(image_out, squeeze(image_all), io.roles.IMAGE, inputs=inputs)
    if maps_all is not None:
        save(maps_out, squeeze(maps_all), io.roles.MAPS, inputs=inputs)
