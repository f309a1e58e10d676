"""CG-SENSE of an acquisition, slice chunk by slice chunk (``mrgen sense``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..acquisition import Acquisition
from ..resize import center_crop, check_crop
from ..sense import DEFAULT_ITERS, DEFAULT_LAM, DEFAULT_TOL, sense_reconstruction


@dataclass
class SenseOptions:
    lam: float = DEFAULT_LAM
    iters: int = DEFAULT_ITERS
    tol: float = DEFAULT_TOL
    magnitude: bool = False
    crop: tuple[int, int] | None = None


@dataclass
class SenseResult:
    image: torch.Tensor          # (S, H, W) on the CPU: complex, or magnitude
    iterations: int              # CG iterations of the slowest slice
    worst_residual: float        # relative residual of the normal equations, worst slice


def sense_app(acq: Acquisition, options: SenseOptions, init: torch.Tensor | None = None,
              device="cpu", progress=None) -> SenseResult:
    """Solve (A^H A + lam I) x = A^H y per slice; ``init`` (S, H, W) warm-starts CG. Slices go
    to ``device`` in chunks (one on a CPU, eight on a GPU) and come back to the CPU."""
    if acq.maps is None:
        raise ValueError("sense_app: the acquisition needs maps")
    crop = check_crop(options.crop, acq.image_shape)
    device = torch.device(device)
    chunk = 1 if device.type == "cpu" else 8
    images, iterations, worst = [], 0, 0.0
    for start, stop, part in acq.batches(chunk, device):
        x0 = None if init is None else init[start:stop].to(device)
        image, cg = sense_reconstruction(part.kspace, part.maps, mask=part.mask,
                                         lam=options.lam, iters=options.iters,
                                         tol=options.tol, x0=x0, return_info=True,
                                         nufft=part.nufft)
        image = center_crop(image, crop) if crop is not None else image
        images.append((image.abs() if options.magnitude else image).cpu())
        iterations = max(iterations, cg.iterations)
        worst = max(worst, float(cg.residual.max()))
        if progress is not None:
            progress(stop - start)
    return SenseResult(torch.cat(images), iterations, worst)
