"""mrgen dataset: a training corpus (train / validation / test .h5 files) from MR data that
ship in installed packages."""

from typing import Annotated, Optional

import typer

from .cli import command, info, progress_bar
from .options import AT_LEAST_0, AT_LEAST_1, Range

SUMMARY = "Build train/validation/test sets (fastMRI .h5 + manifest) from packaged MR data."


@command("dataset", SUMMARY,
         ranges={"size": Range(2), "augment": AT_LEAST_0, "phase": AT_LEAST_0,
                 "max_slices": AT_LEAST_1, "snr": Range(words=("inf",))},
         choices={"split": ("train", "validation", "test", "all")})
def dataset(
    out_dir: Annotated[str, typer.Argument(
        metavar="OUT_DIR", help="Folder for <split>.h5 and <split>-manifest.json (made if "
        "missing; its parent must exist).", show_default=False)],
    split: Annotated[str, typer.Option(
        "--split", help="train | validation | test | all.")] = "all",
    size: Annotated[tuple[int, int], typer.Option(
        "--size", metavar="H W", help="Matrix size; each image is zero-padded to this "
        "aspect and resampled with antialiasing.")] = (256, 256),
    coils: Annotated[str, typer.Option(
        "--coils", metavar="C|A:B", help="Coils of random geometry: a count, or a range from "
        "which one count per file is drawn (1: single coil, maps of ones).")] = "1",
    snr: Annotated[str, typer.Option(
        "--snr", metavar="DB", help="Noise: mean object signal over the std of the complex "
        "Gaussian noise per sample, in dB; inf for none.")] = "30",
    augment: Annotated[int, typer.Option(
        "--augment", metavar="K", help="Augmented copies of each train slice besides the "
        "slice itself (0: none); validation and test are never augmented.")] = 2,
    phase: Annotated[float, typer.Option(
        "--phase", metavar="RADIANS", help="Peak of the smooth random phase (a complex source "
        "keeps its own).")] = 1.0,
    sources: Annotated[Optional[str], typer.Option(
        "--sources", metavar="A,B,...", help="Only these sources: mni152, dicom, itk-other "
        "(train), itk-kmeans (validation), itk-brainweb (test). Default: all of each split.",
        show_default=False)] = None,
    max_slices: Annotated[Optional[int], typer.Option(
        "--max-slices", metavar="N", help="At most N slices per split, spread evenly over "
        "them (small sets for tests).", show_default=False)] = None,
):
    """Build a corpus for training and evaluating reconstruction from MR images that ship in
    installed packages (no download): nilearn's MNI152 template turned into T1w, T2w, PD and
    FLAIR, pydicom's MR test files and ITK's example MR slices for train; ITK's k-means T1
    head for validation; ITK's BrainWeb slices for test. No subject is in two splits.

    Each slice is padded and resampled to --size, normalised to max |image| = 1, augmented
    (train copies only: flips, 90-degree turns, a small affine map, an elastic warp, an
    intensity curve, a bias field), given a smooth random phase, multiplied by coil maps of
    random geometry (sum of squares 1), Fourier transformed (centred, orthonormal) and given
    complex Gaussian noise at --snr. OUT_DIR/<split>.h5 holds, in the fastMRI layout, kspace
    (slices, coils, H, W), reconstruction_rss (the RSS of the noisy coil images), image (the
    complex noise-free truth) and maps; OUT_DIR/<split>-manifest.json gives, per slice, its
    source, subject, contrast, orientation, sequence parameters, the augmentation drawn, coil
    geometry, noise sigma and seed. --seed gives every draw: the same seed gives bit-identical
    files. Files are written one slice at a time under temporary names and renamed at the end.

    Needs pip install 'mrgen\\[corpus]' (pydicom, pydicom-data, nilearn, nibabel, pillow) and,
    for the ITK sources, apt-get install insighttoolkit5-examples.

    Examples: mrgen dataset corpus --split all --size 128 128 --coils 1 --augment 2;
    mrgen dataset corpus --split test --coils 8; mrgen dataset small --sources dicom
    --max-slices 8 --snr inf.
    """
    from mrgen.corpus import (CorpusOptions, parse_coils, parse_snr, parse_sources,
                              plan_corpus, write_split)

    from .cli import command_line, settings

    options = CorpusOptions(size=tuple(size), coils=parse_coils(coils), snr_db=parse_snr(snr),
                            augment=augment, phase=phase, sources=parse_sources(sources),
                            seed=settings.seed, max_slices=max_slices)
    for plan in plan_corpus(out_dir, split, options):
        with progress_bar(plan.count, f"dataset {plan.split}", "slice") as bar:
            summary = write_split(plan, options, command_line(), bar.update)
        info(summary.line())
