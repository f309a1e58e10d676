"""Images for viewers: what NIfTI and DICOM outputs share.

Both hold the magnitude of an image (H, W) or a stack (slices, H, W) as float32, placed by
the ``mrgen.io.geometry`` of the inputs (``frame``): in the patient when ``mrgen mrd`` kept
the scanner's slice positions and directions (DICOM's LPS; NIfTI's RAS), else in the image's
own axes (H along the first, W the second, slices the third) scaled by the voxel size, 1 mm
when unknown (the command then warns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

UNKNOWN_SPACING = (1.0, 1.0, 1.0)


def check_image(ref, array: np.ndarray, role) -> None:
    """DataError unless ``array`` is an image (H, W) or stack (slices, H, W) of an image role
    of ``mrgen.io.roles`` (not coil images, maps, k-space or arrays of other ranks)."""
    if len(role.base) != 2 or array.ndim not in (2, 3):
        raise DataError(f"{ref}: NIfTI and DICOM outputs hold images (H, W) or (slices, H, W);"
                        f" the {role.name} has shape {tuple(array.shape)} (write it as .npy or "
                        ".h5)")


def magnitude_stack(ref, array: np.ndarray, role) -> np.ndarray:
    """(slices, H, W) float32 magnitude of an image or image stack (``role`` an image role of
    ``mrgen.io.roles``); DataError for coil images, maps and arrays of other ranks."""
    check_image(ref, array, role)
    stack = np.abs(array).astype(np.float32)
    return stack[None] if stack.ndim == 2 else stack


def need(module: str, what: str):
    """Import ``module`` (nibabel, pydicom) for ``what``, or say how to install it."""
    import importlib

    from ..errors import UsageError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{what} output needs {module}: pip install 'mrgen[images]'") from None


@dataclass
class Frame:
    """Where the pixels of a stack (S, H, W) are, in mm: pixel (r, c) of slice k sits at
    origins[k] + r * down + c * across. In the patient's coordinates (DICOM's LPS) when the
    scanner's orientation is known, else in the image's own (H, W, slices) axes."""

    origins: np.ndarray   # (S, 3)
    down: np.ndarray      # (3,): one row further (H index + 1)
    across: np.ndarray    # (3,): one column further (W index + 1)
    step: np.ndarray      # (3,): one slice further
    patient: bool


def frame(geometry, count: int, height: int, width: int) -> Frame:
    """The frame of ``count`` slices of H x W pixels with ``geometry`` (or None)."""
    spacing = np.array(geometry.spacing if geometry is not None else UNKNOWN_SPACING, float)
    positions = None if geometry is None else geometry.positions
    if geometry is not None and geometry.directions is not None and positions is not None \
            and len(positions) == count:
        read, phase, normal = np.asarray(geometry.directions, float)
        steps = np.diff(positions, axis=0)
        if count == 1 or np.all(np.linalg.norm(steps, axis=1) > 1e-3):
            down, across = read * spacing[0], phase * spacing[1]
            # the MRD position is the slice centre: pixel (H // 2, W // 2) of the k-space's
            # grid (mrgen's centre), wherever a centre crop or pad of the output moved it
            grid = geometry.grid or (height, width)
            origins = positions - _centre(grid[0], height) * down \
                - _centre(grid[1], width) * across
            step = steps[0] if count > 1 else normal * spacing[2]
            return Frame(origins, down, across, step, True)
    eye = np.eye(3) * spacing
    origins = np.arange(count)[:, None] * eye[2]
    return Frame(origins, eye[0], eye[1], eye[2], False)


def _centre(grid: int, size: int) -> int:
    """The index, in an output of ``size`` pixels centre-cropped or zero-padded from ``grid``
    by mrgen.resize (offset (old - new) // 2, fastMRI's), of the grid's pixel grid // 2: an
    odd crop of an even grid puts it at size // 2 + 1."""
    if size <= grid:
        return grid // 2 - (grid - size) // 2
    return grid // 2 + (size - grid) // 2


def uneven_slices(geometry, count: int) -> str | None:
    """What a NIfTI affine (one step for all slices) gets wrong about ``count`` slices placed
    by ``geometry``, or None when their positions are evenly spaced along a line."""
    positions = None if geometry is None else geometry.positions
    if geometry is None or geometry.directions is None or positions is None or count < 3 \
            or len(positions) != count:
        return None
    positions = np.asarray(positions, float)
    steps = np.diff(positions, axis=0)
    placed = positions[0] + np.arange(count)[:, None] * steps[0]
    error = float(np.linalg.norm(placed - positions, axis=1).max())
    if error <= 1e-3 * max(1.0, float(np.linalg.norm(steps[0]))):
        return None
    lengths = np.linalg.norm(steps, axis=1)
    return (f"the slices are unevenly spaced ({lengths.min():.4g} to {lengths.max():.4g} mm "
            f"apart), but a NIfTI affine has one step ({lengths[0]:.4g} mm, the first): slices "
            f"are misplaced by up to {error:.3g} mm (DICOM keeps each slice's position)")


def nifti_affine(frame: Frame) -> np.ndarray:
    """Voxel (H index, W index, slice index) -> NIfTI world (RAS, mm): the patient frame
    with LPS turned to RAS, else the image's own axes (identity for 1 mm voxels)."""
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = frame.down, frame.across, frame.step
    affine[:3, 3] = frame.origins[0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine if frame.patient else affine
