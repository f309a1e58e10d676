"""Linear MRI operators on torch tensors: forward, adjoint and normal (A^H A), shape-checked.

Shapes follow mrgen's conventions, with any number of leading batch (slice) axes:
images (..., H, W), coil data (..., C, H, W), masks broadcastable to (..., H, W) with
sampled = 1. Each operator is a small object so that solvers (CG, gradient methods) can take
any of them. Every operator class registers itself (``LinearOperator.registry``), provides a
small ``example(generator)`` and passes ``selftest.check_operator``: adjointness and the
normal operator to float32 precision.

- ``base``: the base class, shape checks, the registry;
- ``fourier``: ``FourierOp`` (M F, the single-coil or per-coil model);
- ``sense``: ``SenseOp`` (image -> M F S x) and ``SenseMapsOp`` (maps -> M F u c);
- ``kernel``: Deep J-Sense's kernel convolution, ``PaddedSenseOp`` and ``KernelMapsOp``;
- ``nufft``: ``NufftOp`` and ``NufftSenseOp`` (non-Cartesian, Toeplitz-embedded normal);
- ``selftest``: ``check_operator``.
"""

from .base import LinearOperator  # noqa: F401
from .fourier import FourierOp  # noqa: F401
from .kernel import KernelMapsOp, PaddedSenseOp  # noqa: F401
from .nufft import NufftOp, NufftSenseOp  # noqa: F401
from .selftest import OperatorCheck, check_operator  # noqa: F401
from .sense import SenseMapsOp, SenseOp  # noqa: F401
