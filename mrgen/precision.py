"""Reduced precision for the network energies of Langevin chains (``--precision``).

oneDNN runs bfloat16 convolutions on the AMX tiles of recent Intel CPUs (Sapphire Rapids and
later) at about three times the float32 rate: prior-brain-small's energy and gradient of
4 x 256 x 256 on one core took 0.36 against 1.16 s, with a 1% relative error in the gradient.
Without AMX, bfloat16 is emulated and slower, so ``auto`` chooses it only where AMX is.

Only ULA chains use it. Their steps add noise far above that error (the MMSE and variance are
checked against float32 chains in benchmarks/bench_sampling.py), while a MAP's backtracking
and MALA's Metropolis test compare energies to differences below bfloat16's rounding: ipalm,
deepen's MAP and MALA stay in float32. The energies themselves are summed in float32.
"""

from __future__ import annotations

import torch

from .errors import UsageError

PRECISIONS = ("auto", "float32", "bfloat16")


def has_fast_bfloat16(device) -> bool:
    """Whether bfloat16 convolutions are native here: a CPU with AMX tiles. CUDA keeps
    float32 unless asked (not measured on a GPU)."""
    if torch.device(device).type != "cpu":
        return False
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def resolve_precision(choice: str, device, metropolis: bool = False
                      ) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for float32, a few words saying why) for ``--precision``."""
    if choice not in PRECISIONS:
        raise UsageError(f"--precision {choice}: choose {', '.join(PRECISIONS)}")
    if choice == "bfloat16" and metropolis:
        raise UsageError("--precision bfloat16: MALA's Metropolis test compares energies "
                         "below bfloat16's rounding; use --precision float32 with MALA")
    if choice == "auto":
        if metropolis:
            return None, "float32 (MALA)"
        if has_fast_bfloat16(device):
            return torch.bfloat16, "bfloat16 (auto: this CPU has AMX)"
        return None, "float32"
    return (torch.bfloat16 if choice == "bfloat16" else None), choice


class AutocastEnergy(torch.nn.Module):
    """An energy network evaluated under autocast to ``dtype``; energies come back in
    float32 (or the network's own wider type)."""

    def __init__(self, energy: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.energy, self.dtype = energy, dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=self.dtype):
            energies = self.energy(images)
        return energies.float() if energies.dtype == self.dtype else energies


def in_precision(energy, dtype: torch.dtype | None):
    """``energy`` as chains evaluate it: itself in float32 (``dtype`` None) or when it has a
    closed-form gradient (TV), else under autocast."""
    if dtype is None or not isinstance(energy, torch.nn.Module) or \
            hasattr(energy, "energy_and_grad"):
        return energy
    return AutocastEnergy(energy, dtype)
