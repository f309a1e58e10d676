"""Maximum-likelihood training of the learned energy R_theta (Zach, Knoll, Pock 2023, preprint, Eq. 6-7).

The density p(x) = exp(-R(x)) / Z is fitted to the data by following the gradient
E_data[grad_theta R] - E_model[grad_theta R], the model expectation approximated with samples
from the unadjusted Langevin algorithm (mrgen.mcmc.run_chain). Each step, as
the authors' code does (VLOGroup/stable-deep-mri, train.py):

1. a batch of training slices, smoothed with N(0, data_noise^2) noise (1.5e-2);
2. a batch of chains from the replay buffer (persistent chains), advanced J_h ULA steps
   x <- x - step grad R(x) + noise N(0, I) (step 1, noise 7.5e-3), with the chain length
   J_h = ceil(J_max (1 - exp(-h / tau) + 0.01)) at update h (J_max 500, tau 1000);
3. the chains go back to the buffer, except that each restarts with probability 1% from a
   training slice or a pixel-permuted training slice (50/50; a permutation keeps the
   histogram: the paper's "uniform noise");
4. loss = mean R(data) - mean R(samples), one AdaBelief step (lr 5e-5 as in the code; the
   paper states 5e-4), learning rate halved at steps 500, 2000, 3000, 5000, 7000.

The loss is the *energy gap*: negative when the model gives the data lower energy (higher
probability) than its own samples. Training drives the samples towards the data, so the gap
oscillates around zero once the sampler keeps up; a gap that stays strongly negative means the
chains lag behind the model.

The replay buffer starts half with training slices, half with pixel-permuted ones. Under
torchrun each process holds buffer/W chains and trains on batch/W images per step; DDP
averages the gradients, so the update equals one of the full batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from ..model_files import load_model, model_description
from ..priors.energy import KIND, EnergyConfig, build_model
from .distributed import DistContext, init_generator
from .engine import EngineOptions, TrainingMethod, png_hook, train_and_save
from .score import ScoreConfig, ScoreTraining, check_milestones

INIT_MODEL = 0
INIT_BUFFER = 1


@dataclass(frozen=True)
class PriorConfig:
    batch: int = 50
    buffer: int = 8000
    chain_max: int = 500
    chain_tau: float = 1000.0
    ula_step: float = 1.0
    ula_noise: float = 7.5e-3
    data_noise: float = 1.5e-2
    restart: float = 0.01
    lr: float = 5e-5
    milestones: tuple[int, ...] = (500, 2000, 3000, 5000, 7000)
    gamma: float = 0.5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-16
    # Stabilisers the authors do not use (0 / None keep their method exactly): a penalty
    # alpha (E_data^2 + E_samples^2) on the energies' magnitude (Du & Mordatch 2019), and a
    # clamp of the chains to a value range.
    energy_penalty: float = 0.0
    sample_range: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        out["betas"] = list(self.betas)
        out["sample_range"] = None if self.sample_range is None else list(self.sample_range)
        return out


def chain_length(step: int, chain_max: int, tau: float) -> int:
    """J_h = ceil(J_max (1 - exp(-h / tau) + 0.01)): 1% of J_max at the start, 101% later."""
    if chain_max <= 0:
        return 0
    return int(math.ceil(chain_max * (1.0 - math.exp(-step / tau) + 0.01)))


def permute_pixels(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shuffle the pixels (one permutation for the whole batch, as the authors): same
    histogram, no structure."""
    flat = images.reshape(images.shape[0], -1)
    order = torch.randperm(flat.shape[1], generator=generator, device=generator.device)
    return flat[:, order.to(images.device)].reshape(images.shape)


def draw_indices(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices into ``size`` items: a random permutation, repeated (each a new one)
    when more are needed, so every item is used about equally often."""
    parts, total = [], 0
    while total < count:
        parts.append(torch.randperm(size, generator=generator, device=generator.device))
        total += size
    return torch.cat(parts)[:count]


class PriorTraining(TrainingMethod):
    """The maximum-likelihood method above, for the engine."""

    def __init__(self, images: torch.Tensor, architecture: EnergyConfig, config: PriorConfig,
                 context: DistContext, seed: int = 0):
        from ..optim import AdaBelief

        check_config(config, architecture, context.world_size)
        if images.shape[0] < 1:
            raise UsageError("no training slices")
        self.config = config
        self.context = context
        self.device = context.device
        self.images = images.to(self.device, torch.float32)
        self.batch = config.batch // context.world_size
        model = build_model(architecture.to_dict())  # on the CPU: the same on every device
        model.reset_parameters(init_generator(seed, 0, "cpu", INIT_MODEL))
        self.model = model.to(self.device)
        self.optimizer = AdaBelief(self.model.parameters(), lr=config.lr,
                                   betas=config.betas, eps=config.eps)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(config.milestones), gamma=config.gamma)
        self.buffer = self._initial_buffer(
            config.buffer // context.world_size,
            init_generator(seed, context.rank, self.device, INIT_BUFFER))
        self.last_samples: torch.Tensor | None = None

    def _initial_buffer(self, size: int, generator) -> torch.Tensor:
        count = self.images.shape[0]
        half = size // 2
        data = self.images[draw_indices(half, count, generator)]
        noise = permute_pixels(self.images[draw_indices(size - half, count, generator)],
                               generator)
        return torch.cat([data, noise]).contiguous()

    def energy(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        cfg = self.config
        b = self.batch
        count = self.images.shape[0]
        length = chain_length(step, cfg.chain_max, cfg.chain_tau)
        with torch.no_grad():
            data = self.images[draw_indices(b, count, generator)]
            data = data + cfg.data_noise * torch.randn(data.shape, generator=generator,
                                                       device=self.device)
            slots = torch.randperm(self.buffer.shape[0], generator=generator,
                                   device=self.device)[:b]
            start = self.buffer[slots]
        from ..mcmc import run_chain

        clamp = None if cfg.sample_range is None else \
            (lambda x, lo=cfg.sample_range[0], hi=cfg.sample_range[1]: x.clamp(lo, hi))
        samples = run_chain(start, self.model, length, cfg.ula_step, cfg.ula_noise, generator,
                            project=clamp)
        with torch.no_grad():
            keep = torch.rand(b, generator=generator, device=self.device) >= cfg.restart
            permuted = torch.rand(b, generator=generator, device=self.device) < 0.5
            fresh = self.images[draw_indices(b, count, generator)]
            refill = torch.where(permuted[:, None, None], permute_pixels(fresh, generator),
                                 fresh)
            self.buffer[slots] = torch.where(keep[:, None, None], samples, refill)
        self.last_samples = samples
        energies = self.ddp_model(torch.cat([data, samples]))
        e_data, e_samples = energies[:b].mean(), energies[b:].mean()
        loss = e_data - e_samples
        if cfg.energy_penalty:
            loss = loss + cfg.energy_penalty * (energies ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(loss.detach()), "E_data": float(e_data.detach()),
                "E_samples": float(e_samples.detach()), "J": length, "lr": lr}

    def state_dict(self) -> dict:
        return {"buffer": self.buffer}

    def load_state_dict(self, state: dict) -> None:
        buffer = state.get("buffer")
        if buffer is None or tuple(buffer.shape) != tuple(self.buffer.shape):
            got = None if buffer is None else tuple(buffer.shape)
            raise ValueError(f"replay buffer of shape {got}, expected "
                             f"{tuple(self.buffer.shape)}")
        self.buffer.copy_(buffer)


def check_config(config: PriorConfig, architecture, world: int = 1) -> None:
    """UsageError naming the option for settings that cannot train (checked before the data
    are read)."""
    if isinstance(architecture, EnergyConfig):
        check_global_architecture(architecture)
    _check_ml(config, world)


def check_global_architecture(architecture: EnergyConfig) -> None:
    if architecture.final_size < 1 or architecture.stages < 1:
        raise UsageError(f"--crop {architecture.crop}: too small for --stages "
                         f"{architecture.stages}")
    if architecture.base_width < 1 or architecture.growth <= 0:
        raise UsageError("--width and --growth must be positive")
    if min(architecture.widths()) < 1:
        raise UsageError(f"--growth {architecture.growth}: gives a stage without channels")


def _check_ml(config: PriorConfig, world: int) -> None:
    if config.batch < 1 or config.batch % world:
        raise UsageError(f"--batch {config.batch}: must be a positive multiple of the "
                         f"{world} processes")
    if config.buffer < 2 * config.batch or config.buffer % world:
        raise UsageError(f"--buffer {config.buffer}: must hold at least two batches "
                         f"(2 x --batch) and split evenly over the {world} processes")
    if config.chain_max < 0 or config.chain_tau <= 0:
        raise UsageError("--chain-max must be at least 0 and --chain-tau positive")
    if not 0.0 <= config.restart <= 1.0:
        raise UsageError(f"--restart {config.restart}: a probability in [0, 1]")
    if config.lr <= 0 or config.ula_step < 0 or config.ula_noise < 0 or config.data_noise < 0:
        raise UsageError("--lr must be positive; --ula-step, --ula-noise, --data-noise "
                         "at least 0")
    check_milestones(config.milestones)


def train_prior(images, data_description: dict, architecture, config, output,
                options: EngineOptions, context: DistContext | None = None, samples_png=None,
                png_every: int = 0, command: str | None = None, initial: dict | None = None):
    """Train a prior and write the model file ``output`` (rank 0). ``images`` (N, H, W) are
    the normalised training slices, ``data_description`` says where they came from. The
    objective follows ``config``: a ``PriorConfig`` trains by maximum likelihood (this
    module), a ``score.ScoreConfig`` by denoising score matching (``training.score``; needs a
    ``LocalEnergyConfig`` or ``UNetEnergyConfig``). ``options`` is completed here with the
    fingerprint and the model's self-description; ``initial`` are weights loaded over the fresh
    model (a multiscale energy's fine network). Returns (engine result, the training method)."""
    import dataclasses

    context = context or DistContext(device=torch.device("cpu"))
    images = torch.as_tensor(images)
    if isinstance(config, ScoreConfig):
        method, objective = ScoreTraining(images, architecture, config, context, options.seed,
                                          initial), \
            "denoising score matching (Vincent 2011; Song, Ermon 2019)"
        optimizer = "Adam, MultiStepLR"
    else:
        method, objective = PriorTraining(images, architecture, config, context, options.seed), \
            "maximum likelihood (Zach, Knoll, Pock 2023)"
        optimizer = "AdaBelief (mrgen.optim), MultiStepLR"
    training = {
        "command": command,
        "objective": objective,
        "data": data_description,
        "hyperparameters": config.to_dict(),
        "optimizer": optimizer,
        "seed": options.seed,
        "processes": context.world_size,
    }
    description = model_description(KIND, architecture.to_dict(),
                                     data_description.get("normalisation", ""), training)
    fingerprint = {"architecture": architecture.to_dict(), **config.to_dict(),
                   "objective": objective, "slices": int(images.shape[0]),
                   "data": [[Path(str(f.get("path", ""))).name, f.get("used")]
                            for f in data_description.get("files", [])],
                   "normalisation": data_description.get("normalisation")}
    options = dataclasses.replace(options, fingerprint=fingerprint, model_info=description)
    hooks = []
    if samples_png is not None:
        hooks.append(png_hook(samples_png, png_every, lambda: method.last_samples))
    result = train_and_save(method, options, context, output, description, hooks)
    return result, method


def load_prior(path, device="cpu"):
    """(EnergyNet in eval mode, metadata) from a model file of ``mrgen train prior``."""
    return load_model(path, device, kind=KIND)

