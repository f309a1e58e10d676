"""Options that several subcommands share, defined once so they read the same everywhere."""

from typing import Annotated, Optional

import typer

SliceOption = Annotated[Optional[str], typer.Option(
    "--slice", help="Slices to process from a (slices, ...) input: I (one slice) or A:B "
    "(a range). Default: all.")]

CropOption = Annotated[Optional[tuple[int, int]], typer.Option(
    "--crop", help="Centre-crop the output image to H W (e.g. 320 320 as fastMRI). Default: "
    "the recon matrix of the k-space file's ISMRMRD header (fastMRI files, mrgen mrd), if "
    "smaller than the k-space.", show_default=False)]


TrajOption = Annotated[Optional[str], typer.Option(
    "--traj", metavar="FILE", help="Non-Cartesian: KSPACE holds samples (coils, shots, samples) "
    "(or BART's (1, samples, spokes, coils) .cfl) at the points of this trajectory (mrgen traj, "
    "bart traj), on the image grid of --grid, else of the maps, else N x N with N = 2 "
    "ceil(max |k|) (a trajectory file records no matrix size).",
    show_default=False)]

GridOption = Annotated[Optional[tuple[int, int]], typer.Option(
    "--grid", metavar="H W", help="With --traj: the image grid (e.g. the --size of mrgen "
    "traj). Default: the maps' H W, else square N = 2 ceil(max |k|) from the trajectory "
    "(radial and spiral reach the same |k| in every direction).", show_default=False)]

# the words of --support that are not a mask file (mrgen.apps.ipalm.SUPPORTS)
SUPPORT_WORDS = ("", "auto", "off")
SupportOption = Annotated[str, typer.Option(
    "--support", metavar="auto|off|FILE", help="Hold the image at zero off the object. auto: "
    "the object is ipalm-TV's image above 0.1 x its maximum, holes filled, grown 10 pixels, "
    "then re-estimated from TV within it until it holds still (2-5 TV runs first); "
    "FILE: a mask (H, W) or (slices, H, W), non-zero on the object; "
    "off: every pixel free. Needs --single-coil or --maps. Default: auto with --single-coil "
    "(without the k-space centre only the support settles the lowest frequencies: 3x "
    "uniform random, 6 validation slices: ipalm-TV 35.4 dB mean without, 56.5 within it), "
    "else off.", show_default=False)]


def support_file(text: str) -> list[str]:
    """[the --support mask file], or [] for a word: for the inputs an output must not
    overwrite."""
    return [] if text in SUPPORT_WORDS else [text]


def read_held_acquisition(kspace, mask, maps, slices, single_coil, traj, grid, support, dev):
    """``read_acquisition``'s Acquisition on ``dev``, held to the --support mask file if one is
    given, and the --support word left for the app (the file's: "off", it is applied)."""
    from mrgen.acquisition import read_acquisition

    acq = read_acquisition(kspace, mask, maps, slices, single_coil, traj, grid)
    if support not in SUPPORT_WORDS:
        from mrgen.support import read_support

        acq, support = read_support(support, acq, slices), "off"
    return acq.to(dev), support


# mrgen.precision.PRECISIONS, spelled out here so that --help does not import torch
PRECISIONS = ("auto", "float32", "bfloat16")
PrecisionOption = Annotated[str, typer.Option(
    "--precision", metavar="auto|float32|bfloat16", help="The network energy in the chains' "
    "steps: bfloat16 runs its convolutions ~3x faster on CPUs with AMX tiles (Intel Sapphire "
    "Rapids and later; emulated and slower elsewhere) at ~1% error in the gradient, far "
    "below the chains' own noise. auto: bfloat16 where the CPU has AMX, else float32 (and "
    "always with MALA, whose Metropolis test needs exact energies). MAP starts stay "
    "float32.")]


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


# What the training commands (train prior, djsense, deepen) share beyond their options.
def default_checkpoint(out):
    """OUT with the suffix .ckpt (OUT.ckpt when OUT has that suffix already)."""
    ckpt = out.with_suffix(".ckpt")
    return ckpt if ckpt != out else out.with_name(out.name + ".ckpt")


def check_training_paths(out, ckpt, data, samples_png) -> None:
    """The model file, the checkpoint and the samples PNG: in existing folders, not folders,
    not the same file, not one of the training inputs."""
    from pathlib import Path

    from mrgen import io
    from mrgen.errors import UsageError

    for path, name in ((out, "OUT"), (ckpt, "--checkpoint"),
                       (Path(samples_png) if samples_png else None, "--samples-png")):
        if path is None:
            continue
        folder = path.parent
        if str(folder) and not folder.is_dir():
            raise UsageError(f"{path}: folder {folder} does not exist")
        if path.is_dir():
            raise UsageError(f"{path}: is a folder ({name} needs a file name)")
    if out.resolve() == ckpt.resolve():
        raise UsageError(f"--checkpoint {ckpt}: must differ from the output {out}")
    inputs = set()
    for text in data:
        ref = io.parse_ref(str(text))
        inputs.update(p.resolve() for p in ref.files)
    for path, name in ((out, "output"), (ckpt, "checkpoint"),
                       (Path(samples_png) if samples_png else None, "--samples-png")):
        if path is not None and path.resolve() in inputs:
            raise UsageError(f"{path}: the {name} would overwrite an input")


def training_run(data, output, checkpoint, steps, checkpoint_every, resume, nan_guard,
                 samples_png=None, png_every=50):
    """The ``mrgen.apps.train_run.TrainingRun`` of a training command's shared options and
    global settings, its file names checked first."""
    from pathlib import Path

    from mrgen.apps.train_run import TrainingRun

    from .cli import command_line, info, settings

    out = Path(output)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(out)
    check_training_paths(out, ckpt, data, samples_png)
    return TrainingRun(output=out, checkpoint=ckpt, steps=steps,
                       checkpoint_every=checkpoint_every, resume=resume, nan_guard=nan_guard,
                       seed=settings.seed, progress=not settings.quiet, log=info,
                       command=command_line(), samples_png=samples_png, png_every=png_every)
