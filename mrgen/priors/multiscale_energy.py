"""A two-scale energy prior: local detail plus the whole object seen at low resolution.

    R(x) = R_fine(x) + w R_coarse(D x)

R_fine is a patch-trained whole-image energy (``local_energy`` or ``unet_energy``); D
averages f x f blocks (``downsample``; f = 8 takes 256 x 256 to 32 x 32), and R_coarse is a
local energy trained by denoising score matching on *whole* training images passed through
D, so its 49 x 49 field covers the object: where the head ends, that the background is
black, how bright the tissue is across the image. Both are R = -log p_sigma energies of
their own images (``local_energy``); w weighs the coarse one (it repeats what the fine one
knows of the lowest frequencies, so it is a product of experts, not one density).

Why: sampling without a dense k-space centre (3x uniform random, Zach, Knoll, Pock 2023
Table 1) leaves some of the lowest frequencies unmeasured, waves as long as the image. A
49-pixel field cannot tell them from anatomy and fills the image with blotches (the fine
prior alone: 8.7 dB on some test masks); the paper's answer is a network that sees the whole
320 x 320 knee, this one sees the whole image at 1/f the size for a fraction of the cost.
On validation it helped by +5.5, +2.4 and about +0.5 dB in three training runs of one
recipe: not shipped yet (models/Makefile).

Levels: white noise of std s becomes noise of std s / f after D, so ``set_sigma(s)`` puts
the fine energy at s and the coarse one at s / f. Every pixel gets a gradient; the energy is
translation-equivariant for shifts by multiples of f (D's stride) away from the border.
Curvature: R_coarse's is at most ~1 / (s/f)^2 and D^T D = 1/f^2 on block-constant images,
so the coarse term adds up to w / s^2 to the fine energy's 1 / s^2 (plain ULA's step shrinks
by 1 + w, ``loading``).
A tent filter of width 2 f instead of the block mean (smooth D^T, no 8 x 8 blocks in the
gradient) did worse on validation (single coil, 3x uniform random, 5 slices, coarse weight
4: 24.0 against 26.3 dB mean PSNR; weight 16: 22.7 against 25.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .local_energy import build_local_model


def downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """D: (B, H, W) or (B, 1, H, W) -> the same rank at (H // f, W // f), the mean of each
    f x f block."""
    x = images.unsqueeze(1) if images.dim() == 3 else images
    out = F.avg_pool2d(x, factor)
    return out.squeeze(1) if images.dim() == 3 else out


def noise_gain(factor: int) -> float:
    """The std of D's output for unit white noise: 1 / f."""
    return 1.0 / factor


@dataclass(frozen=True)
class MultiScaleConfig:
    fine: dict                           # a residual energy's architecture (local or unet)
    coarse: dict                         # a local energy's architecture
    factor: int = 8
    coarse_weight: float = 4.0
    head: str = "multiscale"

    def __post_init__(self):
        if self.factor < 2 or self.factor % 2:
            raise ValueError(f"factor {self.factor}: an even number >= 2")
        if self.coarse_weight < 0:
            raise ValueError(f"coarse_weight {self.coarse_weight}: must be >= 0")
        if self.fine.get("head") not in ("local", "unet") or self.coarse.get("head") != "local":
            raise ValueError("a multiscale energy needs a local or unet fine energy and a "
                             "local coarse one")

    def to_dict(self) -> dict:
        return {"head": self.head, "factor": self.factor, "coarse_weight": self.coarse_weight,
                "fine": dict(self.fine), "coarse": dict(self.coarse)}


class MultiScaleEnergy(nn.Module):
    """R: images (B, H, W) or (B, 1, H, W), real -> energies (B,). ``fine`` and ``coarse``
    are ResidualEnergy networks; ``trained_part`` is what ``train prior --head multiscale``
    fits (the coarse network: the fine one comes trained)."""

    def __init__(self, config: MultiScaleConfig, fine: nn.Module):
        super().__init__()
        self.config = config
        self.fine = fine
        self.coarse = build_local_model(config.coarse)
        self.gain = noise_gain(config.factor)
        self.set_sigma(float(self.fine.sigma))

    @property
    def coarse_weight(self) -> float:
        return float(self.config.coarse_weight)

    @property
    def sigma(self) -> torch.Tensor:
        """The fine level (ipalm's annealing and the sampler read it)."""
        return self.fine.sigma

    def set_sigma(self, sigma: float) -> None:
        self.fine.set_sigma(sigma)
        self.coarse.set_sigma(sigma * self.gain)

    def trained_part(self) -> nn.Module:
        return self.coarse

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Resets the coarse network only (the fine one is loaded from its own model)."""
        self.coarse.reset_parameters(generator)

    def coarse_images(self, images: torch.Tensor) -> torch.Tensor:
        return downsample(images, self.config.factor)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        energy = self.fine(images)
        if self.coarse_weight:
            energy = energy + self.coarse_weight * self.coarse(self.coarse_images(images))
        return energy


def build_multiscale_model(architecture: dict, build) -> MultiScaleEnergy:
    """The model of a multiscale architecture; ``build`` (``energy.build_model``) makes its
    fine network."""
    config = MultiScaleConfig(**architecture)
    return MultiScaleEnergy(config, build(config.fine))
