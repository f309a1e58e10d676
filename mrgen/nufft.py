"""The non-uniform FFT: mrgen's Fourier convention at off-grid k-space coordinates.

For an image x (H, W) and coordinates k = (k_H, k_W) in cycles per FOV
(``mrgen.trajectory`` states the convention),

    (A x)(k) = 1/sqrt(H W) sum_{i, j} x[i, j] exp(-2 pi i (k_H (i - H//2)/H + k_W (j - W//2)/W)),

which at integer k equals ``mrgen.fft.fft2c`` (centred, orthonormal), and A^H is its exact
adjoint (the type-1 transform with the opposite sign). ``direct_nudft`` evaluates the sum as
written (the reference for tests and benchmarks).

Backend: FINUFFT on the CPU and cuFINUFFT on CUDA (the same algorithm: exponential-of-
semicircle kernel, 2x oversampled grid), chosen by ``benchmarks/bench_nufft.py`` against
torchkbnufft, sigpy and ``bart nufft``: the most accurate at its default tolerance (float32
at 1e-6: about 1e-6 relative error against the direct sum, where sigpy's and torchkbnufft's
defaults give about 1e-3 and 1e-2) and the fastest on the CPU. Type 1 and type 2 share one
kernel and grid, so A^H is the adjoint of A to rounding, not only to the tolerance.

Autograd: ``Nufft.forward`` and ``Nufft.adjoint`` are differentiable (each one's backward is
the other), so energies built on them (Langevin's data term) take gradients by autograd.
"""

from __future__ import annotations

import importlib.util
import math

import torch

EPS = 1e-6              # FINUFFT's tolerance: kernel width 7 at 2x oversampling in float32
UPSAMPLING = 2.0        # the oversampled grid; fixed so that type 1 and 2 use the same kernel


class Nufft:
    """A and A^H for one trajectory and image grid, batched over leading axes.

    ``coords`` (..., 2) float32 (k_H, k_W) in cycles per FOV (any leading shape, e.g.
    (shots, samples)); ``grid`` (H, W). ``forward`` maps images (..., H, W) to samples
    (..., *coords.shape[:-1]); ``adjoint`` the reverse. Plans are made on first use per batch
    size and kept (FINUFFT sorts the points once per plan).
    """

    def __init__(self, coords: torch.Tensor, grid: tuple[int, int], eps: float = EPS):
        coords = torch.as_tensor(coords, dtype=torch.float32)
        self.sample_shape = tuple(coords.shape[:-1])
        self.grid = (int(grid[0]), int(grid[1]))
        self.device = coords.device
        # radians per sample for FINUFFT: x = 2 pi k / N, in [-pi, pi) on the grid's band
        scale = torch.tensor([2 * math.pi / self.grid[0], 2 * math.pi / self.grid[1]],
                             device=coords.device)
        self.points = (coords.reshape(-1, 2) * scale).T.contiguous()       # (2, M)
        self.eps = eps
        self.norm = 1.0 / math.sqrt(self.grid[0] * self.grid[1])
        self._plans: dict = {}
        self._toeplitz = None
        self.cache: dict = {}      # what is derived from the trajectory (density weights)

    @property
    def count(self) -> int:
        return self.points.shape[1]

    @property
    def coords(self) -> torch.Tensor:
        """The coordinates (*sample_shape, 2) in cycles per FOV, as given."""
        scale = torch.tensor(self.grid, dtype=torch.float32, device=self.device) / (2 * math.pi)
        return (self.points.T * scale).reshape(*self.sample_shape, 2)

    def to(self, device) -> "Nufft":
        device = torch.device(device)
        if device == self.device:
            return self
        return Nufft(self.coords.to(device), self.grid, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Samples (..., *sample_shape) of images (..., H, W)."""
        return _Linear.apply(x, self._apply_forward, self._apply_adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Images (..., H, W) from samples (..., *sample_shape)."""
        return _Linear.apply(y, self._apply_adjoint, self._apply_forward)

    def toeplitz_kernel(self) -> torch.Tensor:
        """K (2H, 2W) with A^H A x = crop(ifft2c(K fft2c(pad(x)))) (``linops.nufft``).

        A^H A is the convolution with h(d) = 1/(H W) sum_m exp(2 pi i k_m . d / N) for
        offsets |d| < N; h on the doubled grid is A^H of ones with 2H x 2W modes, and the
        linear convolution of an image padded to that grid is exact (no wrap-around). The
        factor sqrt(4 H W) turns the orthonormal fft2c's product into a convolution.
        """
        if self._toeplitz is None:
            from .fft import fft2c

            big = (2 * self.grid[0], 2 * self.grid[1])
            ones = torch.ones((1, self.count), dtype=torch.complex64, device=self.device)
            psf = self._transform(1, ones, big) * self.norm ** 2
            self._toeplitz = fft2c(psf[0]) * math.sqrt(big[0] * big[1])
        return self._toeplitz

    # ----------------------------------------------------------------------------------
    def _apply_forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        flat = x.reshape(-1, *self.grid).to(torch.complex64)
        y = self._transform(2, flat, self.grid) * self.norm
        return y.reshape(*lead, *self.sample_shape)

    def _apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:y.ndim - len(self.sample_shape)]
        flat = y.reshape(-1, self.count).to(torch.complex64)
        x = self._transform(1, flat, self.grid) * self.norm
        return x.reshape(*lead, *self.grid)

    def _transform(self, kind: int, data: torch.Tensor, modes) -> torch.Tensor:
        """FINUFFT type ``kind`` (2: grid -> points, sign -; 1: points -> grid, sign +) on
        a batch (B, ...) of contiguous complex64 data, on the data's device."""
        data = data.contiguous()
        batch = data.shape[0]
        plan = self._plan(kind, batch, tuple(modes), data.device)
        if data.device.type == "cuda":
            return plan.execute(data).reshape(batch, *(modes if kind == 1 else (self.count,)))
        out = plan.execute(data.detach().cpu().numpy())
        shape = (batch, *modes) if kind == 1 else (batch, self.count)
        return torch.from_numpy(out.reshape(shape))

    def _plan(self, kind, batch, modes, device):
        key = (kind, batch, modes, str(device))
        if key not in self._plans:
            self._plans[key] = _make_plan(kind, batch, modes, self.points, self.eps, device)
        return self._plans[key]


def cuda_backend_problem() -> str | None:
    """Why the NUFFT cannot run on CUDA here, or None: cufinufft not installed, or installed
    without the CUDA libraries it was built against (its PyPI wheels load CUDA 12's
    libcudart.so.12 and libcufft.so.11, which a CUDA 13 build of torch does not bring: seen
    on an H200 with torch 2.11 and CUDA 13)."""
    if importlib.util.find_spec("cufinufft") is None:
        return "cufinufft is not installed (pip install cufinufft)"
    try:
        import cufinufft  # noqa: F401
    except (ImportError, OSError) as error:
        return (f"cufinufft is installed but does not load ({error}): its wheels are linked "
                "against CUDA 12 (libcudart.so.12, libcufft.so.11), which a CUDA 12 build of "
                "torch brings")
    return None


def _cufinufft():
    """The cufinufft module, or a RuntimeFailure saying why it cannot be had."""
    problem = cuda_backend_problem()
    if problem is not None:
        from .errors import RuntimeFailure

        raise RuntimeFailure(f"the NUFFT on CUDA: {problem}; or use --device cpu")
    import cufinufft

    return cufinufft


def _make_plan(kind, batch, modes, points, eps, device):
    isign = -1 if kind == 2 else 1
    if device.type == "cuda":
        cufinufft = _cufinufft()
        plan = cufinufft.Plan(kind, modes, n_trans=batch, eps=eps, isign=isign,
                              dtype="complex64", upsampfac=UPSAMPLING)
        plan.setpts(points[0].contiguous(), points[1].contiguous())
        return plan
    import finufft

    plan = finufft.Plan(kind, modes, n_trans=batch, eps=eps, isign=isign, dtype="complex64",
                        upsampfac=UPSAMPLING, nthreads=torch.get_num_threads())
    numpy_points = points.cpu().numpy()
    plan.setpts(numpy_points[0].copy(), numpy_points[1].copy())
    return plan


class _Linear(torch.autograd.Function):
    """y = apply(x) for a linear map (A or A^H); the gradient of a real loss goes back through
    its adjoint ``transpose``."""

    @staticmethod
    def forward(ctx, x, apply, transpose):
        ctx.transpose = transpose
        return apply(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.transpose(grad), None, None


def direct_nudft(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The defining sum (module doc) in float64: images (..., H, W), coords (..., 2) ->
    samples (..., *coords.shape[:-1]) complex128. O(M H W): for small checks only."""
    height, width = x.shape[-2:]
    k = torch.as_tensor(coords, dtype=torch.float64).reshape(-1, 2)
    rows = torch.arange(height, dtype=torch.float64) - height // 2
    cols = torch.arange(width, dtype=torch.float64) - width // 2
    e_rows = torch.exp(-2j * math.pi * k[:, :1] * rows / height)          # (M, H)
    e_cols = torch.exp(-2j * math.pi * k[:, 1:] * cols / width)           # (M, W)
    image = x.to(torch.complex128).reshape(-1, height, width)
    y = torch.einsum("bij,mi,mj->bm", image, e_rows, e_cols) / math.sqrt(height * width)
    return y.reshape(*x.shape[:-2], *coords.shape[:-1])
