"""Joint reconstruction of image and coil maps by iPALM (Zach, Knoll, Pock 2023, Algorithms 1 and 2).

Minimises H(u, c) + delta_{u >= 0}(u) + mu F(c) over a real, non-negative image u and coil
maps c (Eq. 10), where, as in the authors' code,

    H(u, c) = lam/2 * sum_c ||M F(u * c / |c|) - z_c||^2 + R(u)

(lam weights the data term; the paper writes it on R — the two differ by a scale of H) and F is
the Dirichlet smoothness of the maps (Eq. 12), whose prox is exact in the DST-II basis (Eq. 14;
mrgen.dst says where the boundary sits). The division by the coil-wise root-sum-of-squares |c|
(Eq. 9, 11) makes the maps implicitly normalised. Each block takes a proximal gradient step
whose Lipschitz constant is found by backtracking (Algorithm 2), with inertia k/(k+3)
(Algorithm 1).

Details from the authors' code: L_u = L_c = 1 at the start; each failed backtracking try
doubles L for the slices that fail (the paper repeats until the test passes; the code stops
after 10 tries, which from L = 1 lets the first steps break the test and raise the energy, so
the default here is 40 tries, enough for any L that float32 can express); the sufficient-
decrease bound carries a 1.01 slack (``slack=1.0`` gives the paper's exact test); after each
iteration L /= 1.5, and L_c >= 0.5. Data are scaled by the maximum of the initial RSS image
(within the prior's crop) and the result is scaled back. Slices are independent problems solved
as one batch, each with its own Lipschitz constants.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .coils import rss
from .dst import dst2d, idst2d, prox_factor, smoothness_energy
from .errors import UsageError
from .fft import centring_signs, fft2c, ifft2c
from .linops import NufftSenseOp, SenseMapsOp, SenseOp
from .linops.fourier import varying_axes
from .linops.sense import coil_mask
from .priors.energy import energy_and_grad
from .resize import center_crop
from .trajectory import NO_JOINT_MAPS
from .zerofill import zero_filled_coils

_TINY = 1e-12


@dataclass
class IpalmOptions:
    lam: float | torch.Tensor = 1.0  # weight of the data term: a number or one per slice (B,)
    mu: float | torch.Tensor | None = 10.0  # weight of the map smoothness (number, or (B,));
    mu_per_lambda: float = 30.0      # None above: mu = mu_per_lambda x lam (``map_smoothness``)
    iters: int = 100
    estimate_maps: bool = True       # False: the maps stay as given (fixed-map mode)
    max_backtracks: int = 40         # the paper loops until success; the code stops at 10
    slack: float = 1.01
    shrink: float = 1.5
    min_lipschitz_maps: float = 0.5
    scale_crop: int | None = None    # normalise by the max of the initial RSS in this crop
    align_map_phase: bool = True     # given maps: absorb the image's phase (align_map_phase)
    anneal: Annealing | None = None  # a noise-conditional prior's levels, coarse to fine
    misfit: MisfitWeighting | None = None  # lam follows the noise the model sees


@dataclass(frozen=True)
class Annealing:
    """Coarse-to-fine iterations for a noise-conditional prior R_sigma = -log p_sigma (the
    score-matching energies of ``priors.local_energy``): the prior's level falls
    geometrically from ``start`` to its own over the first ``iters`` iterations, and the
    data weight with it (``annealed_lam``); the rest run at the prior's level and lam.

    Why: at its own small level the prior is nearly flat along smooth image changes (its
    denoiser keeps them), so where the data miss the low frequencies (single-coil sampling
    without the k-space centre) gradient steps barely move them; at a larger level the
    density is smoother and the step longer, and the smooth content is settled first. The
    same schedule as annealed Langevin dynamics (Song and Ermon 2019) and its MRI use with
    the measurement noise inflated by the level (Jalal et al. 2021), here for the MAP."""
    start: float
    iters: int

    def level(self, k: int, final: float) -> float:
        """The prior's level at iteration k (0-based)."""
        if k >= self.iters or self.start <= final:
            return final
        return self.start * (final / self.start) ** (k / self.iters)


@dataclass(frozen=True)
class MisfitWeighting:
    """A data weight from the noise that the model sees: lam = min(lam0, rule(s_fit)) with
    s_fit^2 = ||M F(c u) - z||^2 / m, the residual's power per sampled value, renewed every
    ``every`` iterations. ``rule`` is the one that gave lam0 from the measured noise std s
    (``priors.loading.NoiseRule``), so while the model fits the data to their noise (s_fit
    below s: about 0.8 s at the minimum) lam stays lam0, bit for bit.

    Why: ipalm's model has a real image and smooth maps. Data it cannot fit (an image phase
    that changes at tissue edges: ITK's complex BrainWeb slice) leave a misfit that acts as
    noise the rule does not see, and lam0 = 2 / s^2 then weighs it as signal: there the
    learned prior lost 5 dB to TV with a residual 2.4 s^2 per value (TV: 1.3), where
    the magnitude slices leave 0.75-0.8 s^2. Estimating the noise variance with the image
    (its joint MAP: sigma^2 = ||r||^2 / m), floored at the measured s^2, is the posterior's
    own answer to that."""
    rule: Callable[[torch.Tensor], torch.Tensor]   # noise std (B,) -> lam (B,)
    every: int = 10

    def lam(self, lam0: torch.Tensor, residual_power: torch.Tensor,
            samples: torch.Tensor) -> torch.Tensor:
        return torch.minimum(lam0, self.rule((residual_power / samples).sqrt()))


def annealed_lam(lam, level: float, final: float):
    """The data weight at prior level ``level``: lam = 2 / s^2 at ``final`` means noise of
    variance s^2; an image smoothed by N(0, level^2) instead of N(0, final^2) sees
    s^2 + level^2 - final^2 (the noise added in the image reaches k-space unchanged, the
    transform being orthonormal)."""
    return 1.0 / (1.0 / lam + (level * level - final * final) / 2)


@dataclass
class IpalmResult:
    image: torch.Tensor              # (B, H, W) real, non-negative, in the data's scale
    maps: torch.Tensor               # (B, C, H, W) normalised to unit root-sum-of-squares
    energies: torch.Tensor           # (iters, B): H(u, c) + mu F(c) after each iteration
    scale: torch.Tensor              # (B,) the normalisation applied to the data
    initial_residual: torch.Tensor   # (B,) sum_c ||F_M(c0 u0) - z||^2 of the normalised data
    lipschitz: dict = field(default_factory=dict)
    lam: float | torch.Tensor | None = None  # the data weight at the end (``MisfitWeighting``)


def _squared_norm(x: torch.Tensor) -> torch.Tensor:
    """||x||^2 per batch element (first axis), without abs() and its square root."""
    flat = torch.view_as_real(x) if x.is_complex() else x
    return torch.linalg.vector_norm(flat.flatten(1), dim=1).square()


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product per batch element: Re <a, b> summed over all but the first axis.
    Complex arrays as their real views: Re <a, b> is the real dot product of the (re, im)
    pairs, a third of the complex vecdot's time (15 coil maps at 640 x 368, one core: 9
    against 37 ms), with torch's cascaded sum as accurate. (BLAS's bmm took 2.5 ms but
    sums 7 M terms in plain float32.)"""
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    return (a * b).flatten(1).sum(1)


def _inner_into(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``_inner(a, b)``, computed in b's memory (b is overwritten): no new array."""
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
    return b.mul_(a).flatten(1).sum(1)


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def _as_complex(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A real factor in ``like``'s complex dtype: complex x real products take a slow
    mixed-type path in PyTorch on the CPU (three times complex x complex)."""
    return x.to(like.dtype)


class JointProblem:
    """The energy H(u, c) for a batch of slices, with its partial gradients.

    The data term goes through the two linear operators of the bilinear model M F(u c):
    ``image_operator`` (u -> M F(S u), maps fixed) and ``maps_operator`` (c -> M F(u c), image
    fixed), both self-tested in ``mrgen.linops``; ``data`` and ``fixed_maps_data`` go through
    them and stay differentiable for samplers that want autograd.

    The iteration's gradients and energies are written out instead (one forward and one
    adjoint each; autograd would keep the normalisation's intermediates alive and double the
    elementwise passes), on Cartesian data in the frame of ``_CoilFourier`` (bare FFTs, no
    adjoint mask), with the unit maps c/|c| computed once per accepted c and reused by the
    next image step. tests/test_ipalm.py checks them against autograd and the whole
    iteration against a plain implementation of Algorithms 1 and 2.
    """

    def __init__(self, kspace, mask, regulariser, lam, nufft=None):
        self.mask = _as_complex(mask, kspace)
        self.nufft = nufft     # non-Cartesian samples at its points: NUFFT for M F, no mask
        self.z = kspace if nufft is not None else kspace * self.mask.unsqueeze(-3)
        self.regulariser = regulariser
        self.set_lam(lam)
        self.fourier = None if nufft is not None else coil_fourier(self.z, mask)

    def set_lam(self, lam) -> None:
        """The data weight: a number, or one per slice (B,)."""
        self.lam = lam
        # lam on image-shaped arrays (B, H, W)
        self.image_lam = lam.view(-1, 1, 1) if isinstance(lam, torch.Tensor) else lam

    @staticmethod
    def normalise(c):
        """(c / |c|, 1 / |c|): the maps divided by their coil-wise root-sum-of-squares."""
        power = (c.real.square() + c.imag.square()).sum(dim=-3, keepdim=True)
        inverse = _as_complex(torch.rsqrt(power + _TINY), c)
        return c * inverse, inverse

    def image_operator(self, unit_maps) -> SenseOp:
        """u -> M F(u c/|c|) for fixed (normalised) maps, on real images."""
        if self.nufft is not None:
            return NufftSenseOp(unit_maps, self.nufft, real_image=True)
        return SenseOp(unit_maps, self.mask, real_image=True)

    def maps_operator(self, u) -> SenseMapsOp:
        """c/|c| -> M F(u c/|c|) for a fixed image."""
        if self.nufft is not None:
            raise UsageError(NO_JOINT_MAPS)
        return SenseMapsOp(u, self.mask, coils=self.z.shape[-3], dtype=self.z.dtype)

    def residual(self, u, unit_maps):
        return self.image_operator(unit_maps).forward(u) - self.z

    def data(self, u, c):
        return 0.5 * self.lam * _squared_norm(self.residual(u, self.normalise(c)[0]))

    def fixed_maps_data(self, c):
        """u -> the data term with the maps c held fixed (normalised once, for samplers)."""
        operator = self.image_operator(self.normalise(c)[0])
        return lambda u: 0.5 * self.lam * _squared_norm(operator.forward(u) - self.z)

    def prior(self, u):
        return self.regulariser(u)

    def energy(self, u, c, prior=None):
        with torch.no_grad():
            return self.data(u, c) + (self.prior(u) if prior is None else prior)

    # The iteration's own path (no autograd): ``unit`` below are the maps as ``unit_maps``
    # gives them, in the Fourier frame of ``_CoilFourier``.

    def unit_maps(self, c):
        """(c/|c|, 1/|c|) in the frame of the coil transform (times its checkerboard)."""
        inverse = self._inverse(c)
        return c * inverse, inverse

    def _inverse(self, c):
        """1/|c| in the frame, (B, 1, H, W) complex: c times it are the unit maps."""
        power = c.real.square().addcmul_(c.imag, c.imag).sum(dim=-3, keepdim=True)
        inverse = _as_complex(torch.rsqrt(power + _TINY), c)
        return inverse if self.fourier is None else self.fourier.to_frame(inverse)

    def image_energy(self, u, unit):
        """H(u, c) at the maps' ``unit_maps``."""
        with torch.no_grad():
            return 0.5 * self.lam * _squared_norm(self._image_residual(u, unit)) + self.prior(u)

    def grad_image(self, u, c, unit=None):
        """H(u, c) and grad_u H = lam Re sum_c conj(c/|c|) F^H M r + grad R(u).
        ``unit``: the maps' ``unit_maps`` when the caller has them."""
        prior, prior_grad = _prior_and_grad(self.regulariser, u)
        with torch.no_grad():
            unit = self.unit_maps(c)[0] if unit is None else unit
            residual = self._image_residual(u, unit)
            data = 0.5 * self.lam * _squared_norm(residual)
            if self.fourier is None:
                adjoint = self.image_operator(unit).adjoint(residual)
            else:  # S^H F^H M r; in the frame: Re sum_c conj(unit) F^-1 r
                adjoint = _inner_coils(unit, self.fourier.adjoint(residual))
            # lam on the image-sized adjoint: a pass over the coils cheaper
            data_grad = self.image_lam * adjoint
        return data + prior, data_grad + prior_grad

    def residual_power(self, u, unit):
        """||M F(c u) - z||^2 per slice (B,) at the maps' ``unit_maps``."""
        with torch.no_grad():
            return _squared_norm(self._image_residual(u, unit))

    def samples(self) -> torch.Tensor:
        """The measured values per slice (B,): sampled points times coils."""
        if self.nufft is not None:
            return torch.full((self.z.shape[0],), self.z[0].numel(), dtype=self.z.real.dtype,
                              device=self.z.device)
        return self.mask.real.flatten(1).sum(1) * self.z.shape[-3]

    def _image_residual(self, u, unit):
        if self.fourier is None:
            return self.image_operator(unit).forward(u).sub_(self.z)
        return self.fourier.residual(self.fourier.coil_images(unit, self._complex_image(u)))

    def maps_data(self, u, c):
        """(the data term at (u, c), the maps' 1/|c| in the frame): ``unit_maps`` are c times
        it, formed only for the try that backtracking accepts; the coil images here are
        c (u/|c|), one pass over the coils instead of two."""
        with torch.no_grad():
            inverse = self._inverse(c)
            fourier = self._maps_fourier()
            residual = fourier.residual(fourier.coil_images(c, inverse * self._complex_image(u)))
            return 0.5 * self.lam * _squared_norm(residual), inverse

    def grad_maps(self, u, c):
        """The data term and its gradient in c: with g = u F^H M r (the gradient in c/|c|),
        grad_c = (g - (c/|c|) Re sum_c conj(c/|c|) g) / |c| (the normalisation's Jacobian).
        In the frame g, c/|c| and 1/|c| all carry the same sign, which cancels in the
        radial part and leaves grad_c in the plain frame.

        With u and 1/|c| real, grad_c = a F^H M r - c (a R / |c|^2), a = lam u / |c|,
        R = Re sum_c conj(c) F^H M r: image-sized factors, two passes over the coils."""
        with torch.no_grad():
            fourier = self._maps_fourier()
            inverse = self._inverse(c)
            residual = fourier.residual(fourier.coil_images(c, inverse * self._complex_image(u)))
            data = 0.5 * self.lam * _squared_norm(residual)
            g = fourier.adjoint(residual)
            # lam A_u^H r = A_{lam u}^H r: lam scales the image, not the coil images
            weight = self._complex_image(self.image_lam * u).mul_(inverse)
            radial = _as_complex(_inner_coils(c, g).unsqueeze(-3), g)
            radial.mul_(weight).mul_(inverse).mul_(inverse)
            return data, g.mul_(weight).addcmul_(c, radial, value=-1)

    def _maps_fourier(self):
        if self.fourier is None:
            raise UsageError(NO_JOINT_MAPS)
        return self.fourier

    def _complex_image(self, u):
        return u.to(self.z.dtype).unsqueeze(-3)


def coil_fourier(z, mask):
    """The masked coil transform of a Cartesian iteration: ``_LineFourier`` when the mask is
    constant along an image axis (sampled lines, the common Cartesian case), else
    ``_CoilFourier``."""
    axes = varying_axes(mask)
    if len(axes) < 2:                          # lines (or a constant mask: along the width)
        return _LineFourier(z, mask, axes[0] if axes else -1)
    return _CoilFourier(z, mask)


class _CoilFourier:
    """The masked coil transform M F of a Cartesian iteration, in a frame that saves passes.

    For even H and W, fft2c(x) = a * fft2(b * x) with checkerboards b, a = +-b (mrgen.fft).
    The iteration keeps b inside its unit maps (``to_frame``: b times 1/|c|, an image-sized
    factor) and a inside its data (z' = a z), so its transforms are the bare orthonormal FFT,
    two passes over the coil k-space fewer each. Every factor is +-1, so each number is the
    one the centred transform gives, up to its sign: results are bit for bit the same.
    A 0/1 mask leaves residuals M F x - M z zero off the mask, so the adjoint skips it.
    """

    def __init__(self, z, mask):
        height, width = z.shape[-2:]
        self.mask = coil_mask(mask, z.dtype)
        self.even = height % 2 == 0 and width % 2 == 0
        if self.even:
            self.before, after = centring_signs(height, width, z.device, z.dtype)
            z = z * after
        self.minus_z = -z
        self.adjoint_mask = None if _is_binary(mask) else self.mask

    def to_frame(self, factor):
        return factor * self.before if self.even else factor

    def coil_images(self, maps, image):
        return _coil_images(self, maps, image)

    def residual(self, coil_images):
        """M F x - z' (the transform's array, reused)."""
        kspace = torch.fft.fft2(coil_images, norm="ortho") if self.even else fft2c(coil_images)
        return torch.addcmul(self.minus_z, kspace, self.mask, out=kspace)

    def adjoint(self, residual):
        """F^H M r in the frame (times b)."""
        if self.adjoint_mask is not None:
            residual = residual * self.adjoint_mask
        return torch.fft.ifft2(residual, norm="ortho") if self.even else ifft2c(residual)


class _LineFourier:
    """M F for a mask constant along one image axis (the fully sampled one, o; masked: d).

    M commutes with the centred transform along o, F_o, which is unitary, so
    ||M F x - z|| = ||M F_d x - F_o^H z||: the data go to hybrid space once and the
    iteration transforms along d alone (15 x 640 x 368 along its 368 columns: 14 against
    19 ms for the 2D FFT). The centring along d folds into the data and the mask, for any
    length N: with s = N // 2, the centred transform's sample j is exp(2 pi i k s / N) X_k of
    the plain orthonormal FFT X, k = (j - s) mod N. So z' = conj(phase) ifftshift(F_o^H z),
    M' = ifftshift(M), and the iteration uses the bare FFT along d, with no frame on the
    maps.
    """

    def __init__(self, z, mask, dim):
        other = -1 if dim == -2 else -2
        self.dim = dim
        n = z.shape[dim]
        hybrid = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(z, other), dim=other,
                                                   norm="ortho"), other)
        shape = [-1] * z.dim()
        shape[:-2] = [1] * (z.dim() - 2)
        shape[other] = 1
        self.minus_z = torch.fft.ifftshift(hybrid, dim).mul_(-_unshift_phase(n, z).view(shape))
        line = torch.fft.ifftshift(mask.narrow(other, 0, 1), dim)      # (B, 1, W) or (B, H, 1)
        self.mask = coil_mask(line, z.dtype)
        self.adjoint_mask = None if _is_binary(mask) else self.mask

    def to_frame(self, factor):
        return factor

    def coil_images(self, maps, image):
        return _coil_images(self, maps, image)

    def residual(self, coil_images):
        """M' F_d x - z' (the transform's array, reused)."""
        kspace = torch.fft.fft(coil_images, dim=self.dim, norm="ortho")
        return torch.addcmul(self.minus_z, kspace, self.mask, out=kspace)

    def adjoint(self, residual):
        """F_d^H M' r: the gradient's image-space array."""
        if self.adjoint_mask is not None:
            residual = residual * self.adjoint_mask
        return torch.fft.ifft(residual, dim=self.dim, norm="ortho")


def _coil_images(fourier, maps, image):
    """maps (B, C, H, W) times an image-sized factor, into the transform's own buffer: the
    FFT reads it at once, and a new coil stack each time costs its page faults (the
    iteration makes several per backtracking try)."""
    buffer = getattr(fourier, "buffer", None)
    # numpy's: the first torch.broadcast_shapes of a process takes 0.2 s
    shape = torch.Size(np.broadcast_shapes(maps.shape, image.shape))
    if buffer is None or buffer.shape != shape or buffer.dtype != maps.dtype:
        buffer = fourier.buffer = torch.empty(shape, dtype=maps.dtype, device=maps.device)
    return torch.mul(maps, image, out=buffer)


def _unshift_phase(n: int, like: torch.Tensor) -> torch.Tensor:
    """conj(exp(2 pi i k s / n)), s = n // 2, in ``like``'s dtype: (-1)^k, exactly, for even
    n."""
    k = torch.arange(n, device=like.device, dtype=torch.float64)
    if n % 2 == 0:
        return (1 - 2 * (k % 2)).to(like.dtype)
    return torch.polar(torch.ones_like(k), -2 * torch.pi * k * (n // 2) / n).to(like.dtype)


def _is_binary(mask: torch.Tensor) -> bool:
    return bool(((mask == 0) | (mask == 1)).all())


def _prior_and_grad(regulariser, u):
    """R(u) and grad R(u): the regulariser's own closed form when it has one (TV: a tenth
    of autograd's time), else autograd."""
    if hasattr(regulariser, "energy_and_grad"):
        with torch.no_grad():
            return regulariser.energy_and_grad(u)
    return energy_and_grad(regulariser, u)


def _inner_coils(a, b):
    """Re sum_c conj(a_c) b_c per pixel: (B, C, H, W) x 2 -> (B, H, W)."""
    return (a.conj() * b).sum(-3).real


def initialise(kspace, mask, scale_crop=None, nufft=None):
    """Eq. 15 on the scaled data: u0 = RSS of the zero-filled coil images, c0 = coils / u0
    (non-Cartesian: of the density-compensated gridding, ``mrgen.density``)."""
    coil_images = zero_filled_coils(kspace, mask, nufft)
    u0 = rss(coil_images)
    region = u0 if scale_crop is None else center_crop(u0, (min(scale_crop, u0.shape[-2]),
                                                             min(scale_crop, u0.shape[-1])))
    scale = region.flatten(1).amax(1).clamp_min(_TINY)
    u0 = u0 / _expand(scale, u0)
    c0 = coil_images / _expand(scale, coil_images) / (u0.unsqueeze(-3) + _TINY)
    return u0, c0, scale


def backtrack(energy_fn, candidate, x_bar, energy_bar, grad, lipschitz, options):
    """Algorithm 2: a proximal gradient step from x_bar whose L satisfies sufficient decrease.

    ``candidate(L)`` returns (prox(x_bar - grad / L), extra) for per-slice L (B,); ``extra``
    is whatever the caller wants back from the accepted try. Returns the new point, its
    energy, the (per-slice) L before the final shrink, and the accepted try's extra.
    """
    for _ in range(options.max_backtracks):
        x, extra = candidate(lipschitz)
        step = x - x_bar
        curvature = 0.5 * lipschitz * _squared_norm(step)
        bound = (energy_bar + _inner_into(grad, step) + curvature) * options.slack
        energy = energy_fn(x)
        accepted = energy <= bound
        if bool(accepted.all()):
            break
        lipschitz = torch.where(accepted, lipschitz, 2 * lipschitz)
    return x, energy, lipschitz, extra


def ipalm(kspace: torch.Tensor, mask: torch.Tensor, regulariser, options: IpalmOptions,
          maps: torch.Tensor | None = None, callback=None, nufft=None,
          start: torch.Tensor | None = None) -> IpalmResult:
    """Algorithm 1 on k-space (B, C, H, W) with masks (B or 1, H, W).

    ``nufft``: non-Cartesian samples (B, C, shots, samples) at its points (mask ignored);
    only with fixed ``maps`` (UsageError otherwise: the maps' DST prox needs a grid).

    ``regulariser`` maps real images (B, H, W) to energies (B,). ``maps`` (B, C, H, W), when
    given, replace the initial maps of Eq. 15 (and stay fixed unless options.estimate_maps).
    ``start`` (B, H, W), in the data's scale, replaces the initial image of Eq. 15 (its
    negative values clipped). ``callback(k, u, c, energies)`` is called after each
    iteration. With ``options.anneal`` the regulariser's level (``set_sigma``) and the data
    weight follow ``Annealing`` (the energies of those iterations are at their own level);
    the regulariser is left at its own level.

    The maps are also carried in the DST-II basis of their smoothness prox: the prox is a
    division there, and the transform is linear, so the extrapolated point's coefficients
    are the same extrapolation of the iterates' coefficients. Each backtracking try then
    costs one inverse transform instead of a forward and an inverse one.
    """
    if nufft is not None and (maps is None or options.estimate_maps):
        raise UsageError(NO_JOINT_MAPS)
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u, c, scale = initialise(kspace, mask, options.scale_crop, nufft)
    support = None
    if maps is not None:
        c = maps.to(kspace.dtype)
        if options.align_map_phase:
            c = align_map_phase(kspace, mask, c, nufft=nufft)
        # No data reach a pixel that no map covers (ESPIRiT's eigenvalue crop): start it at
        # zero, as SENSE's minimum-norm solution has it, not at its aliased RSS value, and
        # keep it there while the maps stay fixed: only the prior would move it, and a
        # learned prior fills such pixels with smooth bright blobs (lower energy than zero).
        u = u * covered(c)
        support = None if options.estimate_maps else fixed_map_support(c)
    if start is not None:
        u = project_image(start.to(u.dtype) / _expand(scale, u), support)
    z = kspace / _expand(scale, kspace)
    lam = options.lam
    if isinstance(lam, torch.Tensor) or options.misfit is not None:
        lam = torch.as_tensor(lam, device=u.device, dtype=u.dtype).expand(kspace.shape[0])
    lam0 = lam
    problem = JointProblem(z, mask, regulariser, lam, nufft)
    residual0 = problem.data(u, c) * 2 / lam

    batch = kspace.shape[0]
    mu = map_smoothness(options, batch, u)
    lip_u = torch.ones(batch, device=u.device, dtype=u.dtype)
    lip_c = torch.ones(batch, device=u.device, dtype=u.dtype)
    u_old, c_old = u.clone(), c.clone()
    coef = dst2d(c) if options.estimate_maps else None
    coef_old = coef
    map_energy = smoothness_energy(c)  # F(c), renewed as c moves
    energies = []
    unit_maps = problem.unit_maps(c)[0]  # renewed whenever c changes
    with _annealed(regulariser, options.anneal) as level_at:
        for k in range(options.iters):
            if level_at is not None:
                level, final = level_at(k)
                problem.set_lam(annealed_lam(lam, level, final))
            beta = k / (k + 3)

            u_bar = _extrapolate(u, u_old, beta)
            energy_bar, grad_u = problem.grad_image(u_bar, c, unit_maps)
            u_old = u
            u, energy, lip_u, _ = backtrack(
                lambda x, unit=unit_maps: problem.image_energy(x, unit),
                lambda lip: (project_image(u_bar - grad_u / _expand(lip, grad_u), support),
                             None),
                u_bar, energy_bar, grad_u, lip_u, options)
            lip_u = lip_u / options.shrink

            if options.estimate_maps:
                prior_u = problem.prior(u).detach()  # constant while the maps move
                c_bar = _extrapolate(c, c_old, beta)
                coef_bar = _extrapolate(coef, coef_old, beta)
                data_bar, grad_c = problem.grad_maps(u, c_bar)
                coef_grad = dst2d(grad_c)

                def candidate(lip):
                    # prox(coef_bar - coef_grad / L) = coef_bar f - coef_grad (f / L): two
                    # passes, with the prox's factor f image-sized
                    factor = prox_factor(coef_bar, _expand(mu / lip, grad_c))
                    new = coef_grad * (factor * _as_complex(_expand(-1 / lip, grad_c), grad_c))
                    return idst2d(new.addcmul_(coef_bar, factor)), new

                tried = {}  # the last try's 1/|c|: backtrack returns that try

                def maps_energy(x):
                    data, tried["inverse"] = problem.maps_data(u, x)
                    return data + prior_u

                c_old, coef_old = c, coef
                c, energy, lip_c, coef = backtrack(maps_energy, candidate, c_bar,
                                                   data_bar + prior_u, grad_c, lip_c, options)
                unit_maps = c * tried["inverse"]
                lip_c = (lip_c / options.shrink).clamp_min(options.min_lipschitz_maps)
                # of the maps as stored: their rounding is part of F (the coefficients'
                # version misses it, 0.1% of the energy at 15 x 640 x 368 in float32)
                map_energy = smoothness_energy(c)
            total = energy + mu * map_energy
            energies.append(total)
            if callback is not None:
                callback(k, u, c, total)
            if options.misfit is not None and (k + 1) % options.misfit.every == 0:
                lam = options.misfit.lam(lam0, problem.residual_power(u, unit_maps),
                                         problem.samples())
                problem.set_lam(lam)
                mu = map_smoothness(replace(options, lam=lam), batch, u)

    maps = problem.normalise(c)[0].detach()
    return IpalmResult(image=u.detach() * _expand(scale, u), maps=maps,
                       energies=torch.stack(energies) if energies else torch.empty(0, batch),
                       scale=scale, initial_residual=residual0.detach(),
                       lipschitz={"image": lip_u, "maps": lip_c}, lam=lam)


def covered(maps: torch.Tensor) -> torch.Tensor:
    """1 where some coil map is non-zero, else 0: (B, C, H, W) -> (B, H, W) real."""
    return ((maps.real.square() + maps.imag.square()).sum(-3) > _TINY).to(maps.real.dtype)


def fixed_map_support(maps: torch.Tensor) -> torch.Tensor | None:
    """``covered(maps)``, or None when every pixel is covered (nothing to hold at zero)."""
    support = covered(maps)
    return None if bool(support.bool().all()) else support


def project_image(u: torch.Tensor, support: torch.Tensor | None = None) -> torch.Tensor:
    """The image's feasible set: u >= 0, and u = 0 off ``support`` (pixels no fixed map
    covers) when given."""
    u = u.clamp_min(0)
    return u if support is None else u.mul_(support)


@contextmanager
def _annealed(regulariser, anneal: Annealing | None):
    """None without annealing; else ``level_at(k)`` -> (level, the prior's own level), which
    also sets the regulariser to that level. The regulariser is left at its own level."""
    if anneal is None:
        yield None
        return
    final = float(regulariser.sigma)

    def level_at(k):
        level = anneal.level(k, final)
        regulariser.set_sigma(level)
        return level, final

    try:
        yield level_at
    finally:
        regulariser.set_sigma(final)


PHASE_BLUR = 0.05  # the image phase's blur, as a fraction of the smaller image side


def align_map_phase(kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor,
                    blur: float = PHASE_BLUR, nufft=None) -> torch.Tensor:
    """Maps (B, C, H, W) times the phase of the image they reconstruct.

    The model's image u is real and non-negative, so the image's phase must live in the maps:
    joint estimation puts it there (Eq. 15: c0 = coil images / RSS), but maps from ESPIRiT or
    a simulation carry only the coils' relative phase, and with them no u >= 0 fits the data
    (the image comes out dark with bright rims). The phase is that of the CG-SENSE image with
    the given maps, blurred by a complex Gaussian of ``blur`` x min(H, W) pixels: at 4x the
    SENSE phase is noisy, and a residual phase error e costs the real image sin(e) of its
    signal (a 128 x 128 brain at 4x: 28.1 dB unblurred, 32.5 at 2 pixels, 37.0 at 6, joint
    estimation 36.4). The maps' smoothness prior assumes as smooth an image phase.
    """
    from .sense import sense_reconstruction

    with torch.no_grad():
        image = sense_reconstruction(kspace, maps, mask, nufft=nufft)
        phase = _gaussian_blur(image, blur * min(image.shape[-2:]))
        phase = phase / phase.abs().clamp_min(_TINY)
    return maps * phase.unsqueeze(-3)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a complex image (..., H, W) by a product window in k-space."""
    if sigma <= 0:
        return image
    height, width = image.shape[-2:]
    window = [torch.exp(-2 * (torch.pi * sigma * torch.fft.fftshift(
        torch.fft.fftfreq(n, device=image.device))) ** 2) for n in (height, width)]
    kernel = (window[0][:, None] * window[1][None, :]).to(image.dtype)
    return ifft2c(fft2c(image) * kernel)


def _extrapolate(x, x_old, beta):
    """x + beta (x - x_old), the inertial point, as (1 + beta) x - beta x_old: two passes."""
    return (x * (1 + beta)).sub_(x_old, alpha=beta)


def map_smoothness(options: IpalmOptions, batch: int, like: torch.Tensor) -> torch.Tensor:
    """mu per slice (B,): ``options.mu``, or ``mu_per_lambda`` times each slice's lam. The
    maps' own sub-problem, lam/2 ||data|| + mu F(c), depends on mu / lam alone, so a ratio
    keeps the maps equally smooth whatever lam the data's noise gives (the authors' code:
    mu 10 at lam 0.55, a ratio of 18)."""
    def as_tensor(value):
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)

    mu = options.mu
    if mu is None:
        mu = options.mu_per_lambda * as_tensor(options.lam)
    return as_tensor(mu).expand(batch)


def initial_residual(kspace: torch.Tensor, mask: torch.Tensor, scale_crop=None) -> torch.Tensor:
    """r0 of Zach, Knoll, Pock 2023, preprint, Section 2.6: sum_c ||F_M(c0 u0) - z_c||^2 on the scaled data, (B,).

    For Cartesian masks F_M F_M^* is a projection, so r0 is zero up to rounding; it carries
    information for non-Cartesian data, and the lambda fit falls back to its intercept here.
    """
    mask = mask.expand(kspace.shape[0], *mask.shape[-2:]).to(kspace.real.dtype)
    u0, c0, scale = initialise(kspace, mask, scale_crop)
    problem = JointProblem(kspace / _expand(scale, kspace), mask, None, 1.0)
    return problem.data(u0, c0) * 2
