"""Linear MRI operators on torch tensors: forward, adjoint and normal (A^H A).

Shapes follow mrgen's conventions, with any number of leading batch (slice) axes:
images (..., H, W), coil data (..., C, H, W), masks broadcastable to (..., H, W) with
sampled = 1. Each operator is a small object so that solvers (CG, gradient methods) can take
any of them; the adjointness of each is checked in the tests to float32 precision.
"""

from __future__ import annotations

import torch

from .fft import fft2c, ifft2c


class LinearOperator:
    """A linear map A with ``forward`` (A x), ``adjoint`` (A^H y) and ``normal`` (A^H A x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.adjoint(self.forward(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def _apply_mask(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return y if mask is None else y * mask


class FourierOp(LinearOperator):
    """Masked Fourier transform M F over the last two axes (the single-coil model)."""

    def __init__(self, mask: torch.Tensor | None = None):
        self.mask = mask

    def forward(self, x):
        return _apply_mask(fft2c(x), self.mask)

    def adjoint(self, y):
        return ifft2c(_apply_mask(y, self.mask))


class SenseOp(LinearOperator):
    """The SENSE model A x = M F (S x): image (..., H, W) -> k-space (..., C, H, W).

    ``maps`` are (..., C, H, W). The normal operator applies the mask once squared, which is
    the same as twice for a binary mask and right for sampling weights.
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor | None = None):
        self.maps = maps
        # A per-slice mask (..., S, H, W) must broadcast over the coil axis of (..., S, C, H, W).
        self.mask = mask.unsqueeze(-3) if mask is not None and mask.ndim >= 3 else mask
        self._mask_squared = None if mask is None else (self.mask * self.mask.conj())

    def expand(self, x):
        """S x: coil images from the image."""
        return self.maps * x.unsqueeze(-3)

    def reduce(self, coil_images):
        """S^H: sum_c conj(s_c) x_c."""
        return torch.sum(self.maps.conj() * coil_images, dim=-3)

    def forward(self, x):
        return _apply_mask(fft2c(self.expand(x)), self.mask)

    def adjoint(self, y):
        return self.reduce(ifft2c(_apply_mask(y, self.mask)))

    def normal(self, x):
        return self.reduce(ifft2c(_apply_mask(fft2c(self.expand(x)), self._mask_squared)))
