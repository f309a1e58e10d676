"""Held-out k-space samples: which to leave out of a fit, and how well a fit predicts them.

A reconstruction fitted to part of the measured samples is scored by how well its forward
model predicts the rest (cross-validation in k-space; the same idea as SSDU's split of the
sampled set, Yaman et al. 2020, here to choose a weight rather than to train).

Two draws: ``held_out_samples`` (ipalm's lambda: whole lines of 1D sampling, never the
calibration centre) and ``holdout_split`` (ConvDecoder's early stopping: any sampled location).

Shapes: mask (S, H, W), 1 = sampled; kspace (S, C, H, W); image (S, H, W); maps (S, C, H, W).

Example::

    hold = held_out_samples(acq.mask, 0.15, seed=7)     # (S, H, W) 0/1, a subset of the mask
    fit = reconstruct(acq.kspace * (1 - hold)[:, None], acq.mask * (1 - hold))
    error = prediction_error(fit.image, fit.maps, acq.kspace, hold)   # (S,)
"""

from __future__ import annotations

import torch

from .errors import UsageError
from .fft import fft2c


def held_out_samples(mask: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """(S, H, W) 0/1: ``fraction`` of each slice's sampled k-space outside its fully sampled
    centre, drawn with ``seed``. Of 1D Cartesian sampling (whole columns) whole columns are
    held out, since a partly measured column would change the aliasing the fit sees;
    otherwise single samples. The centre is never held out: it calibrates the coil maps.
    Each slice draws with ``seed`` afresh, so a slice's draw does not depend on the others."""
    hold = torch.zeros(mask.shape, dtype=torch.float32)
    for index, sampled in enumerate(mask.detach().cpu() > 0):
        hold[index] = _held_out(sampled, fraction, torch.Generator().manual_seed(seed))
    return hold.to(mask.device)


def _held_out(sampled: torch.Tensor, fraction: float, generator) -> torch.Tensor:
    """``held_out_samples`` of one slice's (H, W) boolean mask."""
    columns = sampled.all(0)
    outside = ~_centre(sampled)
    if bool((sampled == columns[None]).all()):                  # 1D: whole columns
        candidates = columns & outside.all(0)
        hold = _random_subset(candidates, int(fraction * int(candidates.sum())), generator)
        return hold[None].expand(sampled.shape).float()
    candidates = (sampled & outside).flatten()
    hold = _random_subset(candidates, int(fraction * int(candidates.sum())), generator)
    return hold.reshape(sampled.shape).float()


def _random_subset(candidates: torch.Tensor, count: int, generator) -> torch.Tensor:
    """A flat boolean tensor: ``count`` of the True entries of the flat ``candidates``,
    drawn without replacement from ``generator``."""
    where = candidates.nonzero().flatten()
    chosen = where[torch.randperm(where.numel(), generator=generator)[:count]]
    subset = torch.zeros(candidates.numel(), dtype=torch.bool)
    subset[chosen] = True
    return subset


def holdout_split(sampled: torch.Tensor, fraction: float,
                  generator: torch.Generator | None = None):
    """(fit, held out): the sampled locations (H, W) split at random, ``fraction`` of them held
    out (at least one; none when ``fraction`` is 0). Drawn on the CPU from ``generator``."""
    sampled = sampled.bool()
    if fraction <= 0:
        return sampled, torch.zeros_like(sampled)
    if not fraction < 1:
        raise UsageError(f"--holdout {fraction:g}: must be below 1")
    flat = sampled.cpu().flatten()
    count = max(1, int(round(fraction * int(flat.sum()))))
    held = _random_subset(flat, count, generator).reshape(sampled.shape).to(sampled.device)
    return sampled & ~held, held


def _centre(sampled: torch.Tensor) -> torch.Tensor:
    """(H, W) True in the fully sampled block around the k-space centre: the contiguous run of
    sampled rows and columns through the centre sample (empty when it is not sampled)."""
    height, width = sampled.shape
    centre = torch.zeros_like(sampled)
    if not sampled[height // 2, width // 2]:
        return centre
    rows = _run_through(sampled[:, width // 2], height // 2)
    columns = _run_through(sampled[height // 2], width // 2)
    centre[rows[0]:rows[1], columns[0]:columns[1]] = True
    return centre


def _run_through(line: torch.Tensor, middle: int) -> tuple[int, int]:
    """[start, stop) of the run of True in ``line`` that contains ``middle``."""
    start, stop = middle, middle + 1
    while start > 0 and line[start - 1]:
        start -= 1
    while stop < len(line) and line[stop]:
        stop += 1
    return start, stop


def prediction_error(image: torch.Tensor, maps: torch.Tensor, kspace: torch.Tensor,
                     hold: torch.Tensor) -> torch.Tensor:
    """(S,) sum over the held-out samples and coils of |F(c u) - z|^2: how far the fitted
    image and maps miss the samples they never saw."""
    predicted = fft2c(maps * image[:, None].to(maps.dtype))
    miss = (predicted - kspace) * hold[:, None]
    return torch.view_as_real(miss).flatten(1).square().sum(1)
