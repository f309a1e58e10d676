"""mrgen show: a PNG picture of an image, a coil or map stack, k-space or a mask."""

from typing import Annotated, Optional

import typer

from .cli import command, info, load
from .options import AT_LEAST_1, Range, SliceOption

SUMMARY = "Write a grayscale PNG of an array: image, coil/map montage, k-space (log) or mask."


@command("show", SUMMARY, inputs=("input_",), files_out=("output",),
         ranges={"percentile": Range(0, 100, low_open=True), "columns": AT_LEAST_1},
         choices={"part": ("magnitude", "phase", "real", "imag")})
def show(
    input_: Annotated[str, typer.Argument(
        metavar="INPUT", help="Array to show: (H, W), or a stack (..., H, W) of up to 5 axes "
        "shown as a grid of tiles.", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUTPUT.png", help="The PNG to write (8-bit grayscale); '-' for stdout.",
        show_default=False)],
    part: Annotated[str, typer.Option(
        "--part", help="magnitude | phase | real | imag.")] = "magnitude",
    window: Annotated[Optional[tuple[float, float]], typer.Option(
        "--window", metavar="LO HI", help="Absolute window: LO is black, HI white, values "
        "outside clipped (log10 units with --log, radians for the phase).",
        show_default=False)] = None,
    percentile: Annotated[Optional[float], typer.Option(
        "--percentile", metavar="P", help="Clip at the P-th percentile (default 99.5): "
        "window [0, pct] for the magnitude, [-pct, pct] of |values| for real/imag; the phase "
        "is always [-pi, pi].", show_default=False)] = None,
    log: Annotated[bool, typer.Option(
        "--log", help="Log scale for k-space: log10(|x| + 1e-6 max|x|), windowed from its "
        "minimum to its P-th percentile.")] = False,
    columns: Annotated[Optional[int], typer.Option(
        "--columns", metavar="N", help="Tiles per row of the grid (default: one image; about "
        "sqrt(N) for a stack of N; the coil axis for (slices, coils, H, W)).",
        show_default=False)] = None,
    slice_: SliceOption = None,
):
    """Write a PNG picture of an array, for a quick look without Python.

    An image (H, W) becomes one picture. A stack (N, H, W), e.g. the coil images or the
    sensitivity maps, becomes a grid of N tiles, row by row; with four or five axes, e.g.
    maps (slices, coils, H, W), each row of tiles is one entry of the leading axes and the
    columns run over the axis just before H, W. One window is used for all tiles, so they stay
    comparable. Row 0 is at the top of each tile. Complex data are shown by --part; k-space is
    best seen with --log.

    Examples: mrgen show recon.npy recon.png; mrgen show data.h5:maps maps.png --slice 0
    --part phase; mrgen show data.h5:kspace k.png --slice 0 --log.
    """
    from pathlib import Path

    from mrgen import __version__, io
    from mrgen.show import PARTS, render
    from mrgen.errors import UsageError
    from mrgen.png import write_png

    from .cli import command_line

    if part not in PARTS:
        raise UsageError(f"--part {part}: expected one of {' | '.join(PARTS)}")
    if log and part != "magnitude":
        raise UsageError(f"--log: only with --part magnitude (not {part})")
    if percentile is not None and not 0.0 < percentile <= 100.0:
        raise UsageError(f"--percentile {percentile}: expected a value in (0, 100]")
    if window is not None and not window[0] < window[1]:
        raise UsageError(f"--window {window[0]:g} {window[1]:g}: LO must be below HI")
    if columns is not None and columns < 1:
        raise UsageError(f"--columns {columns}: must be at least 1")
    _check_png_output(output, input_)
    array = load(input_, io.roles.ANY, io.parse_slices(slice_))
    picture = render(array, part, window, percentile, log, columns)
    write_png(output, picture.pixels,
              {"Software": f"mrgen {__version__}", "Comment": command_line()})
    rows, cols = picture.grid
    h, w = picture.tile
    lo, hi = picture.window
    layout = f"{rows}x{cols} tiles of {h}x{w}, " if picture.tiles > 1 else ""
    name = "stdout" if output == "-" else Path(output).name
    info(f"{name}: {picture.pixels.shape[0]}x{picture.pixels.shape[1]} pixels, {layout}"
         f"{part}{' (log10)' if log else ''} window [{lo:.4g}, {hi:.4g}]")


def _check_png_output(output: str, input_: str) -> None:
    """A .png name (or '-') in an existing folder, never the input file itself."""
    from pathlib import Path

    from mrgen import io
    from mrgen.errors import UsageError

    if output == "-":
        return
    path = Path(output)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{output}: the output of show is a PNG; name it *.png (or '-')")
    folder = path.parent
    if str(folder) and not folder.is_dir():
        raise UsageError(f"{output}: folder {folder} does not exist")
    if path.resolve() in {p.resolve() for p in io.parse_ref(input_).files}:
        raise UsageError(f"{output}: output would overwrite the input {input_}")
