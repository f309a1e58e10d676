"""The SENSE model M F (S x), linear in the image for fixed maps and in the maps for a fixed
image (the two blocks of joint image/map estimation, e.g. iPALM's).

Masks are held in the data's complex dtype: complex x real products take a slow mixed-type
path in PyTorch on the CPU (about three times complex x complex), and a real mask's complex
copy gives the same numbers.
"""

from __future__ import annotations

import torch

from ..fft import centring_signs, fft2c, ifft2c
from .base import LinearOperator, broadcast_shape, complex_randn, random_mask
from .fourier import apply_mask


def coil_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A mask (..., H, W) ready to multiply coil k-space (..., C, H, W), in ``dtype``: a
    per-slice mask (..., S, H, W) gets a coil axis, a plain (H, W) one broadcasts as it is."""
    if mask is None:
        return None
    mask = mask.to(dtype)
    return mask.unsqueeze(-3) if mask.ndim >= 3 else mask


def _image_grid(*shapes) -> tuple:
    """The image shape (..., H, W) that maps, image and mask shapes broadcast to."""
    return broadcast_shape(*(s for s in shapes if s is not None))


class SenseOp(LinearOperator):
    """A x = M F (S x): image (..., H, W) -> k-space (..., C, H, W).

    ``maps`` are (..., C, H, W). The normal operator applies the mask once squared, which is
    the same as twice for a binary mask and right for sampling weights. ``real_image``: the
    image is real (iPALM's u >= 0) and the adjoint returns Re S^H F^H M y, the adjoint for
    the real inner product.
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor | None = None,
                 real_image: bool = False):
        self.maps = maps
        self.mask = coil_mask(mask, maps.dtype)
        self._mask_squared = None
        self._framed_maps = None
        self.real_input = real_image
        image = _image_grid(tuple(maps.shape[:-3] + maps.shape[-2:]),
                            None if mask is None else tuple(mask.shape))
        self.input_shape = image
        self.output_shape = (*image[:-2], maps.shape[-3], *image[-2:])

    @classmethod
    def example(cls, generator):
        return cls(complex_randn((2, 3, 10, 8), generator), random_mask((2, 10, 8), generator))

    def expand(self, x):
        """S x: coil images from the image."""
        return self.maps * x.to(self.maps.dtype).unsqueeze(-3)

    def reduce(self, coil_images):
        """S^H: sum_c conj(s_c) x_c (its real part for a real image)."""
        image = torch.sum(self.maps.conj() * coil_images, dim=-3)
        return image.real if self.real_input else image

    def _forward(self, x):
        return apply_mask(fft2c(self.expand(x)), self.mask)

    def _adjoint(self, y):
        return self.reduce(ifft2c(apply_mask(y, self.mask)))

    def _normal(self, x):
        """S^H F^H M^2 F S x with the bare FFT: for even sizes fft2c = a fft2(b .) and
        ifft2c = a ifft2(b .) (mrgen.fft.centring_signs), and a M^2 b = +-M^2, a b = +-1,
        so the signs fold into the maps (b S, computed once) and cancel in pairs: four
        passes over the coil images fewer, the same numbers (every factor is +-1)."""
        if self._mask_squared is None and self.mask is not None:
            self._mask_squared = self.mask * self.mask.conj()
        height, width = self.maps.shape[-2:]
        if height % 2 or width % 2:
            return self.reduce(ifft2c(apply_mask(fft2c(self.expand(x)), self._mask_squared)))
        if self._framed_maps is None:
            self._framed_maps = self.maps * centring_signs(height, width, self.maps.device,
                                                           self.maps.dtype)[0]
        coils = self._framed_maps * x.to(self.maps.dtype).unsqueeze(-3)
        kspace = torch.fft.fft2(coils, norm="ortho")
        if self._mask_squared is not None:
            kspace = kspace * self._mask_squared
        image = torch.sum(self._framed_maps.conj() * torch.fft.ifft2(kspace, norm="ortho"),
                          dim=-3)
        return image.real if self.real_input else image


class SenseMapsOp(LinearOperator):
    """A c = M F (u c): coil maps (..., C, H, W) -> k-space (..., C, H, W) for a fixed image
    u (..., H, W), real or complex; A^H y = conj(u) F^H M y.

    ``coils`` fixes C in the shape check (None: any number of coils).
    """

    def __init__(self, image: torch.Tensor, mask: torch.Tensor | None = None,
                 coils: int | None = None, dtype: torch.dtype | None = None):
        dtype = dtype or (image.dtype if image.is_complex() else
                          torch.complex128 if image.dtype == torch.float64 else torch.complex64)
        self.image = image.to(dtype).unsqueeze(-3)
        self.mask = coil_mask(mask, dtype)
        grid = _image_grid(tuple(image.shape), None if mask is None else tuple(mask.shape))
        self.input_shape = self.output_shape = (*grid[:-2], coils, *grid[-2:])

    @classmethod
    def example(cls, generator):
        return cls(complex_randn((2, 10, 8), generator), random_mask((2, 10, 8), generator),
                   coils=3)

    def _forward(self, c):
        return apply_mask(fft2c(self.image * c), self.mask)

    def _adjoint(self, y):
        return self.image.conj() * ifft2c(apply_mask(y, self.mask))
