"""Langevin Markov chains for any differentiable energy: ULA, MALA (Metropolis-adjusted),
and on-the-fly moments (Welford). The chains of posterior and prior sampling and of training.

One step is x <- x - step * grad E(x) + noise_std * n with n ~ N(0, I) (Zach, Knoll, Pock 2023, preprint, Eq. 7,
with the step and the noise scale kept separate as in the authors' code, where the learned
energy carries its temperature: step 1, noise 7.5e-3). With noise_std = sqrt(2 * step) this is
textbook ULA for exp(-E). The sampler knows nothing of MRI: the prior alone, the iPALM
posterior with fixed maps, and DEEPEN's posterior all come in as an energy.

Moments are accumulated in one pass (Welford), so no chain of samples is ever held in memory.
Several chains of one target advance together as one batch (``sample(..., chains=N)``: a
GPU runs them at the cost of about one; on a CPU they cost N); their moments are pooled
(``RunningMoments.pooled``, ``merge_moments``) and a few scalar traces per chain (energy and
watched pixels) are kept for the ESS and R-hat of ``mrgen.convergence``.

ULA is biased by its step: it samples exp(-E/T) only as the step goes to zero, and a step
above 2 / Lipschitz(grad E) makes it diverge. Learned energies (ReLU networks) have steep
kinks: at DEEPEN's published step 1 and its temperature eps^2/2 a Metropolis test accepts
none of the ULA moves, and long ULA chains drift into striped images (a 64 x 64 brain: MMSE
32.8 dB against a MAP of 37.6). ``metropolis=True`` adds the Metropolis-Hastings test of
MALA (Roberts and Tweedie 1996), which keeps exp(-E/T) exactly for any step; the step is
adapted per chain during burn-in towards an acceptance of 0.574 (the optimum for MALA,
Roberts and Rosenthal 1998) at the temperature T = noise_std^2 / (2 step) given, and frozen
after it so the kept states are a valid chain.

Preconditioned Langevin (``preconditioner=P``, a constant symmetric positive definite P):
x <- x - step P grad E(x) + noise_std P^(1/2) n, whose continuous-time limit keeps exp(-E/T)
for any such P (the drift P grad E and the diffusion 2 T P match); MALA's proposal density
then measures moves in the P^(-1) norm. A preconditioner offers ``apply`` (P v), ``noise``
(a draw from N(0, P)), ``inverse_quadratic`` (v^T P^-1 v) and ``move`` (a whole ULA
increment). ``FourierPreconditioner`` is P = F^H D F with D diagonal in k-space: for MRI
posteriors the stiff directions (sampled k-space, weighted by the data term's lam) and the
soft ones (unsampled k-space, held by the prior alone) are nearly Fourier modes, so D = 1 /
curvature lets one step size fit all of them; the coil maps couple the modes, which
``mrgen.preconditioning.SolvedPreconditioner`` solves for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import RuntimeFailure
from .priors.energy import energy_and_grad

Energy = Callable[[torch.Tensor], torch.Tensor]  # batch -> one energy per batch element


class RunningMoments:
    """Streaming mean and variance (Welford), element-wise, in float64 for stability."""

    def __init__(self):
        self.count = 0
        self.mean = None
        self._m2 = None

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64 if not x.is_complex() else torch.complex128)
        self.count += 1
        if self.mean is None:
            self.mean, self._m2 = x.clone(), torch.zeros(x.shape, dtype=torch.float64,
                                                         device=x.device)
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self._m2 += (delta.conj() * (x - self.mean)).real

    @property
    def variance(self) -> torch.Tensor:
        """Unbiased sample variance (zero for a single sample)."""
        if self.count < 2:
            return torch.zeros_like(self._m2)
        return self._m2 / (self.count - 1)

    def pooled(self, chains: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Mean, unbiased variance and count pooled over ``chains`` chains stacked along the
        first axis (state (chains * B, ...), chain-major): the moments of all chains' samples
        concatenated (Chan, Golub, LeVeque's pairwise update: M2 = sum M2_c + n sum (mean_c -
        mean)^2)."""
        n = self.count
        mean = self.mean.reshape(chains, -1, *self.mean.shape[1:])
        m2 = self._m2.reshape(chains, -1, *self._m2.shape[1:])
        pooled = mean.mean(0)
        m2 = m2.sum(0) + n * (mean - pooled).abs().square().sum(0)
        total = n * chains
        return pooled, (m2 / (total - 1) if total > 1 else torch.zeros_like(m2)), total


def merge_moments(a, b):
    """Pooled (mean, unbiased variance, count) of two disjoint sets of samples, each given
    as (mean, unbiased variance, count) (Chan, Golub, LeVeque)."""
    (mean_a, var_a, n_a), (mean_b, var_b, n_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    m2 = var_a * max(n_a - 1, 0) + var_b * max(n_b - 1, 0) + \
        delta.abs().square() * (n_a * n_b / n)
    return mean_a + delta * (n_b / n), m2 / max(n - 1, 1), n


class FourierPreconditioner:
    """P = F^H D F for the centred orthonormal 2D FFT F over the image axes, D > 0 a k-space
    weight (B, H, W) (or broadcastable). States are real images (B, H, W) or the real views
    (B, H, W, 2) of complex images (``complex_view``). For real images D is symmetrised,
    D(k) <- (D(k) + D(-k)) / 2, so that P and its powers map real images to real images
    (the real part of F^H D F x is F^H D_sym F x for real x)."""

    def __init__(self, weights: torch.Tensor, complex_view: bool = False):
        if not bool((weights > 0).all()):
            raise ValueError("a preconditioner's k-space weights must be positive")
        self.complex_view = complex_view
        self.weights = weights if complex_view else symmetrise_kspace(weights)

    def apply(self, v: torch.Tensor, power: float = 1.0) -> torch.Tensor:
        """P^power v (power 1: the drift, 1/2: the noise, -1/2: MALA's proposal norm)."""
        from .fft import fft2c, ifft2c

        d = self.weights if power == 1.0 else self.weights ** power
        if self.complex_view:
            z = torch.view_as_complex(v.contiguous())
            return torch.view_as_real(ifft2c(d.to(z.real.dtype) * fft2c(z))).to(v.dtype)
        z = ifft2c(d.to(v.dtype) * fft2c(v.to(_complex_of(v.dtype))))
        return z.real.to(v.dtype)

    def noise(self, like: torch.Tensor, generator) -> torch.Tensor:
        """A draw from N(0, P), shaped like the states ``like``."""
        noise = torch.randn(like.shape, generator=generator, device=like.device,
                            dtype=like.dtype)
        return self.apply(noise, 0.5)

    def inverse_quadratic(self, d: torch.Tensor) -> torch.Tensor:
        """d^T P^-1 d per batch element (MALA's proposal density)."""
        root = self.apply(d, -0.5).flatten(1)
        return (root * root).sum(1)

    def move(self, grad, step, noise_std, generator):
        """-step P grad + noise_std P^(1/2) n, n standard normal: a preconditioned step."""
        return noise_std * self.noise(grad, generator) - step * self.apply(grad)


def _complex_of(dtype):
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def symmetrise_kspace(weights: torch.Tensor) -> torch.Tensor:
    """(D(k) + D(-k)) / 2 on the centred grid: the frequency of index i is i - N//2, so -k is
    index (N - i) mod N for even N (N - 1 - i for odd N)."""
    mirrored = weights
    for axis in (-2, -1):
        n = weights.shape[axis]
        mirrored = mirrored.flip(axis)
        if n % 2 == 0:
            mirrored = mirrored.roll(1, axis)
    return 0.5 * (weights + mirrored)


def ula_step(x, energy: Energy, step: float, noise_std: float, generator=None, project=None):
    return _ula_value_step(x, energy, step, noise_std, generator, project)[0]


TARGET_ACCEPTANCE = 0.574
ADAPT_RATE = 0.1


class MetropolisChain:
    """MALA on exp(-E/T) for a batch of independent chains (first axis), each with its own
    step; one energy-and-gradient evaluation per step, as ULA."""

    def __init__(self, x, energy: Energy, step: float, temperature: float, generator=None,
                 preconditioner=None):
        self.x, self.energy, self.temperature, self.generator = x.detach(), energy, \
            temperature, generator
        self.preconditioner = preconditioner
        self.value, grad = energy_and_grad(energy, self.x)
        self.drift = self._precondition(grad)     # P grad E at the current state
        self.step = torch.full((x.shape[0],), float(step), device=x.device, dtype=torch.float64)
        self.accepted = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
        self.proposed = 0

    def _view(self, v):
        return v.to(self.x.dtype).view(-1, *([1] * (self.x.dim() - 1)))

    def _precondition(self, v):
        return v if self.preconditioner is None else self.preconditioner.apply(v)

    def _noise(self):
        """A draw from N(0, P)."""
        if self.preconditioner is not None:
            return self.preconditioner.noise(self.x, self.generator)
        return torch.randn(self.x.shape, generator=self.generator, device=self.x.device,
                           dtype=self.x.dtype)

    def _log_proposal(self, to, start, drift, step):
        """log q(to | start) up to a constant shared by both directions: a Gaussian of mean
        start - step P grad and covariance 2 step T P (``drift`` = P grad at ``start``)."""
        d = to - start + self._view(step) * drift
        if self.preconditioner is None:
            quadratic = (d * d).flatten(1).sum(1)
        else:
            quadratic = self.preconditioner.inverse_quadratic(d)
        return -quadratic.double() / (4 * step * self.temperature)

    def advance(self, adapt: bool) -> torch.Tensor:
        step = self.step
        proposal = (self.x - self._view(step) * self.drift
                    + self._view((2 * step * self.temperature).sqrt()) * self._noise()).detach()
        value, grad = energy_and_grad(self.energy, proposal)
        drift = self._precondition(grad)
        log_ratio = ((self.value - value).double() / self.temperature
                     + self._log_proposal(self.x, proposal, drift, step)
                     - self._log_proposal(proposal, self.x, self.drift, step))
        probability = torch.exp(log_ratio.clamp(max=0.0)).nan_to_num(0.0)
        uniform = torch.rand(probability.shape, generator=self.generator,
                             device=self.x.device, dtype=torch.float64)
        accept = uniform < probability
        keep = self._view(accept.to(self.x.dtype))
        self.x = keep * proposal + (1 - keep) * self.x
        self.value = torch.where(accept, value, self.value)
        self.drift = keep * drift + (1 - keep) * self.drift
        if adapt:  # Robbins-Monro on log(step), with the acceptance probability (less noisy)
            self.step = self.step * torch.exp(ADAPT_RATE * (probability - TARGET_ACCEPTANCE))
        else:
            self.accepted += accept.to(torch.float64)
            self.proposed += 1
        return self.x

    @property
    def acceptance(self) -> torch.Tensor:
        """Per chain: the fraction of accepted moves after burn-in."""
        return self.accepted / max(self.proposed, 1)


def run_chain(x, energy: Energy, steps: int, step: float = 1.0, noise_std: float = 7.5e-3,
              generator=None, project=None, callback=None) -> torch.Tensor:
    """``steps`` ULA steps from ``x``; returns the final state (e.g. training's fake samples)."""
    for k in range(steps):
        x = ula_step(x, energy, step, noise_std, generator, project)
        if callback is not None:
            callback(k, x)
    return x.detach()


@dataclass
class SamplingResult:
    mean: torch.Tensor
    variance: torch.Tensor
    count: int
    last: torch.Tensor
    acceptance: torch.Tensor | None = None   # MALA: per chain, after burn-in
    step: torch.Tensor | None = None         # MALA: per chain, the adapted step
    traces: torch.Tensor | None = None       # (chains, kept, K): energies and watched pixels
    chains: int = 1


WATCHED = 8   # pixels traced per batch element, besides the energy


def watched_pixels(x: torch.Tensor, chains: int, count: int = WATCHED) -> torch.Tensor:
    """Flat indices (per batch element) of ``count`` pixels of the object: evenly spaced in
    the order of magnitude over the brighter half of the first chain's start's non-zero
    pixels (those off the maps' support stay zero and never move). Deterministic."""
    first = x.reshape(chains, x.shape[0] // chains, -1)[0].detach().abs()   # (B, N)
    nonzero = int((first > 0).sum(1).min()) or first.shape[1]   # an all-zero start: all
    order = first.argsort(1, descending=True)[:, :max(nonzero // 2, 1)]
    picks = torch.linspace(0, order.shape[1] - 1, count).round().long().to(order.device)
    return order[:, picks]                                                   # (B, count)


def _trace_row(x, value, chains, pixels) -> torch.Tensor:
    """(chains, B * (1 + count)): each element's energy, then its watched pixels."""
    flat = x.detach().reshape(chains, pixels.shape[0], -1)
    values = torch.gather(flat, 2, pixels.expand(chains, -1, -1)).to(torch.float64)
    energy = value.detach().reshape(chains, -1, 1).to(torch.float64)
    return torch.cat([energy, values], 2).reshape(chains, -1).cpu()


def _ula_value_step(x, energy: Energy, step, noise_std, generator, project,
                    preconditioner: FourierPreconditioner | None = None):
    """One ULA step (preconditioned with ``preconditioner``); (new state, energy of the old
    one)."""
    value, grad = energy_and_grad(energy, x)
    if preconditioner is not None:
        x = x + preconditioner.move(grad, step, noise_std, generator)
    else:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x - step * grad + noise_std * noise
    return (project(x) if project is not None else x), value


def sample(x, energy: Energy, burn_in: int, samples: int, thin: int = 1, step: float = 1.0,
           noise_std: float = 7.5e-3, generator=None, project=None, on_sample=None,
           progress=None, metropolis: bool = False, chains: int = 1,
           preconditioner: FourierPreconditioner | None = None) -> SamplingResult:
    """Run ULA (or MALA with ``metropolis``, see the module doc): discard ``burn_in`` steps,
    then keep every ``thin``-th state ``samples`` times.

    ``chains`` > 1: ``x`` is (chains * B, ...), chain-major (``x.view(chains, B, ...)``),
    every chain advancing in the same batch; mean and variance (B, ...) are pooled over the
    chains and their kept states (``RunningMoments.pooled``). Without it each batch element
    keeps its own moments. Either way ``traces`` hold, per chain and kept state, each batch
    element's energy and a few watched pixels (``watched_pixels``), for the ESS and R-hat of
    ``mrgen.convergence``.

    ``preconditioner``: preconditioned ULA or MALA (see the module doc); ``step`` then
    multiplies P grad E, so its scale is P's (1 / curvature for ``kspace_preconditioner``).

    ``on_sample(index, x)`` sees each kept sample, chain by chain (index = kept * chains +
    chain; x (B, ...)), to stream them to a file; ``progress`` is an optional callable
    advanced once per step (a tqdm ``update``).
    """
    if metropolis and project is not None:
        from .errors import UsageError

        raise UsageError("a projected chain (--nonneg) has no Metropolis test; use ULA")
    if x.shape[0] % chains:
        raise ValueError(f"a batch of {x.shape[0]} is not {chains} chains of equal size")
    moments = RunningMoments()
    total = burn_in + samples * thin
    pixels = watched_pixels(x, chains)
    rows = []
    chain = MetropolisChain(x, energy, step, noise_std ** 2 / (2 * step), generator,
                            preconditioner) if metropolis else None
    for k in range(total):
        if chain is not None:
            x = chain.advance(adapt=k < burn_in)
            value = chain.value
        else:
            # value: the energy of the state before this step (the energy trace lags the
            # pixels' by one step: the same chain, as valid for its autocorrelation)
            x, value = _ula_value_step(x, energy, step, noise_std, generator, project,
                                       preconditioner)
        if not bool(torch.isfinite(value).all()):
            raise RuntimeFailure(f"the chains diverged at step {k + 1} of {total} (the energy "
                                 "is no longer finite): lower --step")
        if k >= burn_in and (k - burn_in + 1) % thin == 0:
            moments.update(x)
            rows.append(_trace_row(x, value, chains, pixels))
            if on_sample is not None:
                if chains == 1:
                    on_sample(moments.count - 1, x)
                else:
                    for c, part in enumerate(x.reshape(chains, -1, *x.shape[1:])):
                        on_sample((moments.count - 1) * chains + c, part)
        if progress is not None:
            progress(1)
    traces = torch.stack(rows, 1)
    if chains > 1:
        mean, variance, count = moments.pooled(chains)
    else:
        mean, variance, count = moments.mean, moments.variance, moments.count
    return SamplingResult(mean.to(x.dtype), variance.to(torch.float32), count, x.detach(),
                          None if chain is None else chain.acceptance,
                          None if chain is None else chain.step, traces, chains)
