"""Deep J-Sense (Arvinte et al. 2021): unrolled alternating optimisation of image and map kernels.

The coil k-spaces are the *linear* convolution of an image kernel m with per-coil map
kernels s_i (Eq. 1), k_i = s_i * m, all in k-space. As the supplement describes, the
convolution is carried out in image space (``mrgen.linops.kernel``) on an enlarged grid: m
lives on (H + kh - 1, W + kw - 1), the (kh, kw) map kernels are zero-padded to that grid and
inverse-FFT'd (so the maps are smooth by construction), multiplied with the image
point-wise, FFT'd back and the central H x W block is kept: exactly the 'valid' part of the
linear convolution (no wrap).
With the orthonormal centred FFT (``mrgen.fft``) the padded map kernel is scaled by sqrt(n)
(n the padded grid size), so a unit kernel at the centre is the identity.

The image variable is kept in image space, x = F^-1 m (a unitary change of variable: CG and
R(m) of Eq. 6 are the same for x), and the maps as their k-space kernels s (C, kh, kw).

One unroll (Eq. 5a-5d), with z_s, z_m the last denoiser outputs (at the start the RSS
estimates) and R of Eq. 6 linearised at them as in MoDL:

    5a  s   = CG_{n1}[(A_x^H A_x + lam_s I) s = A_x^H y + lam_s z_s]       (warm start z_s)
    5b  z_s = F D_s(F^-1 s)             (the maps' denoiser, in image space, per coil)
    5c  x   = CG_{n2}[(A_s^H A_s + lam_m I) x = A_s^H y + lam_m z_m]       (warm start z_m)
    5d  z_m = D_m(x)

The output is the RSS of the coil images F^-1 (z_s * z_m) on the H x W grid (Eq. 7).
Special cases (``mode``): ``modl`` (n1 = 0, fixed maps given, e.g. ESPIRiT, image on H x W;
D_s absent), ``l2`` (plain J-Sense with L2 regularisation: no networks, D = 0, so the CG
right-hand sides lose the lam z terms).

Denoisers: ResNets of ``blocks`` residual blocks (conv 3x3 - ReLU - conv 3x3, + skip when the
channels match, ReLU after all but the last block), ``width`` channels, no bias, no batch
norm, a global residual; complex as two channels. The first block takes the 2 channels in,
the last gives 2 out: with 4 blocks of 64 channels that is 223,488 weights per network, the
paper's "224,000". Without biases the networks are positively homogeneous (D(a x) = a D(x),
a > 0), so the intensity scale of the data does not matter to them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..cg import conjugate_gradient
from ..errors import DataError, UsageError
from ..fft import fft2c, ifft2c
from ..linops.kernel import (KernelMapsOp, PaddedSenseOp, embed, extract,  # noqa: F401
                             kernels_to_maps, maps_to_kernels, padded_shape)

KIND = "djsense"
MODES = ("djsense", "modl", "l2")
CG_TOL = 1e-6


@dataclass(frozen=True)
class DJSenseConfig:
    mode: str = "djsense"
    unrolls: int = 6            # N
    map_cg: int = 6             # n1 (0 in modl)
    image_cg: int = 6           # n2
    map_kernel: tuple[int, int] = (15, 9)
    width: int = 64
    blocks: int = 4
    lam_map: float = 0.01       # initial lambda_s (learnable)
    lam_image: float = 0.01     # initial lambda_m (learnable)

    def __post_init__(self):
        object.__setattr__(self, "map_kernel", tuple(int(k) for k in self.map_kernel))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["map_kernel"] = list(self.map_kernel)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "DJSenseConfig":
        return cls(**values)

    def check(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode}: expected one of {', '.join(MODES)}")
        if self.unrolls < 1:
            raise UsageError(f"--unrolls {self.unrolls}: must be at least 1")
        if self.image_cg < 1 or self.map_cg < 0:
            raise UsageError("--image-cg must be at least 1 and --map-cg at least 0")
        if self.mode != "modl" and self.map_cg < 1:
            raise UsageError(f"--map-cg {self.map_cg}: must be at least 1 (0 only for "
                             f"--mode modl)")
        kh, kw = self.map_kernel
        if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
            raise UsageError(f"--map-kernel {kh} {kw}: odd sizes of at least 1")
        if self.mode != "l2" and (self.width < 1 or self.blocks < 1):
            raise UsageError("--width and --blocks must be at least 1")
        if self.lam_map < 0 or self.lam_image < 0:
            raise UsageError("--lam-map and --lam-image must be at least 0")

    @property
    def networks(self) -> bool:
        return self.mode != "l2"


# ---------------------------------------------------------------------------------------------
# The kernel model's operators (mrgen.linops.kernel)


class KernelModel:
    """The operators of k_i = s_i * m for k-space (H, W), map kernels ``kernel``, a mask.

    x: image (B, Hp, Wp); s: map kernels (B, C, kh, kw); y: k-space (B, C, H, W). The two
    sub-problems' operators are ``image_operator(maps)`` (x -> y for fixed image-space maps)
    and ``kernel_operator(x)`` (s -> y for a fixed image), both in ``mrgen.linops``.
    """

    def __init__(self, shape, kernel, mask: torch.Tensor | None):
        self.shape = tuple(shape)
        self.kernel = tuple(kernel)
        self.grid = padded_shape(self.shape, self.kernel)
        self.mask = mask                                           # (B, H, W)

    def maps_image(self, s):
        """Image-space maps on the padded grid: sqrt(n) F^-1 pad(s)."""
        return kernels_to_maps(s, self.grid)

    def maps_kernel(self, maps):
        """The (kh, kw) kernels of image-space maps: the inverse of ``maps_image`` on kernels."""
        return maps_to_kernels(maps, self.kernel)

    def coil_kspace(self, x, maps):
        """Unmasked k_i = s_i * m on (H, W) from the image and image-space maps."""
        return PaddedSenseOp(maps, None, self.shape).forward(x)

    def image_operator(self, maps) -> PaddedSenseOp:
        """x -> M crop F(S x) for image-space maps (B, C, Hp, Wp) (the image sub-problem)."""
        return PaddedSenseOp(maps, self.mask, self.shape)

    def kernel_operator(self, x, coils: int | None = None) -> KernelMapsOp:
        """s -> M crop F(x S(s)) for an image (B, Hp, Wp) (the map sub-problem)."""
        return KernelMapsOp(x, self.mask, self.shape, self.kernel, coils)

    def forward(self, x, s):
        return self.kernel_operator(x).forward(s)


def linear_convolution(m: torch.Tensor, s: torch.Tensor, shape) -> torch.Tensor:
    """Reference: the 'valid' (central ``shape``) part of the linear convolution of kernels
    m (..., Hp, Wp) and s (..., kh, kw) by explicit shifts (slow; for tests)."""
    kh, kw = s.shape[-2:]
    h, w = shape
    out = m.new_zeros(*np.broadcast_shapes(m.shape[:-2], s.shape[:-2]), h, w)
    for a in range(kh):
        for b in range(kw):
            # k[j] = sum_t s[t] m[j - t], t = a - kh//2, j on the valid grid
            oy, ox = kh - 1 - a, kw - 1 - b
            out = out + s[..., a:a + 1, b:b + 1] * m[..., oy:oy + h, ox:ox + w]
    return out


# ---------------------------------------------------------------------------------------------
# Networks


class ResBlock(nn.Module):
    def __init__(self, cin: int, width: int, cout: int, last: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(width, cout, 3, padding=1, bias=False)
        self.skip = cin == cout
        self.last = last

    def forward(self, x):
        out = self.conv2(torch.relu(self.conv1(x)))
        if self.skip:
            out = out + x
        return out if self.last else torch.relu(out)


class ResNetDenoiser(nn.Module):
    """x + net(x) on complex images (..., H, W), complex as two channels."""

    def __init__(self, width: int = 64, blocks: int = 4):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(2 if i == 0 else width, width, 2 if i == blocks - 1 else width,
                     i == blocks - 1) for i in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        flat = torch.view_as_real(x.reshape(-1, *x.shape[-2:])).permute(0, 3, 1, 2)
        out = flat
        for block in self.blocks:
            out = block(out)
        out = out.permute(0, 2, 3, 1).contiguous()
        return x + torch.view_as_complex(out).reshape(*lead, *x.shape[-2:])


# ---------------------------------------------------------------------------------------------
# The unrolled model


def rss_of(coils: torch.Tensor) -> torch.Tensor:
    """RSS over the coil axis (-3), with a gradient of 0 (not NaN) where it is 0 (e.g. where
    ESPIRiT maps are cropped to zero)."""
    return torch.linalg.vector_norm(coils, dim=-3)


def rss_init(y: torch.Tensor, ops: KernelModel, eps: float = 1e-12):
    """(x0, s0): the RSS image on the padded grid and the centre kernels of
    F(coil images / RSS)."""
    coils = ifft2c(embed(y, ops.grid))
    x0 = rss_of(coils)
    maps = coils / (x0.unsqueeze(-3) + eps * x0.max().clamp_min(1e-30))
    return x0.to(y.dtype), ops.maps_kernel(maps)


class DJSense(nn.Module):
    """Deep J-Sense, MoDL or L2 J-Sense by ``config.mode`` (see the module doc)."""

    def __init__(self, config: DJSenseConfig):
        super().__init__()
        config.check()
        self.config = config
        self.lam_image = nn.Parameter(torch.tensor(float(config.lam_image)))
        if config.mode != "modl":
            self.lam_map = nn.Parameter(torch.tensor(float(config.lam_map)))
        if config.networks:
            self.image_net = ResNetDenoiser(config.width, config.blocks)
            if config.mode == "djsense":
                self.map_net = ResNetDenoiser(config.width, config.blocks)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Kaiming-uniform weights (PyTorch's default rule) from ``generator``; the last
        convolution of each network scaled by 0.1, so that each denoiser starts close to the
        identity (the global residual)."""
        for module in self.modules():
            if isinstance(module, ResNetDenoiser):
                convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
                for conv in convs:
                    nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=generator)
                with torch.no_grad():
                    convs[-1].weight.mul_(0.1)

    def lambdas(self):
        lam_m = self.lam_image.abs()
        lam_s = self.lam_map.abs() if hasattr(self, "lam_map") else None
        return lam_s, lam_m

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None,
                unrolls: int | None = None):
        """RSS image (B, H, W) from k-space (B, C, H, W) (unsampled entries zero or not: the
        mask is applied) and mask (B, H, W). ``maps`` (B, C, H, W) for modl. ``unrolls``
        overrides N (the curriculum)."""
        return self.reconstruct(kspace, mask, maps, unrolls)["rss"]

    def reconstruct(self, kspace, mask, maps=None, unrolls=None) -> dict:
        """dict with ``rss`` (B, H, W), ``image`` (B, H, W) complex, ``maps`` (B, C, H, W)
        image-space maps, and for djsense/l2 ``x`` (padded image) and ``s`` (map kernels)."""
        cfg = self.config
        n = cfg.unrolls if unrolls is None else int(unrolls)
        mask = mask.to(kspace.real.dtype)
        y = kspace * mask.unsqueeze(-3)
        lam_s, lam_m = self.lambdas()
        if cfg.mode == "modl":
            return self._modl(y, mask, maps, n, lam_m)
        shape = tuple(y.shape[-2:])
        ops = KernelModel(shape, cfg.map_kernel, mask)
        x, s = rss_init(y, ops)
        prior = cfg.networks
        for _ in range(n):
            kernel_op = ops.kernel_operator(x, coils=y.shape[-3])
            rhs = kernel_op.adjoint(y)
            if prior:
                rhs = rhs + lam_s * s
            s = conjugate_gradient(kernel_op.normal, rhs, x0=s, iters=cfg.map_cg, tol=CG_TOL,
                                   lam=lam_s, batch_dims=1)
            if prior:
                s = ops.maps_kernel(self.map_net(ops.maps_image(s)))
            image_op = ops.image_operator(ops.maps_image(s))
            rhs = image_op.adjoint(y)
            if prior:
                rhs = rhs + lam_m * x
            x = conjugate_gradient(image_op.normal, rhs, x0=x, iters=cfg.image_cg,
                                   tol=CG_TOL, lam=lam_m, batch_dims=1)
            if prior:
                x = self.image_net(x)
        maps_img = ops.maps_image(s)
        coils = ifft2c(ops.coil_kspace(x, maps_img))
        rss = rss_of(coils)
        image = ifft2c(extract(fft2c(x), shape))
        small = kernels_to_maps(s, shape)
        return {"rss": rss, "image": image, "maps": small, "x": x, "s": s}

    def _modl(self, y, mask, maps, n, lam_m):
        from ..linops import SenseOp

        if maps is None:
            raise UsageError("a modl model needs sensitivity maps (ESPIRiT)")
        if maps.shape != y.shape:
            raise DataError(f"maps: shape {tuple(maps.shape)} does not fit k-space of shape "
                            f"{tuple(y.shape)}")
        op = SenseOp(maps.to(y.dtype), mask)
        aty = op.adjoint(y)
        x = aty
        for _ in range(n):
            x = conjugate_gradient(op.normal, aty + lam_m * x, x0=x, iters=self.config.image_cg,
                                   tol=CG_TOL, lam=lam_m, batch_dims=1)
            x = self.image_net(x)
        coils = op.expand(x)
        rss = rss_of(coils)
        return {"rss": rss, "image": x, "maps": maps}


def acs_scale(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The authors' normalisation: max |k| over the auto-calibration region, per example.

    kspace (B, C, H, W), mask (B, H, W). The ACS region is the run of fully sampled columns
    around the centre column W//2 (all of k-space where the centre column is not fully
    sampled, e.g. 2D masks without a dense centre). Returns (B,) positive scales."""
    width = mask.shape[-1]
    full = (mask > 0).all(dim=-2)                                # (B, W)
    scales = []
    for b in range(kspace.shape[0]):
        lo = hi = width // 2
        if bool(full[b, lo]):
            while lo > 0 and bool(full[b, lo - 1]):
                lo -= 1
            while hi < width - 1 and bool(full[b, hi + 1]):
                hi += 1
            region = kspace[b, ..., lo:hi + 1]
        else:
            region = kspace[b] * mask[b]
        scale = region.abs().max()
        if not float(scale) > 0:
            raise DataError("k-space: the calibration region is all zero (no signal)")
        scales.append(scale)
    return torch.stack(scales).to(kspace.real.dtype)


def espirit_for(kspace: torch.Tensor) -> torch.Tensor:
    """ESPIRiT maps (B, C, H, W) for MoDL from undersampled k-space (B, C, H, W): the
    calibration block found in the data, the kernel min(6, block / 2) per side (a kernel as
    wide as a narrow block leaves too few kernel positions and crops the maps away)."""
    from ..espirit import calibration_size, espirit_maps

    size = calibration_size(kspace, kernel=1)
    kernel = tuple(min(6, max(1, side // 2)) for side in size)
    with torch.no_grad():
        return espirit_maps(kspace, calib=size, kernel=kernel)


def build_model(architecture: dict) -> DJSense:
    return DJSense(DJSenseConfig.from_dict(architecture))
