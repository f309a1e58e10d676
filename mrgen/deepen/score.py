"""Denoising score matching of DEEPEN's energy (``train deepen --objective dsm``): a warm start
that needs no Langevin chains.

DEEPEN's posterior p(x | b) ~ exp(-(1/2 ||A x - b||^2 + E(x)) / T) is sampled at the
temperature T = eps^2 / 2 of Eq. 16 (step 1, noise eps), so the data term is that of Gaussian
noise of variance s^2 = T per real component and E = s^2 (-log p(x)) is the prior in the same
units. Denoising score matching (Vincent 2011) fits exactly that: for clean images x (the
training truth in the normalised scale, as maximum likelihood's x+: with its N(0, (2 eps^2)^2)
noise, 8e-4 at eps 0.02, far below sigma), y = x + sigma n with n ~ N(0, I) on the real view,

    loss = mean || (sigma^2 / s^2) grad E(y) - sigma n ||^2 / sigma^2,

whose minimiser makes y - (sigma^2 / s^2) grad E(y) the MMSE denoiser of y, i.e. by Tweedie's
formula E = s^2 (-log p_sigma) + const, the prior smoothed at sigma. The default sigma = s
makes the MAP's majorise-minimise step and the Langevin step of Eq. 16 use the denoiser of the
noise level they assume. Maximum likelihood (the paper's objective) can then start from this
energy (``--init``) instead of from random weights, which on a CPU budget runs away (see
``models/Makefile``).

Patches of ``patch`` x ``patch`` are cut at random from the step's normalised images, turned
by a random multiple of 90 degrees and flipped, as for the energy prior
(``mrgen.training.score.random_patches``).
"""

from __future__ import annotations

import math

import torch


def default_sigma(eps: float) -> float:
    """s = eps / sqrt(2): the noise level of DEEPEN's data term at the sampler's temperature."""
    return eps / math.sqrt(2.0)


def complex_patches(images: torch.Tensor, count: int, size: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``count`` random patches (count, size, size, 2) of complex images (B, H, W) as real
    views (at most the image size)."""
    from ..training.score import random_patches

    size = min(size, *images.shape[-2:])
    return random_patches(torch.view_as_real(images), count, size, generator)


def deepen_dsm_loss(energy, clean: torch.Tensor, sigma: float, temperature: float,
                    noise: torch.Tensor) -> torch.Tensor:
    """The loss above for real views ``clean`` and ``noise`` (N, P, P, 2); differentiable in
    the energy's parameters (a double backward pass)."""
    noisy = (clean + sigma * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(noisy).sum(), noisy, create_graph=True)
    residual = (sigma ** 2 / temperature) * grad.to(noisy.dtype)
    return (residual - sigma * noise).square().mean() / sigma ** 2
