"""Supervised end-to-end training of Deep J-Sense / MoDL on the shared engine (Arvinte et al. 2021).

Each step (batch 1 by default, as the authors):

1. the step's examples (slices) from ``epoch_indices`` (an epoch is a fresh permutation);
2. a mask per example, drawn from the ``mrgen mask`` specification (e.g. random-exact:4:0.08)
   with a seed from the step's generator (``make_mask(..., tolerance=None)``);
3. the undersampled k-space and the reference divided by max |ACS| (the authors'
   normalisation; ``acs_scale``); for MoDL, ESPIRiT maps of the undersampled data;
4. the RSS estimate of the unrolled model (Eq. 7) with the curriculum's number of unrolls
   (1 at step 0, up to N after ``curriculum`` steps), centre-cropped to the reference;
5. loss = -SSIM (``mrgen.metrics.ssim_slices``: 7x7 window, data range = the reference's max;
   differentiable), Adam (lr 2e-4), gradients clipped to |g| <= 0.1 (value, as the paper),
   learning rate x0.5 every ``decay_every`` steps.

Examples: (kspace (C, H, W) complex64 fully sampled, reference (h, w) float32 RSS) pairs:
fastMRI multi-coil .h5 (kspace + reconstruction_rss) or ``mrgen phantom`` / ``mrgen dataset``
output (the noise-free RSS |image| x RSS(maps) is the reference when the truth is there); without a
reference dataset the RSS of the full k-space is used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..model_files import load_model, model_description, resolve_model
from ..training.distributed import DistContext, epoch_indices, init_generator
from ..training.engine import EngineOptions, TrainingMethod, train_and_save
from .model import KIND, DJSense, DJSenseConfig, acs_scale, espirit_for

NORMALISATION = "k-space (and reference) divided by max |ACS| (the largest magnitude of the " \
                "fully sampled centre columns) of each slice"


@dataclass(frozen=True)
class TrainConfig:
    mask: str = "random-exact:4:0.08"
    batch: int = 1
    lr: float = 2e-4
    decay_every: int = 0        # steps; 0: constant learning rate
    gamma: float = 0.5
    clip: float = 0.1           # gradient clipping by value (0: none)
    curriculum: int = 0         # steps from 1 unroll to N (0: N from the start)

    def to_dict(self) -> dict:
        return asdict(self)


def curriculum_unrolls(step: int, unrolls: int, curriculum: int) -> int:
    """1 unroll at step 0, one more every curriculum / N steps, N from step ``curriculum``."""
    if curriculum <= 0 or unrolls <= 1:
        return unrolls
    return min(unrolls, 1 + (step * unrolls) // curriculum)


@dataclass
class Examples:
    kspace: list            # (C, H, W) complex64 numpy
    reference: list         # (h, w) float32 numpy
    description: dict


def load_examples(paths, central: int | None = 5) -> Examples:
    """Fully sampled slices and their RSS references from .h5 files (or any k-space file,
    references then computed)."""
    from .. import io
    from ..coils import rss
    from ..fft import ifft2c
    from ..training.data import central_range

    if not paths:
        raise UsageError("no training data given")
    if central is not None and central < 0:
        raise UsageError(f"--central-slices {central}: must be at least 0 (0 = all)")
    kspaces, refs, files = [], [], []
    for text in paths:
        text = str(text)
        shape = io.read_shape(text, io.roles.KSPACE)
        if len(shape) == 4:
            start, stop = central_range(shape[0], central)
            index = slice(start, stop)
        else:
            start, stop, index = 0, 1, None
        data = io.read_array(text, io.roles.KSPACE, index)
        if data.ndim == 3:
            data = data[None]
        reference, source = None, "RSS of the full k-space"
        if io.parse_ref(text).format == "h5" and io.parse_ref(text).dataset is None:
            reference, source = h5_reference(text, index)
        if reference is None:
            reference = rss(ifft2c(torch.from_numpy(np.ascontiguousarray(data)))).numpy()
        if reference.ndim == 2:
            reference = reference[None]
        if reference.shape[0] != data.shape[0]:
            raise DataError(f"{text}: {reference.shape[0]} reference slices for "
                            f"{data.shape[0]} k-space slices")
        if reference.shape[-2] > data.shape[-2] or reference.shape[-1] > data.shape[-1]:
            raise DataError(f"{text}: reference {reference.shape[-2:]} larger than the k-space "
                            f"{data.shape[-2:]}")
        for k, r in zip(data, reference):
            kspaces.append(np.ascontiguousarray(k, np.complex64))
            refs.append(np.ascontiguousarray(np.abs(r), np.float32))
        files.append({"path": text, "shape": [int(n) for n in shape], "slices": [start, stop],
                      "reference": source})
    description = {"files": files, "slices": len(kspaces), "central_slices": central or "all",
                   "normalisation": NORMALISATION}
    return Examples(kspaces, refs, description)


def h5_reference(text: str, index):
    """(reference (S, h, w), its source) of a whole .h5 file: the noise-free RSS |image| x
    RSS(maps) when the file has the truth (mrgen phantom, mrgen dataset), else fastMRI's
    reconstruction_rss (the RSS of the noisy coil images: its noise floor and upward bias
    would be learned too), else (None, ...)."""
    from .. import io
    from ..coils import rss

    try:
        image = io.read_array(text + ":image", io.roles.IMAGE, index)
        maps = io.read_array(text + ":maps", io.roles.MAPS, index)
        truth = np.abs(image) * rss(torch.from_numpy(np.ascontiguousarray(maps))).numpy()
        return truth, "noise-free RSS: |image| x RSS(maps)"
    except DataError:
        pass
    try:
        return (io.read_array(text + ":reconstruction_rss", io.roles.REFERENCE, index),
                "reconstruction_rss")
    except DataError:
        return None, "RSS of the full k-space"


def prepare(kspace: torch.Tensor, mask: torch.Tensor):
    """(normalised undersampled k-space, scales (B,)) for k-space (B, C, H, W)."""
    y = kspace * mask.unsqueeze(-3)
    scale = acs_scale(y, mask)
    return y / scale.reshape(-1, 1, 1, 1), scale


def ssim_loss(recon: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """-SSIM per slice (B,) of the RSS estimate, centre-cropped to the reference, data range
    the reference's max (Eq. 7's loss)."""
    from ..metrics import ssim_slices
    from ..resize import center_crop

    recon = center_crop(recon, tuple(reference.shape[-2:]))
    maxval = reference.flatten(1).max(dim=1).values
    return -ssim_slices(reference, recon, data_range=maxval)


class DJSenseTraining(TrainingMethod):
    def __init__(self, examples: Examples, architecture: DJSenseConfig, config: TrainConfig,
                 context: DistContext, seed: int = 0):
        from ..masks import parse_mask_spec

        architecture.check()
        if architecture.mode == "l2":
            raise UsageError("--mode l2 has nothing to train (no networks)")
        check_train_config(config)
        self.spec = parse_mask_spec(config.mask)
        self.architecture, self.config, self.context = architecture, config, context
        self.seed = seed
        self.device = context.device
        self.examples = examples
        if len(examples.kspace) < 1:
            raise UsageError("no training slices")
        model = DJSense(architecture)
        model.reset_parameters(init_generator(seed, 0, "cpu", 0))
        self.model = model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = (torch.optim.lr_scheduler.StepLR(self.optimizer, config.decay_every,
                                                          config.gamma)
                          if config.decay_every > 0 else None)

    def batch(self, step: int, generator: torch.Generator):
        """(kspace, mask, reference) tensors of the step, normalised, on the device."""
        from ..masks import make_mask

        idx = epoch_indices(step, self.config.batch, len(self.examples.kspace), self.seed,
                            self.context)
        shapes = {self.examples.kspace[i].shape for i in idx}
        if len(shapes) > 1:
            raise DataError(f"--batch {self.config.batch}: slices of different shapes "
                            f"{sorted(shapes)}; use --batch 1")
        masks = []
        for i in idx:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                     device=generator.device))
            masks.append(make_mask(self.spec, self.examples.kspace[i].shape[-2:], seed=seed,
                                   tolerance=None))
        kspace = torch.from_numpy(np.stack([self.examples.kspace[i] for i in idx]))
        ref = torch.from_numpy(np.stack([self.examples.reference[i] for i in idx]))
        mask = torch.from_numpy(np.stack(masks))
        y, scale = prepare(kspace, mask)
        ref = ref / scale.reshape(-1, 1, 1)
        return y.to(self.device), mask.to(self.device), ref.to(self.device)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        y, mask, ref = self.batch(step, generator)
        maps = espirit_for(y) if self.architecture.mode == "modl" else None
        unrolls = curriculum_unrolls(step, self.architecture.unrolls, self.config.curriculum)
        recon = self.ddp_model(y, mask, maps=maps, unrolls=unrolls)
        loss = ssim_loss(recon, ref).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip > 0:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), self.config.clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        lam_s, lam_m = (None if v is None else v.detach() for v in self.model.lambdas())
        out = {"loss": float(loss.detach()), "N": unrolls, "lam_m": float(lam_m), "lr": lr}
        if lam_s is not None:
            out["lam_s"] = float(lam_s)
        return out


def check_train_config(config: TrainConfig) -> None:
    from ..masks import parse_mask_spec

    parse_mask_spec(config.mask)
    if config.batch < 1:
        raise UsageError(f"--batch {config.batch}: must be at least 1")
    if config.lr <= 0:
        raise UsageError(f"--lr {config.lr}: must be positive")
    if config.decay_every < 0 or config.curriculum < 0 or config.clip < 0:
        raise UsageError("--decay-every, --curriculum and --clip must be at least 0")
    if not 0 < config.gamma <= 1:
        raise UsageError(f"--gamma {config.gamma}: must be in (0, 1]")


def train_djsense(examples: Examples, architecture: DJSenseConfig, config: TrainConfig,
                  output, options: EngineOptions, context: DistContext | None = None,
                  command: str | None = None):
    """Train and write the model file ``output`` (rank 0); returns (engine result, method)."""
    context = context or DistContext(device=torch.device("cpu"))
    method = DJSenseTraining(examples, architecture, config, context, options.seed)
    data = examples.description
    training = {"command": command, "data": data, "hyperparameters": config.to_dict(),
                "optimizer": "Adam, StepLR, gradient clipping by value",
                "loss": "-SSIM of the RSS estimate, centre crop, data range = reference max",
                "seed": options.seed, "processes": context.world_size}
    description = model_description(KIND, architecture.to_dict(), NORMALISATION, training)
    fingerprint = {"architecture": architecture.to_dict(), **config.to_dict(),
                   "slices": data["slices"],
                   "data": [[Path(str(f["path"])).name, f["slices"]] for f in data["files"]]}
    options = dataclasses.replace(options, fingerprint=fingerprint, model_info=description)
    result = train_and_save(method, options, context, output, description)
    return result, method


def load_djsense(path, device="cpu"):
    """(DJSense in eval mode, metadata) from a model file of ``mrgen train djsense``, or a
    shipped model by name (djsense-brain-small)."""
    return load_model(resolve_model(str(path)), device, kind=KIND)


@torch.no_grad()
def reconstruct(model: DJSense, kspace: torch.Tensor, mask: torch.Tensor,
                unrolls: int | None = None) -> dict:
    """Inference on k-space (B, C, H, W) and mask (B, H, W) in data units: the model's dict
    (rss, image, maps) with rss and image scaled back; k-space normalised as in training."""
    y, scale = prepare(kspace, mask)
    maps = espirit_for(y) if model.config.mode == "modl" else None
    out = model.reconstruct(y, mask, maps=maps, unrolls=unrolls)
    out["rss"] = out["rss"] * scale.reshape(-1, 1, 1)
    out["image"] = out["image"] * scale.reshape(-1, 1, 1)
    return out
