"""Choosing the torch device and seeding random generators."""

from __future__ import annotations

import os

from .errors import UsageError

DEVICE_ENV = "MRGEN_DEVICE"


def resolve_device(spec: str | None = None, nufft: bool = False, log=None):
    """Turn ``auto|cpu|cuda|cuda:N`` (or ``$MRGEN_DEVICE``) into a ``torch.device``.

    ``auto`` means CUDA when available, else CPU; for a job with a NUFFT (``nufft``:
    non-Cartesian data) also CPU where the NUFFT cannot run on CUDA (cufinufft missing or
    not loading), which ``log`` is told. Asking for CUDA where there is none is a usage
    error, not a silent fall-back: timings and results would otherwise mislead.
    """
    import torch

    from_env = not spec and bool(os.environ.get(DEVICE_ENV))
    spec = (spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    # Name where the value came from: the option, or the environment variable.
    given = f"{DEVICE_ENV}={spec}" if from_env else f"--device {spec}"
    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        problem = None
        if nufft:
            from .nufft import cuda_backend_problem

            problem = cuda_backend_problem()
        if problem is not None:
            if log is not None:
                log(f"{given}: {problem}; the non-Cartesian data run on the CPU")
            return torch.device("cpu")
        return torch.device("cuda")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2]
        if index and not index.isdigit():
            raise UsageError(f"{given}: expected cuda:N with N a GPU index")
        if not torch.cuda.is_available():
            raise UsageError(f"{given}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(f"{given}: only {torch.cuda.device_count()} GPU(s) present")
        return torch.device(spec)
    raise UsageError(f"{given}: unknown device; use auto, cpu, cuda or cuda:N")


def generator(seed: int, device="cpu"):
    """A torch generator seeded with ``seed``: every random choice in mrgen draws from one."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
