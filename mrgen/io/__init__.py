"""Array files: .npy, .h5[:dataset] (fastMRI layout), BART .cfl/.hdr, and ``-`` for pipes;
images for viewers: NIfTI (.nii, .nii.gz) and DICOM (a .dcm folder); MRD raw data (``mrd``).

All format conversions live here. In memory, arrays are C-ordered numpy arrays in mrgen's
axis order, complex64 or float32; commands turn them into torch tensors themselves.

Importing ``mrgen.io`` is cheap (no numpy): the argument checks that run before every command
(``parse_ref``, ``parse_slices``, ``ensure_distinct``) need only the standard library, and the
readers and writers of ``mrgen.io.arrays`` are imported on first use.
"""

from __future__ import annotations

from . import roles
from .refs import FORMATS, IMAGE_FORMATS, ArrayRef, ensure_distinct, parse_ref, parse_slices

__all__ = ["read_array", "read_shape", "write_array", "write_bundle", "parse_ref", "parse_slices",
           "ensure_distinct", "ArrayRef", "roles", "find_geometry", "FORMATS", "IMAGE_FORMATS"]

_LAZY = ("read_array", "read_shape", "write_array", "write_bundle")


def __getattr__(name):
    if name in _LAZY:
        from . import arrays

        return getattr(arrays, name)
    if name == "find_geometry":
        from .geometry import find_geometry

        return find_geometry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
