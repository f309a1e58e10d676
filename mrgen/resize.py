"""Centre crop and zero-pad over the last two axes (the fastMRI convention for odd sizes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _offsets(old: int, new: int) -> int:
    # fastMRI crops at (old - new) // 2; padding is its exact adjoint.
    return (old - new) // 2


def center_crop(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The central ``shape`` of the last two axes; each target must be <= the current size."""
    h, w = x.shape[-2:]
    th, tw = shape
    if th > h or tw > w:
        raise ValueError(f"cannot crop {h}x{w} to {th}x{tw}")
    top, left = _offsets(h, th), _offsets(w, tw)
    return x[..., top:top + th, left:left + tw]


def center_pad(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Zero-pad the last two axes to ``shape``, keeping the data centred (adjoint of crop)."""
    h, w = x.shape[-2:]
    th, tw = shape
    if th < h or tw < w:
        raise ValueError(f"cannot pad {h}x{w} to {th}x{tw}")
    top, left = _offsets(th, h), _offsets(tw, w)
    return F.pad(x, (left, tw - w - left, top, th - h - top))


def crop_or_pad(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Resize each of the last two axes independently by centre crop or zero-pad."""
    h, w = x.shape[-2:]
    x = center_crop(x, (min(h, shape[0]), min(w, shape[1])))
    return center_pad(x, shape)


def check_crop(crop: tuple[int, int] | None, image_shape) -> tuple[int, int] | None:
    """A --crop size as a tuple, refused (UsageError) when it is larger than the image."""
    from .errors import UsageError

    if crop is None:
        return None
    if crop[0] > image_shape[-2] or crop[1] > image_shape[-1]:
        raise UsageError(f"--crop {crop[0]} {crop[1]}: larger than the image "
                         f"{image_shape[-2]}x{image_shape[-1]}")
    return tuple(crop)
