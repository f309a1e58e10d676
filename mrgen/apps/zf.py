"""Zero-filled reconstruction of an acquisition (``mrgen zf``)."""

from __future__ import annotations

import torch

from ..acquisition import Acquisition
from ..resize import check_crop
from ..zerofill import zero_filled


def zero_filled_app(acq: Acquisition, crop=None, magnitude: bool = True) -> torch.Tensor:
    """(S, H, W): the masked k-space's inverse FFT, combined by the maps (when the acquisition
    has them) or by root-sum-of-squares; magnitude unless ``magnitude`` is False."""
    if not magnitude and acq.maps is None:
        from ..errors import UsageError

        raise UsageError("--complex: needs --maps (an RSS image has no phase)")
    return zero_filled(acq.kspace, acq.mask, acq.maps, crop=check_crop(crop, acq.image_shape),
                       magnitude=magnitude, nufft=acq.nufft)
