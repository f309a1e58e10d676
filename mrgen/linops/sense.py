"""The SENSE model M F (S x), linear in the image for fixed maps and in the maps for a fixed
image (the two blocks of joint image/map estimation, e.g. iPALM's).

Masks are held in the data's complex dtype: complex x real products take a slow mixed-type
path in PyTorch on the CPU (about three times complex x complex), and a real mask's complex
copy gives the same numbers.
"""

from __future__ import annotations

from functools import cached_property

import torch

from ..fft import fft2c, ifft2c
from .base import LinearOperator, broadcast_shape, complex_randn, random_mask
from .fourier import apply_mask, varying_axes


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
        self._kernel = None               # ``normal_kernel``, made on first use
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

    @cached_property
    def _conjugate_maps(self):
        return self.maps.conj().resolve_conj()

    def reduce(self, coil_images):
        """S^H: sum_c conj(s_c) x_c (its real part for a real image). The conjugate maps are
        made once: a product with torch's lazy conjugate costs a third more (langevin's CG
        calls this some 40 times a step)."""
        products = self._conjugate_maps * coil_images
        return products.real.sum(-3) if self.real_input else products.sum(-3)

    def _forward(self, x):
        return apply_mask(fft2c(self.expand(x)), self.mask)

    def _adjoint(self, y):
        return self.reduce(ifft2c(apply_mask(y, self.mask)))

    def _normal(self, x):
        """S^H F^H M^2 F S x. F^H M^2 F is a circular convolution, which commutes with the
        centring shifts, so they cancel: the bare FFT with the mask's weights shifted once
        (``normal_kernel``). Along an axis the mask does not vary (the read-out of 1D
        Cartesian sampling) F^H F = I, so only the other axis is transformed: half the FFT
        work of the posterior's CG solves (langevin's preconditioner, CG-SENSE)."""
        if self._kernel is None:
            self._kernel = normal_kernel(self.mask)
        weights, dims = self._kernel
        coils = self.expand(x)
        if dims:
            kspace = torch.fft.fftn(coils, dim=dims, norm="ortho").mul_(weights)
            coils = torch.fft.ifftn(kspace, dim=dims, norm="ortho")
        elif weights is not None:
            coils = coils * weights
        return self.reduce(coils)


def normal_kernel(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, tuple[int, ...]]:
    """(weights, axes) with F^H M^2 F = IFFT_axes(weights * FFT_axes(.)) for the bare
    orthonormal FFT over ``axes``, those of the last two along which the mask varies;
    ``weights`` is M^2 reduced to one sample along the others and ifftshifted along
    ``axes`` (an FFT's frequency order). (None, ()) without a mask."""
    if mask is None:
        return None, ()
    squared = mask * mask.conj()
    dims = varying_axes(squared)
    for axis in {-2, -1} - set(dims):
        squared = squared.narrow(axis, 0, 1)
    return (torch.fft.ifftshift(squared, dim=dims) if dims else squared), dims


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
