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
        dh, dv, magnitude = self._parts(images)
        return magnitude.flatten(1).sum(1)

    def _parts(self, images):
        dh = torch.diff(images, dim=-1, append=images[..., -1:])
        dv = torch.diff(images, dim=-2, append=images[..., -1:, :])
        magnitude = torch.sqrt(dh.abs() ** 2 + dv.abs() ** 2 + self.eps ** 2)
        return dh, dv, magnitude

    def energy_and_grad(self, images: torch.Tensor):
        """(TV, its gradient D^T (D x / magnitude)) in closed form: iPALM takes it once per
        iteration, and autograd's graph costs ten times the energy (7 against 0.7 ms at
        640 x 368); the tests compare the two. Real images only."""
        dh, dv, magnitude = self._parts(images)
        ph, pv = dh / magnitude, dv / magnitude
        # D^T p: the forward difference's adjoint, p_{j-1} - p_j, with p_{-1} = 0 (the last
        # difference is zero, so p there is zero too)
        grad = -ph - pv
        grad[..., 1:] += ph[..., :-1]
        grad[..., 1:, :] += pv[..., :-1, :]
        return magnitude.flatten(1).sum(1), grad
