"""Maximum-likelihood training of DEEPEN's posterior energy (Chand, Jacob 2025, Eq. 8-13, 16).

Each step, for a batch of training slices:

1. the slices of the step (``epoch_indices``: every epoch a fresh permutation) and, per
   slice, a sampling mask drawn from the mask specification (``mrgen mask`` syntax, e.g.
   ``poisson:4`` for the paper's 2D 4x) with a seed from the step's generator;
2. the forward operator A = M F S with the slice's maps (the data file's ``maps``, else
   ESPIRiT of the fully sampled k-space, computed once when the data are loaded) and the
   measurements b = M k (the file's fully sampled k-space, masked);
3. normalisation: image and k-space divided by ``data_scale`` (max |SENSE| of b; see
   ``model``), the same rule inference uses;
4. true samples x+ = ground truth / scale + N(0, (2 eps^2)^2) noise in the real and the
   imaginary part (Section III.B.1: "standard deviation 2 eps^2"). The ground truth is the
   file's complex ``image`` (``mrgen phantom``), else the coil combination S^H F^H k of the
   fully sampled k-space with the maps of 2.;
5. fake samples x- from the scaled posterior by Eq. 16, x <- x - (A^H (A x - b) + grad E(x))
   + eps z (``mrgen.mcmc.run_chain`` with step 1 and noise eps on the real view
   (B, H, W, 2)), ``chain_steps`` (100) steps from zero-mean Gaussian noise of std
   ``init_std``; no gradient flows through the chain (Eq. 13);
6. loss = mean E(x+) - mean E(x-) (Eq. 10 and 13: the data term of C does not depend on
   theta), plus the optional stabiliser ``energy_penalty`` * mean(E^2) (not the paper's:
   0 by default), one Adam step.

Choices the paper leaves open: eps (0.02 here, for images of max magnitude about 1), the
std of the chains' initial noise (1), Adam and its learning rate (1e-4, constant), the batch
(4), the data normalisation (see ``model``), the ground truth for data without an ``image``
dataset (the coil combination with the maps used for A).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..model_files import load_model, model_description, resolve_model
from ..training.distributed import (DistContext, average_gradients, epoch_indices,
                                    init_generator)
from ..training.engine import EngineOptions, TrainingMethod, train_and_save
from .model import KIND, NORMALISATION, DeepenConfig, DeepenEnergy, Posterior, data_scale


OBJECTIVES = ("ml", "dsm")
LOSSES = {"ml": "mean E(x+) - mean E(x-) (Eq. 13), fake samples by Eq. 16",
          "dsm": "denoising score matching at sigma, E = (eps^2/2)(-log p_sigma) "
                 "(mrgen.deepen.score)"}


@dataclass(frozen=True)
class DeepenTrainConfig:
    mask: str = "poisson:4"      # drawn per example (the paper: 2D 4x)
    batch: int = 4
    lr: float = 1e-4
    eps: float = 0.02            # Langevin noise of Eq. 16; data noise 2 eps^2
    chain_steps: int = 100       # Langevin steps for the fake samples (paper: 100)
    init_std: float = 1.0        # std of the chains' Gaussian start (per real component)
    energy_penalty: float = 0.0  # alpha * mean(E^2) (not the paper's)
    objective: str = "ml"        # ml: the paper's maximum likelihood; dsm: score matching
    sigma: float = 0.0           # dsm noise level (0: eps / sqrt(2), see deepen.score)
    patch: int = 64              # dsm patch size
    patches: int = 16            # dsm patches per update
    init: str | None = None      # warm start: a deepen model file (or name)

    def to_dict(self) -> dict:
        return asdict(self)


def check_train_config(config: DeepenTrainConfig, world: int = 1) -> None:
    from ..masks import parse_mask_spec

    parse_mask_spec(config.mask)
    if config.batch < 1 or config.batch % world:
        raise UsageError(f"--batch {config.batch}: must be a positive multiple of the {world} "
                         f"processes")
    if config.lr <= 0:
        raise UsageError(f"--lr {config.lr}: must be positive")
    if config.eps <= 0:
        raise UsageError(f"--eps {config.eps}: must be positive")
    if config.chain_steps < 1:
        raise UsageError(f"--chain-steps {config.chain_steps}: must be at least 1")
    if config.init_std < 0 or config.energy_penalty < 0:
        raise UsageError("--init-std and --energy-penalty must be at least 0")
    if config.objective not in OBJECTIVES:
        raise UsageError(f"--objective {config.objective}: expected {' or '.join(OBJECTIVES)}")
    if config.sigma < 0 or config.patch < 8 or config.patches < 1:
        raise UsageError("--sigma must be at least 0, --patch at least 8, --patches at least 1")


@dataclass
class DeepenExamples:
    kspace: torch.Tensor     # (N, C, H, W) complex64, fully sampled
    maps: torch.Tensor       # (N, C, H, W) complex64
    truth: torch.Tensor      # (N, H, W) complex64, same scale as the k-space
    description: dict


def espirit_full(kspace: torch.Tensor) -> torch.Tensor:
    """ESPIRiT maps (B, C, H, W) of k-space (B, C, H, W): the calibration block found in the
    data (the whole centre of fully sampled data, up to ESPIRiT's default), kernel at most 6
    and half the block."""
    from ..espirit import calibration_size, espirit_maps

    size = calibration_size(kspace, kernel=1)
    kernel = tuple(min(6, max(1, side // 2)) for side in size)
    with torch.no_grad():
        return espirit_maps(kspace, calib=size, kernel=kernel)


def load_examples(paths, central: int | None = 0) -> DeepenExamples:
    """Fully sampled slices from k-space files: .h5 (``mrgen phantom``: kspace, maps, image;
    fastMRI: kspace only), .npy or .cfl k-space (coils, H, W) or (slices, coils, H, W)."""
    from .. import io
    from ..fft import ifft2c
    from ..linops import SenseOp
    from ..training.data import central_range

    if not paths:
        raise UsageError("no training data given")
    if central is not None and central < 0:
        raise UsageError(f"--central-slices {central}: must be at least 0 (0 = all)")
    ks, ms, xs, files = [], [], [], []
    for text in paths:
        text = str(text)
        shape = io.read_shape(text, io.roles.KSPACE)
        if len(shape) == 4:
            start, stop = central_range(shape[0], central or None)
            index = slice(start, stop)
        else:
            start, stop, index = 0, 1, None
        data = io.read_array(text, io.roles.KSPACE, index)
        data = torch.from_numpy(np.ascontiguousarray(data if data.ndim == 4 else data[None]))
        ref = io.parse_ref(text)
        whole_h5 = ref.format == "h5" and ref.dataset is None
        maps = truth = None
        maps_source, truth_source = "ESPIRiT of the full k-space", "S^H F^H k (coil combination)"
        if whole_h5:
            maps = _optional(text + ":maps", io.roles.MAPS, index)
            truth = _optional(text + ":image", io.roles.IMAGE, index)
        if maps is not None:
            maps = torch.from_numpy(maps if maps.ndim == 4 else maps[None])
            maps_source = "maps of the file"
            if maps.shape != data.shape:
                raise DataError(f"{text}: maps {tuple(maps.shape)} do not fit the k-space "
                                f"{tuple(data.shape)}")
        else:
            maps = espirit_full(data)
        if truth is not None and np.iscomplexobj(truth):
            truth = torch.from_numpy(truth if truth.ndim == 3 else truth[None])
            truth_source = "image of the file"
            if truth.shape != data.shape[:1] + data.shape[-2:]:
                raise DataError(f"{text}: image {tuple(truth.shape)} does not fit the k-space "
                                f"{tuple(data.shape)}")
        else:
            truth = SenseOp(maps).reduce(ifft2c(data))
        ks.append(data.to(torch.complex64))
        ms.append(maps.to(torch.complex64))
        xs.append(truth.to(torch.complex64))
        files.append({"path": text, "shape": [int(n) for n in shape], "slices": [start, stop],
                      "maps": maps_source, "truth": truth_source})
    sizes = {tuple(k.shape[-3:]) for k in ks}
    if len(sizes) > 1:
        raise DataError(f"training data of different shapes {sorted(sizes)}: DEEPEN trains on "
                        f"one matrix size and coil count")
    kspace = torch.cat(ks)
    description = {"files": files, "slices": int(kspace.shape[0]),
                   "central_slices": central or "all", "shape": list(kspace.shape[-3:]),
                   "normalisation": NORMALISATION}
    return DeepenExamples(kspace, torch.cat(ms), torch.cat(xs), description)


def _optional(text, role, index):
    from .. import io

    try:
        return io.read_array(text, role, index)
    except DataError:
        return None


class DeepenTraining(TrainingMethod):
    """The maximum-likelihood method above, for the engine."""

    def __init__(self, examples: DeepenExamples, architecture: DeepenConfig,
                 config: DeepenTrainConfig, context: DistContext, seed: int = 0):
        from ..masks import parse_mask_spec

        architecture.validate()
        check_train_config(config, context.world_size)
        if examples.kspace.shape[0] < 1:
            raise UsageError("no training slices")
        self.spec = parse_mask_spec(config.mask)
        self.config, self.context, self.seed = config, context, seed
        self.device = context.device
        self.examples = examples
        self.batch = config.batch // context.world_size
        model = DeepenEnergy(architecture)
        model.reset_parameters(init_generator(seed, 0, "cpu", 0))
        if config.init:
            warm_start(model, config.init)
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = None
        self.last_samples: torch.Tensor | None = None

    def problem(self, step: int, generator: torch.Generator):
        """(posterior, true samples x+ (B, H, W) complex) of the step, normalised."""
        from ..masks import make_mask

        ex = self.examples
        idx = epoch_indices(step, self.batch, ex.kspace.shape[0], self.seed, self.context)
        shape = tuple(ex.kspace.shape[-2:])
        masks = []
        for _ in idx:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                     device=generator.device))
            masks.append(make_mask(self.spec, shape, seed=seed, tolerance=None))
        mask = torch.from_numpy(np.stack(masks)).to(self.device)
        kspace = ex.kspace[idx].to(self.device) * mask.unsqueeze(1)
        maps = ex.maps[idx].to(self.device)
        scale, _ = data_scale(kspace, maps, mask)
        kspace = kspace / scale.reshape(-1, 1, 1, 1)
        truth = ex.truth[idx].to(self.device) / scale.reshape(-1, 1, 1)
        sigma = 2 * self.config.eps ** 2
        noise = torch.randn((*truth.shape, 2), generator=generator, device=self.device)
        positive = truth + sigma * torch.view_as_complex(noise)
        return Posterior(self.model, maps, mask, kspace), positive

    def fake_samples(self, posterior: Posterior, shape, generator) -> torch.Tensor:
        """Eq. 16 from N(0, init_std^2) noise: complex (B, H, W), detached."""
        from ..mcmc import run_chain

        cfg = self.config
        start = cfg.init_std * torch.randn((*shape, 2), generator=generator, device=self.device)
        requires = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)
        try:
            last = run_chain(start, posterior.real_energy, cfg.chain_steps, 1.0, cfg.eps,
                             generator)
        finally:
            for p, r in zip(self.model.parameters(), requires):
                p.requires_grad_(r)
        return torch.view_as_complex(last.contiguous())

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        if self.config.objective == "dsm":
            return self.score_matching_step(step, generator)
        posterior, positive = self.problem(step, generator)
        negative = self.fake_samples(posterior, positive.shape, generator)
        self.last_samples = negative.abs()
        b = positive.shape[0]
        energies = self.ddp_model(torch.cat([positive, negative]))
        e_pos, e_neg = energies[:b].mean(), energies[b:].mean()
        loss = e_pos - e_neg
        if self.config.energy_penalty:
            loss = loss + self.config.energy_penalty * (energies ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        return {"loss": float(loss.detach()), "E_data": float(e_pos.detach()),
                "E_samples": float(e_neg.detach()), "lr": lr}


    def score_matching_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        """One update of ``deepen.score``'s loss on patches of the step's normalised images."""
        from .score import complex_patches, deepen_dsm_loss, default_sigma

        cfg = self.config
        _, positive = self.problem(step, generator)
        with torch.no_grad():
            clean = complex_patches(positive, cfg.patches, cfg.patch, generator)
            noise = torch.randn(clean.shape, generator=generator, device=self.device)
        loss = deepen_dsm_loss(self.ddp_model, clean, cfg.sigma or default_sigma(cfg.eps),
                               cfg.eps ** 2 / 2, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.model, self.context)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.last_samples = positive.abs().detach()
        return {"loss": float(loss.detach()), "lr": lr}

    def bind(self, context: DistContext) -> None:
        # DSM differentiates an input gradient, which DDP's hooks do not see: gradients are
        # then averaged by hand (as for the prior's score matching).
        self.ddp_model = self.model if self.config.objective == "dsm" else context.wrap(self.model)


def warm_start(model: DeepenEnergy, source: str) -> None:
    """Copy the weights of a DEEPEN model file (or shipped name) of the same architecture."""
    other, _ = load_model(resolve_model(str(source)), "cpu", kind=KIND)
    if other.config != model.config:
        raise UsageError(f"--init {source}: its architecture {other.config.to_dict()} is not "
                         f"the one trained ({model.config.to_dict()})")
    model.load_state_dict(other.state_dict())


def train_deepen(examples: DeepenExamples, architecture: DeepenConfig,
                 config: DeepenTrainConfig, output, options: EngineOptions,
                 context: DistContext | None = None, command: str | None = None,
                 samples_png=None, png_every: int = 0):
    """Train and write the model file ``output`` (rank 0); returns (engine result, method)."""
    from ..training.engine import png_hook

    context = context or DistContext(device=torch.device("cpu"))
    method = DeepenTraining(examples, architecture, config, context, options.seed)
    data = examples.description
    training = {"command": command, "data": data, "hyperparameters": config.to_dict(),
                "mask": config.mask,
                "optimizer": "Adam (constant learning rate)",
                "objective": config.objective,
                "loss": LOSSES[config.objective],
                "sampler": {"step": 1.0, "noise": config.eps, "init_std": config.init_std,
                            "steps": config.chain_steps},
                "seed": options.seed, "processes": context.world_size}
    description = model_description(KIND, architecture.to_dict(), NORMALISATION, training)
    fingerprint = {"architecture": architecture.to_dict(), **config.to_dict(),
                   "slices": data["slices"],
                   "data": [[Path(str(f["path"])).name, f["slices"]] for f in data["files"]]}
    options = dataclasses.replace(options, fingerprint=fingerprint, model_info=description)
    hooks = []
    if samples_png is not None:
        hooks.append(png_hook(samples_png, png_every, lambda: method.last_samples,
                              window=(0.0, 1.0)))
    result = train_and_save(method, options, context, output, description, hooks)
    return result, method


def load_deepen(path, device="cpu"):
    """(DeepenEnergy in eval mode with frozen weights, metadata) from a model file of
    ``mrgen train deepen`` (or its training checkpoint), or a shipped model by name."""
    model, metadata = load_model(resolve_model(str(path)), device, kind=KIND)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, metadata


def sampler_eps(metadata: dict, default: float = DeepenTrainConfig.eps) -> float:
    """The eps the model was trained with (the Langevin noise of Eq. 16)."""
    hyper = (metadata.get("training") or {}).get("hyperparameters") or {}
    return float(hyper.get("eps", default))
