"""Choosing the torch device and seeding random generators."""

from __future__ import annotations

import os

from .errors import UsageError

DEVICE_ENV = "MRGEN_DEVICE"


def resolve_device(spec: str | None = None):
    """Turn ``auto|cpu|cuda|cuda:N`` (or ``$MRGEN_DEVICE``) into a ``torch.device``.

    ``auto`` means CUDA when available, else CPU. Asking for CUDA where there is none is a
    usage error, not a silent fall-back: timings and results would otherwise mislead.
    """
    import torch

    from_env = not spec and bool(os.environ.get(DEVICE_ENV))
    spec = (spec or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    # Name where the value came from: the option, or the environment variable.
    given = f"{DEVICE_ENV}={spec}" if from_env else f"--device {spec}"
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
