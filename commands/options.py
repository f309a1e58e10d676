"""Options that several subcommands share, defined once so they read the same everywhere."""

from typing import Annotated, Optional

import typer

SliceOption = Annotated[Optional[str], typer.Option(
    "--slice", help="Slices to process from a (slices, ...) input: I (one slice) or A:B "
    "(a range). Default: all.")]

CropOption = Annotated[Optional[tuple[int, int]], typer.Option(
    "--crop", help="Centre-crop the output image to H W (e.g. 320 320 as fastMRI).",
    show_default=False)]
