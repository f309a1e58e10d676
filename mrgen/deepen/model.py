"""DEEPEN's energy E_theta(x) and posterior cost C(x) = 1/2 ||A x - b||^2 + E(x) (Chand, Jacob 2025).

The network (Section III.B.1): ``depth`` 3x3 convolutions of ``width`` channels, each followed
by a ReLU, then a linear layer and an absolute value, so that E >= 0 (the lower bound Lemma
2.1 needs). The paper uses depth 5 and width 64; the defaults here are those, and small
widths (4-8) train on a CPU.

Choices the paper leaves open (written down because DEEPEN has no public code):

- complex images enter as two real channels (real, imaginary); convolutions are zero-padded
  ("same" size), with bias;
- the "linear layer" is applied per pixel (a 1x1 convolution from ``width`` channels to one),
  its absolute value is taken per pixel and the energy is the *sum* over pixels:
  E(x) = sum_p |w^T h_p(x) + c|. This keeps the network size-independent (any H x W, so a
  model trained on 320 x 320 also runs on other matrix sizes) and makes E extensive, like the
  data term 1/2 ||A x - b||^2 it is added to. (A dense linear layer over the flattened
  feature map would fix the image size.)
- With ReLU the energy is piecewise linear in x: its gradient is piecewise constant and has
  no finite global Lipschitz constant. The MAP solver therefore does not rely on a
  Lipschitz estimate being right but checks the majorisation and backtracks (see
  ``mrgen.deepen.recon``). ``activation`` "softplus" (smooth, not the paper's) is offered
  for experiments.
- Data scale: the energy sees the image divided by ``data_scale`` (the maximum magnitude of
  the Tikhonov SENSE reconstruction, lam 0.01, of the *undersampled* data), computed the same
  way in training and at inference, so neither needs the ground truth. The k-space b is
  divided by the same number: the posterior is that of the scaled problem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

KIND = "deepen-energy"
NORMALISATION = ("image and k-space divided by the maximum magnitude of the Tikhonov SENSE "
                 "reconstruction (lam 0.01, 30 CG iterations) of the undersampled data, per "
                 "slice (mrgen.deepen.model.data_scale)")
ACTIVATIONS = ("relu", "softplus")
SCALE_LAM = 0.01
SCALE_ITERS = 30


@dataclass(frozen=True)
class DeepenConfig:
    width: int = 64          # channels of every convolution (paper: 64)
    depth: int = 5           # 3x3 convolutions (paper: 5)
    activation: str = "relu"  # paper: ReLU

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DeepenConfig":
        return cls(**{k: d[k] for k in ("width", "depth", "activation") if k in d})

    def validate(self) -> None:
        from ..errors import UsageError

        if self.width < 1 or self.depth < 1:
            raise UsageError(f"--width {self.width} / --depth {self.depth}: must be positive")
        if self.activation not in ACTIVATIONS:
            raise UsageError(f"--activation {self.activation}: expected "
                             f"{' or '.join(ACTIVATIONS)}")


class DeepenEnergy(nn.Module):
    """E_theta: complex images (B, H, W) -> energies (B,) >= 0."""

    def __init__(self, config: DeepenConfig = DeepenConfig()):
        super().__init__()
        config.validate()
        self.config = config
        channels = [2] + [config.width] * config.depth
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1)
                                   for a, b in zip(channels[:-1], channels[1:]))
        self.linear = nn.Conv2d(config.width, 1, 1)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default initialisation (Kaiming-uniform, a = sqrt(5)), drawn from
        ``generator`` so that a seed fixes the initial weights."""
        for layer in [*self.convs, self.linear]:
            fan_in = layer.weight[0].numel()
            bound = 1.0 / fan_in ** 0.5
            with torch.no_grad():
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1)
                                   * bound)
                layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1)
                                 * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex():
            x = torch.stack([x.real, x.imag], dim=1)
        elif x.shape[-1] == 2 and x.ndim == 4:         # a real view (B, H, W, 2)
            x = x.permute(0, 3, 1, 2)
        act = F.relu if self.config.activation == "relu" else F.softplus
        for conv in self.convs:
            x = act(conv(x))
        # Summed in float64: a Metropolis test compares energies of thousands to differences
        # of the temperature eps^2/2 = 2e-4, below a float32 sum's rounding.
        return self.linear(x).abs().flatten(1).sum(1, dtype=torch.float64)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(architecture: dict) -> DeepenEnergy:
    return DeepenEnergy(DeepenConfig.from_dict(architecture))


class Posterior:
    """C(x) = 1/2 ||A x - b||^2 + E(x) for A = M F S (``SenseOp``), batched over slices.

    ``maps`` (B, C, H, W), ``mask`` (B, H, W) or (H, W), ``kspace`` b (B, C, H, W), all in the
    normalised scale. ``cost`` takes complex images (B, H, W); ``real_energy`` the real view
    (B, H, W, 2) that the Langevin chains run on (so the noise z ~ N(0, I) is real and
    independent in the real and imaginary parts, as for x in R^{2m}).
    """

    def __init__(self, energy: nn.Module, maps: torch.Tensor, mask: torch.Tensor,
                 kspace: torch.Tensor):
        from ..linops import SenseOp

        self.energy = energy
        self.op = SenseOp(maps, mask)
        self.b = kspace * (mask.unsqueeze(-3) if mask.ndim >= 3 else mask)
        self.rhs = self.op.adjoint(self.b)              # A^H b

    def data_term(self, x: torch.Tensor) -> torch.Tensor:
        r = self.op.forward(x) - self.b
        return 0.5 * (r.real ** 2 + r.imag ** 2).flatten(1).sum(1, dtype=torch.float64)

    def cost(self, x: torch.Tensor) -> torch.Tensor:
        return self.data_term(x) + self.energy(x)

    def real_energy(self, xr: torch.Tensor) -> torch.Tensor:
        return self.cost(torch.view_as_complex(xr.contiguous()))


def data_scale(kspace: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor):
    """(scales (B,), SENSE images (B, H, W)) of undersampled k-space (B, C, H, W): the
    normalisation of DEEPEN's inputs (see the module doc). The SENSE images are returned in
    the original scale (the MAP initialisation)."""
    from ..errors import DataError
    from ..sense import sense_reconstruction

    with torch.no_grad():
        image = sense_reconstruction(kspace, maps, mask, lam=SCALE_LAM, iters=SCALE_ITERS)
    scale = image.abs().flatten(1).max(1).values
    if not bool((scale > 0).all()):
        raise DataError("k-space: a slice without signal (its SENSE image is zero)")
    return scale.to(kspace.real.dtype), image
