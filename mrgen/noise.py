"""The noise level of measured k-space, estimated from the data alone.

MR images have little energy at the edge of k-space: there the samples are mostly thermal
noise, white and complex Gaussian (the same std in every coil after pre-whitening, and, with
the orthonormal FFT, the same std per image pixel). Over the sampled points outside an
ellipse of half the k-space extent, |y|^2 is exponential with mean s^2 (s the complex std,
E|n|^2 = s^2, as ``mrgen phantom --noise`` counts it); its median, s^2 ln 2, ignores the few
points that still carry signal. Objects with sharp edges (Shepp-Logan) keep signal there;
multi-coil data then have a second estimate that ignores it: in the fully sampled centre
the windows of all coils span a low-rank signal subspace (what ESPIRiT builds on), so the
lower half of the calibration matrix's eigenvalues is noise; their mean, divided by that of
unit complex noise in a matrix of the same shape (seeded), is s^2. ``noise_std`` takes the
smaller of the two (each can only be raised by signal).

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
    """Per slice complex std of the noise (S,): the smaller of the edge and the calibration
    estimates, NaN where neither has enough samples."""
    both = torch.stack([edge_noise_std(kspace, mask), calibration_noise_std(kspace, mask)])
    smaller = both.nan_to_num(math.inf).amin(0)
    return smaller.where(smaller.isfinite(), torch.tensor(math.nan, device=smaller.device))


def edge_noise_std(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per slice complex std of the noise from the k-space edge: k-space (S, C, H, W) complex, mask
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


def calibration_noise_std(kspace: torch.Tensor, mask: torch.Tensor, kernel: int = 3,
                          max_size: int = 24) -> torch.Tensor:
    """Per slice complex noise std from the fully sampled centre of multi-coil k-space (S, C,
    H, W); NaN for one coil or a centre smaller than 2 kernels."""
    from .espirit import calibration_region, find_calibration, window_matrix

    out = torch.full((kspace.shape[0],), math.nan, device=kspace.device)
    if kspace.shape[-3] < 2:
        return out
    for s in range(kspace.shape[0]):
        pattern = mask[min(s, mask.shape[0] - 1)].cpu() > 0
        h, w = find_calibration(pattern, max_size)
        if min(h, w) < 2 * kernel:
            continue
        calib = calibration_region(kspace[s:s + 1].cpu(), (h, w))
        windows = window_matrix(calib, (kernel, kernel))[0]
        generator = torch.Generator().manual_seed(0)
        unit = torch.complex(*torch.randn(2, *windows.shape, generator=generator,
                                          dtype=torch.float64)) / math.sqrt(2)
        out[s] = (_lower_half_mean(windows) / _lower_half_mean(unit)).sqrt()
    return out


def _lower_half_mean(matrix: torch.Tensor) -> torch.Tensor:
    values = torch.linalg.eigvalsh(matrix @ matrix.mH)         # ascending
    return values[: values.shape[0] // 2].mean()
