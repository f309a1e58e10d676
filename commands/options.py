"""Options that several subcommands share, defined once so they read the same everywhere."""

from typing import Annotated, Optional

import typer

SliceOption = Annotated[Optional[str], typer.Option(
    "--slice", help="Slices to process from a (slices, ...) input: I (one slice) or A:B "
    "(a range). Default: all.")]

CropOption = Annotated[Optional[tuple[int, int]], typer.Option(
    "--crop", help="Centre-crop the output image to H W (e.g. 320 320 as fastMRI).",
    show_default=False)]


# The training commands' checkpoint options (train prior, djsense, deepen).
CheckpointOption = Annotated[Optional[str], typer.Option(
    "--checkpoint", metavar="FILE", help="Training checkpoint (default: OUT with the suffix "
    ".ckpt).", show_default=False, rich_help_panel="Checkpoints")]
CheckpointEveryOption = Annotated[int, typer.Option(
    "--checkpoint-every", metavar="STEPS", help="Write the checkpoint every STEPS updates (and "
    "at the end; 0: only at the end).", rich_help_panel="Checkpoints")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue from the checkpoint exactly where it stopped (a larger --steps "
    "extends a finished run).", rich_help_panel="Checkpoints")]
SamplesPngOption = Annotated[Optional[str], typer.Option(
    "--samples-png", metavar="FILE", help="Write a grid of the current samples (magnitude, "
    "window 0..1) as a PNG every --png-every updates.", show_default=False,
    rich_help_panel="Checkpoints")]
PngEveryOption = Annotated[int, typer.Option(
    "--png-every", metavar="STEPS", help="Period of --samples-png.",
    rich_help_panel="Checkpoints")]
