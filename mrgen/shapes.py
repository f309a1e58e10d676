"""Checking that arrays from different files fit together (mask vs k-space, maps vs k-space)."""

from __future__ import annotations

import numpy as np

from .errors import DataError


def fit_mask(mask: np.ndarray, kspace_shape, name: str = "mask") -> np.ndarray:
    """Shape a sampling mask to broadcast against k-space (..., C, H, W).

    Accepts (W,) as fastMRI stores it, (H, W), (1, W), (H, 1), or (S, H, W) for k-space with S
    slices; returns (H, W) or (S, H, W). Anything else is an error naming the mask.
    """
    height, width = kspace_shape[-2:]
    if mask.ndim == 1:
        mask = mask.reshape(1, -1)
    try:
        planes = np.broadcast_to(mask, mask.shape[:-2] + (height, width))
    except ValueError:
        planes = None
    slices = kspace_shape[:-3]
    fits = planes is not None and (mask.ndim == 2 or (len(slices) == 1 and mask.ndim == 3
                                                     and mask.shape[0] in (1, slices[0])))
    if not fits:
        raise DataError(f"{name}: shape {tuple(mask.shape)} does not fit k-space of shape "
                        f"{tuple(kspace_shape)} (needs (H, W) = ({height}, {width}), (W,) or "
                        "(slices, H, W))")
    if np.any(mask < 0):
        raise DataError(f"{name}: the mask has negative values (1 = sampled, 0 = not)")
    sampled = np.any(planes.reshape(-1, height * width) != 0, axis=1)
    if not sampled.any():
        raise DataError(f"{name}: the mask samples nothing (all zeros)")
    if not sampled.all():
        raise DataError(f"{name}: slice {int(np.argmin(sampled))} of the mask samples nothing "
                        "(all zeros)")
    # A copy: broadcast views are read-only, and torch wants writable memory.
    return np.array(planes[0] if planes.ndim == 3 and planes.shape[0] == 1 else planes)


def fit_maps(maps: np.ndarray, kspace_shape, name: str = "maps") -> np.ndarray:
    """Check maps against k-space (..., C, H, W); keep the first set of a (sets, C, H, W) stack.

    Returns maps of shape (C, H, W) or (S, C, H, W) matching the k-space.
    """
    coils_hw = tuple(kspace_shape[-3:])
    slices = tuple(kspace_shape[:-3])
    if maps.shape[-3:] != coils_hw:
        raise DataError(f"{name}: shape {tuple(maps.shape)} does not fit k-space of shape "
                        f"{tuple(kspace_shape)} (coils, H and W must agree)")
    _check_maps_not_zero(maps, name)
    lead = maps.shape[:-3]
    if lead == slices or lead == ():
        return maps
    if len(lead) == 2 and slices and lead[0] == slices[0]:   # (S, sets, C, H, W): mrgen order
        return np.ascontiguousarray(maps[:, 0])
    if len(lead) == len(slices) + 1 and lead[1:] == slices:  # (sets, [S,] C, H, W)
        return maps[0]
    raise DataError(f"{name}: {lead[0] if lead else 1} slice(s) or map sets do not match the "
                    f"k-space's {slices[0] if slices else 1} slice(s)")


def fit_image(image: np.ndarray, kspace_shape, name: str = "image") -> np.ndarray:
    """Check an image (a start, a warm start) against k-space (..., C, H, W): (H, W), or
    (S, H, W) for S slices."""
    wanted = tuple(kspace_shape[:-3]) + tuple(kspace_shape[-2:])
    if tuple(image.shape) != wanted:
        raise DataError(f"{name}: shape {tuple(image.shape)} does not fit the k-space of shape "
                        f"{tuple(kspace_shape)} (needs {wanted})")
    return image


def _check_maps_not_zero(maps: np.ndarray, name: str) -> None:
    """Maps that vanish everywhere (in a slice) give nothing to reconstruct from."""
    planes = maps.reshape((-1,) + maps.shape[-3:])
    nonzero = np.any(planes.reshape(len(planes), -1) != 0, axis=1)
    if not nonzero.any():
        raise DataError(f"{name}: the sensitivity maps are zero everywhere")
    if not nonzero.all():
        raise DataError(f"{name}: map set or slice {int(np.argmin(nonzero))} of the sensitivity "
                        "maps is zero everywhere")
