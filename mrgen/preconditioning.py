"""Preconditioners for Langevin chains on MRI posteriors; the chains that use them are
``mrgen.mcmc``'s.

- ``kspace_preconditioner``: P = F^H D F, D the inverse of a k-space-diagonal model of the
  posterior's curvature (the data term's exact diagonal plus the prior's probed curvature),
  for DEEPEN's posterior (``mrgen.deepen.recon``).
- ``solved_preconditioner``: P = (lam A^*A + Q)^-1 by conjugate gradient, the data term's
  exact Hessian plus the same prior model, for iPALM's posterior (``mrgen.posterior``): on
  the README phantom 90 steps of 4 chains gave split R-hat 1.35 against 3.39 with the
  diagonal model (whose maps' coupling forced its steps down 3.2x), at 1.7x its time per
  step.
"""

from __future__ import annotations

import torch

from .mcmc import FourierPreconditioner
from .priors.energy import energy_and_grad

# k-space preconditioning (see kspace_preconditioner): the prior's curvature is probed at
# this many random directions and smoothed over this many k-space pixels each way
CURVATURE_PROBES = 4
CURVATURE_WINDOW = 9
# power iterations for the preconditioned Hessian's largest eigenvalue (on the README
# phantom's posterior the largest Rayleigh quotient grew 4% from 10 to 15 iterations)
STIFFNESS_ITERATIONS = 10
# relative residual of the solved preconditioner's CG (``SolvedPreconditioner``): on the
# README phantom (4 chains x 250 steps, one thread) 2e-2 took 31.3 CG iterations a step
# against 42.2 at 1e-2, 147.8 against 168.8 s, with the same MMSE (40.29 dB) and the object's
# mean variance 1.0% from a full-precision run's (1e-2: 0.75%; a 2x longer run: 0.6%)
SOLVE_TOLERANCE = 2e-2


def data_curvature(mask, unit_maps, weight: float, real_image: bool) -> torch.Tensor:
    """The k-space diagonal of the data term's Hessian weight A^H A, A = M F S (B, H, W):
    (F A^H A F^H)_kk = (1/N) sum_k' M(k') sum_c |F s_c (k' - k)|^2, the mask correlated
    with the maps' power spectrum (exactly M for maps of constant modulus; smooth maps blur
    it a little). For a real image the mode pair (k, -k) moves together: symmetrised."""
    from .fft import fft2c
    from .mcmc import symmetrise_kspace

    n = mask.shape[-2] * mask.shape[-1]
    power = fft2c(unit_maps).abs().square().sum(-3) / n              # (B, H, W), offset k
    offsets = torch.fft.ifftshift(power, dim=(-2, -1))               # offset 0 at index 0
    m = mask.to(power.dtype).expand(power.shape)
    # circular cross-correlation sum_kappa M(k + kappa) power(kappa), by FFT
    spectrum = torch.fft.fft2(m) * torch.fft.fft2(offsets).conj()
    diagonal = weight * torch.fft.ifft2(spectrum).real.clamp_min(0)
    return symmetrise_kspace(diagonal) if real_image else diagonal


def prior_curvature(energy, x, delta: float, generator, complex_view: bool,
                    probes: int = CURVATURE_PROBES, window: int = CURVATURE_WINDOW):
    """A smooth k-space model q(k) (B, H, W) of the energy's curvature at ``x`` (B, H, W)
    (or real views (B, H, W, 2)): Hutchinson's estimate of the Fourier diagonal of its
    Hessian, sum Re(conj(F v) F(H v)) / sum |F v|^2 over ``probes`` random v, with H v the
    finite difference (grad E(x + delta v) - grad E(x)) / delta (a secant at the scale
    ``delta`` of the chain's moves: it exists for ReLU energies too, whose Hessian is 0
    almost everywhere), averaged over ``window`` x ``window`` neighbouring frequencies."""
    from torch.nn import functional as F

    from .fft import fft2c

    def spectrum(v):
        z = torch.view_as_complex(v.contiguous()) if complex_view else v.to(torch.complex64)
        return fft2c(z)

    x = x.detach()
    _, grad = energy_and_grad(energy, x)
    product = torch.zeros(x.shape[0], *spectrum(x).shape[-2:], device=x.device)
    power = torch.zeros_like(product)
    for _ in range(probes):
        v = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        _, moved = energy_and_grad(energy, x + delta * v)
        fv, fhv = spectrum(v), spectrum((moved - grad) / delta)
        product += (fv.conj() * fhv).real.float()
        power += fv.abs().square().float()
    smooth = (lambda t: F.avg_pool2d(t[:, None], window, 1, window // 2,
                                     count_include_pad=False)[:, 0])
    return smooth(product) / smooth(power).clamp_min(1e-12)


def floored_prior_curvature(energy, x, delta, generator, complex_view=False):
    """``prior_curvature`` floored at 5% of its median: a probe's noise, or a non-convex
    spot, must not make a preconditioned step huge."""
    prior = prior_curvature(energy, x, delta, generator, complex_view)
    floor = 0.05 * prior.flatten(1).median(1).values.clamp_min(1e-12)
    return torch.maximum(prior, floor.view(-1, 1, 1))


def kspace_preconditioner(data_diagonal, energy, x, delta, generator, complex_view=False,
                          chains: int = 1, posterior=None,
                          step: float = 1.0) -> tuple[FourierPreconditioner, dict]:
    """P = F^H D F with D(k) = 1 / (data(k) + q(k)): the inverse of a k-space-diagonal
    model of the posterior's curvature, the data term's exact diagonal (``data_curvature``)
    plus the prior's smoothed estimate at the start (``floored_prior_curvature``). With it
    one step size s moves every direction at about the rate s per step: the sampled k-space
    (stiff: lam) and the unsampled (soft: the prior alone) alike, where plain ULA's step,
    bounded by the stiffest, leaves the soft directions correlated for hundreds of steps.
    ``x`` (chains * B, ...): the estimate uses the first chain's B images (the chains share
    a start) and is repeated. ``posterior``: the whole energy (data and prior) of those B
    images; given, D is scaled down where the chain's ``step`` times the preconditioned
    Hessian's largest eigenvalue (``preconditioned_stiffness``) exceeds 1, to 1 (ULA
    diverges at 2): the diagonal model misses the coupling of frequencies through the coil
    maps, by 16x on the README phantom at lam 1.1e5, where the step 0.2 then diverged.
    Returns P and a summary (the curvature's range, that eigenvalue and the scaling)."""
    first = x[:x.shape[0] // chains]
    prior = floored_prior_curvature(energy, first, delta, generator, complex_view)
    curvature = data_diagonal[:first.shape[0]] + prior
    summary = {"prior": (float(prior.min()), float(prior.max())),
               "total": (float(curvature.min()), float(curvature.max())),
               "stiffness": None, "scaled": 1.0}
    if posterior is not None:
        stiffness = preconditioned_stiffness(
            posterior, first, FourierPreconditioner(1.0 / curvature, complex_view), delta,
            generator)
        factor = (step * stiffness).clamp_min(1.0).to(curvature.dtype)
        curvature = curvature * factor.view(-1, 1, 1)
        summary["stiffness"], summary["scaled"] = float(stiffness.max()), float(factor.max())
    weights = (1.0 / curvature).repeat(chains, 1, 1)
    return FourierPreconditioner(weights, complex_view), summary


def preconditioned_stiffness(energy, x, preconditioner, delta: float, generator,
                             iterations: int = STIFFNESS_ITERATIONS) -> torch.Tensor:
    """The largest eigenvalue of P H per batch element (B,), H the energy's Hessian at ``x``
    (that of P^(1/2) H P^(1/2)): power iteration v <- P H v with secant Hessian products
    (as ``prior_curvature``, each move ``delta`` per pixel on average), the largest Rayleigh
    quotient v^T H v / v^T P^-1 v seen. A preconditioned step s is stable while s times it
    stays below 2; an exact model of the curvature gives 1. ``preconditioner``: any with
    ``apply`` and ``inverse_quadratic`` (``FourierPreconditioner``, ``SolvedPreconditioner``)."""
    x = x.detach()
    _, grad = energy_and_grad(energy, x)

    def per_element(a, b):
        return (a * b).flatten(1).sum(1)

    if isinstance(delta, torch.Tensor):     # one per batch element
        delta = delta.reshape(-1)
    v = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    largest = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    for _ in range(iterations):
        rms = (per_element(v, v) / v[0].numel()).sqrt().clamp_min(1e-30)
        v = v * (delta / rms).view(-1, *[1] * (x.dim() - 1))    # moves delta per pixel
        _, moved = energy_and_grad(energy, x + v)
        hv = moved - grad
        quotient = per_element(v, hv).double() / \
            preconditioner.inverse_quadratic(v).double().clamp_min(1e-300)
        largest = torch.maximum(largest, quotient)
        v = preconditioner.apply(hv)
    return largest


def deepen_preconditioner(energy, maps, mask, x, temperature, generator, chains=1,
                          posterior=None, step: float = 1.0):
    """``kspace_preconditioner`` for DEEPEN's posterior (complex image as a real view, unit
    data weight, maps (B, C, H, W)): the energy E's curvature (E of complex images) probed at
    ``x`` (chains * B, H, W, 2) at the noise scale sqrt(T) of the data term."""
    data = data_curvature(mask.expand(maps.shape[0], *mask.shape[-2:]), maps, 1.0, False)
    on_views = (lambda v: energy(torch.view_as_complex(v.contiguous())))
    return kspace_preconditioner(data, on_views, x, temperature ** 0.5, generator,
                                 complex_view=True, chains=chains, posterior=posterior,
                                 step=step)


def stiffness_note(summary: dict) -> str:
    """The log's words on ``kspace_preconditioner``'s stiffness bound, when it acted."""
    if summary.get("scaled", 1.0) <= 1.0:
        return ""
    return (f"; the curvature model misses up to {summary['stiffness']:.3g}x of the "
            f"curvature: steps scaled down {summary['scaled']:.3g}x to stay stable")


class SolvedPreconditioner:
    """P = K^-1 with K = lam A^*A + Q: the data term's exact Hessian (A = M F S on real
    images; the coupling of frequencies through the coil maps included) plus Q = F^H q F,
    the prior's k-space curvature model (``prior_curvature``). Applied by conjugate gradient
    on the system preconditioned by the diagonal model D = 1 / (data(k) + q(k)), which
    ``kspace_preconditioner`` uses alone: CG corrects what D misses (the coupling through the
    maps, 16x on the README phantom), so one step size fits the stiff and the soft
    directions without the stability scaling that costs the diagonal model its mixing.

    The noise of a step is drawn by perturbation (Papandreou and Yuille 2010): with
    eta = sqrt(lam) A^* xi_1 + Q^(1/2) xi_2 (xi standard normal in k-space and in the image),
    Cov(eta) = K, so P eta ~ N(0, P) exactly, and drift and noise share one solve:
    x <- x + P (-step grad E + noise_std eta).

    ``operator``: the posterior's SenseOp on real images for B slices; ``prior`` and
    ``data_diagonal``: (B, H, W) k-space weights. States are real images (chains * B, H, W),
    chain-major; every chain's system is solved at once, to relative residual ``tol``."""

    def __init__(self, operator, lam: float, prior: torch.Tensor, data_diagonal: torch.Tensor,
                 tol: float = SOLVE_TOLERANCE, iters: int = 100):
        from .mcmc import symmetrise_kspace

        self.operator, self.tol, self.iters = operator, tol, iters
        self.prior = symmetrise_kspace(prior)
        self.data_diagonal = symmetrise_kspace(data_diagonal)
        # lam: a number, or one per slice (B,) as a (B, 1, 1) view
        self.lam = lam.reshape(-1, 1, 1) if isinstance(lam, torch.Tensor) else float(lam)
        inner = 1.0 / (self.data_diagonal + self.prior)
        # k-space diagonals as the solves' real FFTs order them (``half_spectrum``)
        self._root = half_spectrum(inner.sqrt())                  # D^(1/2)
        self._inner_prior = half_spectrum(inner * self.prior)     # D^(1/2) Q D^(1/2)
        self._prior = half_spectrum(self.prior)
        self._prior_root = half_spectrum(self.prior.sqrt())
        # the CG runs on weighted half spectra (``_spectral_system``): D^(1/2) folded in
        weights = half_spectrum_weights(inner.shape[-1], inner.device, inner.dtype)
        self._root_in = self._root / weights          # spectrum -> D^(1/2) y
        self._root_rhs = self._root * weights         # image -> weighted D^(1/2) spectrum
        self._root_out = self._root_rhs * self.lam
        self.iterations = []                       # CG iterations of each solve

    def _grouped(self, v):
        """(chains * B, H, W) -> (chains, B, H, W): the operator's and weights' B broadcast."""
        return v.reshape(-1, self.prior.shape[0], *v.shape[-2:])

    @staticmethod
    def _fourier(v, weights):
        """F^H diag(weights) F v for real images v and weights as ``half_spectrum`` gives
        them (symmetric weights keep the images real)."""
        size = v.shape[-2:]
        return torch.fft.irfft2(torch.fft.rfft2(v, norm="ortho").mul_(weights), s=size,
                                norm="ortho")

    def _spectral_system(self, s, size):
        """D^(1/2) K D^(1/2) y on s = m^(1/2) rfft2(y), m the half spectrum's Parseval
        weights (``half_spectrum_weights``): the real inner product of two such s is that of
        their images, so CG runs on them unchanged, and an iteration transforms once each way
        (in image space the diagonal D^(1/2) took two more). A real operator keeps s the
        half spectrum of a real image, and CG's real combinations keep it so."""
        w = torch.fft.irfft2(s * self._root_in, s=size, norm="ortho")       # D^(1/2) y
        data = torch.fft.rfft2(self.operator.normal(w).to(w.dtype), norm="ortho")
        return data.mul_(self._root_out).addcmul_(s, self._inner_prior)

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """P v = K^-1 v."""
        from .cg import conjugate_gradient

        grouped = self._grouped(v)
        size = grouped.shape[-2:]
        rhs = torch.fft.rfft2(grouped, norm="ortho").mul_(self._root_rhs)
        y, info = conjugate_gradient(lambda s: self._spectral_system(s, size), rhs,
                                     iters=self.iters, tol=self.tol, return_info=True)
        self.iterations.append(info.iterations)
        x = torch.fft.irfft2(y.mul_(self._root_in), s=size, norm="ortho")
        return x.reshape(v.shape).to(v.dtype)

    def perturbation(self, like: torch.Tensor, generator) -> torch.Tensor:
        """eta ~ N(0, K), shaped like the states ``like``."""
        grouped = self._grouped(like)
        xi = torch.randn((grouped.shape[0], *self.operator.output_shape, 2),
                         generator=generator, device=like.device, dtype=like.dtype)
        data = self.operator.adjoint(torch.view_as_complex(xi)).to(like.dtype)
        image = torch.randn(grouped.shape, generator=generator, device=like.device,
                            dtype=like.dtype)
        eta = self.lam ** 0.5 * data + self._fourier(image, self._prior_root)
        return eta.reshape(like.shape).to(like.dtype)

    def noise(self, like: torch.Tensor, generator) -> torch.Tensor:
        """A draw from N(0, P): P eta."""
        return self.apply(self.perturbation(like, generator))

    def move(self, grad, step, noise_std, generator):
        """-step P grad + noise_std P^(1/2) n (n standard normal) in one solve."""
        eta = self.perturbation(grad, generator)
        return self.apply(-step * grad + noise_std * eta)

    def inverse_quadratic(self, d: torch.Tensor) -> torch.Tensor:
        """d^T P^-1 d = d^T K d per state (MALA's proposal density)."""
        grouped = self._grouped(d)
        k = self.lam * self.operator.normal(grouped).to(d.dtype) \
            + self._fourier(grouped, self._prior)
        return (grouped * k).flatten(2).sum(2).reshape(d.shape[0])

    def scaled(self, factor: torch.Tensor) -> "SolvedPreconditioner":
        """P / factor, factor (B,) per slice: K times it (the same CG work)."""
        view = factor.to(self.prior.dtype).view(-1, 1, 1)
        return SolvedPreconditioner(self.operator, self.lam * view, self.prior * view,
                                    self.data_diagonal * view, self.tol, self.iters)


def half_spectrum_weights(width: int, device, dtype) -> torch.Tensor:
    """sqrt(m) per column of an rfft2 half spectrum of a width-``width`` real image, m its
    Parseval weight: 1 for the columns that hold their own conjugates (0, and width / 2 for
    an even width), 2 for the others, whose partners rfft2 leaves out. Then ||y||^2 =
    ||sqrt(m) rfft2(y)||^2 with the orthonormal transform."""
    m = torch.full((width // 2 + 1,), 2.0, device=device, dtype=dtype)
    m[0] = 1.0
    if width % 2 == 0:
        m[-1] = 1.0
    return m.sqrt()


def half_spectrum(weights: torch.Tensor) -> torch.Tensor:
    """Weights on the centred k-space grid (..., H, W), symmetric (w(k) = w(-k):
    ``mcmc.symmetrise_kspace``), as the bare real FFT (``torch.fft.rfft2``) orders its
    frequencies: F^H diag(w) F is a circular convolution, which commutes with the centring
    shifts, so they cancel; of a real image's spectrum the half that rfft2 keeps suffices.
    Half the transform work of the complex centred FFT, and no checkerboard passes."""
    from .fft import complex_dtype

    width = weights.shape[-1]
    half = torch.fft.ifftshift(weights, dim=(-2, -1))[..., : width // 2 + 1]
    return half.to(complex_dtype(weights.dtype))   # complex x real: torch's slow path


def solved_preconditioner(operator, lam, data_diagonal, energy, x, delta, generator,
                          chains: int = 1, posterior=None,
                          step: float = 1.0) -> tuple[SolvedPreconditioner, dict]:
    """``SolvedPreconditioner`` for real images ``x`` (chains * B, H, W) with the prior
    ``energy``'s curvature probed at the first chain's B images (``floored_prior_curvature``).
    ``posterior`` (the whole energy of those B images) given: P is scaled down where the
    chain's ``step`` times the largest eigenvalue of P H (``preconditioned_stiffness``)
    exceeds 1 (ULA diverges at 2): what remains of the model error is the prior's, whose
    curvature varies over the image where q(k) is one number per frequency. Returns P and a
    summary as ``kspace_preconditioner``'s."""
    first = x[:x.shape[0] // chains]
    prior = floored_prior_curvature(energy, first, delta, generator)
    preconditioner = SolvedPreconditioner(operator, lam, prior, data_diagonal)
    curvature = data_diagonal + prior
    summary = {"prior": (float(prior.min()), float(prior.max())),
               "total": (float(curvature.min()), float(curvature.max())),
               "stiffness": None, "scaled": 1.0}
    if posterior is not None:
        stiffness = preconditioned_stiffness(posterior, first, preconditioner, delta,
                                             generator)
        factor = (step * stiffness).clamp_min(1.0)
        summary["stiffness"], summary["scaled"] = float(stiffness.max()), float(factor.max())
        if summary["scaled"] > 1.0:
            preconditioner = preconditioner.scaled(factor)
    return preconditioner, summary
