"""ESPIRiT coil sensitivity maps (Uecker et al., MRM 71:990, 2014), batched over slices.

For k-space (..., C, H, W), the steps and the choices made:

1. Calibration block: the largest centred fully-sampled block, at most 24x24 by default as
   BART's ``ecalib -r 24`` (``find_calibration``); ``calib=`` forces a size. The block is
   centred as fastMRI centres its ACS lines: the k-space centre H//2 is its row h//2.
2. Calibration matrix: all K x K windows of the block (a Hankel, "im2row" matrix, one row
   per window, n = C*K*K columns). Its signal subspace: spanned by the singular vectors
   whose squared singular value exceeds ``threshold`` times the largest. BART's convention
   (``ecalib -t 0.001`` keeps sigma_i / sigma_0 > sqrt(0.001)); sigpy's ``thresh`` compares
   sigma itself, so sigpy ``thresh=t`` is ``threshold=t**2`` here. The SVD runs in float64.
3. ESPIRiT operator: with P the projector onto that subspace, W = 1/K^2 sum_r R_r^H P R_r
   (R_r extracts window r) acts in image space as a C x C Hermitian matrix per pixel,
   G(x) = 1/K^2 sum_d g(d) exp(-2 pi i d.x), g(d) = sum over tap pairs (t, t + d) of P.
   G is a trigonometric polynomial of degree K - 1, so it is evaluated exactly, on any grid,
   by a small DFT of g (BART does the same on a 2K grid and sinc-interpolates).
4. Maps: eigenvectors of G(x) with eigenvalue near 1. They are smooth (G varies on the scale
   of FOV / (2K - 1)), so the per-pixel eigen-decomposition runs on a grid ``factor`` times
   coarser per axis (default 4, less on small images: at least 8K grid points, see
   ``default_factor``), whose cells are centred on blocks of image pixels, and the
   phase-normalised maps and eigenvalues are interpolated back by cubic convolution (Keys,
   a = -1/2; two extra cells past each edge make it periodic, as G is); each pixel is then
   renormalised to unit norm. ``factor=1`` is the exact per-pixel computation, as BART's; the
   default agrees with it to |correlation| > 0.99999 on knee-sized data at a tenth of the time.
   One set (the common case) comes from repeated squaring of G (64 power iterations for the
   price of 5 small batched matrix products) and a Rayleigh quotient; two or more sets from
   ``torch.linalg.eigh``.
5. Phase: each set is rotated per pixel so that its projection onto a reference is real and
   positive: the first principal component of the calibration data (a virtual body coil,
   BART's default; ``phase_ref="virtual"``) or the first coil (``"first"``, as sigpy). Maps
   are then smooth wherever the reference is non-zero.
6. Crop: maps are zeroed where the eigenvalue is <= ``crop`` (BART ``-c``, default 0.8), or
   weighted smoothly with ``soft_crop`` (BART ``-S``): w = s((sqrt(lambda) - c) / (1 - c)),
   s(t) = (1 + 2t / (1 + t^2)) / 2 on [-1, 1], 0 below and 1 above.

Not ``sigpy.mri.app.EspiritCalib``: mrgen's runs on torch tensors (GPU too) and is faster, 0.13 s
against 28 s for 8 coils at 320 x 320 on 2 CPU cores, both agreeing with BART's maps to a median
|correlation| of 1.000000 (benchmarks/bench_espirit.py).
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch

from .errors import DataError, UsageError

DEFAULT_KERNEL = 6
DEFAULT_THRESHOLD = 0.001
DEFAULT_CROP = 0.8
DEFAULT_MAX_CALIB = 24
_SQUARINGS = 5          # power iteration with G^64 = (G^32)^2
CALIBRATION_ITERS = 20  # CG iterations of the inverse NUFFT of ``noncartesian_kspace``


@contextlib.contextmanager
def _one_thread(tensor: torch.Tensor):
    """Run small LAPACK calls on one CPU thread: a few hundred unknowns gain nothing from
    threads, and MKL's waiting threads slow them several-fold when the cores are busy."""
    if tensor.device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EspiritResult(NamedTuple):
    maps: torch.Tensor          # (..., sets, C, H, W) complex64
    eigenvalues: torch.Tensor   # (..., sets, H, W) float32
    calib: tuple[int, int]      # calibration block used (h, w)
    kernels: torch.Tensor       # (...,) number of signal-subspace kernels kept per slice


def pair(value, name: str) -> tuple[int, int]:
    """N -> (N, N); (H, W) stays; anything else is a UsageError naming ``name``."""
    if isinstance(value, int):
        return value, value
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected N or (H, W), got {value!r}") from None
    return h, w


def centred(size: int, length: int) -> slice:
    """Indices of a block of ``length`` around the k-space centre ``size // 2``.

    The centre is the block's index ``length // 2``: where fastMRI puts its centre lines.
    """
    start = size // 2 - length // 2
    return slice(start, start + length)


def calibration_region(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centred (h, w) block of k-space (..., C, H, W)."""
    height, width = kspace.shape[-2:]
    return kspace[..., centred(height, size[0]), centred(width, size[1])]


def sampled_pattern(kspace: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: points sampled in every slice (non-zero in at least one coil)."""
    nonzero = kspace.reshape(-1, *kspace.shape[-3:]) != 0
    return nonzero.any(dim=1).all(dim=0)


def find_calibration(pattern: torch.Tensor, max_size=None) -> tuple[int, int]:
    """Largest centred fully-sampled block (h, w) of a (H, W) pattern, each side <= max_size.

    Grows the block by a row and a column at a time (alternating, so a square calibration
    region stays square) while it stays fully sampled; (0, 0) if the centre is not sampled.
    """
    height, width = pattern.shape
    max_h, max_w = (height, width) if max_size is None else pair(max_size, "max_size")
    max_h, max_w = min(max_h, height), min(max_w, width)
    rows, cols = centred(height, max_h), centred(width, max_w)
    block = pattern[rows, cols].to("cpu", torch.int64)
    table = torch.zeros(max_h + 1, max_w + 1, dtype=torch.int64)
    table[1:, 1:] = block.cumsum(0).cumsum(1)
    table = table.tolist()

    def full(h, w):
        r, c = centred(max_h, h), centred(max_w, w)
        total = (table[r.stop][c.stop] - table[r.start][c.stop] - table[r.stop][c.start]
                 + table[r.start][c.start])
        return total == h * w

    if max_h == 0 or max_w == 0 or not full(1, 1):
        return 0, 0
    h = w = 1
    grow_h = grow_w = True
    while grow_h or grow_w:
        if grow_h:
            grow_h = h < max_h and full(h + 1, w)
            h += grow_h
        if grow_w:
            grow_w = w < max_w and full(h, w + 1)
            w += grow_w
    return h, w


def calibration_size(kspace: torch.Tensor, calib=None, kernel=DEFAULT_KERNEL,
                     max_calib=DEFAULT_MAX_CALIB) -> tuple[int, int]:
    """The calibration block for ``espirit``: ``calib`` checked, or found in the data."""
    kh, kw = pair(kernel, "--kernel")
    height, width = kspace.shape[-2:]
    if calib is None:
        h, w = find_calibration(_centre_pattern(kspace, max_calib), max_calib)
        if h < kh or w < kw:
            # --calib cannot help: a larger block would take in lines that were not sampled.
            fits = min(kh, h), min(kw, w)
            smaller = (f" or a kernel that fits (--kernel {fits[0]}x{fits[1]})"
                       if min(fits) >= 3 else "")
            raise DataError(
                f"k-space: the fully-sampled centre is {h}x{w}, smaller than the {kh}x{kw} "
                f"kernel (--kernel); sample more centre lines (mrgen mask --center){smaller}")
        return h, w
    h, w = pair(calib, "--calib")
    if h > height or w > width:
        raise UsageError(f"--calib {h}x{w}: larger than the k-space {height}x{width}")
    if h < kh or w < kw:
        raise UsageError(f"--calib {h}x{w}: smaller than the kernel {kh}x{kw} (--kernel)")
    return h, w


def _centre_pattern(kspace, max_calib):
    """The sampling pattern of the central block that ``find_calibration`` may use, placed
    in a zero (H, W) pattern (cheap: only that block of k-space is looked at)."""
    height, width = kspace.shape[-2:]
    max_h, max_w = (height, width) if max_calib is None else pair(max_calib, "max_calib")
    max_h, max_w = min(max_h, height), min(max_w, width)
    rows, cols = centred(height, max_h), centred(width, max_w)
    pattern = torch.zeros(height, width, dtype=torch.bool)
    pattern[rows, cols] = sampled_pattern(kspace[..., rows, cols]).cpu()
    return pattern


def unsampled_count(kspace: torch.Tensor, size: tuple[int, int]) -> int:
    """How many points of the centred calibration block are not sampled (zero in all coils)."""
    return int((~sampled_pattern(calibration_region(kspace, size))).sum())


def window_matrix(calib: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """The calibration matrix X (B, C*kh*kw, windows) complex128 of ``calib`` (B, C, h, w):
    one column per kh x kw window of all coils (coil axis outermost, then kernel rows,
    columns)."""
    kh, kw = kernel
    batch, coils = calib.shape[:2]
    windows = calib.to(torch.complex128).unfold(-2, kh, 1).unfold(-2, kw, 1)
    # (B, C, nh, nw, kh, kw) -> (B, n, r)
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(batch, coils * kh * kw, -1)


def signal_subspace(calib: torch.Tensor, kernel: tuple[int, int], threshold: float):
    """Basis of the calibration matrix's signal subspace.

    ``calib`` is (B, C, h, w). Returns V (B, n, k) complex128 with n = C*kh*kw, whose columns
    past each slice's own count are zero, and the counts (B,). Windows are the vectors
    x_r = (y_c(r + t))_{c, t} with the coil axis outermost, then the kernel rows, columns.
    """
    windows = window_matrix(calib, kernel)
    n, count = windows.shape[1:]
    gram = windows.mH @ windows if count < n else windows @ windows.mH
    with _one_thread(gram):     # the smaller Gram matrix; for X^H X, u = X v / sigma
        values, vectors = torch.linalg.eigh(gram)
    values = values.flip(-1).clamp_min(0)                       # sigma^2, descending
    vectors = vectors.flip(-1)
    top = values[:, :1]
    keep = (values > threshold * top) & (top > 0)               # BART: s_i/s_0 > sqrt(t)
    kernels = keep.sum(dim=1)
    k = max(int(kernels.max()), 1)
    vectors, keep, values = vectors[..., :k], keep[:, :k], values[:, :k]
    if count < n:
        vectors = (windows @ vectors) / values.sqrt().clamp_min(1e-300).unsqueeze(1)
    vectors = vectors * keep.unsqueeze(1)
    return vectors, kernels


def kernel_correlation(basis: torch.Tensor, coils: int, kernel: tuple[int, int]):
    """g(d) (B, C, C, 2kh-1, 2kw-1) = sum over taps t of P[(c, t), (c', t + d)], P = V V^H."""
    kh, kw = kernel
    batch = basis.shape[0]
    projector = basis @ basis.mH
    p = projector.reshape(batch, coils, kh, kw, coils, kh, kw).permute(0, 1, 4, 2, 3, 5, 6)
    g = projector.new_zeros(batch, coils, coils, 2 * kh - 1, 2 * kw - 1)
    for ty in range(kh):
        for tx in range(kw):
            g[..., kh - 1 - ty:2 * kh - 1 - ty, kw - 1 - tx:2 * kw - 1 - tx] += p[:, :, :, ty, tx]
    return g


def _dft(positions: torch.Tensor, size: int, taps: int) -> torch.Tensor:
    """(len(positions), 2 taps - 1): exp(-2 pi i d (x - size//2) / size), d = -(taps-1)..taps-1.

    ``positions`` are image pixel coordinates x, fractional or outside [0, size) as needed
    (G is periodic, so points past the edge are the wrapped ones).
    """
    d = torch.arange(-(taps - 1), taps, dtype=torch.float64, device=positions.device)
    return torch.exp(-2j * math.pi * torch.outer(positions - size // 2, d) / size)


def operator_at(g: torch.Tensor, kernel: tuple[int, int], size: tuple[int, int],
                rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """G(x) (B, len(rows), len(cols), C, C) complex64 at image pixel coordinates rows x cols.

    At the integer coordinates 0..H-1, 0..W-1 this equals sqrt(H W) / K^2 * fft2c(g
    zero-padded to (H, W)) over the last two axes: the convention of ``mrgen.fft``.
    """
    kh, kw = kernel
    fr = _dft(rows, size[0], kh).to(torch.complex64)
    fc = _dft(cols, size[1], kw).to(torch.complex64)
    g = g.to(torch.complex64) / (kh * kw)
    op = torch.matmul(fr, torch.matmul(g, fc.T))                  # (B, C, C, gh, gw)
    return op.permute(0, 3, 4, 1, 2).contiguous()


def dominant_eigenpair(op: torch.Tensor):
    """Largest eigenvalue (..., 1) and unit eigenvector (..., C, 1) of Hermitian PSD (..., C, C).

    Power iteration by repeated squaring: A <- A^2 / tr(A)^2 five times gives G^32 up to
    scale, nearly rank one; its column with the largest diagonal entry, multiplied by it once
    more, is G^64 e_j: 64 power iterations (BART's ecalib runs 30), which damp the next
    eigenvector by (l2/l1)^64. The eigenvalue is the Rayleigh quotient. Five small batched
    matrix products cost a fraction of a batched eigh and give the same vectors wherever
    l2 < l1 (where l2 = l1 any vector of the pair is an answer).
    """
    a = op
    for _ in range(_SQUARINGS):
        trace = torch.diagonal(torch.view_as_real(a), dim1=-3, dim2=-2)[..., 0, :].sum(-1)
        a = a @ a
        scale = 1 / trace.clamp_min(1e-30).square()
        torch.view_as_real(a).mul_(scale[..., None, None, None])
    diagonal = torch.diagonal(torch.view_as_real(a), dim1=-3, dim2=-2)[..., 0, :]
    best = diagonal.argmax(-1)                                   # the largest column of a PSD

    index = best[..., None, None].expand(*a.shape[:-1], 1)
    vector = a @ torch.gather(a, -1, index)                      # (..., C, 1)
    vector = vector / torch.linalg.vector_norm(vector, dim=-2, keepdim=True).clamp_min(1e-30)
    value = (vector.mH @ (op @ vector))[..., 0, 0].real
    return value.unsqueeze(-1), vector


def _scurve(t: torch.Tensor) -> torch.Tensor:
    inside = 0.5 * (1 + 2 * t / (1 + t * t))
    return torch.where(t <= -1, torch.zeros_like(t),
                       torch.where(t >= 1, torch.ones_like(t), inside))


def default_factor(shape: tuple[int, int], kernel: tuple[int, int]) -> tuple[int, int]:
    """Grid reduction per axis: 4, less where that would leave fewer than 8 K grid points."""
    return tuple(max(1, min(4, n // (8 * k))) for n, k in zip(shape, kernel))


def _grid_positions(size: int, factor: int, device) -> torch.Tensor:
    """Pixel coordinates of a grid ``factor`` times coarser than ``size``, 2 cells beyond each
    edge: cell i covers pixels factor*(i-2) .. factor*(i-2) + factor - 1 (its centre)."""
    if factor == 1:
        return torch.arange(size, dtype=torch.float64, device=device)
    cells = -(-size // factor) + 4
    return (torch.arange(cells, dtype=torch.float64, device=device) - 2) * factor \
        + (factor - 1) / 2


def _to_image_grid(planes: torch.Tensor, size: tuple[int, int], factor: tuple[int, int]):
    """Bicubic interpolation of real (N, P, gh, gw) grid planes to (N, P, H, W).

    With the cell-centred grid of ``_grid_positions``, torch's bicubic interpolation by an
    integer factor (align_corners=False) puts output pixel j at cell (j + 2 f + 1/2)/f - 1/2,
    i.e. exactly at image pixel j; the 2 extra cells make the wrap-around periodic.
    """
    fh, fw = factor
    if (fh, fw) == (1, 1):
        return planes
    gh, gw = planes.shape[-2:]
    # antialias=True selects torch's separable kernel (Keys a = -1/2, third-order accurate);
    # when upsampling it is plain cubic convolution, and 2-3x faster than the 4x4 one.
    out = torch.nn.functional.interpolate(planes, size=(gh * fh, gw * fw), mode="bicubic",
                                          align_corners=False, antialias=True)
    top, left = (2 * fh if fh > 1 else 0), (2 * fw if fw > 1 else 0)
    return out[..., top:top + size[0], left:left + size[1]]


def principal_component(calib: torch.Tensor) -> torch.Tensor:
    """(B, C) unit vectors: the dominant coil combination of calibration data (B, C, h, w)."""
    data = calib.reshape(*calib.shape[:2], -1).to(torch.complex128)
    gram = data @ data.mH
    with _one_thread(gram):
        _, vectors = torch.linalg.eigh(gram)
    return vectors[..., -1]


def espirit(kspace: torch.Tensor, calib=None, kernel=DEFAULT_KERNEL,
            threshold: float = DEFAULT_THRESHOLD, crop: float = DEFAULT_CROP,
            soft_crop: bool = False, sets: int = 1, phase_ref: str = "virtual",
            factor=None, max_calib=DEFAULT_MAX_CALIB) -> EspiritResult:
    """ESPIRiT maps and eigenvalues from k-space (..., C, H, W); see the module notes.

    ``calib`` (None, N or (h, w)) forces the calibration block; without it the largest
    centred fully-sampled block with sides up to ``max_calib`` is found (one block for all
    slices). ``factor`` (N or (fh, fw)) is how much coarser than the image the
    eigen-decomposition grid is (default ``default_factor``; 1 = exact, per pixel). Returns
    maps (..., sets, C, H, W) complex64, eigenvalues (..., sets, H, W) float32, the block and
    the kernel counts, on the device of ``kspace``.
    """
    if kspace.ndim < 3 or not kspace.is_complex():
        raise DataError(f"k-space: expected complex (..., coils, H, W), got shape "
                        f"{tuple(kspace.shape)} {kspace.dtype}")
    kernel = pair(kernel, "--kernel")
    lead = kspace.shape[:-3]
    coils, height, width = kspace.shape[-3:]
    if min(kernel) < 1:
        raise UsageError(f"--kernel {kernel[0]}x{kernel[1]}: must be at least 1")
    if not 1 <= sets <= coils:
        raise UsageError(f"--sets {sets}: must be between 1 and the number of coils ({coils})")
    if phase_ref not in ("virtual", "first"):
        raise UsageError(f"--phase-ref {phase_ref}: expected virtual or first")
    if not 0 <= threshold < 1:
        raise UsageError(f"--threshold {threshold}: must be in [0, 1)")
    if not 0 <= crop < 1:
        raise UsageError(f"--eigen-crop {crop}: must be in [0, 1)")
    size = calibration_size(kspace, calib, kernel, max_calib)
    factor = default_factor((height, width), kernel) if factor is None else \
        pair(factor, "factor")
    if min(factor) < 1:
        raise UsageError(f"factor {factor}: must be at least 1")

    flat = kspace.reshape(-1, coils, height, width)
    calib_data = calibration_region(flat, size)
    basis, kernels = signal_subspace(calib_data, kernel, threshold)
    if bool((kernels == 0).any()):
        raise DataError(f"k-space: the {size[0]}x{size[1]} calibration region is all zero "
                        "(no signal); check the data or --calib")
    g = kernel_correlation(basis, coils, kernel)
    rows = _grid_positions(height, factor[0], kspace.device)
    cols = _grid_positions(width, factor[1], kspace.device)
    op = operator_at(g, kernel, (height, width), rows, cols)     # (B, gh, gw, C, C)
    del g, basis
    if sets == 1:
        values, vectors = dominant_eigenpair(op)                 # (B, gh, gw, 1), (.., C, 1)
    else:
        values, vectors = torch.linalg.eigh(op)
        values, vectors = values[..., -sets:].flip(-1), vectors[..., -sets:].flip(-1)
    del op
    vectors = vectors.permute(0, 4, 3, 1, 2)                     # (B, sets, C, gh, gw)
    values = values.permute(0, 3, 1, 2).float()                  # (B, sets, gh, gw)

    if phase_ref == "virtual":
        ref = principal_component(calib_data).to(vectors.dtype)  # (B, C)
        proj = torch.einsum("bc,bschw->bshw", ref.conj(), vectors)
    else:
        proj = vectors[:, :, 0]
    magnitude = proj.abs()
    phase = torch.where(magnitude > 0, proj.conj() / magnitude.clamp_min(1e-30),
                        torch.ones_like(proj))
    vectors = vectors * phase.unsqueeze(2)

    # Real planes (re of C coils, im of C coils, eigenvalue), interpolated in one call.
    batch = vectors.shape[0] * sets
    planes = torch.cat([vectors.real, vectors.imag, values.unsqueeze(2)], dim=2)
    planes = _to_image_grid(planes.reshape(batch, 2 * coils + 1, *planes.shape[-2:]),
                            (height, width), factor)
    real, imag, values = planes[:, :coils], planes[:, coils:2 * coils], planes[:, 2 * coils]
    norm = (real.square().sum(1) + imag.square().sum(1)).sqrt()
    if soft_crop:
        weight = _scurve((values.clamp_min(0).sqrt() - crop) / (1 - crop))
    else:
        weight = (values > crop).to(values.dtype)
    scale = torch.where(norm > 1e-6, weight / norm.clamp_min(1e-6),
                        torch.zeros_like(norm)).unsqueeze(1)
    maps = torch.complex(real * scale, imag * scale)
    return EspiritResult(maps.reshape(*lead, sets, coils, height, width),
                         values.contiguous().reshape(*lead, sets, height, width), size,
                         kernels.reshape(lead))


def noncartesian_kspace(samples: torch.Tensor, nufft, iters: int = CALIBRATION_ITERS,
                        tol: float = 1e-5) -> torch.Tensor:
    """Cartesian k-space (..., C, H, W) of non-Cartesian samples (..., C, *sample_shape) at the
    points of ``nufft`` (``mrgen.nufft.Nufft``), for the calibration block: ``fft2c`` of each
    coil's least-squares image argmin ||A x - y|| by conjugate gradient from zero (the normal
    operator by Toeplitz embedding), as ``bart nufft -i`` before ``bart ecalib``.

    Not the gridding A^H (w y): its density-weighted sums are quadratures, ~7% off the true
    centre block on 64 golden spokes at 256 x 256, and the inconsistency keeps ESPIRiT's
    eigenvalues near 1 over the whole field of view (no crop: CG-SENSE 0.8 dB lower); 20 CG
    iterations give the block to 0.4% and BART's maps (``tests/test_radial.py``)."""
    from .cg import conjugate_gradient
    from .fft import fft2c
    from .linops import NufftOp

    op = NufftOp(nufft)
    with torch.no_grad():
        image = conjugate_gradient(op.normal, op.adjoint(samples), iters=iters, tol=tol)
    return fft2c(image)


def espirit_maps(kspace: torch.Tensor, **options) -> torch.Tensor:
    """The first set of ESPIRiT maps, (..., C, H, W): the usual input of a SENSE model."""
    return espirit(kspace, sets=1, **options).maps[..., 0, :, :, :]
