"""Combining coil images (root-sum-of-squares, combination with sensitivity maps) and
compressing coil maps to fewer virtual coils."""

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


def compress_maps(maps: torch.Tensor, keep: float = 0.995) -> torch.Tensor:
    """Virtual coil maps (B, K, H, W) from maps (B, C, H, W): the K <= C principal
    combinations U^H S (each slice's own unitary U, the eigenvectors of sum_x S(x) S(x)^H)
    that hold ``keep`` of the maps' energy in every slice (SVD coil compression, Buehrer et
    al. 2007, Huang et al. 2008, applied to the maps). All C of them give the same normal
    operator sum_c S_c^* T S_c for any T that acts coil by coil; K of them miss only the
    dropped combinations' part, which is positive semi-definite: the compressed operator is
    never larger. Where it is a model (a preconditioner) it costs K / C of the work."""
    flat = maps.flatten(2)                                        # (B, C, HW)
    gram = flat @ flat.conj().transpose(-1, -2)                   # (B, C, C) Hermitian
    values, vectors = torch.linalg.eigh(gram)                     # ascending
    values, vectors = values.flip(-1).clamp_min(0), vectors.flip(-1)
    share = values.cumsum(-1) / values.sum(-1, keepdim=True).clamp_min(1e-30)
    count = int((share < keep).sum(-1).max()) + 1                 # the largest slice's K
    count = min(count, maps.shape[-3])
    basis = vectors[..., :count]                                  # (B, C, K)
    return torch.einsum("bck,bchw->bkhw", basis.conj(), maps)
