"""Density compensation for gridding: Pipe and Menon's iterations (MRM 41:179, 1999).

Weights w (one per sample) that make the sampled k-space look uniformly dense: the fixed point
of

    w  <-  w / (C w),      (C w)(k_m) = sum_j w_j c(k_m - k_j),

with c a positive smoothing kernel, here the Gaussian c(k) = exp(-|k|^2 / (2 s^2)) / (2 pi s^2)
of s = ``KERNEL_WIDTH`` grid units, normalised so that the integer lattice has C 1 = 1: a
Cartesian grid gets weights 1 (to 1e-3 three points from its edges; its corners, where the
support test below misjudges the inside of a convex corner, ~0.5), and the weights are areas in
grid cells (the ramp pi |k| dr / spokes of a radial trajectory), so the gridding reconstruction
A^H (w y) has the intensity of ``ifft2c`` of full Cartesian data.

C is applied as the NUFFT's own spread and interpolation: a type-1 transform of w onto a 1.5x
larger image grid, a product with the image-domain Gaussian g(r) = exp(-2 pi^2 s^2 |r / G|^2)
(its transform is c; at the edge of the larger grid g has decayed to exp(-2 pi^2 s^2 0.75^2)
= 2e-3, so c is a Gaussian to that, positive, and the iteration converges; a 2x grid, 1e-5,
gives the same weights in twice the time), and a type-2 transform back. Three
choices make the weights the areas to a few per cent per sample:

- the band is padded: the transforms use a grid G wider than the image's by the kernel's
  reach on each side, so that samples at +N/2 do not count those at -N/2 (the NUFFT is
  periodic in k with the period of its grid) as neighbours;
- guard points: a first pass finds where the samples cover k-space ((C w) >= 1/2 on the
  integer lattice); the lattice points outside that support within the kernel's reach join the
  samples as neighbours for the second pass and are dropped after, so samples at the edge of
  the support are not weighted up for the neighbours they lack (without guards the outer ring
  of a radial trajectory gets ~+30%);
- s = 0.75: narrower kernels leave the gaps between spokes of undersampled radial trajectories
  (64 spokes: 1.5 grid units at the edge) visible (~13% swings), wider ones blur the 1/|k|
  density of the centre (the innermost rings ~+60% at s = 1).

Measured on 120 spokes of 128 samples at 64 x 64 (``tests/test_nufft.py``): each weight within
1.2% of the ramp from |k| = 3 to 4 short of the edge (0.8% beyond |k| = 4; the old Gaussian
window on the image grid: ~15% swings, 2-4% in the median). Where samples lie closer than the
kernel's width (the readout of a 2x oversampled spoke, 0.5 apart), C w = 1 hardly constrains a
weight pattern alternating from sample to sample: the few samples nearest the centre are right
in sum (0.2%), each within 15%, and the last two of a spoke alternate by up to +-100% about the
ramp (the rim's sum within 6%). Golden-angle spokes get the local density of their
neighbourhood, smoother than the angular Voronoi areas of the unequal gaps between them.
Cost: ~2 s for 64 spokes of 512 samples at 256 x 256 on one CPU thread (the old weights:
0.7 s), once per trajectory.
"""

from __future__ import annotations

import math

import torch

from .nufft import Nufft

ITERATIONS = 30        # of the second pass; the first (the support) takes a third of them
KERNEL_WIDTH = 0.75    # std s of the k-space kernel c, in grid units (module doc)
REACH = 4.0            # the kernel's reach in std: c(4 s) / c(0) = 3e-4
IMAGE_PADDING = 1.5    # the finer image grid of the spread: g(edge) = 2e-3 (module doc)
EPS = 1e-4             # the transforms' tolerance: the weights need no more
GUARD_SPACING = 0.25   # of the lattice of guard points outside the samples' support
SUPPORT_ROUNDS = 3     # the support from weights without guards, then with them


def gaussian_window(modes: tuple[int, int], grid: tuple[int, int], width: float = KERNEL_WIDTH,
                    device=None) -> torch.Tensor:
    """g (modes) complex64 of an image of size ``grid`` sampled on ``modes`` points per axis
    (a finer image grid), 1 at the centre (modes // 2): the transform of c (module doc)."""
    axes = [(torch.arange(m, dtype=torch.float64, device=device) - m // 2) / n
            for m, n in zip(modes, grid)]
    squared = axes[0][:, None] ** 2 + axes[1][None, :] ** 2
    return torch.exp(-2 * math.pi ** 2 * width ** 2 * squared).to(torch.complex64)


class _Smoother:
    """C of the module doc for one point set on a padded grid: values (M,) -> (M,)."""

    def __init__(self, coords: torch.Tensor, grid: tuple[int, int], width: float):
        self.nufft = Nufft(coords, grid, EPS)
        self.modes = tuple(2 * math.ceil(n * IMAGE_PADDING / 2) for n in grid)
        self.window = gaussian_window(self.modes, grid, width, coords.device)
        self.scale = 1.0 / (grid[0] * grid[1])

    def spread(self, values: torch.Tensor) -> torch.Tensor:
        """The windowed image (1, *modes) of point values (M,)."""
        image = self.nufft._transform(1, values.to(torch.complex64)[None], self.modes)
        return image * self.window

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        return self.interpolate(self.spread(values), self.nufft)

    def interpolate(self, image: torch.Tensor, nufft: Nufft) -> torch.Tensor:
        """(C w) at the points of ``nufft`` (same grid) from a ``spread`` image."""
        return nufft._transform(2, image.contiguous(), self.modes)[0].real * self.scale


def _iterate(smoother: _Smoother, weights: torch.Tensor, iters: int,
             outside: torch.Tensor | float = 0.0) -> torch.Tensor:
    """w <- w / (C w + outside): ``outside`` the fixed density of the guard points."""
    for _ in range(iters):
        weights = weights / (smoother(weights) + outside).clamp_min(1e-6)
    return weights


def _outside(smoother: _Smoother, weights: torch.Tensor, grid: tuple[int, int],
             width: float) -> torch.Tensor:
    """The density (M,) at the samples of the guard points: a lattice of spacing
    h = ``GUARD_SPACING`` over the padded band, weight h^2 each, where the weighted samples do
    not cover k-space ((C w) < 1/2) within the kernel's reach of where they do."""
    device = weights.device
    axes = [torch.arange(-(n // 2) + GUARD_SPACING / 2, n // 2, GUARD_SPACING,
                         dtype=torch.float32, device=device) for n in grid]
    lattice = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    density = smoother.interpolate(smoother.spread(weights), Nufft(lattice, grid, EPS))
    guards = lattice[(density < 0.5) & (density > math.exp(-REACH ** 2 / 2))]
    if len(guards) == 0:
        return torch.zeros_like(weights)
    fixed = torch.full((len(guards),), GUARD_SPACING ** 2, device=device)
    return smoother.interpolate(_Smoother(guards, grid, width).spread(fixed), smoother.nufft)


def pipe_menon(nufft: Nufft, iters: int = ITERATIONS, width: float = KERNEL_WIDTH) \
        -> torch.Tensor:
    """Density compensation weights (*sample_shape) float32, on the trajectory's device."""
    coords = nufft.coords.reshape(-1, 2)
    pad = math.ceil(REACH * width) + 1
    grid = (nufft.grid[0] + 2 * pad, nufft.grid[1] + 2 * pad)
    with torch.no_grad():
        smoother = _Smoother(coords, grid, width)
        weights = torch.ones(len(coords), device=coords.device)
        outside = torch.zeros_like(weights)
        for _ in range(SUPPORT_ROUNDS):
            weights = _iterate(smoother, weights, max(1, iters // 3), outside)
            outside = _outside(smoother, weights, grid, width)
        weights = _iterate(smoother, weights, iters, outside)
    return weights.to(torch.float32).reshape(nufft.sample_shape)


def weights_for(nufft: Nufft) -> torch.Tensor:
    """``pipe_menon(nufft)`` with the defaults, computed once per trajectory."""
    if "density" not in nufft.cache:
        nufft.cache["density"] = pipe_menon(nufft)
    return nufft.cache["density"]


def gridding(samples: torch.Tensor, nufft: Nufft, weights: torch.Tensor | None = None) \
        -> torch.Tensor:
    """A^H (w y): coil images (..., C, H, W) from samples (..., C, *sample_shape); ``weights``
    by default the trajectory's ``weights_for``."""
    weights = weights_for(nufft) if weights is None else weights
    return nufft.adjoint(samples * weights.to(samples.device, samples.real.dtype))

