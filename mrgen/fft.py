"""The centred, orthonormal 2D FFT over the last two axes: mrgen's one Fourier convention.

Centred means the DC sample sits at index (H//2, W//2) in k-space and the image centre at
(H//2, W//2) in image space (fftshift/ifftshift around the transform, as fastMRI and BART do).
Orthonormal means ||fft2c(x)|| = ||x|| and ifft2c is its exact adjoint and inverse.

For even sizes the shifts are replaced by a +-1 checkerboard before and after the plain FFT,
which is exactly the same transform (a shift by N/2 is a modulation by (-1)^n) at a third of
the cost: rolls copy the array, a multiplication by a cached sign pattern does not add a pass.
The pattern is cached in the data's own dtype: multiplying complex data by a real tensor takes
a slow mixed-type path in PyTorch on the CPU (three times the time of complex x complex).
"""

from __future__ import annotations

import functools

import torch

_DIMS = (-2, -1)


@functools.lru_cache(maxsize=32)
def _checkerboard(height: int, width: int, device: torch.device, dtype: torch.dtype):
    """(-1)^(n1 + n2) before the FFT, and the same times (-1)^((H + W) / 2) after it, for
    even H and W."""
    rows = 1 - 2 * (torch.arange(height, device=device) % 2)
    cols = 1 - 2 * (torch.arange(width, device=device) % 2)
    sign = (rows[:, None] * cols[None, :]).to(dtype)
    return sign, sign * (-1) ** ((height + width) // 2)


def centring_signs(height: int, width: int, device: torch.device, dtype: torch.dtype):
    """(b, a) with fft2c(x) = a * fft2(b * x, norm="ortho") and ifft2c(y) = a * ifft2(b * y,
    norm="ortho") for even H and W: +-1 checkerboards in ``dtype`` (cached). A caller that
    keeps b inside factors it multiplies anyway (and a inside its data) transforms with the
    bare FFT: mrgen.ipalm does."""
    return _checkerboard(height, width, device, dtype)


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype that holds ``dtype``'s values (complex128 for float64)."""
    if dtype.is_complex:
        return dtype
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _even(x: torch.Tensor) -> bool:
    return x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Image -> k-space over the last two axes (centred, orthonormal)."""
    if _even(image):
        before, after = _checkerboard(*image.shape[-2:], image.device,
                                      complex_dtype(image.dtype))
        return torch.fft.fft2(image * before, dim=_DIMS, norm="ortho") * after
    shifted = torch.fft.ifftshift(image, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """k-space -> image over the last two axes (centred, orthonormal)."""
    if _even(kspace):
        before, after = _checkerboard(*kspace.shape[-2:], kspace.device,
                                      complex_dtype(kspace.dtype))
        return torch.fft.ifft2(kspace * before, dim=_DIMS, norm="ortho") * after
    shifted = torch.fft.ifftshift(kspace, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, dim=_DIMS, norm="ortho"), dim=_DIMS)
