"""The operator self-test: adjointness and the normal operator on random inputs.

For random x and y, <A x, y> = <x, A^H y> (the real part for a real domain), N x = A^H A x
for the operator's own ``normal``, and N Hermitian positive semi-definite:
<N x, x2> = <x, N x2> and Re <x, N x> >= 0. Inner products are summed in double precision
from the operator's float32 outputs, so the errors measure the operator alone; each is
relative to the size of what it compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import LinearOperator, describe

FLOAT32_TOLERANCE = 1e-5


@dataclass(frozen=True)
class OperatorCheck:
    name: str
    input_shape: tuple
    adjoint_error: float      # |<A x, y> - <x, A^H y>| / |<A x, y>|
    normal_error: float       # ||N x - A^H A x|| / ||A^H A x||
    symmetry_error: float     # |<N x, x2> - <x, N x2>| / |<N x, x2>|
    positive: bool            # Re <x, N x> >= 0
    tolerance: float

    @property
    def passed(self) -> bool:
        return (max(self.adjoint_error, self.normal_error, self.symmetry_error)
                <= self.tolerance and self.positive)

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"{self.name} on {self.input_shape}: {verdict} (tolerance {self.tolerance:g}): "
                f"adjoint {self.adjoint_error:.2e}, normal {self.normal_error:.2e}, "
                f"normal symmetry {self.symmetry_error:.2e}, "
                f"<x, A^H A x> >= 0 {'yes' if self.positive else 'NO'}")


def _inner(a: torch.Tensor, b: torch.Tensor, real: bool) -> complex:
    """<a, b> = sum conj(a) b in double precision (its real part for a real domain)."""
    a = a.flatten().to(torch.complex128)
    b = b.flatten().to(torch.complex128)
    value = complex(torch.vdot(a, b))
    return complex(value.real) if real else value


def _relative(difference: complex | float, scale: complex | float) -> float:
    return abs(difference) / max(abs(scale), 1e-300)


def _random_like_domain(op: LinearOperator, shape, generator, device) -> torch.Tensor:
    dtype = torch.float32 if op.real_input else torch.complex64
    return torch.randn(tuple(shape), generator=generator, dtype=dtype).to(device)


def check_operator(op: LinearOperator, x: torch.Tensor | tuple | None = None,
                   generator: torch.Generator | None = None, device=None,
                   tolerance: float = FLOAT32_TOLERANCE) -> OperatorCheck:
    """Self-test ``op`` on a random input of ``x``'s shape (a tensor, a shape, or None for the
    operator's own ``input_shape``, which then must have every size fixed) and a random
    output-space y. Returns an ``OperatorCheck``; ``assert check.passed, check`` reports."""
    generator = generator or torch.Generator().manual_seed(0)
    if x is None:
        if any(n is None for n in op.input_shape):
            raise ValueError(f"{type(op).__name__}: input shape {describe(op.input_shape)} "
                             f"has free sizes; give check_operator an input shape")
        x = op.input_shape
    if isinstance(x, torch.Tensor):
        device = x.device if device is None else device
        x = x.to(device)
    else:
        x = _random_like_domain(op, x, generator, device or "cpu")
    x2 = _random_like_domain(op, x.shape, generator, x.device)
    real = op.real_input
    forward = op.forward(x)
    y = torch.randn(tuple(forward.shape), generator=generator,
                    dtype=forward.dtype).to(x.device)
    lhs, rhs = _inner(forward, y, real), _inner(x, op.adjoint(y), real)

    normal, reference = op.normal(x), op.adjoint(forward)
    normal_error = float(torch.linalg.vector_norm((normal - reference).flatten())
                         / torch.linalg.vector_norm(reference.flatten()).clamp_min(1e-30))
    symmetric = _inner(normal, x2, real)
    positive = _inner(x, normal, real).real >= 0
    return OperatorCheck(
        name=type(op).__name__, input_shape=tuple(x.shape),
        adjoint_error=_relative(lhs - rhs, lhs), normal_error=normal_error,
        symmetry_error=_relative(symmetric - _inner(x, op.normal(x2), real), symmetric),
        positive=bool(positive), tolerance=tolerance)
