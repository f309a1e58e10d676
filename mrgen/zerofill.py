"""Zero-filled reconstruction: inverse FFT of the (masked) k-space, coil-combined."""

from __future__ import annotations

import torch

from .coils import combine, rss
from .fft import ifft2c
from .resize import center_crop


def zero_filled_coils(kspace: torch.Tensor, mask: torch.Tensor | None = None,
                      nufft=None) -> torch.Tensor:
    """Coil images (..., C, H, W): the inverse FFT of the (masked) k-space, or the gridding of
    non-Cartesian samples at the points of ``nufft`` (``density.gridding``; no mask)."""
    if nufft is not None:
        from .density import gridding

        return gridding(kspace, nufft)
    return ifft2c(kspace if mask is None else kspace * mask.unsqueeze(-3))


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor | None = None,
                maps: torch.Tensor | None = None, crop: tuple[int, int] | None = None,
                magnitude: bool = True, nufft=None) -> torch.Tensor:
    """Image (..., H, W) from k-space (..., C, H, W).

    ``mask`` (broadcastable to (..., H, W)) is applied first; without it the data are taken as
    they are (unsampled entries already zero). With ``maps`` the coil images are combined by
    least squares, else by root-sum-of-squares (which has no phase).

    ``nufft``: non-Cartesian samples (..., C, shots, samples) at its points, gridded with
    Pipe-Menon density compensation (``mrgen.density``); the mask is then ignored.
    """
    coil_images = zero_filled_coils(kspace, mask, nufft)
    image = combine(coil_images, maps) if maps is not None else rss(coil_images)
    if crop is not None:
        image = center_crop(image, crop)
    return image.abs() if magnitude else image
