"""The linear operator base: forward (A x), adjoint (A^H y), normal (A^H A x) and shape checks.

Every operator knows the trailing shape of its input and of its output; an input may carry
further leading (batch) axes, and an axis of size 1 in the operator's shape (a map or mask
shared by all slices) broadcasts. ``None`` stands for an axis of any size (a mask-free FFT
takes any grid). A tensor of another shape is refused with a ValueError that names the
operator, the expected and the given shape, instead of a broadcasting error deep inside (or,
worse, a silently broadcast result).

Subclasses implement ``_forward`` and ``_adjoint`` (and ``_normal`` when fusing is cheaper)
and a classmethod ``example(generator)``: every subclass is registered in
``LinearOperator.registry``, and the test suite runs ``mrgen.linops.selftest.check_operator``
on each one's example, as BART's ``lintest`` and deepinv's ``adjointness_test`` do.
"""

from __future__ import annotations

from typing import ClassVar

import torch

Shape = tuple  # of int | None


class LinearOperator:
    """A linear map A from ``input_shape`` to ``output_shape`` tensors.

    ``real_input``: the domain is real (an image constrained real, as iPALM's); the adjoint is
    then taken with respect to the real inner product Re <., .> and returns real tensors.
    """

    registry: ClassVar[dict[str, type[LinearOperator]]] = {}
    real_input: bool = False
    input_shape: Shape = (None, None)
    output_shape: Shape = (None, None)

    def __init_subclass__(cls, register: bool = True, **kwargs):
        """Registers every operator class (``register=False``: a throw-away test double)."""
        super().__init_subclass__(**kwargs)
        if register:
            LinearOperator.registry[cls.__name__] = cls

    @classmethod
    def example(cls, generator: torch.Generator) -> LinearOperator:
        """A small instance with random parameters, for the self-test."""
        raise NotImplementedError(f"{cls.__name__} provides no example() for the self-test")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.input_shape, "forward")
        return self._forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, self.output_shape, "adjoint")
        return self._adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.input_shape, "normal")
        return self._normal(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def _forward(self, x):
        raise NotImplementedError

    def _adjoint(self, y):
        raise NotImplementedError

    def _normal(self, x):
        return self._adjoint(self._forward(x))

    def _check(self, tensor: torch.Tensor, expected: Shape, method: str) -> None:
        if not fits(tuple(tensor.shape), expected):
            raise ValueError(f"{type(self).__name__}.{method}: expected a tensor of shape "
                             f"{describe(expected)}, got {tuple(tensor.shape)}")


def fits(shape: tuple, expected: Shape) -> bool:
    """Whether ``shape`` ends with ``expected``, where None takes any size and the operator's
    size-1 axes broadcast (also when the tensor lacks such a leading axis)."""
    missing = len(expected) - len(shape)
    if missing > 0 and any(want not in (None, 1) for want in expected[:missing]):
        return False
    pairs = zip(expected[max(missing, 0):], shape[max(-missing, 0):])
    return all(want is None or want == 1 or want == got for want, got in pairs)


def describe(expected: Shape) -> str:
    sizes = ", ".join("*" if n is None else str(n) for n in expected)
    return f"(..., {sizes})"


def broadcast_shape(*shapes: Shape) -> Shape:
    """torch.broadcast_shapes for shapes that may hold None (any size), aligned at the end."""
    length = max(len(s) for s in shapes)
    padded = [(1,) * (length - len(s)) + tuple(s) for s in shapes]
    out = []
    for sizes in zip(*padded):
        known = {n for n in sizes if n is not None and n != 1}
        if len(known) > 1:
            raise ValueError(f"shapes {', '.join(map(str, shapes))} do not broadcast")
        out.append(known.pop() if known else (None if None in sizes else 1))
    return tuple(out)


def normal_norm(op: LinearOperator, x: torch.Tensor, iters: int = 30) -> float:
    """||A^H A|| (its largest eigenvalue, over the whole batch) by power iteration from x."""
    for _ in range(iters):
        x = op.normal(x)
        x = x / torch.linalg.vector_norm(x).clamp_min(1e-30)
    return float(torch.linalg.vector_norm(op.normal(x)))


def complex_randn(shape, generator: torch.Generator, dtype=torch.complex64) -> torch.Tensor:
    """Standard complex Gaussian samples (CPU), for examples and self-tests."""
    return torch.randn(shape, generator=generator, dtype=dtype)


def random_mask(shape, generator: torch.Generator, fraction: float = 0.5) -> torch.Tensor:
    """A random binary float32 mask (CPU) with about ``fraction`` sampled."""
    return (torch.rand(shape, generator=generator) < fraction).float()
