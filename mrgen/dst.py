"""The discrete sine transform (type II) and the exact smoothness prox of coil maps (Eq. 14).

The maps' smoothness F (Eq. 12) uses finite differences with the maps vanishing outside the
grid. Here the boundary sits half a sample outside the last pixel (u_{-1} = -u_0, u_N =
-u_{N-1}), so along each axis D^T D is tridiag(-1, 2, -1) with 3 in its two corners, which the
DST-II diagonalises with eigenvalues 2 - 2 cos(pi k / N), k = 1..N — the eigenvalues of the
authors' code. (A boundary one full sample out would need the DST-I of length 2N + 2, whose
FFT lengths, 738 and 1282 for fastMRI's 368 and 640, factor badly: 4x slower.)

Both transforms are FFTs of length 2N, on any torch device and for complex input (the
transform is real, so it acts on real and imaginary parts separately, as Eq. 14 says).
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=16)
def _twiddle(n: int, device, dtype) -> torch.Tensor:
    """exp(-i pi m / (2N)) for m = 1..N (cached: the prox runs every backtracking try)."""
    m = torch.arange(1, n + 1, device=device, dtype=torch.float64)
    return torch.polar(torch.ones_like(m), -math.pi * m / (2 * n)).to(dtype)


def dst2(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """y_k = sum_n x_n sin(pi (k+1)(2n+1) / (2N)) along ``dim`` (unnormalised DST-II)."""
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    ctype = x.dtype if x.is_complex() else torch.complex64 if x.dtype == torch.float32 \
        else torch.complex128
    spectrum = torch.fft.fft(torch.cat([x, -x.flip(-1)], dim=-1).to(ctype), dim=-1)
    y = 0.5j * _twiddle(n, x.device, ctype) * spectrum[..., 1:n + 1]
    return (y if x.is_complex() else y.real).movedim(-1, dim)


def idst2(y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The exact inverse of dst2 along ``dim``."""
    y = y.movedim(dim, -1)
    n = y.shape[-1]
    ctype = y.dtype if y.is_complex() else torch.complex64 if y.dtype == torch.float32 \
        else torch.complex128
    twiddle = _twiddle(n, y.device, ctype)
    upper = -2j * y.to(ctype) / twiddle                                  # V_m, m = 1..N
    lower = (2j * twiddle[:-1] * y[..., :-1].to(ctype)).flip(-1)         # V_m, m = N+1..2N-1
    zero = torch.zeros(*y.shape[:-1], 1, dtype=ctype, device=y.device)   # V_0
    x = torch.fft.ifft(torch.cat([zero, upper, lower], dim=-1), dim=-1)[..., :n]
    return (x if y.is_complex() else x.real).movedim(-1, dim)


def laplacian_eigenvalues(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    k = torch.arange(1, n + 1, device=device, dtype=dtype)
    return 2 - 2 * torch.cos(math.pi * k / n)


def smoothness_prox(maps: torch.Tensor, weight) -> torch.Tensor:
    """argmin_x 1/2 ||x - maps||^2 + weight F(x) over the last two axes, F = 1/2 <x, L x>.

    Solves (I + weight L) x = maps exactly in the DST-II basis. ``weight`` is a number or a
    tensor broadcastable to the leading (batch) axes, e.g. mu / L_c per slice.
    """
    h, w = maps.shape[-2:]
    real = maps.real.dtype if maps.is_complex() else maps.dtype
    xi = (laplacian_eigenvalues(h, maps.device, real)[:, None]
          + laplacian_eigenvalues(w, maps.device, real)[None, :])
    coefficients = dst2(dst2(maps, -1), -2)
    return idst2(idst2(coefficients / (1 + weight * xi), -2), -1)


def _laplacian_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(L x) along ``dim``: 2 x_n - x_{n-1} - x_{n+1} with x_{-1} = -x_0, x_N = -x_{N-1}."""
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, x.shape[dim] - 1, 1)
    padded = torch.cat([-first, x, -last], dim=dim)
    n = x.shape[dim]
    return 2 * x - padded.narrow(dim, 0, n) - padded.narrow(dim, 2, n)


def smoothness_energy(maps: torch.Tensor) -> torch.Tensor:
    """F(maps) = 1/2 <maps, L maps> over the last two axes, one value per batch element."""
    lap = _laplacian_1d(maps, -1) + _laplacian_1d(maps, -2)
    inner = (maps.conj() * lap).real if maps.is_complex() else maps * lap
    return 0.5 * inner.flatten(1).sum(1)
