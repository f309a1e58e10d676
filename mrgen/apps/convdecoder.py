"""Un-trained network reconstruction of an acquisition (``mrgen convdecoder``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..acquisition import Acquisition
from ..resize import check_crop


@dataclass
class UntrainedSettings:
    arch: str = "convdecoder"          # convdecoder | deepdecoder | dip
    layers: int | None = None          # None: the architecture's default
    channels: int | None = None
    input_size: tuple[int, int] = (8, 4)
    iters: int = 2500
    lr: float = 0.008
    runs: int = 1                      # networks averaged
    dc: bool = True                    # put the measured samples back before combining
    crop: tuple[int, int] | None = None
    magnitude: bool = True
    amp: bool = False                  # bfloat16 autocast


def convdecoder_app(acq: Acquisition, settings: UntrainedSettings, seed: int, device,
                    progress: bool = False) -> dict:
    """``mrgen.untrained.fit_untrained`` on every slice: image (S, H, W), runs (runs, S, H, W),
    residual (runs, S), ... (see there); the maps select the SENSE variant."""
    from ..untrained import fit_untrained

    if not settings.magnitude and acq.maps is None:
        from ..errors import UsageError

        raise UsageError("--complex: needs --maps (an RSS image has no phase)")
    return fit_untrained(
        acq.kspace, acq.mask, acq.maps, arch=settings.arch, layers=settings.layers,
        channels=settings.channels, input_size=tuple(settings.input_size), iters=settings.iters,
        lr=settings.lr, runs=settings.runs, seed=seed, dc=settings.dc,
        crop=check_crop(settings.crop, acq.image_shape), magnitude=settings.magnitude,
        amp=settings.amp, progress=progress, device=device)
