"""Deep J-Sense, MoDL or plain L2 J-Sense on an acquisition, slice by slice (``mrgen djsense``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..acquisition import Acquisition
from ..errors import DataError


@dataclass
class L2JSense:
    """Plain J-Sense with L2 regularisation (no networks): the settings of ``--mode l2``."""
    unrolls: int = 6
    map_cg: int = 6
    image_cg: int = 6
    map_kernel: tuple[int, int] = (15, 9)
    lam: float = 0.01


@dataclass
class JointReconstruction:
    rss: torch.Tensor             # (S, H, W) float32, in the data's units
    image: torch.Tensor           # (S, H, W) complex64
    maps: torch.Tensor            # (S, C, H, W) complex64 (ESPIRiT's for MoDL)
    method: str                   # Deep J-Sense, MoDL or L2 J-Sense
    unrolls: int


def djsense_network(model: str | None, l2: L2JSense, device):
    """The unrolled network: a trained model (file or shipped name) or L2 J-Sense."""
    from ..djsense.model import DJSense, DJSenseConfig
    from ..djsense.training import load_djsense

    if model is not None:
        return load_djsense(model, device)[0]
    config = DJSenseConfig(mode="l2", unrolls=l2.unrolls, map_cg=l2.map_cg,
                           image_cg=l2.image_cg, map_kernel=tuple(l2.map_kernel),
                           lam_map=l2.lam, lam_image=l2.lam)
    return DJSense(config).to(device).eval()


def djsense_app(acq: Acquisition, network, device, unrolls: int | None = None,
                progress=None) -> JointReconstruction:
    """Each slice on its own on ``device`` (the network's); results on the CPU."""
    from ..djsense.training import reconstruct

    rss, images, maps = [], [], []
    for index, _, part in acq.batches(1, device):
        if not bool((part.mask > 0).any()):
            raise DataError(f"{acq.source}: slice {index} has no sampled k-space")
        result = reconstruct(network, part.kspace, part.mask, unrolls=unrolls)
        rss.append(result["rss"].cpu())
        images.append(result["image"].cpu())
        maps.append(result["maps"].cpu())
        if progress is not None:
            progress(1)
    mode = network.config.mode
    what = "MoDL" if mode == "modl" else ("L2 J-Sense" if mode == "l2" else "Deep J-Sense")
    return JointReconstruction(torch.cat(rss), torch.cat(images), torch.cat(maps), what,
                               unrolls or network.config.unrolls)

