"""Deep J-Sense's kernel model (Arvinte et al. 2021, Eq. 1): coil k-spaces k_i = s_i * m, the
linear convolution of per-coil map kernels s_i (kh, kw) with an image kernel m.

The convolution is carried out in image space on the padded grid (H + kh - 1, W + kw - 1):
the map kernels are zero-padded and inverse-FFT'd to image-space maps, multiplied with the
image x = F^-1 m point-wise, FFT'd back, and the central H x W block is kept: exactly the
'valid' part of the linear convolution. With the orthonormal FFT the padded kernel is scaled
by sqrt(n) (n the padded grid's size), so a unit kernel at the centre is the identity. The
model is bilinear: ``PaddedSenseOp`` is linear in the image for fixed maps,
``KernelMapsOp`` in the kernels for a fixed image.
"""

from __future__ import annotations

import math

import torch

from ..fft import fft2c, ifft2c
from .base import LinearOperator, broadcast_shape, complex_randn, random_mask
from .fourier import apply_mask
from .sense import coil_mask


def _offsets(big, small):
    return [b // 2 - s // 2 for b, s in zip(big, small)]


def embed(x: torch.Tensor, shape) -> torch.Tensor:
    """Zero-pad the last two axes of ``x`` to ``shape``, centre index on centre index."""
    h, w = x.shape[-2:]
    oy, ox = _offsets(shape, (h, w))
    out = x.new_zeros(*x.shape[:-2], *shape)
    out[..., oy:oy + h, ox:ox + w] = x
    return out


def extract(x: torch.Tensor, shape) -> torch.Tensor:
    """The central ``shape`` block of the last two axes (the adjoint of ``embed``)."""
    oy, ox = _offsets(x.shape[-2:], shape)
    return x[..., oy:oy + shape[0], ox:ox + shape[1]]


def padded_shape(shape, kernel) -> tuple[int, int]:
    """The image kernel's grid: (H + kh - 1, W + kw - 1)."""
    return shape[0] + kernel[0] - 1, shape[1] + kernel[1] - 1


def kernels_to_maps(s: torch.Tensor, grid) -> torch.Tensor:
    """Image-space maps on ``grid`` from map kernels (..., kh, kw): sqrt(n) F^-1 pad(s)."""
    return math.sqrt(grid[0] * grid[1]) * ifft2c(embed(s, grid))


def maps_to_kernels(maps: torch.Tensor, kernel) -> torch.Tensor:
    """The (kh, kw) kernels of image-space maps: the inverse of ``kernels_to_maps``."""
    grid = maps.shape[-2:]
    return extract(fft2c(maps), kernel) / math.sqrt(grid[0] * grid[1])


def _batch(lead, mask) -> tuple:
    """The leading axes that the operator's parameters and its mask broadcast to."""
    return broadcast_shape(tuple(lead), () if mask is None else tuple(mask.shape[:-2]))


class PaddedSenseOp(LinearOperator):
    """x (..., Hp, Wp) on the padded grid -> M crop_{H,W} F(S x), k-space (..., C, H, W), for
    image-space maps S (..., C, Hp, Wp) and k-space ``shape`` (H, W)."""

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor | None, shape):
        self.maps = maps
        self.shape = tuple(shape)
        self.grid = tuple(maps.shape[-2:])
        self.mask = coil_mask(mask, maps.dtype)
        batch = _batch(maps.shape[:-3], mask)
        self.input_shape = (*batch, *self.grid)
        self.output_shape = (*batch, maps.shape[-3], *self.shape)

    @classmethod
    def example(cls, generator):
        shape, kernel = (9, 8), (3, 5)
        maps = complex_randn((2, 3, *padded_shape(shape, kernel)), generator)
        return cls(maps, random_mask((2, *shape), generator), shape)

    def _forward(self, x):
        return apply_mask(extract(fft2c(self.maps * x.unsqueeze(-3)), self.shape), self.mask)

    def _adjoint(self, y):
        return torch.sum(self.maps.conj() * ifft2c(embed(apply_mask(y, self.mask), self.grid)),
                         dim=-3)


class KernelMapsOp(LinearOperator):
    """Map kernels s (..., C, kh, kw) -> M crop_{H,W} F(x S(s)), k-space (..., C, H, W), for a
    fixed image x (..., Hp, Wp) on the padded grid of k-space ``shape`` (H, W).

    ``coils`` fixes C in the shape check (None: any number of coils).
    """

    def __init__(self, image: torch.Tensor, mask: torch.Tensor | None, shape, kernel,
                 coils: int | None = None):
        self.image = image
        self.shape, self.kernel = tuple(shape), tuple(kernel)
        self.grid = padded_shape(self.shape, self.kernel)
        self.root = math.sqrt(self.grid[0] * self.grid[1])
        self.mask = coil_mask(mask, image.dtype)
        batch = _batch(image.shape[:-2], mask)
        self.input_shape = (*batch, coils, *self.kernel)
        self.output_shape = (*batch, coils, *self.shape)

    @classmethod
    def example(cls, generator):
        shape, kernel = (9, 8), (3, 5)
        image = complex_randn((2, *padded_shape(shape, kernel)), generator)
        return cls(image, random_mask((2, *shape), generator), shape, kernel, coils=3)

    def _forward(self, s):
        maps = kernels_to_maps(s, self.grid)
        return apply_mask(extract(fft2c(maps * self.image.unsqueeze(-3)), self.shape), self.mask)

    def _adjoint(self, y):
        coil = self.image.conj().unsqueeze(-3) * ifft2c(embed(apply_mask(y, self.mask), self.grid))
        return self.root * extract(fft2c(coil), self.kernel)
