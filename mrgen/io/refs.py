"""Parsing array-file arguments: ``file.npy``, ``file.h5[:dataset]``, BART ``name[.cfl]``, ``-``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
NPY_SUFFIXES = (".npy",)
CFL_SUFFIXES = (".cfl", ".hdr")
KNOWN_SUFFIXES = NPY_SUFFIXES + H5_SUFFIXES + CFL_SUFFIXES


@dataclass(frozen=True)
class ArrayRef:
    """Where an array lives: a format, a path (None for stdin/stdout) and an h5 dataset."""

    text: str
    format: str  # "npy" | "h5" | "cfl" | "stdio"
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


def parse_ref(text: str) -> ArrayRef:
    """Classify an argument. A name with no known suffix is a BART pair, as in BART itself."""
    if text == "-":
        return ArrayRef(text, "stdio", None)
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


def ensure_distinct(output: str, inputs) -> None:
    """Refuse an output that would replace one of the inputs (never overwrite an input)."""
    out_files = {p.resolve() for p in parse_ref(output).files}
    for item in inputs:
        if item is None:
            continue
        if out_files & {p.resolve() for p in parse_ref(str(item)).files}:
            raise UsageError(f"{output}: output would overwrite the input {item}")
