"""Non-Cartesian forward models: the NUFFT A (``mrgen.nufft``) alone and with coil maps.

The normal operator is applied by Toeplitz embedding: A^H A is a convolution (offsets up to
the image size), exact as a product in k-space on the doubled grid,

    A^H A x = crop(ifft2c(K * fft2c(pad_2x(x)))),     K = ``Nufft.toeplitz_kernel()``,

two FFTs of 4 H W points instead of the interpolations of a NUFFT pair: the solvers (CG-SENSE)
and iPALM's image step call ``normal`` every iteration, so it pays whenever more than a few
normals share one trajectory (the kernel costs one type-1 transform, once per trajectory).
"""

from __future__ import annotations

import torch

from ..fft import fft2c, ifft2c
from ..nufft import Nufft
from ..resize import center_crop, center_pad
from .base import LinearOperator, complex_randn
from .sense import SenseOp


def toeplitz_normal(nufft: Nufft, x: torch.Tensor) -> torch.Tensor:
    """A^H A x for images (..., H, W) by the embedding of the module doc."""
    grid = nufft.grid
    padded = center_pad(x, (2 * grid[0], 2 * grid[1]))
    return center_crop(ifft2c(nufft.toeplitz_kernel() * fft2c(padded)), grid)


def _example_nufft(generator, grid=(12, 10), shots=5, samples=16) -> Nufft:
    coords = (torch.rand((shots, samples, 2), generator=generator) - 0.5) \
        * torch.tensor(grid, dtype=torch.float32)
    return Nufft(coords, grid)


class NufftOp(LinearOperator):
    """A: images (..., H, W) -> samples (..., shots, samples) at the trajectory's points."""

    def __init__(self, nufft: Nufft, toeplitz: bool = True):
        self.nufft = nufft
        self.toeplitz = toeplitz
        self.input_shape = nufft.grid
        self.output_shape = nufft.sample_shape

    @classmethod
    def example(cls, generator):
        return cls(_example_nufft(generator))

    def _forward(self, x):
        return self.nufft.forward(x)

    def _adjoint(self, y):
        return self.nufft.adjoint(y)

    def _normal(self, x):
        return toeplitz_normal(self.nufft, x) if self.toeplitz else super()._normal(x)


class NufftSenseOp(LinearOperator):
    """A x = NUFFT(S x): image (..., H, W) -> samples (..., C, shots, samples).

    ``maps`` (..., C, H, W); one trajectory for all slices and coils (the coils and slices
    are one batch of transforms). ``real_image``: the image is real and the adjoint returns
    Re S^H A^H y (iPALM's real inner product), as ``SenseOp``.
    """

    def __init__(self, maps: torch.Tensor, nufft: Nufft, real_image: bool = False,
                 toeplitz: bool = True):
        self.maps = maps
        self.nufft = nufft.to(maps.device)
        self.real_input = real_image
        self.toeplitz = toeplitz
        self.input_shape = (*maps.shape[:-3], *nufft.grid)
        self.output_shape = (*maps.shape[:-3], maps.shape[-3], *nufft.sample_shape)

    @classmethod
    def example(cls, generator):
        nufft = _example_nufft(generator)
        return cls(complex_randn((2, 3, *nufft.grid), generator), nufft)

    expand = SenseOp.expand       # S x: coil images (..., C, H, W)
    reduce = SenseOp.reduce       # S^H, its real part for a real image
    _conjugate_maps = SenseOp._conjugate_maps

    def _forward(self, x):
        return self.nufft.forward(self.expand(x))

    def _adjoint(self, y):
        return self.reduce(self.nufft.adjoint(y))

    def _normal(self, x):
        if not self.toeplitz:
            return super()._normal(x)
        return self.reduce(toeplitz_normal(self.nufft, self.expand(x)))
