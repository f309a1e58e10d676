"""Images for viewers: what NIfTI and DICOM outputs share.

Both hold the magnitude of an image (H, W) or a stack (slices, H, W) as float32, with the
voxel size of ``mrgen.io.geometry`` (1 mm, and a warning from the command, when the inputs
carry none). The world frame is the image's own: H along the first axis, W the second,
slices the third, each scaled by its voxel size; the patient orientation is not carried.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

UNKNOWN_SPACING = (1.0, 1.0, 1.0)


def magnitude_stack(ref, array: np.ndarray, role) -> np.ndarray:
    """(slices, H, W) float32 magnitude of an image or image stack (``role`` an image role of
    ``mrgen.io.roles``); DataError for coil images, maps and arrays of other ranks."""
    if len(role.base) != 2 or array.ndim not in (2, 3):
        raise DataError(f"{ref}: NIfTI and DICOM outputs hold images (H, W) or (slices, H, W);"
                        f" the {role.name} has shape {tuple(array.shape)} (write it as .npy or "
                        ".h5)")
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


def affine(spacing) -> np.ndarray:
    """Voxel (H index, W index, slice index) -> world position in mm."""
    return np.diag([*map(float, spacing), 1.0])
