"""Combining coil images: root-sum-of-squares and combination with sensitivity maps."""

from __future__ import annotations

import torch


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis (real output)."""
    return torch.sqrt(torch.sum(coil_images.abs() ** 2, dim=dim))


def combine(coil_images: torch.Tensor, maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Least-squares coil combination: sum_c conj(s_c) x_c / sum_c |s_c|^2.

    Equals the adjoint of the coil expansion for maps normalised to unit sum of squares; the
    division keeps it exact for unnormalised maps, and pixels where all maps vanish give 0.
    """
    numerator = torch.sum(maps.conj() * coil_images, dim=-3)
    energy = torch.sum(maps.abs() ** 2, dim=-3)
    return torch.where(energy > eps, numerator / energy.clamp_min(eps), torch.zeros_like(numerator))


def null_space_residual(coil_images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Zach, Knoll, Pock 2023, Eq. 17: pi_c = s_c / |S|^2 sum_i conj(s_i) u_i - u_c, per coil.

    With exact maps the fully sampled coil images u_c = s_c u lie in the span of the maps and
    the residual holds only noise; signal left in it points to poor map estimates.
    """
    return maps * combine(coil_images, maps).unsqueeze(-3) - coil_images
