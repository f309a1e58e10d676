"""ESPIRiT maps of an acquisition, slice chunk by slice chunk (``mrgen espirit``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import espirit
from ..acquisition import Acquisition


@dataclass
class EspiritOptions:
    calib: tuple[int, int] | None = None      # None: the largest fully sampled centre block
    kernel: tuple[int, int] = (espirit.DEFAULT_KERNEL, espirit.DEFAULT_KERNEL)
    threshold: float = espirit.DEFAULT_THRESHOLD
    crop: float = espirit.DEFAULT_CROP
    soft_crop: bool = False
    sets: int = 1
    phase_ref: str = "virtual"
    exact: bool = False                       # eigen-decompose at every pixel, as BART
    size: tuple[int, int] | None = None       # zero-pad the k-space to this grid first


@dataclass
class EspiritMaps:
    maps: torch.Tensor            # (S, sets, C, H, W) complex64, on the CPU
    eigenvalues: torch.Tensor     # (S, sets, H, W) float32
    calib: tuple[int, int]        # the calibration block used
    unsampled: int                # points of a forced --calib block that are not sampled
    kernels: list[int]            # kernels kept per slice


def espirit_app(acq: Acquisition, options: EspiritOptions, device="cpu",
                progress=None) -> EspiritMaps:
    """ESPIRiT of the masked k-space; one calibration block for all slices. Non-Cartesian
    (``acq.nufft``): of the k-space of the samples' least-squares images
    (``espirit.noncartesian_kspace``)."""
    if acq.nufft is not None:
        kspace = espirit.noncartesian_kspace(acq.kspace, acq.nufft)
    else:
        kspace = acq.kspace * acq.mask.unsqueeze(1)
    if options.size is not None:
        kspace = _padded(kspace, options.size)
    size = espirit.calibration_size(kspace, options.calib, options.kernel)
    unsampled = espirit.unsampled_count(kspace, size) if options.calib is not None else 0
    device = torch.device(device)
    chunk = 1 if device.type == "cpu" else 8
    maps, values, kernels = [], [], []
    for start in range(0, acq.slice_count, chunk):
        stop = min(start + chunk, acq.slice_count)
        result = espirit.espirit(
            kspace[start:stop].to(device), calib=size, kernel=options.kernel,
            threshold=options.threshold, crop=options.crop, soft_crop=options.soft_crop,
            sets=options.sets, phase_ref=options.phase_ref, factor=1 if options.exact else None)
        maps.append(result.maps.cpu())
        values.append(result.eigenvalues.cpu())
        kernels += result.kernels.cpu().tolist()
        if progress is not None:
            progress(stop - start)
    return EspiritMaps(torch.cat(maps), torch.cat(values), size, unsampled, kernels)


def _padded(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A calibration scan (S, C, h, w) centred in zeros of the image grid (S, C, H, W): the
    same k-space points, cycles per FOV, when both share the field of view."""
    from ..errors import UsageError
    from ..resize import center_pad

    if kspace.shape[-2] > size[0] or kspace.shape[-1] > size[1]:
        raise UsageError(f"--size {size[0]} {size[1]}: smaller than the k-space "
                         f"{kspace.shape[-2]} x {kspace.shape[-1]}")
    return center_pad(kspace, size)
