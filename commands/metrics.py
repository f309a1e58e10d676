"""mrgen metrics: image-quality metrics of reconstructions, or the null-space residual of maps."""

import json
import math
from enum import Enum
from typing import Annotated, Optional

import typer

from .cli import command, info, load
from .options import FRACTION, SliceOption

SUMMARY = "Image-quality metrics (PSNR, NMSE, SSIM, MS-SSIM, VIF) of recons against a reference."


class Per(str, Enum):
    volume = "volume"
    slice = "slice"


class Normalization(str, Enum):
    none = "none"
    minmax = "minmax"
    meanstd = "meanstd"
    meanstd_both = "meanstd-both"


COLUMNS = {"psnr": "PSNR [dB]", "nmse": "NMSE", "ssim": "SSIM", "ms_ssim": "MS-SSIM",
           "vif": "VIF"}
FORMATS = {"psnr": "{:.2f}", "nmse": "{:.4g}", "ssim": "{:.4f}", "ms_ssim": "{:.4f}",
           "vif": "{:.4f}"}


@command("metrics", SUMMARY, inputs=("reference", "recons"), outputs=("residual_out",),
         ranges={"support_threshold": FRACTION})
def metrics(
    reference: Annotated[str, typer.Argument(
        metavar="REFERENCE", help="Reference magnitude image (H, W) or (slices, H, W); with "
        "--null-space the fully sampled k-space (coils, H, W) or (slices, coils, H, W).",
        show_default=False)],
    recons: Annotated[list[str], typer.Argument(
        metavar="RECON", help="One or more reconstructions of the reference's shape (larger "
        "ones are centre-cropped to it; complex ones compared by magnitude); with --null-space "
        "one or more sensitivity-map files.", show_default=False)],
    per: Annotated[Per, typer.Option(
        "--per", help="volume (fastMRI): maxval = the volume's maximum, PSNR and NMSE over the "
        "volume, SSIM averaged over slices. slice: each slice with its own maximum, values "
        "averaged over slices.")] = Per.volume,
    normalize: Annotated[Normalization, typer.Option(
        "--normalize", help="none; minmax: each image to [0, 1] by its own min and max; "
        "meanstd: the reference rescaled to the recon's mean and std (the 'mean-std "
        "(gt)'); meanstd-both: both to zero mean, unit std. Per volume or slice as --per.")]
        = Normalization.none,
    ms_ssim: Annotated[bool, typer.Option(
        "--ms-ssim", help="Add MS-SSIM (5 scales, fewer for small images).")] = False,
    vif: Annotated[bool, typer.Option(
        "--vif", help="Add pixel-domain VIF (images of at least 41x41).")] = False,
    all_metrics: Annotated[bool, typer.Option(
        "--all", help="All metrics: PSNR, NMSE, SSIM, MS-SSIM and VIF.")] = False,
    each_slice: Annotated[bool, typer.Option(
        "--each-slice", help="With --per slice: also a row per slice.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table: a list of {\"recon\": name, \"psnr\": "
        "..., ...} (with --per slice also \"slices\"); non-finite values are null.")] = False,
    null_space: Annotated[bool, typer.Option(
        "--null-space", help="Null-space residual mode (Zach, Knoll, Pock 2023, Eq. 17): REFERENCE is fully "
        "sampled k-space, each RECON a maps file; prints ||pi||_F / ||u||_F per maps file.")]
        = False,
    support_threshold: Annotated[Optional[float], typer.Option(
        "--support-threshold", help="With --null-space: count only pixels whose RSS exceeds "
        "this fraction of the slice's maximum (e.g. 0.05).", show_default=False)] = None,
    residual_out: Annotated[Optional[str], typer.Option(
        "--residual-out", help="With --null-space and one maps file: write the RSS residual "
        "image |pi| (zero outside the support with --support-threshold).",
        show_default=False)] = None,
    slice_: SliceOption = None,
):
    """Image-quality metrics of one or more reconstructions against a reference, one row per
    recon: PSNR, NMSE and SSIM as fastMRI computes them (maxval = the reference's maximum;
    SSIM with a 7x7 uniform window), optionally MS-SSIM and VIF (Darestani, Heckel 2021). The table goes to
    stdout (--json for machine-readable output). With --null-space, the relative null-space
    residual of sensitivity maps against fully sampled k-space instead."""
    from mrgen import io
    from mrgen.errors import UsageError

    slices = io.parse_slices(slice_)
    if null_space:
        ignored = [flag for flag, given in (
            ("--per slice", per != Per.volume), ("--normalize", normalize != Normalization.none),
            ("--ms-ssim", ms_ssim), ("--vif", vif), ("--all", all_metrics),
            ("--each-slice", each_slice)) if given]
        if ignored:
            raise UsageError(f"{ignored[0]}: not available with --null-space")
        _null_space(reference, recons, support_threshold, residual_out, as_json, slices)
        return
    for flag, given in (("--support-threshold", support_threshold is not None),
                        ("--residual-out", residual_out is not None)):
        if given:
            raise UsageError(f"{flag}: only with --null-space")
    if each_slice and per != Per.slice:
        raise UsageError("--each-slice: needs --per slice")
    chosen = ["psnr", "nmse", "ssim"]
    if ms_ssim or all_metrics:
        chosen.append("ms_ssim")
    if vif or all_metrics:
        chosen.append("vif")
    _image_metrics(reference, recons, chosen, per.value, normalize.value, each_slice, as_json,
                   slices)


def _image_metrics(reference, recons, chosen, per, normalization, each_slice, as_json, slices):
    import torch

    from mrgen import io
    from mrgen.apps.metrics import image_metrics_app

    from .cli import device

    def read(name, role):
        return torch.from_numpy(load(name, role, slices)).to(device())

    rows = image_metrics_app(read(reference, io.roles.REFERENCE),
                             ((name, read(name, io.roles.IMAGE)) for name in recons), chosen,
                             per, normalization, reference, _first_slice(slices), info)
    if as_json:
        print(json.dumps(_finite_or_null(rows), indent=2))
    else:
        _print_table(rows, chosen, per, normalization, each_slice)


def _first_slice(slices) -> int:
    """The index of the first slice --slice kept (slice numbers in the output are the file's)."""
    if isinstance(slices, int):
        return max(slices, 0)
    if isinstance(slices, slice) and slices.start is not None and slices.start > 0:
        return slices.start
    return 0


def _finite_or_null(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    return value


def _print_table(rows, chosen, per, normalization, each_slice):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    caption = f"per {per}" + ("" if normalization == "none" else f", normalize {normalization}")
    if per == "slice":
        caption += ", mean over slices"
    table = Table(caption=caption)
    table.add_column("recon", overflow="fold")
    if each_slice:
        table.add_column("slice", justify="right")
    for key in chosen:
        table.add_column(escape(COLUMNS[key]), justify="right")
    for row in rows:
        lead = [escape(row["recon"])] + (["mean"] if each_slice else [])
        table.add_row(*lead, *[_format(key, row[key]) for key in chosen])
        if each_slice:
            for entry in row["slices"]:
                table.add_row("", str(entry["slice"]), *[_format(k, entry[k]) for k in chosen])
            table.add_section()
    Console().print(table)


def _format(key, value) -> str:
    if not math.isfinite(value):
        return str(value)
    return FORMATS[key].format(value)


def _null_space(kspace, maps_files, support_threshold, residual_out, as_json, slices):
    import torch

    from mrgen import io, shapes
    from mrgen.apps.metrics import null_space_app
    from mrgen.errors import UsageError

    from .cli import check_output, device, save

    if residual_out is not None:
        if len(maps_files) != 1:
            raise UsageError(f"--residual-out: needs exactly one maps file, got "
                             f"{len(maps_files)}")
        check_output(residual_out, [kspace, *maps_files])
    data = load(kspace, io.roles.KSPACE, slices)
    maps = ((name, torch.from_numpy(shapes.fit_maps(load(name, io.roles.MAPS, slices),
                                                    data.shape, name))) for name in maps_files)
    rows, images = null_space_app(torch.from_numpy(data).to(device()), maps, support_threshold,
                                  kspace)
    if residual_out is not None:
        save(residual_out, images[0], io.roles.IMAGE, inputs=[kspace, maps_files[0]])
    if as_json:
        print(json.dumps(_finite_or_null(rows), indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(caption="null-space residual (Zach, Knoll, Pock 2023, Eq. 17)")
    table.add_column("maps", overflow="fold")
    table.add_column("||pi|| / ||u||", justify="right")
    if support_threshold is not None:
        table.add_column(f"support (RSS > {support_threshold:g} max)", justify="right")
    for row in rows:
        cells = [escape(row["maps"]), f"{row['relative_residual']:.4g}"]
        if support_threshold is not None:
            cells.append(f"{100 * row['support_fraction']:.1f}%")
        table.add_row(*cells)
    Console().print(table)
