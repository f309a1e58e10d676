"""The unadjusted Langevin algorithm (ULA) for any differentiable energy.

One step is x <- x - step * grad E(x) + noise_std * n with n ~ N(0, I) (paper 001, Eq. 7,
with the step and the noise scale kept separate as in the authors' code, where the learned
energy carries its temperature: step 1, noise 7.5e-3). With noise_std = sqrt(2 * step) this is
textbook ULA for exp(-E). The sampler knows nothing of MRI: the prior alone, the iPALM
posterior with fixed maps, and DEEPEN's posterior all come in as an energy.

Moments are accumulated in one pass (Welford), so no chain of samples is ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..priors.energy import energy_and_grad

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


def ula_step(x, energy: Energy, step: float, noise_std: float, generator=None, project=None):
    _, grad = energy_and_grad(energy, x)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x = x - step * grad + noise_std * noise
    return project(x) if project is not None else x


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


def sample(x, energy: Energy, burn_in: int, samples: int, thin: int = 1, step: float = 1.0,
           noise_std: float = 7.5e-3, generator=None, project=None, on_sample=None,
           progress=None) -> SamplingResult:
    """Run ULA: discard ``burn_in`` steps, then keep every ``thin``-th state ``samples`` times.

    ``on_sample(index, x)`` sees each kept sample (to stream them to a file); ``progress``
    is an optional callable advanced once per step (a tqdm ``update``).
    """
    moments = RunningMoments()
    total = burn_in + samples * thin
    for k in range(total):
        x = ula_step(x, energy, step, noise_std, generator, project)
        if k >= burn_in and (k - burn_in + 1) % thin == 0:
            moments.update(x)
            if on_sample is not None:
                on_sample(moments.count - 1, x)
        if progress is not None:
            progress(1)
    return SamplingResult(moments.mean.to(x.dtype), moments.variance.to(torch.float32),
                          moments.count, x.detach())
