"""A multiscale energy prior: the residual network of ``local_energy`` as a small U-Net.

The energy is the same as the local head's, R(x) = sum_pixels r(x; sigma)^2 / (2 sigma^2),
trained the same way (denoising score matching at many levels), but r is an encoder-decoder
in the manner of the DRUNet of Hurault, Leclaire, Papadakis 2022 (their gradient-step
denoiser's network) rather than a flat dilated stack: ``stages`` times a 2 x 2 average pool
and two 3 x 3 convolutions (widths width, 2 width, ... capped at 4 width), at the coarsest
level one 3 x 3 convolution per ``dilations`` entry, then back up by nearest upsampling, a
3 x 3 convolution, the encoder's features added (skip) and two convolutions. SiLU throughout,
no batch norm (the energy must not depend on the batch).

Why: the local head's 49 x 49 receptive field cannot see what undersampling does at larger
distances (the ghosts of 4x 1D Cartesian sampling sit 64 pixels away on a 256 image; without
the k-space centre whole-image intensity shifts). With 3 stages and dilations 1, 2, 4, 8, 4, 2,
1 at the coarsest level the field spans about 400 pixels at 1/8 the cost per pixel.

Every pixel still gets energy and gradient at any image size (the input is zero padded to a
multiple of 2^stages and cropped back). The network is translation-equivariant for shifts by
multiples of 2^stages away from the border (pooling fixes a grid); an image's energy is not
a sum over tiles, as the receptive field is the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .local_energy import ResidualEnergy, init_convolutions


@dataclass(frozen=True)
class UNetEnergyConfig:
    width: int = 16
    stages: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)   # the coarsest level's convolutions
    sigma: float = 0.02
    head: str = "unet"

    def widths(self) -> list[int]:
        """Channels at each level, finest first (stages + 1 levels)."""
        return [self.width * min(2 ** s, 4) for s in range(self.stages + 1)]

    @property
    def radius(self) -> int:
        """A bound on the receptive field's half-width (full-resolution pixels): the first
        and last convolutions, per level the pool (or upsampling) and its convolutions at
        that level's pixel size, the coarsest level's dilated convolutions."""
        down = sum(2 ** (s - 1) + 2 * 2 ** s for s in range(1, self.stages + 1))
        up = sum(2 ** (s - 1) * 4 for s in range(1, self.stages + 1))
        return 1 + down + sum(self.dilations) * 2 ** self.stages + up + 1

    @property
    def period(self) -> int:
        """Shifts by multiples of this move the energy map with the image."""
        return 2 ** self.stages

    def to_dict(self) -> dict:
        out = asdict(self)
        out["dilations"] = list(self.dilations)
        return out


def build_unet_model(architecture: dict) -> UNetEnergyNet:
    config = dict(architecture)
    config["dilations"] = tuple(config.get("dilations", UNetEnergyConfig.dilations))
    return UNetEnergyNet(UNetEnergyConfig(**config))


def _conv(c_in: int, c_out: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation)


class UNetEnergyNet(ResidualEnergy):
    """R: images (B, H, W) or (B, 1, H, W), real -> energies (B,); ``energy_map`` gives the
    per-pixel terms (B, H, W)."""

    def __init__(self, config: UNetEnergyConfig = UNetEnergyConfig()):
        super().__init__(config.sigma)
        if config.width < 1 or config.stages < 1 or not config.dilations \
                or min(config.dilations) < 1:
            raise ValueError("width, stages and dilations must be positive")
        self.config = config
        w = config.widths()
        self.first = _conv(2, w[0])
        self.encode = nn.ModuleList(
            nn.ModuleList([_conv(w[s], w[s + 1]), _conv(w[s + 1], w[s + 1])])
            for s in range(config.stages))
        self.middle = nn.ModuleList(_conv(w[-1], w[-1], d) for d in config.dilations)
        self.up = nn.ModuleList(_conv(w[s + 1], w[s]) for s in range(config.stages))
        self.decode = nn.ModuleList(nn.ModuleList([_conv(w[s], w[s]), _conv(w[s], w[s])])
                                    for s in range(config.stages))
        self.last = _conv(w[0], 1)
        self.reset_parameters()
        self.channels_last()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        convs = [self.first, *(c for pair in self.encode for c in pair), *self.middle,
                 *self.up, *(c for pair in self.decode for c in pair)]
        init_convolutions(convs, self.last, generator)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2:]
        p = self.config.period
        inputs = F.pad(inputs, (0, -width % p, 0, -height % p))
        h = F.silu(self.first(inputs))
        skips = []
        for first, second in self.encode:
            skips.append(h)
            h = F.avg_pool2d(h, 2)
            h = F.silu(second(F.silu(first(h))))
        for conv in self.middle:
            h = F.silu(conv(h))
        for s in reversed(range(self.config.stages)):
            h = F.silu(self.up[s](F.interpolate(h, scale_factor=2, mode="nearest")))
            first, second = self.decode[s]
            h = F.silu(second(F.silu(first(h + skips[s]))))
        return self.last(h)[..., :height, :width]
