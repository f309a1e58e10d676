"""A fully convolutional energy prior: local energies summed over the whole image, any size.

The energy of a real image x (H, W) at the noise level sigma the model was set to is

    R(x) = sum_pixels e(x)_p,      e(x) = r(x; sigma)^2 / (2 sigma^2),

where r is a convolutional network (3 x 3 convolutions, dilations growing 1, 2, 4, ... and
back, SiLU activations, no stride, no pooling) fed the image and a constant sigma channel.
It is the gradient-step denoiser of Hurault, Leclaire, Papadakis 2022 written as a density:
trained by denoising score matching (Vincent 2011) at many noise levels (Song, Ermon 2019),
grad_x (sigma^2 R) = J_r^T r is the residual of a denoiser, D_sigma(x) = x - sigma^2 grad R(x)
estimates the clean image from x + sigma n, and by Tweedie's formula R(x) = -log p_sigma(x)
+ const, the density of the training images smoothed by N(0, sigma^2): a temperature of 1
samples that density, and lambda-free MAP needs only the data term's noise level.

Every pixel gets energy and gradient: a network trained on P x P patches regularises an
H x W image of any size. Without stride the map e is translation-equivariant; zero padding
changes it only within ``radius`` pixels of the border (the receptive field's half-width), so
the energy of an image equals the sum of the energy maps of tiles cut with a ``radius`` halo.
The paper's fixed-crop global head (``energy.EnergyNet``) stays for paper-scale models;
``unet_energy`` puts the same energy on a U-Net whose field spans the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class LocalEnergyConfig:
    width: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8, 4, 2, 1)
    sigma: float = 0.02              # the level R is evaluated at until `train calibrate`
                                     # stores its choice under "fitted" (loading applies it)
    head: str = "local"              # tells model files this is not the global-head network

    @property
    def radius(self) -> int:
        """Half-width of the receptive field of e (input conv, dilated convs, output conv)."""
        return 1 + sum(self.dilations) + 1

    def to_dict(self) -> dict:
        out = asdict(self)
        out["dilations"] = list(self.dilations)
        return out


class ResidualEnergy(nn.Module):
    """The energy r(x; sigma)^2 / (2 sigma^2) summed over pixels, for any network r fed the
    image and a constant sigma channel (``features``, (B, 2, H, W) -> (B, 1, H, W)); the
    residual is that output plus ``high_pass(x)``. ``sigma`` (a buffer) is the level R is
    evaluated at; training passes its own levels to ``energy_map`` and ``residual``."""

    def __init__(self, sigma: float):
        super().__init__()
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def channels_last(self) -> "ResidualEnergy":
        """The convolution weights in the channels-last layout ``residual`` feeds them."""
        return self.to(memory_format=torch.channels_last)

    def residual(self, images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """r(x; sigma) (B, 1, H, W); ``sigma`` a scalar or one level per image (B,)."""
        x = images if images.dim() == 4 else images.unsqueeze(1)
        level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        level = (level.log() + 4) / 2      # about -0.6 .. 1.2 for sigma 0.005 .. 0.2
        inputs = torch.cat([x, level.expand(x.shape[0], 1, *x.shape[-2:])], 1)
        # channels-last: oneDNN's convolutions on the CPU take ~25% less time that way (energy
        # and gradient of 4 x 256 x 256, one thread: 1.9 against 2.5 s); the weights follow
        # (``channels_last``)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        # under bfloat16 autocast (mrgen.precision) the high pass stays in x's precision: it
        # is the residual's start, and bfloat16's rounding of x - G x (~0.2% of x) would be
        # several per cent of a residual of size sigma
        with torch.autocast(x.device.type, enabled=False):
            smooth = high_pass(x.float() if x.dtype == torch.bfloat16 else x)
        return self.features(inputs).to(smooth.dtype) + smooth

    def energy_map(self, images: torch.Tensor, sigma=None) -> torch.Tensor:
        """e(x) (B, H, W): the per-pixel energies r^2 / (2 sigma^2)."""
        sigma = self.sigma if sigma is None else torch.as_tensor(sigma, device=images.device)
        r = self.residual(images, sigma)
        level = torch.as_tensor(sigma, dtype=r.dtype).reshape(-1, 1, 1, 1)
        return (r.square() / (2 * level.square())).squeeze(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.energy_map(images).flatten(1).sum(1)

    def set_sigma(self, sigma: float) -> None:
        self.sigma.fill_(float(sigma))


def init_convolutions(convs, last, generator: torch.Generator | None = None) -> None:
    """Variance-preserving normal weights (gain 1.68: E silu(z)^2 = 0.355 for z ~ N(0, 1)),
    zero biases, and a zero ``last`` layer: r starts as the high pass (see ``high_pass``)."""
    for conv in [*convs, last]:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        gain = 0.0 if conv is last else 1.68
        with torch.no_grad():
            # drawn in the logical order whatever the weights' memory layout
            drawn = torch.empty(conv.weight.shape, dtype=conv.weight.dtype,
                                device=conv.weight.device)
            conv.weight.copy_(drawn.normal_(0.0, gain / math.sqrt(fan_in), generator=generator))
            conv.bias.zero_()


class LocalEnergyNet(ResidualEnergy):
    """R: images (B, H, W) or (B, 1, H, W), real -> energies (B,); ``energy_map`` gives the
    per-pixel terms (B, H, W)."""

    def __init__(self, config: LocalEnergyConfig = LocalEnergyConfig()):
        super().__init__(config.sigma)
        if config.width < 1 or not config.dilations or min(config.dilations) < 1:
            raise ValueError("width and dilations must be positive")
        self.config = config
        w = config.width
        self.first = nn.Conv2d(2, w, 3, padding=1)
        self.hidden = nn.ModuleList(nn.Conv2d(w, w, 3, padding=d, dilation=d)
                                    for d in config.dilations)
        self.last = nn.Conv2d(w, 1, 3, padding=1)
        self.reset_parameters()
        self.channels_last()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        init_convolutions([self.first, *self.hidden], self.last, generator)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.first(inputs))
        for conv in self.hidden:
            h = F.silu(conv(h))
        return self.last(h)


def high_pass(images: torch.Tensor) -> torch.Tensor:
    """x - G x, G a 5 x 5 Gaussian blur (std 1 pixel), zero padded. The residual starts here
    (the network's last layer at zero): a quadratic smoothness energy, from which training
    moves away at once. Starting the residual at 0 would start at a saddle (the denoiser's
    step J_r^T r is quadratic in r) where score matching barely moves."""
    t = torch.arange(-2, 3, dtype=images.dtype, device=images.device)
    g = torch.exp(-0.5 * t.square())
    kernel = (g[:, None] * g[None, :] / g.sum().square()).reshape(1, 1, 5, 5)
    return images - F.conv2d(images, kernel, padding=2)


def build_local_model(architecture: dict) -> LocalEnergyNet:
    config = dict(architecture)
    config["dilations"] = tuple(config.get("dilations", LocalEnergyConfig.dilations))
    return LocalEnergyNet(LocalEnergyConfig(**config))
