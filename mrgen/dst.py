"""The discrete sine transform (type II) and the exact smoothness prox of coil maps (Eq. 14).

The maps' smoothness F (Eq. 12) uses finite differences with the maps vanishing outside the
grid. Here the boundary sits half a sample outside the last pixel (u_{-1} = -u_0, u_N =
-u_{N-1}), so along each axis D^T D is tridiag(-1, 2, -1) with 3 in its two corners, which the
DST-II diagonalises with eigenvalues 2 - 2 cos(pi k / N), k = 1..N — the eigenvalues of the
authors' code. (A boundary one full sample out would need the DST-I of length 2N + 2, whose
FFT lengths, 738 and 1282 for fastMRI's 368 and 640, factor badly: 4x slower.)

Each 1D transform is one FFT of length N (Makhoul's reordering: even samples first, odd
samples reversed after them, which turns the cosine sum into an FFT; the DST-II is the DCT-II
of (-1)^n x read backwards), with complex input handled directly: the transform is real, so
it acts on real and imaginary parts separately, as Eq. 14 says. This is half the work of the
textbook FFT of the odd extension of length 2N, and needs no concatenated copy.
"""

from __future__ import annotations

import functools
import math

import torch

from .fft import complex_dtype


@functools.lru_cache(maxsize=32)
def _twiddles(n: int, device, ctype, scale: float = 1.0):
    """(a, b) with y_k = a_k V_{N-1-k} + b_k V_{(k+1) mod N}: the DST-II read off the FFT V of
    the folded data (a_k = w_{N-1-k} / 2, b_k = conj(a_k), w_k = exp(-i pi k / 2N)), and
    conj(w) for the inverse; a and b times ``scale``, conj(w) divided by it. Cached: the prox
    runs every backtracking try."""
    k = torch.arange(n, device=device, dtype=torch.float64)
    w = torch.polar(torch.ones_like(k), -math.pi * k / (2 * n))
    a = (0.5 * scale * w.flip(0)).to(ctype)
    return a, a.conj(), (w.conj() / scale).to(ctype)


def _dst_last(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """DST-II along the last axis of a complex array (any strides), contiguous output, times
    ``scale``."""
    n = x.shape[-1]
    half = (n + 1) // 2
    # Makhoul's fold of (-1)^n x: even samples, then the odd ones reversed and negated.
    v = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    v[..., :half] = x[..., 0::2]
    v[..., half:] = x[..., 1::2].flip(-1)
    v[..., half:].neg_()
    spectrum = torch.fft.fft(v, dim=-1)
    a, b, _ = _twiddles(n, x.device, x.dtype, scale)
    y = spectrum.flip(-1)
    y.mul_(a)
    y[..., :-1].add_(spectrum[..., 1:] * b[:-1])
    y[..., -1:].add_(spectrum[..., :1] * b[-1:])
    return y


def _idst_last(y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The inverse of _dst_last (of the same ``scale``), along the last axis."""
    n = y.shape[-1]
    half = (n + 1) // 2
    _, _, w_conj = _twiddles(n, y.device, y.dtype, scale)
    # V_k = conj(w_k) (y_{N-1-k} - i y_{k-1}), with y_{-1} = 0.
    spectrum = y.flip(-1)
    spectrum[..., 1:].sub_(1j * y[..., :-1])
    spectrum.mul_(w_conj)
    v = torch.fft.ifft(spectrum, dim=-1)
    x = torch.empty(y.shape, dtype=y.dtype, device=y.device)
    x[..., 0::2] = v[..., :half]
    x[..., 1::2] = v[..., half:].flip(-1)
    x[..., 1::2].neg_()
    return x


def dst2(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """y_k = sum_n x_n sin(pi (k+1)(2n+1) / (2N)) along ``dim`` (unnormalised DST-II)."""
    y = _dst_last(x.to(complex_dtype(x.dtype)).movedim(dim, -1)).movedim(-1, dim)
    return y if x.is_complex() else y.real


def idst2(y: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The exact inverse of dst2 along ``dim``."""
    x = _idst_last(y.to(complex_dtype(y.dtype)).movedim(dim, -1)).movedim(-1, dim)
    return x if y.is_complex() else x.real


def dst2d(x: torch.Tensor) -> torch.Tensor:
    """DST-II over the last two axes, 2 dst2 per axis (scipy's scale: 4 dst2 dst2), with the
    coefficients transposed (..., W, H): they are only ever divided and fed back to idst2d.

    Torch's version stores them (W, H) in memory: its second transform then runs along
    contiguous memory (an FFT along a strided axis is twice as slow). On the CPU (without
    autograd) scipy's DST-II runs instead, on the complex array's real view (..., H, W, 2),
    its output a transposed view: pocketfft's real-to-real transform folds, transforms and
    twiddles inside its own buffers (15 x 640 x 368 complex64, one thread: 36 ms; its
    complex input, split into two real arrays, 51 ms; torch's passes 91 ms). Scipy's scale
    needs no pass over the coefficients; torch's twiddles carry it."""
    x = x.to(complex_dtype(x.dtype))
    if _scipy_applies(x):
        return _scipy_dst2d(x, inverse=False).transpose(-1, -2)
    y = _dst_last(x, 2.0)
    return _dst_last(y.transpose(-1, -2), 2.0)


def idst2d(coefficients: torch.Tensor) -> torch.Tensor:
    """The inverse of dst2d: coefficients (..., W, H) -> (..., H, W)."""
    if _scipy_applies(coefficients):
        return _scipy_dst2d(coefficients.transpose(-1, -2), inverse=True)
    return _idst_last(_idst_last(coefficients, 2.0).transpose(-1, -2), 2.0)


def _scipy_applies(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in (torch.complex64, torch.complex128)
            and not (torch.is_grad_enabled() and x.requires_grad))


def _scipy_dst2d(x: torch.Tensor, inverse: bool) -> torch.Tensor:
    """scipy's (i)dstn of type II over the last two axes of a complex CPU tensor (..., H, W),
    on its real view, with torch's thread count; a new contiguous tensor."""
    import scipy.fft

    transform = scipy.fft.idstn if inverse else scipy.fft.dstn
    pairs = torch.view_as_real(x.detach().resolve_conj()).numpy()
    out = transform(pairs, type=2, axes=(-3, -2), workers=torch.get_num_threads())
    return torch.view_as_complex(torch.from_numpy(out))


def laplacian_eigenvalues(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    k = torch.arange(1, n + 1, device=device, dtype=dtype)
    return 2 - 2 * torch.cos(math.pi * k / n)


@functools.lru_cache(maxsize=16)
def smoothness_eigenvalues(height: int, width: int, device, dtype,
                           height_major: bool = False) -> torch.Tensor:
    """xi_kl of D^T D in the basis of dst2d, in its transposed layout (W, H); stored (H, W)
    in memory (a transposed view) for ``height_major``."""
    xi = (laplacian_eigenvalues(width, device, dtype)[:, None]
          + laplacian_eigenvalues(height, device, dtype)[None, :])
    return xi.t().contiguous().t() if height_major else xi


def prox_factor(coefficients: torch.Tensor, weight) -> torch.Tensor:
    """(I + weight D^T D)^-1 on dst2d coefficients (..., W, H): a factor in their complex
    dtype (complex x real takes a slow path on the CPU) and their memory order (a factor
    read across its rows doubles the multiply's time). ``weight``: a number or a real
    tensor broadcastable to the batch axes."""
    width, height = coefficients.shape[-2:]
    height_major = coefficients.stride(-2) < coefficients.stride(-1)
    xi = smoothness_eigenvalues(height, width, coefficients.device, coefficients.real.dtype,
                                height_major)
    return (1 / (1 + weight * xi)).to(coefficients.dtype)


def prox_in_dst_basis(coefficients: torch.Tensor, weight) -> torch.Tensor:
    """The smoothness prox on dst2d coefficients (..., W, H): a division there."""
    return coefficients * prox_factor(coefficients, weight)


def smoothness_prox(maps: torch.Tensor, weight) -> torch.Tensor:
    """argmin_x 1/2 ||x - maps||^2 + weight F(x) over the last two axes, F = 1/2 <x, L x>.

    Solves (I + weight L) x = maps exactly in the DST-II basis. ``weight`` is a number or a
    tensor broadcastable to the leading (batch) axes, e.g. mu / L_c per slice.
    """
    x = idst2d(prox_in_dst_basis(dst2d(maps), weight))
    return x if maps.is_complex() else x.real


def smoothness_energy(maps: torch.Tensor) -> torch.Tensor:
    """F(maps) = 1/2 <maps, L maps> = 1/2 ||D maps||^2 over the last two axes, one value per
    batch element (first axis; a scalar for one 2D array). The differences D x include the
    boundary's, with x_{-1} = -x_0 and x_N = -x_{N-1}: |2 x_0|^2 / 2 and |2 x_{N-1}|^2 / 2
    at the ends (the boundary half a sample out). Computed on real views with BLAS norms:
    iPALM reports it every iteration, and the complex version's passes took 45 ms at
    15 x 640 x 368."""
    x = torch.view_as_real(maps) if maps.is_complex() else maps.unsqueeze(-1)  # (..., H, W, 2)
    lead = maps.shape[0] if maps.dim() >= 3 else 1
    interior = (_sum_squares(x[..., 1:, :] - x[..., :-1, :], lead)
                + _sum_squares(x[..., 1:, :, :] - x[..., :-1, :, :], lead))
    ends = (_sum_squares(x[..., ::x.shape[-2] - 1 or 1, :], lead)
            + _sum_squares(x[..., ::x.shape[-3] - 1 or 1, :, :], lead))
    if x.shape[-2] == 1:  # one column: its two ends are the same sample
        ends = ends + _sum_squares(x, lead)
    if x.shape[-3] == 1:
        ends = ends + _sum_squares(x, lead)
    total = 0.5 * (interior + 2 * ends)
    return total if maps.dim() >= 3 else total[0]


def _sum_squares(x: torch.Tensor, lead: int) -> torch.Tensor:
    return torch.linalg.vector_norm(x.reshape(lead, -1), dim=1).square()
