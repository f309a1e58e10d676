"""The centred, orthonormal 2D FFT over the last two axes: mrgen's one Fourier convention.

Centred means the DC sample sits at index (H//2, W//2) in k-space and the image centre at
(H//2, W//2) in image space (fftshift/ifftshift around the transform, as fastMRI and BART do).
Orthonormal means ||fft2c(x)|| = ||x|| and ifft2c is its exact adjoint and inverse.
"""

from __future__ import annotations

import torch

_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Image -> k-space over the last two axes (centred, orthonormal)."""
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """k-space -> image over the last two axes (centred, orthonormal)."""
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)
