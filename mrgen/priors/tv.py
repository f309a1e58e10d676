"""Charbonnier-smoothed total variation, Zach, Knoll, Pock 2023 Eq. 18: sum_i sqrt((Dx)_h^2 + (Dx)_v^2 + eps^2).

Forward differences with a zero difference at the last row/column (Neumann boundary).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class CharbonnierTV(nn.Module):
    """TV energy of real images (B, H, W) -> (B,), differentiable everywhere."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        dh = torch.diff(images, dim=-1, append=images[..., -1:])
        dv = torch.diff(images, dim=-2, append=images[..., -1:, :])
        magnitude = torch.sqrt(dh.abs() ** 2 + dv.abs() ** 2 + self.eps ** 2)
        return magnitude.flatten(1).sum(1)
