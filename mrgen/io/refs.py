"""Parsing array-file arguments: ``file.npy``, ``file.h5[:dataset]``, BART ``name[.cfl]``, ``-``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
NPY_SUFFIXES = (".npy",)
CFL_SUFFIXES = (".cfl", ".hdr")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm",)      # a folder of one DICOM file per slice
KNOWN_SUFFIXES = NPY_SUFFIXES + H5_SUFFIXES + CFL_SUFFIXES + NIFTI_SUFFIXES + DICOM_SUFFIXES
# The formats --format names; nifti and dicom hold magnitude images for viewers.
FORMATS = ("npy", "h5", "cfl", "nifti", "dicom")
IMAGE_FORMATS = ("nifti", "dicom")


@dataclass(frozen=True)
class ArrayRef:
    """Where an array lives: a format, a path (None for stdin/stdout) and an h5 dataset."""

    text: str
    format: str  # "npy" | "h5" | "cfl" | "nifti" | "dicom" (a folder) | "stdio"
    path: Path | None
    dataset: str | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        """The files on disk this reference touches (two for a BART pair)."""
        if self.path is None:
            return ()
        if self.format == "cfl":
            return (self.path.with_suffix(".cfl"), self.path.with_suffix(".hdr"))
        return (self.path,)

    def __str__(self) -> str:
        return self.text


def parse_ref(text: str, format: str | None = None) -> ArrayRef:
    """Classify an argument. A name with no known suffix is a BART pair, as in BART itself.
    ``format`` (--format, for outputs) overrides the suffix."""
    if format is not None:
        return _forced(text, format)
    if text == "-":
        return ArrayRef(text, "stdio", None)
    if text.lower().endswith(NIFTI_SUFFIXES):
        return ArrayRef(text, "nifti", Path(text))
    if text.lower().endswith(DICOM_SUFFIXES):
        return ArrayRef(text, "dicom", Path(text))
    path_text, dataset = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head.lower().endswith(H5_SUFFIXES):
        path_text, dataset = head, tail
        if not dataset:
            raise UsageError(f"{text}: empty dataset name after ':'")
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix in H5_SUFFIXES:
        return ArrayRef(text, "h5", path, dataset)
    if suffix in NPY_SUFFIXES:
        return ArrayRef(text, "npy", path)
    if suffix in CFL_SUFFIXES:
        return ArrayRef(text, "cfl", path.with_suffix(""))
    if suffix:
        raise UsageError(f"{text}: not an array file (unknown suffix {path.suffix}); known: "
                         f"{', '.join(KNOWN_SUFFIXES)}, .h5:DATASET, a BART name without a "
                         "suffix (NAME.cfl + NAME.hdr), or - for a pipe")
    return ArrayRef(text, "cfl", path)


def _forced(text: str, format: str) -> ArrayRef:
    """An output written as ``format`` whatever its suffix."""
    if format not in FORMATS:
        raise UsageError(f"--format {format}: expected {' | '.join(FORMATS)}")
    if text == "-":
        if format != "npy":
            raise UsageError(f"--format {format}: standard output (-) takes a .npy stream")
        return ArrayRef(text, "stdio", None)
    if format == "h5":
        return parse_ref(text) if _names_h5(text) else ArrayRef(text, "h5", Path(text))
    path = Path(text)
    if format == "cfl" and path.suffix.lower() in CFL_SUFFIXES:
        path = path.with_suffix("")
    return ArrayRef(text, format, path)


def _names_h5(text: str) -> bool:
    head, sep, _ = text.rpartition(":")
    return (head if sep else text).lower().endswith(H5_SUFFIXES)


def parse_slices(text: str | None):
    """``--slice`` values: ``I`` (one slice, axis dropped), ``A:B``, ``A:``, ``:B`` (axis kept)."""
    if text is None or text == "":
        return None
    try:
        if ":" not in text:
            return int(text)
        start, stop = text.split(":", 1)
        first, last = int(start) if start else None, int(stop) if stop else None
    except ValueError:
        raise UsageError(f"--slice {text}: expected an index I or a range A:B") from None
    if first is not None and last is not None and (first < 0) == (last < 0) and first >= last:
        raise UsageError(f"--slice {text}: empty range (A:B takes slices A to B-1; A must be "
                         "below B)")
    return slice(first, last)


def slice_text(slices: slice) -> str:
    """A slice range as the user wrote it for --slice (A:B, A:, :B)."""
    start = "" if slices.start is None else slices.start
    stop = "" if slices.stop is None else slices.stop
    return f"{start}:{stop}"


def ensure_distinct(output: str, inputs, format: str | None = None) -> None:
    """Refuse an output that would replace one of the inputs (never overwrite an input)."""
    out_files = {p.resolve() for p in parse_ref(output, format).files}
    for item in inputs:
        if item is None:
            continue
        if out_files & {p.resolve() for p in parse_ref(str(item)).files}:
            raise UsageError(f"{output}: output would overwrite the input {item}")
