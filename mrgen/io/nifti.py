"""NIfTI-1 images (.nii, .nii.gz): magnitude float32, (H, W, slices), the affine from the
inputs' geometry (``mrgen.io.images``)."""

from __future__ import annotations

import gzip

import numpy as np

from ..errors import DataError
from .atomic import atomic_path
from . import roles
from .images import frame, magnitude_stack, need, nifti_affine


def write_nifti(ref, array: np.ndarray, geometry=None, role=None,
                description: str = "mrgen") -> None:
    """Write ``array`` (H, W) or (slices, H, W) as a NIfTI image (H, W) or volume with slices
    as its third axis; gzip-compressed when the name ends in .gz."""
    nibabel = need("nibabel", "NIfTI")

    stack = magnitude_stack(ref, array, role or roles.IMAGE)
    volume = stack[0] if array.ndim == 2 else np.moveaxis(stack, 0, -1)   # (H, W[, slices])
    where = frame(geometry, *stack.shape)
    image = nibabel.Nifti1Image(volume, nifti_affine(where))
    if where.patient:   # placed in the scanner's coordinates: NIFTI_XFORM_SCANNER_ANAT
        image.set_qform(image.affine, code=1)
        image.set_sform(image.affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description[:79].encode("ascii", "replace")
    data = image.to_bytes()
    if str(ref.path).lower().endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_path(ref.path) as tmp:
        tmp.write_bytes(data)


def read_nifti(ref) -> np.ndarray:
    """A NIfTI volume (H, W[, slices]) back in mrgen's order: (H, W) or (slices, H, W)."""
    nibabel = need("nibabel", "NIfTI")

    if not ref.path.exists():
        raise DataError(f"{ref}: no such file")
    try:
        volume = np.asarray(nibabel.load(str(ref.path)).dataobj, dtype=np.float32)
    except Exception as err:   # nibabel raises several kinds for a damaged file
        raise DataError(f"{ref}: not a readable NIfTI file ({err})") from None
    if volume.ndim == 3:
        return np.ascontiguousarray(np.moveaxis(volume, -1, 0))
    return volume
