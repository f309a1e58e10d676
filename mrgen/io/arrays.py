"""Reading and writing arrays in every format (the implementation behind ``mrgen.io``)."""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..errors import DataError
from . import roles
from .cfl import read_cfl, read_header, write_cfl
from .dicom import write_dicom
from .h5 import h5_shape, read_h5, write_h5
from .layout import layout_for_shape, layout_from_bart_dims
from .nifti import read_nifti, write_nifti
from .npy import read_npy, write_npy
from .refs import parse_ref, slice_text


def read_array(text: str, role: roles.Role = roles.ANY, slices=None) -> np.ndarray:
    """Read ``text`` (a file argument) as an array for ``role``, validated and cast.

    ``slices`` (from ``parse_slices``) picks slices along the leading slice axis: an int drops
    that axis, a slice keeps it. Raises DataError naming the file for anything unusable.
    """
    ref = parse_ref(text)
    if ref.format == "h5":
        array, _ = read_h5(ref, role.datasets, slices, len(role.base) + 1)
        array = _as_mrgen(ref, array, role)
    elif ref.format == "dicom":
        raise DataError(f"{ref}: DICOM is written for viewers; mrgen reads .npy, .h5, .nii "
                        "and BART files")
    elif ref.format == "nifti":
        array = _select_slices(ref, _as_mrgen(ref, read_nifti(ref), role), role, slices)
    elif ref.format == "cfl":
        array, _ = read_cfl(ref, role.base)
        array = _select_slices(ref, _as_mrgen(ref, array, role), role, slices)
    else:
        if ref.path is not None and not ref.path.exists():
            raise DataError(f"{ref}: no such file")
        array = _select_slices(ref, _as_mrgen(ref, read_npy(ref), role), role, slices)
    if role is roles.KSPACE and not np.any(array):
        raise DataError(f"{ref}: the k-space is all zeros")
    return array


def read_shape(text: str, role: roles.Role = roles.ANY) -> tuple[int, ...]:
    """The shape ``read_array`` would return, without reading the data (except from stdin)."""
    ref = parse_ref(text)
    if ref.format == "h5":
        return h5_shape(ref, role.datasets)
    if ref.format == "cfl":
        dims = read_header(ref)
        return tuple(dims[d] for d in layout_from_bart_dims(dims, role.base))
    if ref.path is None or ref.format in ("nifti", "dicom"):
        return read_array(text, role).shape
    if not ref.path.exists():
        raise DataError(f"{ref}: no such file")
    try:
        return tuple(np.load(ref.path, mmap_mode="r", allow_pickle=False).shape)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{ref}: not a readable .npy file ({err})") from None


def _select_slices(ref, array, role, slices):
    if slices is None:
        return array
    if array.ndim <= len(role.base):
        raise DataError(f"{ref}: --slice given but the {role.name} has no slice axis "
                        f"(shape {tuple(array.shape)})")
    try:
        picked = np.ascontiguousarray(array[slices])
    except IndexError:
        raise DataError(f"{ref}: --slice out of range for {array.shape[0]} slices") from None
    _check_picked(ref, picked, slices, array.shape[0])
    return picked


def _check_picked(ref, picked, slices, count) -> None:
    if isinstance(slices, slice) and picked.shape[0] == 0:
        raise DataError(f"{ref}: --slice {slice_text(slices)} selects none of its {count} "
                        "slices")


def _as_mrgen(ref, array: np.ndarray, role: roles.Role) -> np.ndarray:
    """Check rank, dtype and finiteness; cast to complex64 or float32."""
    low = role.min_rank if role.min_rank is not None else len(role.base)
    high = len(role.base) + role.max_extra
    if not low <= array.ndim <= high:
        raise DataError(f"{ref}: the {role.name} needs {low} to {high} axes "
                        f"({_axes_hint(role)}), got shape {tuple(array.shape)}")
    kind = array.dtype.kind
    if kind == "c":
        if role.real_only:
            if np.any(array.imag):
                raise DataError(f"{ref}: the {role.name} must be real, got complex values")
            array = array.real
    elif kind in "fiub":
        if role.complex_only:
            raise DataError(f"{ref}: the {role.name} must be complex, got {array.dtype}")
    else:
        raise DataError(f"{ref}: unsupported data type {array.dtype} for the {role.name}")
    if 0 in array.shape:
        raise DataError(f"{ref}: the {role.name} is empty (shape {tuple(array.shape)})")
    array = array.astype(np.complex64 if array.dtype.kind == "c" else np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise DataError(f"{ref}: the {role.name} holds {bad} NaN or Inf values")
    return np.ascontiguousarray(array)


def _axes_hint(role) -> str:
    names = {0: "H", 1: "W", 3: "coils"}
    return "[slices,] " + ", ".join(names.get(d, "?") for d in role.base)


def write_array(text: str, array, role: roles.Role = roles.ANY, layout=None,
                command: str | None = None, format: str | None = None,
                geometry=None) -> None:
    """Write one array in the format ``text`` names, or ``format`` (atomically).

    ``layout`` lists the BART dim of each axis; by default it follows ``role`` with an extra
    leading axis taken as slices. ``command`` is recorded as provenance where the format can.
    ``geometry`` (``mrgen.io.geometry.Geometry``) places NIfTI and DICOM images.
    """
    ref = parse_ref(text, format)
    array = _to_numpy(array)
    if ref.format == "nifti":
        write_nifti(ref, array, geometry, role, command or f"mrgen {__version__}")
    elif ref.format == "dicom":
        write_dicom(ref, array, geometry, role, command or f"mrgen {__version__}")
    elif ref.format == "h5":
        write_bundle(text, {ref.dataset or role.output_dataset: array}, command=command)
    elif ref.format == "cfl":
        layout = layout or layout_for_shape(array.ndim, role.base)
        write_cfl(ref, array, layout, command, f"mrgen {__version__}")
    else:
        write_npy(ref, array)


def write_bundle(text: str, datasets: dict, command: str | None = None,
                 attrs: dict | None = None) -> None:
    """Write several named arrays into one new .h5 file, with provenance attributes."""
    ref = parse_ref(text)
    if ref.format != "h5":
        raise DataError(f"{text}: several arrays need an .h5 output")
    meta = {"mrgen_version": __version__}
    if command:
        meta["mrgen_command"] = command
    meta.update(attrs or {})
    # Text (an XML header) is stored as an HDF5 string, as fastMRI stores ismrmrd_header.
    write_h5(ref.path, {k: v if isinstance(v, (str, bytes)) else _to_numpy(v)
                        for k, v in datasets.items()}, meta)


def _to_numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind == "c":
        return array.astype(np.complex64, copy=False)
    if array.dtype.kind == "b":
        return array.astype(np.float32)
    return array.astype(np.float32, copy=False)
