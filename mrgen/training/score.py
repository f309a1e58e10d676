"""Denoising score matching of an energy prior at many noise levels (``train prior
--objective dsm``).

For a clean training patch x, a level sigma drawn log-uniformly from [sigma_min, sigma_max]
and n ~ N(0, I), the network's denoiser D(y) = y - sigma^2 grad R_sigma(y) is fitted to x from
y = x + sigma n (Vincent 2011; noise-conditional over levels as Song, Ermon 2019):

    loss = mean over the batch of || sigma^2 grad R_sigma(y) - sigma n ||^2 / (sigma^2 P^2),

the 1 / sigma^2 weight giving every level the same scale (Song and Ermon's lambda(sigma) =
sigma^2 on the score). Its minimiser makes -sigma^2 grad R_sigma the residual of the MMSE
denoiser, so by Tweedie's formula R_sigma = -log p_sigma + const: the energy is a density of
the images smoothed by N(0, sigma^2), learned without any sampling. The loss differentiates an
input gradient, so each step back-propagates through a double backward pass (a few forward
passes' cost); no Langevin chains, which is what makes a CPU budget enough.

Patches of P x P are cut at random positions of random training images (every pixel can be
drawn, the border too, so the prior learns the zero background as well), turned by a random
multiple of 90 degrees and flipped at random. A multiscale energy (``multiscale_energy``)
fits only its coarse network, on the whole training images averaged over f x f blocks (the
patch is the whole image); its fine network comes trained and stays as it is. Under
torchrun each process takes batch / W patches; the gradients are averaged by an all-reduce
(DDP's hooks do not see the double backward pass).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..errors import UsageError
from .distributed import DistContext, average_gradients, init_generator
from .engine import TrainingMethod

INIT_MODEL = 0


@dataclass(frozen=True)
class ScoreConfig:
    batch: int = 16
    patch: int = 64
    sigma_min: float = 0.005
    sigma_max: float = 0.2
    lr: float = 1e-3
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    clip_norm: float = 0.0           # > 0: the gradient's global norm is clipped to this
    precision: str = "float32"       # bfloat16: forward and backward under autocast

    def to_dict(self) -> dict:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        if out["precision"] == "float32":   # unrecorded before: older checkpoints resume
            del out["precision"]
        return out


def check_score_config(config: ScoreConfig, image_size: int | None = None, world: int = 1):
    """UsageError naming the option for settings that cannot train."""
    if config.batch < 1 or config.batch % world:
        raise UsageError(f"--batch {config.batch}: must be a positive multiple of the "
                         f"{world} processes")
    if config.patch < 8:
        raise UsageError(f"--patch {config.patch}: at least 8 pixels")
    if image_size is not None and config.patch > image_size:
        raise UsageError(f"--patch {config.patch}: larger than the {image_size} x "
                         f"{image_size} training images (--crop)")
    if not 0 < config.sigma_min <= config.sigma_max:
        raise UsageError(f"--sigma-range {config.sigma_min:g} {config.sigma_max:g}: needs "
                         f"0 < LO <= HI")
    if config.lr <= 0:
        raise UsageError(f"--lr {config.lr:g}: must be positive")
    if config.precision not in ("float32", "bfloat16"):
        raise UsageError(f"--precision {config.precision}: choose float32 or bfloat16")
    if config.clip_norm < 0:
        raise UsageError(f"--clip-norm {config.clip_norm:g}: must be 0 (off) or positive")
    check_milestones(config.milestones)


def check_milestones(milestones) -> None:
    if any(m < 1 for m in milestones) or list(milestones) != sorted(milestones):
        raise UsageError("--milestones: increasing positive step numbers")


def random_patches(images: torch.Tensor, count: int, size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``count`` random size x size patches of images (N, H, W, ...), each turned and flipped
    at random (the 8 symmetries of the square; trailing axes, e.g. a real view's (real,
    imaginary), are carried along)."""
    device = generator.device
    n, height, width = images.shape[:3]
    which = torch.randint(n, (count,), generator=generator, device=device).tolist()
    top = torch.randint(height - size + 1, (count,), generator=generator, device=device).tolist()
    left = torch.randint(width - size + 1, (count,), generator=generator, device=device).tolist()
    turns = torch.randint(4, (count,), generator=generator, device=device).tolist()
    flips = torch.randint(2, (count,), generator=generator, device=device).tolist()
    out = []
    for i, t, l, k, f in zip(which, top, left, turns, flips):
        patch = torch.rot90(images[i, t:t + size, l:l + size], k, (0, 1))
        out.append(patch.flip(1) if f else patch)
    return torch.stack(out)


def dsm_loss(model, clean: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor):
    """The weighted denoising score-matching loss above, differentiable in the parameters,
    and the denoised patches (detached)."""
    noisy = (clean + sigma[:, None, None] * noise).requires_grad_(True)
    scaled_energy = 0.5 * model.residual(noisy, sigma).square().sum()   # sigma^2 R_sigma
    (residual,) = torch.autograd.grad(scaled_energy, noisy, create_graph=True)
    error = residual - sigma[:, None, None] * noise
    per_image = error.square().flatten(1).mean(1) / sigma.square()
    return per_image.mean(), (noisy - residual).detach()


def draw_sigmas(count: int, config: ScoreConfig, generator: torch.Generator) -> torch.Tensor:
    low, high = math.log(config.sigma_min), math.log(config.sigma_max)
    u = torch.rand(count, generator=generator, device=generator.device)
    return torch.exp(low + (high - low) * u)


class ScoreTraining(TrainingMethod):
    """Denoising score matching of a residual energy (local or U-Net head), for the engine."""

    def __init__(self, images: torch.Tensor, architecture, config: ScoreConfig,
                 context: DistContext, seed: int = 0, initial: dict | None = None):
        """``initial``: weights loaded over the fresh model, e.g. a multiscale energy's
        trained fine network (``fine.*``); only the model's ``trained_part`` is fitted."""
        from ..priors.energy import build_model

        if images.shape[0] < 1:
            raise UsageError("no training slices")
        self.config = config
        self.context = context
        self.device = context.device
        model = build_model(architecture.to_dict())  # on the CPU: the same everywhere
        model.reset_parameters(init_generator(seed, 0, "cpu", INIT_MODEL))
        if initial:
            _, unexpected = model.load_state_dict(initial, strict=False)
            if unexpected:
                raise UsageError(f"initial weights do not fit the model: {unexpected[:3]}")
        images = images.to(torch.float32)
        if hasattr(model, "coarse_images"):   # a multiscale energy learns whole images at 1/f
            images = model.coarse_images(images)
        check_score_config(config, min(images.shape[-2:]), context.world_size)
        self.images = images.to(self.device)
        self.batch = config.batch // context.world_size
        self.model = model.to(self.device)
        self.target = model.trained_part() if hasattr(model, "trained_part") else self.model
        self._broadcast_parameters()
        self.optimizer = torch.optim.Adam(self.target.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(config.milestones), gamma=config.gamma)
        self.last_samples: torch.Tensor | None = None

    def bind(self, context: DistContext) -> None:
        self.ddp_model = self.model   # gradients are all-reduced by hand (see the module doc)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            clean = random_patches(self.images, self.batch, cfg.patch, generator)
            sigma = draw_sigmas(self.batch, cfg, generator)
            noise = torch.randn(clean.shape, generator=generator, device=self.device)
        # bfloat16 (mrgen.precision): ~2.4x faster steps on CPUs with AMX (16 patches of
        # 64 x 64, one core: 0.54 against 1.30 s); the loss and the high pass stay float32
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=cfg.precision == "bfloat16"):
            loss, denoised = dsm_loss(self.target, clean, sigma, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.target, self.context)
        if cfg.clip_norm > 0:   # a rare huge double-backward gradient wrecked long runs
            torch.nn.utils.clip_grad_norm_(self.target.parameters(), cfg.clip_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.last_samples = denoised   # for --samples-png
        return {"loss": float(loss.detach()), "lr": lr}

    def _broadcast_parameters(self) -> None:
        if not self.context.distributed:
            return
        import torch.distributed as dist

        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            dist.broadcast(tensor.data, src=0)
