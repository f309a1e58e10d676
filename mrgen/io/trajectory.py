"""Non-Cartesian files: trajectories and the k-space samples that go with them.

In memory (``mrgen.trajectory`` states the units): a trajectory is float32 (shots, samples, 2)
with coordinates (k_H, k_W) in cycles per FOV; its samples are complex64 (coils, shots,
samples) with an optional leading slice axis, so that a .npy of samples looks like Cartesian
k-space (coils, H, W) with the shots as H and the samples as W.

In BART's files a trajectory is (3, samples, spokes) (READ holds x, y, z; ``bart traj``) and
its samples are (1, samples, spokes, coils[, ..., slices at dim 13]). mrgen's H is BART's
READ axis, so (k_H, k_W) = (x, y), and z must be zero (2D).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .layout import COIL, PHS1, PHS2, READ, SLICE
from .refs import parse_ref

TRAJECTORY_LAYOUT = (READ, PHS1, PHS2)            # (3, samples, spokes)
SAMPLES_LAYOUT = (SLICE, COIL, PHS2, PHS1)        # (slices, coils, spokes, samples)


def read_trajectory(text: str) -> np.ndarray:
    """(shots, samples, 2) float32 from a BART .cfl (3 or 2, samples, spokes) or from a
    .npy/.h5 array (shots, samples, 2) or (samples, 2)."""
    from .arrays import read_array

    ref = parse_ref(text)
    if ref.format == "cfl":
        data, dims = _read_raw_cfl(ref)
        if dims[0] not in (2, 3) or any(d > 1 for d in dims[3:]):
            raise DataError(f"{ref}: not a 2D BART trajectory: expected dims (3, samples, "
                            f"spokes), got {tuple(dims[:4])}")
        coords = data.reshape(dims[:3], order="F")
        if np.any(coords.imag) or (dims[0] == 3 and np.any(coords.real[2])):
            raise DataError(f"{ref}: a 2D trajectory has real x, y and zero z coordinates")
        traj = np.transpose(coords.real[:2], (2, 1, 0))
    else:
        traj = read_array(text).astype(np.float32)
        traj = traj[None] if traj.ndim == 2 else traj
        if traj.ndim != 3 or traj.shape[-1] != 2:
            raise DataError(f"{ref}: a trajectory needs shape (shots, samples, 2), got "
                            f"{traj.shape}")
    if not np.all(np.isfinite(traj)):
        raise DataError(f"{ref}: the trajectory holds NaN or Inf coordinates")
    return np.ascontiguousarray(traj, dtype=np.float32)


def trajectory_for_file(text: str, traj: np.ndarray):
    """(array, layout) that ``io.write_array`` writes as ``text`` wants: BART's (3, samples,
    spokes) for .cfl, mrgen's (shots, samples, 2) otherwise (layout None)."""
    traj = np.asarray(traj, dtype=np.float32)
    if parse_ref(text).format != "cfl":
        return traj, None
    bart = np.zeros((3, traj.shape[1], traj.shape[0]), np.complex64)
    bart[:2] = np.transpose(traj, (2, 1, 0))
    return bart, TRAJECTORY_LAYOUT


def read_samples(text: str, slices=None) -> np.ndarray:
    """Non-Cartesian k-space (coils, shots, samples) or (slices, coils, shots, samples),
    complex64: BART's (1, samples, spokes, coils, ..., slices) .cfl, or any k-space file."""
    from . import roles
    from .arrays import _as_mrgen, _select_slices, read_array

    ref = parse_ref(text)
    if ref.format != "cfl":
        return read_array(text, roles.KSPACE, slices)
    data, dims = _read_raw_cfl(ref)
    if dims[0] != 1 or any(dims[d] > 1 for d in range(4, len(dims)) if d != SLICE):
        raise DataError(f"{ref}: not BART non-Cartesian k-space (1, samples, spokes, coils"
                        f"[, slices at dim 13]): dims {tuple(dims)}")
    # every other dim is 1, so the column-major order of the four that are left is kept
    full = data.reshape((dims[PHS1], dims[PHS2], dims[COIL], dims[SLICE]), order="F")
    samples = np.transpose(full, (3, 2, 1, 0))
    samples = samples if dims[SLICE] > 1 else samples[0]
    array = _select_slices(ref, _as_mrgen(ref, samples, roles.KSPACE), roles.KSPACE, slices)
    if not np.any(array):
        raise DataError(f"{ref}: the k-space is all zeros")
    return array


def samples_for_file(text: str, samples: np.ndarray):
    """(array, layout) to write samples (..., coils, shots, samples): for .cfl BART's
    (1, samples, spokes, coils[, slices]), otherwise mrgen's own axes (layout None)."""
    if parse_ref(text).format != "cfl":
        return samples, None
    return samples, SAMPLES_LAYOUT[4 - np.ndim(samples):]


def _read_raw_cfl(ref) -> tuple[np.ndarray, list[int]]:
    """The flat values of a BART file and its dims (any dims: the callers check them)."""
    from .cfl import read_header, read_values

    dims = read_header(ref)
    return read_values(ref, dims), dims
