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


class Range:
    """The values a numeric option accepts, declared once per command in ``@command(...,
    ranges={"lam": AT_LEAST_0})`` and checked before any work (with every float option
    checked for finiteness, NaN and Inf included).

    ``words``: text values a string option may hold instead of a number (``--lam auto``).
    """

    def __init__(self, low=None, high=None, low_open=False, high_open=False, words=()):
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open
        self.words = tuple(words)

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` (a number), or None."""
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return self.describe()
        if self.high is not None and (value > self.high or
                                      (self.high_open and value == self.high)):
            return self.describe()
        return None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return (f"must be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            if self.low_open:
                return "must be positive" if self.low == 0 else f"must be greater than {self.low:g}"
            return f"must be at least {self.low:g}"
        return f"must be {'below' if self.high_open else 'at most'} {self.high:g}"


POSITIVE = Range(0, low_open=True)        # > 0
AT_LEAST_0 = Range(0)                     # >= 0
AT_LEAST_1 = Range(1)                     # counts: iterations, steps, samples
FRACTION = Range(0, 1, high_open=True)    # [0, 1)
UNIT = Range(0, 1)                        # [0, 1]
