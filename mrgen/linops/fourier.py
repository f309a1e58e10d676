"""The single-coil model: the masked centred Fourier transform M F."""

from __future__ import annotations

import torch

from ..fft import fft2c, ifft2c
from .base import LinearOperator, random_mask


def varying_axes(mask: torch.Tensor) -> tuple[int, ...]:
    """The image axes of (-2, -1) along which a mask (..., H, W) varies: one for 1D
    Cartesian sampling (lines), where M F = F_o (M F_d) and F^H M F needs transforms along
    the varying axis d alone; none for a constant mask."""
    return tuple(axis for axis in (-2, -1)
                 if not bool((mask == mask.narrow(axis, 0, 1)).all()))


def apply_mask(y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return y if mask is None else y * mask


class FourierOp(LinearOperator):
    """M F over the last two axes: images (..., H, W) -> k-space (..., H, W).

    ``mask`` broadcastable to (..., H, W), sampled = 1 (None: the full FFT, any grid). Coil
    images (..., C, H, W) take a mask (H, W) directly (the coil axis is a batch axis).
    """

    def __init__(self, mask: torch.Tensor | None = None):
        self.mask = mask
        shape = (None, None) if mask is None else tuple(mask.shape)
        self.input_shape = self.output_shape = shape if len(shape) >= 2 else (None, *shape)

    @classmethod
    def example(cls, generator):
        return cls(random_mask((2, 16, 12), generator, 0.4))

    def _forward(self, x):
        return apply_mask(fft2c(x), self.mask)

    def _adjoint(self, y):
        return ifft2c(apply_mask(y, self.mask))
