"""The learned energy R_theta of Zach, Knoll, Pock 2023 (Eq. 16), as in the authors' code.

R_theta = |FC(S_L(...S_1(conv(crop(u)))))|: a 3x3 convolution, then per stage a 3x3 stride-2
convolution and (from the second stage on) a 3x3 convolution, leaky ReLU (slope 0.05) after
each, no biases; a final unpadded convolution whose kernel covers the remaining image (the
"fully connected" layer) gives one scalar per image, and its absolute value is the energy.
Widths follow the code: width(s) = base_width * int(growth**s), which with base 48, growth
1.75 and 6 stages gives 48, 48, 144, 240, 432, 768, 1344 channels and about 21 M parameters.

The network sees only the central ``crop x crop`` region of an image (smaller images are
zero-padded to it), so its gradient is zero outside that region; the authors trained on the
central 320x320 RSS crop of fastMRI knees. Their 180-degree rotation of the crop is an
orientation detail of their data and is not reproduced.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..resize import crop_or_pad

KIND = "energy-prior"  # the model kind in model files (mrgen.model_files)
RESIDUAL_HEADS = ("local", "unet", "multiscale")   # score-matching energies of the whole image


@dataclass(frozen=True)
class EnergyConfig:
    base_width: int = 48
    growth: float = 1.75
    stages: int = 6
    crop: int = 320
    leak: float = 0.05

    def widths(self) -> list[int]:
        return [self.base_width * int(self.growth ** s) for s in range(self.stages + 1)]

    @property
    def final_size(self) -> int:
        size = self.crop
        for _ in range(self.stages):
            size = (size + 1) // 2  # a 3x3 stride-2 convolution with padding 1
        return size

    def to_dict(self) -> dict:
        return asdict(self)


class EnergyNet(nn.Module):
    """R_theta: images (B, H, W) or (B, 1, H, W), real -> energies (B,)."""

    def __init__(self, config: EnergyConfig = EnergyConfig()):
        super().__init__()
        if config.final_size < 1:
            raise ValueError(f"crop {config.crop} is too small for {config.stages} stages")
        self.config = config
        widths = config.widths()
        layers = [nn.Conv2d(1, widths[0], 3, padding=1, bias=False)]
        for s in range(1, config.stages + 1):
            if s > 1:
                layers.append(nn.Conv2d(widths[s - 1], widths[s - 1], 3, padding=1, bias=False))
            layers.append(nn.Conv2d(widths[s - 1], widths[s], 3, stride=2, padding=1,
                                    bias=False))
        self.features = nn.ModuleList(layers)
        self.head = nn.Conv2d(widths[-1], 1, config.final_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Weights ~ N(0, 1 / (c_in k^2)), as the authors initialise them."""
        for conv in [*self.features, self.head]:
            fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            with torch.no_grad():
                conv.weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images if images.dim() == 4 else images.unsqueeze(1)
        x = crop_or_pad(x, (self.config.crop, self.config.crop))
        for conv in self.features:
            x = F.leaky_relu(conv(x), self.config.leak)
        h = self.head(x).abs()
        # summed at least in float32 (under bfloat16 autocast, mrgen.precision, the head's
        # output is bfloat16, whose rounding would show in the chains' energy traces)
        return h.flatten(1).sum(1, dtype=torch.promote_types(h.dtype, torch.float32))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(architecture: dict) -> nn.Module:
    """The network a model file's architecture describes: the fully convolutional prior of
    ``local_energy`` (``unet_energy``, ``multiscale_energy``) when it says ``head: local``
    (``unet``, ``multiscale``), else this module's global-head network."""
    if architecture.get("head") == "multiscale":
        from .multiscale_energy import build_multiscale_model

        return build_multiscale_model(architecture, build_model)
    if architecture.get("head") == "unet":
        from .unet_energy import build_unet_model

        return build_unet_model(architecture)
    if architecture.get("head") == "local":
        from .local_energy import build_local_model

        return build_local_model(architecture)
    return EnergyNet(EnergyConfig(**architecture))


def energy_and_grad(energy_fn, images: torch.Tensor, create_graph: bool = False):
    """Per-image energies (B,) and their gradients w.r.t. the images, by autograd.

    Works for any energy that maps a batch to one value per image (EnergyNet, TV, a posterior).
    The parameters' gradients are left untouched (torch.autograd.grad, not backward).
    """
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        energies = energy_fn(x)
        (grad,) = torch.autograd.grad(energies.sum(), x, create_graph=create_graph)
    return energies.detach(), grad
