"""DEEPEN inference: MAP by majorise-minimise (Eq. 14-15) and posterior sampling (Eq. 16).

Both work on the normalised problem (``model.data_scale``: image and k-space divided by the
maximum magnitude of the SENSE reconstruction of the undersampled data) and return images in
the data's own scale. The mask at inference may differ from the training mask.

MAP. The cost is C(x) = 1/2 ||A x - b||^2 + E(x) (Eq. 6 without the constant). From x_n the
surrogate g(x | x_n) = 1/2 ||A x - b||^2 + E(x_n) + L/2 ||x - x_n||^2 + Re <grad E(x_n),
x - x_n> (Eq. 14) is minimised by solving (A^H A + L I) x = A^H b + L x_n - grad E(x_n)
(Eq. 15) with conjugate gradient (``mrgen.cg``, warm-started at x_n, ``cg_iters`` 10,
relative tolerance 1e-3 as the authors' MuSE code). Choices the paper leaves open:

- L: the paper estimates the Lipschitz constant of grad E "approximately" (CLIP). A ReLU
  network makes E piecewise linear, so grad E has no finite global Lipschitz constant and an
  estimate cannot be trusted to majorise. Here L starts from a secant estimate at the
  SENSE image, ||grad E(x0 + d) - grad E(x0)|| / ||d|| for a random d of norm 1% of ||x0||
  (seeded; at least 1e-3), or from ``lipschitz`` when given, and every step is *checked*:
  the step is accepted only if C(x_{n+1}) <= g(x_{n+1} | x_n) (the majorisation holds at the
  new point) and C(x_{n+1}) <= C(x_n); otherwise L is doubled and the step solved again (at
  most ``max_backtracks`` times; then the iterate stays and the run stops). L never
  decreases. Since CG started at x_n only lowers the quadratic surrogate, an accepted step
  satisfies C(x_{n+1}) <= g(x_{n+1}|x_n) <= g(x_n|x_n) = C(x_n): the cost never increases
  (Lemma 2.1), also with inexact CG and in float32.
- stopping: |C(x_{n+1}) - C(x_n)| / |C(x_n)| <= tol (1e-6) or ``iters`` (500) steps, as the
  paper; initialisation: SENSE (lam 0.01), as the paper.
- slices are solved one after the other, each with its own L.

Sampling (Section IV.A): ``samples`` independent chains of Eq. 16, x <- x - (A^H (A x - b) +
grad E(x)) + eps z, each ``steps`` steps from zero-mean Gaussian noise (std ``init_std`` per
real component); the final states are the samples, their mean the MMSE estimate and their
pixel-wise variance (of the complex values: E|x - mean|^2) the uncertainty. eps defaults to
the model's training value. Chains run in batches of ``chunk`` through the general ULA
sampler (``mrgen.mcmc.run_chain`` on the real view) and the moments are
accumulated on the fly (``RunningMoments``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..cg import conjugate_gradient
from ..priors.energy import energy_and_grad
from .model import Posterior, data_scale

DEFAULT_ITERS = 500
DEFAULT_TOL = 1e-6
DEFAULT_CG_ITERS = 10
DEFAULT_CG_TOL = 1e-3


@dataclass
class MapResult:
    image: torch.Tensor                  # (S, H, W) complex, data scale
    costs: list = field(default_factory=list)       # per slice: accepted costs, C(x_0) first
    iterations: list = field(default_factory=list)  # per slice
    lipschitz: list = field(default_factory=list)   # per slice: the final L
    backtracks: list = field(default_factory=list)  # per slice: rejected steps
    scale: torch.Tensor | None = None    # (S,) the normalisation
    sense: torch.Tensor | None = None    # (S, H, W) the SENSE initialisation, data scale


def _re_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.real * b.real + a.imag * b.imag).flatten(1).sum(1)


def estimate_lipschitz(energy, x: torch.Tensor, generator: torch.Generator | None = None,
                       relative: float = 1e-2, floor: float = 1e-3) -> float:
    """Secant estimate of the Lipschitz constant of grad E near ``x`` (1, H, W)."""
    noise = torch.randn((*x.shape, 2), generator=generator, device=x.device)
    d = torch.view_as_complex(noise)
    d = d * (relative * max(float(x.abs().norm()), 1e-6) / float(d.abs().norm()))
    _, g0 = energy_and_grad(energy, x)
    _, g1 = energy_and_grad(energy, x + d)
    return max(float((g1 - g0).abs().norm()) / float(d.abs().norm()), floor)


def mm_step(posterior: Posterior, x: torch.Tensor, lipschitz: float,
            cg_iters: int = DEFAULT_CG_ITERS, cg_tol: float = DEFAULT_CG_TOL, grad=None):
    """One step of Eq. 15 from x_n = ``x``: (x_{n+1}, CGInfo, grad E(x_n))."""
    if grad is None:
        _, grad = energy_and_grad(posterior.energy, x)
    rhs = posterior.rhs + lipschitz * x - grad
    new, info = conjugate_gradient(posterior.op.normal, rhs, x0=x, iters=cg_iters, tol=cg_tol,
                                   lam=lipschitz, batch_dims=1, return_info=True)
    return new.detach(), info, grad


def surrogate(posterior: Posterior, x, xn, energy_n, grad_n, lipschitz) -> torch.Tensor:
    """g(x | x_n) of Eq. 14, per batch element."""
    d = x - xn
    return (posterior.data_term(x) + energy_n + 0.5 * lipschitz * _re_dot(d, d)
            + _re_dot(grad_n, d))


def deepen_map(energy, kspace: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor,
               iters: int = DEFAULT_ITERS, tol: float = DEFAULT_TOL, lipschitz=None,
               cg_iters: int = DEFAULT_CG_ITERS, cg_tol: float = DEFAULT_CG_TOL,
               generator: torch.Generator | None = None, max_backtracks: int = 40,
               progress=None) -> MapResult:
    """MAP estimate (S, H, W) of k-space (S, C, H, W) with maps (S, C, H, W) and mask
    (S, H, W) (see the module doc). ``progress(1)`` is called once per MM iteration."""
    mask = mask.to(kspace.real.dtype)
    kspace = kspace * mask.unsqueeze(1)
    scale, sense = data_scale(kspace, maps, mask)
    result = MapResult(torch.empty_like(sense), scale=scale, sense=sense)
    for s in range(kspace.shape[0]):
        post = Posterior(energy, maps[s:s + 1], mask[s:s + 1], kspace[s:s + 1] / scale[s])
        x = (sense[s:s + 1] / scale[s]).detach()
        L = float(lipschitz) if lipschitz is not None else estimate_lipschitz(energy, x,
                                                                                generator)
        with torch.no_grad():
            cost = float(post.cost(x))
        costs, rejected, done = [cost], 0, 0
        for _ in range(iters):
            e_n, g_n = energy_and_grad(energy, x)
            accepted = False
            for _ in range(max_backtracks + 1):
                new, _, _ = mm_step(post, x, L, cg_iters, cg_tol, grad=g_n)
                with torch.no_grad():
                    new_cost = float(post.cost(new))
                    bound = float(surrogate(post, new, x, e_n, g_n, L))
                if new_cost <= bound and new_cost <= cost:
                    accepted = True
                    break
                L *= 2.0
                rejected += 1
            if progress is not None:
                progress(1)
            if not accepted:
                break
            done += 1
            change = abs(cost - new_cost) / max(abs(cost), 1e-30)
            x, cost = new, new_cost
            costs.append(cost)
            if change <= tol:
                break
        result.image[s] = x[0] * scale[s]
        result.costs.append(costs)
        result.iterations.append(done)
        result.lipschitz.append(L)
        result.backtracks.append(rejected)
    return result


@dataclass
class SampleResult:
    mean: torch.Tensor        # (S, H, W) complex: the MMSE estimate
    variance: torch.Tensor    # (S, H, W) float: E |x - mean|^2
    count: int
    traces: torch.Tensor | None = None   # (chains, kept, K): energies and watched pixels


def deepen_sample(energy, kspace: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor,
                  eps: float, samples: int = 100, steps: int = 100, init_std: float = 1.0,
                  chunk: int = 25, generator: torch.Generator | None = None, on_sample=None,
                  progress=None, keep: int = 1, precondition: bool = False,
                  step: float | None = None, start: str = "noise",
                  log=None, chain_energy=None) -> SampleResult:
    """Posterior samples by Eq. 16 (see the module doc) for k-space (S, C, H, W), maps
    (S, C, H, W), mask (S, H, W). ``samples`` chains, each keeping its last ``keep`` states
    (1: the paper's one sample per chain), ``chunk`` chains advancing as one batch; the
    moments pool every kept state of every chain (``mcmc.sample``, then ``merge_moments``
    over chunks). ``on_sample(index, slice, x)`` sees each kept state (H, W) of each slice
    in the data scale (streamed, never all held); ``progress(n)`` advances by the Langevin
    steps done (chains x steps). ``traces`` (chains, keep, 9 x S): energies and watched
    pixels of the kept states, for ``mrgen.convergence``. ``log(line)`` hears what the
    preconditioner found for each slice.

    ``precondition``: k-space preconditioned chains (``mrgen.preconditioning.deepen_preconditioner``,
    the energy's curvature probed at the slice's SENSE image) at the dimensionless ``step``
    (default 0.2) and the same temperature eps^2 / 2; otherwise Eq. 16 as published (step 1,
    or ``step`` with noise eps sqrt(step)). ``start``: "noise" (the paper: N(0, init_std^2)
    per real component) or "sense" (every chain from the slice's SENSE image: where the
    posterior is; from noise the piecewise-linear energy pulls back only linearly, and on
    the README's phantom 100 steps leave the chains at 5 dB). ``chain_energy``: the network
    the chains' steps evaluate (e.g. in bfloat16, ``mrgen.precision``); the preconditioner's
    probes keep ``energy``."""
    from ..mcmc import FourierPreconditioner, merge_moments, sample
    from ..preconditioning import deepen_preconditioner, stiffness_note

    mask = mask.to(kspace.real.dtype)
    kspace = kspace * mask.unsqueeze(1)
    scale, sense = data_scale(kspace, maps, mask)
    n_slices, shape = kspace.shape[0], tuple(kspace.shape[-2:])
    keep = min(keep, steps)
    step = (0.2 if precondition else 1.0) if step is None else step
    noise = eps * step ** 0.5                     # the temperature eps^2 / 2 of Eq. 16
    means, variances, traces = [], [], []
    for s in range(n_slices):
        pooled, done, slice_traces = None, 0, []
        left = samples
        weights = None
        if precondition:
            at = torch.view_as_real((sense[s:s + 1] / scale[s]).contiguous())
            one_chain = Posterior(energy, maps[s:s + 1], mask[s:s + 1],
                                  kspace[s:s + 1] / scale[s])
            found, summary = deepen_preconditioner(energy, maps[s:s + 1], mask[s:s + 1], at,
                                                   eps ** 2 / 2, generator,
                                                   posterior=one_chain.real_energy, step=step)
            weights = found.weights
            if log is not None:
                log(f"deepen sample: slice {s}: k-space preconditioner, curvature "
                    f"{summary['total'][0]:.3g}..{summary['total'][1]:.3g}"
                    f"{stiffness_note(summary)}")
        while left > 0:
            n = min(chunk, left)
            post = Posterior(chain_energy or energy, maps[s:s + 1].expand(n, -1, -1, -1),
                             mask[s:s + 1].expand(n, -1, -1),
                             (kspace[s:s + 1] / scale[s]).expand(n, -1, -1, -1))
            if start == "sense":
                first_state = torch.view_as_real((sense[s:s + 1] / scale[s]).contiguous())
                first_state = first_state.expand(n, -1, -1, -1).clone()
            else:
                first_state = init_std * torch.randn((n, *shape, 2), generator=generator,
                                                     device=kspace.device)
            first = done

            def stream(i, x, first=first, n=n):
                if on_sample is not None:
                    chain, kept = i % n, i // n
                    on_sample((first + chain) * keep + kept, s,
                              torch.view_as_complex(x[0].contiguous()) * scale[s])

            step_progress = None if progress is None else (lambda k, n=n: progress(n * k))
            preconditioner = None if weights is None else \
                FourierPreconditioner(weights.expand(n, -1, -1), complex_view=True)
            result = sample(first_state, post.real_energy, steps - keep, keep, 1, step, noise,
                            generator, on_sample=stream, progress=step_progress, chains=n,
                            preconditioner=preconditioner)
            part = (torch.view_as_complex(result.mean[0].contiguous()).to(torch.complex128),
                    result.variance[0].sum(-1).double(), result.count)
            pooled = part if pooled is None else merge_moments(pooled, part)
            slice_traces.append(result.traces)
            done += n
            left -= n
        mean, variance, _ = pooled
        means.append((mean * scale[s]).to(torch.complex64))
        variances.append((variance * scale[s] ** 2).to(torch.float32))
        traces.append(torch.cat(slice_traces, 0))
    return SampleResult(torch.stack(means), torch.stack(variances), samples * keep,
                        torch.cat(traces, 2))
