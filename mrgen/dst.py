"""The orthonormal discrete sine transform (type I) and the smoothness prox of coil maps.

DST-I diagonalises the discrete Laplacian with Dirichlet boundaries (values zero just outside
the grid): D^T D = S diag(xi) S with xi_k = 2 - 2 cos(pi k / (N + 1)), k = 1..N, per axis.
Computed with an FFT of the odd extension, so it runs on any torch device and for complex
input (the transform is real, hence acts on real and imaginary parts separately, Eq. 14).
"""

from __future__ import annotations

import math

import torch


def dst1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal DST-I along ``dim`` (its own inverse)."""
    n = x.shape[dim]
    x = x.movedim(dim, -1)
    zeros = torch.zeros(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
    odd = torch.cat([zeros, x, zeros, -x.flip(-1)], dim=-1)  # length 2N + 2, odd symmetric
    spectrum = torch.fft.fft(odd, dim=-1)[..., 1:n + 1]
    # FFT of the odd extension is -2i * sum_n x_n sin(pi k (n+1) / (N+1)).
    result = spectrum * (0.5j) * math.sqrt(2.0 / (n + 1))
    if not x.is_complex():
        result = result.real
    return result.movedim(-1, dim)


def dst2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DST-I over the last two axes."""
    return dst1(dst1(x, -1), -2)


def dirichlet_laplacian_eigenvalues(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    k = torch.arange(1, n + 1, device=device, dtype=dtype)
    return 2 - 2 * torch.cos(math.pi * k / (n + 1))


def smoothness_prox(maps: torch.Tensor, weight) -> torch.Tensor:
    """argmin_x 1/2 ||x - maps||^2 + weight/2 sum_c ||D x_c||^2 over the last two axes.

    Solves (I + weight D^T D) x = maps exactly in the DST-I basis. ``weight`` is a number or
    a tensor broadcastable to the leading (batch) axes, e.g. mu / L per slice.
    """
    h, w = maps.shape[-2:]
    real = maps.real.dtype if maps.is_complex() else maps.dtype
    xi = (dirichlet_laplacian_eigenvalues(h, maps.device, real)[:, None]
          + dirichlet_laplacian_eigenvalues(w, maps.device, real)[None, :])
    return dst2(dst2(maps) / (1 + weight * xi))


def smoothness_energy(maps: torch.Tensor) -> torch.Tensor:
    """F(maps) = 1/2 sum ||D Re||^2 + ||D Im||^2 with zero values outside the grid (Eq. 12),
    summed over all axes but the first (one value per batch element)."""
    padded = torch.nn.functional.pad(maps, (1, 1, 1, 1))  # the zeros outside the grid
    squares = (torch.diff(padded, dim=-1).abs() ** 2).sum(tuple(range(1, maps.dim()))) + \
        (torch.diff(padded, dim=-2).abs() ** 2).sum(tuple(range(1, maps.dim())))
    return 0.5 * squares
