"""The noise level of measured k-space, estimated from the data alone.

MR images have little energy at the edge of k-space: there the samples are mostly thermal
noise, white and complex Gaussian (the same std in every coil after pre-whitening, and, with
the orthonormal FFT, the same std per image pixel). Over the sampled points outside an
ellipse of half the k-space extent, |y|^2 is exponential with mean s^2 (s the complex std,
E|n|^2 = s^2, as ``mrgen phantom --noise`` counts it); its median, s^2 ln 2, ignores the few
points that still carry signal.

Example: ``noise_std(kspace, mask)`` -> (S,) tensor; ``mrgen phantom --noise 0.01`` gives
about 0.01.
"""

from __future__ import annotations

import math

import torch

_EDGE = 0.5          # outside this fraction of the half-extent (an ellipse): the noise region
_MIN_SAMPLES = 64    # fewer sampled edge points than this: no estimate (NaN)


def edge_region(shape: tuple[int, int], device=None) -> torch.Tensor:
    """(H, W) bool: outside the centred ellipse with semi-axes _EDGE * H/2 and _EDGE * W/2."""
    ky = torch.linspace(-1, 1, shape[0], device=device)[:, None]
    kx = torch.linspace(-1, 1, shape[1], device=device)[None, :]
    return ky.square() + kx.square() > _EDGE ** 2


def noise_std(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per slice complex std of the noise: k-space (S, C, H, W) complex, mask
    (S or 1, H, W). NaN for a slice with fewer than 64 sampled edge points."""
    edge = edge_region(kspace.shape[-2:], kspace.device)
    where = (mask.expand(kspace.shape[0], *kspace.shape[-2:]) > 0) & edge
    power = kspace.real.square() + kspace.imag.square()          # (S, C, H, W)
    out = torch.full((kspace.shape[0],), math.nan, device=kspace.device)
    for s in range(kspace.shape[0]):
        values = power[s][:, where[s]]
        if values.shape[-1] >= _MIN_SAMPLES:
            out[s] = (values.median() / math.log(2)).sqrt()
    return out
