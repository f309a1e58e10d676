"""Batched conjugate gradient for Hermitian positive (semi-)definite systems.

``conjugate_gradient(normal, rhs)`` solves (N + lam I) x = rhs for every batch element at once:
the step sizes alpha and beta are computed per element (inner products over the trailing
``rhs.ndim - batch_dims`` axes), so slices are independent and a slice that has converged is
frozen while the others go on. The loop uses plain torch operations only, so it runs on any
device and autograd differentiates through it (unrolled networks such as MoDL, DEEPEN and
Deep J-Sense call it inside their forward pass). It synchronises with the host only every
``check_every`` iterations, to stop early once every element is converged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

@dataclass
class CGInfo:
    iterations: int                 # iterations run (the same for every batch element)
    residual: torch.Tensor          # (batch...) final ||r|| / ||rhs|| per element
    converged: torch.Tensor         # (batch...) bool: residual <= tol (always False for tol 0)


def _dot(a: torch.Tensor, b: torch.Tensor, dims) -> torch.Tensor:
    """Re <a, b> = Re sum conj(a) b over ``dims``, kept as size-1 axes for broadcasting."""
    if a.is_complex():
        products = torch.view_as_real(a) * torch.view_as_real(b)
        return torch.sum(products, dim=tuple(dims) + (-1,), keepdim=True).squeeze(-1)
    return torch.sum(a * b, dim=dims, keepdim=True)


def _norm2(a: torch.Tensor, dims) -> torch.Tensor:
    return _dot(a, a, dims)


def _squeeze(values: torch.Tensor, dims) -> torch.Tensor:
    return values.squeeze(dims) if dims else values.reshape(())


def conjugate_gradient(normal: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor,
                       x0: torch.Tensor | None = None, iters: int = 30, tol: float = 0.0,
                       lam=0.0, batch_dims: int | None = None, check_every: int | None = None,
                       return_info: bool = False):
    """Solve (normal + lam I) x = rhs by conjugate gradient, independently per batch element.

    normal: x -> N x, a Hermitian positive semi-definite linear map (e.g. ``SenseOp.normal``)
        taking and returning tensors shaped like ``rhs``.
    rhs: (batch..., item...) real or complex; the last ``rhs.ndim - batch_dims`` axes form one
        vector. ``batch_dims`` defaults to ``rhs.ndim - 2`` (images (..., H, W)).
    x0: starting point (default zeros); lam: float or tensor broadcastable to ``rhs`` (e.g.
        shaped (S, 1, 1) for one lambda per slice; it may require grad).
    iters: the most iterations; tol: freeze an element once ||r|| <= tol ||rhs|| (with tol 0,
        once ||r|| <= 10 eps ||rhs||, machine precision).
    check_every: iterations between host synchronisations that test whether every element is
        frozen, to stop early (default 1 on CPU, 10 elsewhere).
    Returns x, or (x, CGInfo) with ``return_info``.
    """
    if batch_dims is None:
        batch_dims = max(rhs.ndim - 2, 0)
    if not 0 <= batch_dims <= rhs.ndim:
        raise ValueError(f"batch_dims {batch_dims} does not fit rhs of rank {rhs.ndim}")
    dims = tuple(range(batch_dims, rhs.ndim))       # the axes of one vector
    if check_every is None:
        check_every = 1 if rhs.device.type == "cpu" else 10
    use_lam = not (isinstance(lam, (int, float)) and lam == 0)

    def apply(v):
        out = normal(v)
        return out + lam * v if use_lam else out

    if x0 is None:
        x = torch.zeros_like(rhs)
        r = rhs
    else:
        x = x0.to(rhs.dtype).expand_as(rhs)
        r = rhs - apply(x)
    p = r
    rs = _norm2(r, dims)
    rhs_norm2 = _norm2(rhs, dims)
    # Below ~10 eps relative the recursive residual no longer tracks the true one: stop there
    # even with tol = 0 (further steps would only add rounding noise).
    floor = 10 * torch.finfo(rhs.real.dtype if rhs.is_complex() else rhs.dtype).eps
    threshold = max(tol, floor) ** 2 * rhs_norm2
    active = rs > threshold
    done = 0
    for it in range(iters):
        if it % check_every == 0 and not bool(active.any()):
            break
        ap = apply(p)
        pap = _dot(p, ap, dims)
        ok = active & (pap > 0)
        alpha = torch.where(ok, rs / torch.where(ok, pap, torch.ones_like(pap)),
                            torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _norm2(r, dims)
        beta = torch.where(ok, rs_new / torch.where(ok, rs, torch.ones_like(rs)),
                           torch.zeros_like(rs))
        p = r + beta * p
        rs = torch.where(ok, rs_new, rs)
        active = ok & (rs > threshold)
        done = it + 1
    if not return_info:
        return x
    residual = torch.sqrt(rs / torch.where(rhs_norm2 > 0, rhs_norm2, torch.ones_like(rs)))
    residual = _squeeze(residual.detach(), dims)
    converged = residual <= tol if tol > 0 else torch.zeros_like(residual, dtype=torch.bool)
    return x, CGInfo(done, residual, converged)
