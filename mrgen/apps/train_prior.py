"""Maximum-likelihood training of the learned energy prior (Zach, Knoll, Pock 2023) from its
options and presets (``mrgen train prior``).

Imports nothing heavy at module level: the command's help shows the presets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Three recipes; an option not given takes its value from the preset. paper: the authors'
# code (Zach, Knoll, Pock 2023; maximum likelihood, a 21.4 M-parameter global-head network, an
# 85 MB model, a GPU job); cpu: the shipped prior (models/Makefile): a fully convolutional
# energy trained by denoising score matching, about an hour on 2 cores; cpu-ml: maximum
# likelihood of the small global-head network on 64 x 64 crops (the demo model before it).
_SHARED = {"energy_penalty": 0.0, "sample_range": None, "chain_max": 500, "chain_tau": 1000.0,
       "buffer": 8000, "stages": 6, "dilations": "1,2,4,8,4,2,1", "patch": 64,
       "sigma_range": (0.005, 0.2), "clip_norm": 0.0}
PRESETS = {
    "paper": {**_SHARED, "objective": "ml", "head": "global", "steps": 27000, "batch": 50,
              "lr": 5e-5, "milestones": "500,2000,3000,5000,7000", "width": 48, "crop": 320},
    # cpu: without clipping, 4000 steps on the corpus diverged near step 2850 (loss 0.1 ->
    # 2.6, then ~1: the identity denoiser); with the gradient's norm clipped to 10 (typical
    # norms 4-11) 3000 steps ran through (about an hour on one core of 2), the lr halved at
    # 2000 and 2600: the shipped model.
    "cpu": {**_SHARED, "objective": "dsm", "head": "local", "steps": 3000, "batch": 16,
            "lr": 1e-3, "milestones": "2000,2600", "width": 32, "crop": 256, "clip_norm": 10.0,
            "energy_penalty": 0.1, "sample_range": (-0.5, 1.5), "chain_max": 30,
            "chain_tau": 300.0, "buffer": 1000, "stages": 4},
    "cpu-ml": {**_SHARED, "objective": "ml", "head": "global", "steps": 1500, "batch": 8,
               "lr": 2e-4, "milestones": "1000,1300", "energy_penalty": 0.1,
               "sample_range": (-0.5, 1.5), "chain_max": 30, "chain_tau": 300.0,
               "buffer": 1000, "width": 16, "stages": 4, "crop": 64},
}
OBJECTIVES = ("ml", "dsm")
HEADS = ("global", "local", "unet", "multiscale")


@dataclass
class PriorOptions:
    """The prior's recipe; a None takes the value of the preset."""
    preset: str = "auto"                   # auto (paper on CUDA, cpu elsewhere), paper, cpu, cpu-ml
    objective: str | None = None           # ml (maximum likelihood) or dsm (score matching)
    head: str | None = None                # global (the paper's crop), local, unet, multiscale
    steps: int | None = None
    batch: int | None = None
    lr: float | None = None
    milestones: str | None = None          # "500,2000": steps where lr *= gamma; "" none
    gamma: float = 0.5
    energy_penalty: float | None = None
    sample_range: tuple[float, float] | None = None
    data_noise: float = 1.5e-2
    ula_step: float = 1.0
    ula_noise: float = 7.5e-3
    chain_max: int | None = None
    chain_tau: float | None = None
    buffer: int | None = None
    restart: float = 0.01
    width: int | None = None
    growth: float = 1.75
    stages: int | None = None
    crop: int | None = None
    dilations: str | None = None           # local head (unet: its coarsest level): "1,2,4,8,4,2,1"
    patch: int | None = None               # dsm: patch size
    sigma_range: tuple[float, float] | None = None   # dsm: noise levels drawn log-uniformly
    clip_norm: float | None = None         # dsm: clip the gradient's norm (0: off)
    precision: str = "float32"             # dsm: bfloat16 autocast (AMX CPUs: ~2.4x faster)
    fine: str | None = None                # multiscale: the trained fine energy (file or name)
    factor: int = 8                        # multiscale: the coarse energy's downsampling
    coarse_weight: float = 4.0             # multiscale: w in R_fine(x) + w R_coarse(D x)
    central_slices: int = 11               # middle slices of each .h5 volume (0: all)
    normalise: str = "max"                 # max or minmax, per slice


def resolve_preset(preset: str, device) -> str:
    """``auto`` is paper on CUDA and cpu elsewhere."""
    if preset == "auto":
        return "paper" if getattr(device, "type", str(device)) == "cuda" else "cpu"
    return preset


def with_preset(options: PriorOptions, device) -> tuple[PriorOptions, str]:
    """The options with every None filled from the preset, and the preset's name."""
    from ..errors import UsageError

    if options.preset not in ("auto", *PRESETS):
        raise UsageError(f"--preset {options.preset}: choose auto, paper, cpu or cpu-ml")
    chosen = resolve_preset(options.preset, device)
    filled = {key: value if getattr(options, key) is None else getattr(options, key)
              for key, value in PRESETS[chosen].items()}
    return replace(options, **filled), chosen


def parse_integers(text: str, option: str) -> tuple:
    """ "1,2,4" -> (1, 2, 4); UsageError naming ``option`` otherwise."""
    from ..errors import UsageError

    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{option} {text}: expected integers like 500,2000") from None


def parse_milestones(text: str) -> tuple:
    text = text.strip()
    return () if not text or text.lower() == "none" else parse_integers(text, "--milestones")


def train_prior_app(data: list[str], options: PriorOptions, run, device):
    """Train the prior on the images of ``data`` (file names) and write ``run.output``;
    returns the engine's TrainResult. ``run`` is an ``apps.train_run.TrainingRun`` whose
    ``steps`` None takes the preset's."""
    from ..training.data import load_training_images
    from ..training.prior import train_prior
    from .train_run import distributed

    resolved, chosen = with_preset(options, device)
    run = replace(run, steps=run.steps if run.steps is not None else resolved.steps)
    run.check_checkpoint()
    fine = load_fine(resolved)
    if fine is not None:   # the coarse energy learns whole images
        resolved = replace(resolved, patch=resolved.crop // resolved.factor)
    architecture, config = recipe(resolved, fine)
    run.check_counts(resolved.central_slices)
    with distributed(device) as context:
        check_recipe(architecture, config, resolved.crop, context.world_size)
        loaded = load_training_images(data, resolved.central_slices, resolved.crop,
                                      resolved.normalise)
        if fine is not None:
            loaded.description["fine"] = fine.record()
        log = run.main_log(context.is_main)
        if context.is_main:   # the parameter count builds a network: rank 0 only
            _report_recipe(log, resolved, chosen, architecture, run.steps, device)
            _report_data(log, loaded.description, resolved)
        result, _ = train_prior(loaded.images, loaded.description, architecture, config,
                                run.output, run.engine_options("train prior", context.is_main),
                                context, samples_png=run.samples_png, png_every=run.png_every,
                                command=run.command,
                                initial=fine.initial_weights() if fine else None)
        if fine is not None and fine.fitted and context.is_main:
            from ..model_files import store_fitted_entries

            store_fitted_entries(run.output, fine.fitted)   # the fine energy's level, lambda
        m = result.metrics
        gap = f", energy gap {m['loss']:.4g}" if "loss" in m and resolved.objective == "ml" \
            else (f", loss {m['loss']:.4g}" if "loss" in m else "")
        skipped = f", {result.nan_skipped} updates undone" if result.nan_skipped else ""
        log(f"wrote {run.output} (step {result.step}{gap}{skipped}); checkpoint "
            f"{run.checkpoint}")
        return result


@dataclass
class FineEnergy:
    """The trained fine energy a multiscale prior is built on (``--fine``)."""
    path: str
    architecture: dict
    state_dict: dict
    fitted: dict
    training: dict

    def record(self) -> dict:
        """What the model file says of its fine energy."""
        return {"file": self.path, "architecture": self.architecture,
                "training": self.training, "fitted": self.fitted}

    def initial_weights(self) -> dict:
        return {f"fine.{key}": value for key, value in self.state_dict.items()}


def load_fine(resolved: PriorOptions) -> FineEnergy | None:
    """``--fine``'s model for --head multiscale (None for other heads); UsageError when one is
    missing or given without the other, or is not a whole-image score-matching energy."""
    from ..errors import UsageError

    if resolved.head != "multiscale":
        if resolved.fine:
            raise UsageError("--fine: only with --head multiscale")
        return None
    if not resolved.fine:
        raise UsageError("--head multiscale: needs --fine MODEL, the trained fine energy "
                         "(e.g. a --head local model)")
    if resolved.factor < 2 or resolved.factor % 2 or resolved.crop // resolved.factor < 8:
        raise UsageError(f"--factor {resolved.factor}: an even number >= 2 that leaves the "
                         f"{resolved.crop}-pixel training images at least 8 pixels")
    if resolved.objective != "dsm":
        raise UsageError("--head multiscale: trains by --objective dsm")
    from ..model_files import read_model, resolve_model
    from ..priors.energy import KIND

    path = resolve_model(resolved.fine)
    raw = read_model(path)
    head = raw.get("architecture", {}).get("head", "global")
    if raw.get("kind") != KIND or head not in ("local", "unet"):
        raise UsageError(f"--fine {resolved.fine}: needs a --head local or unet energy prior "
                         f"(this holds a '{raw.get('kind')}' model, --head {head})")
    return FineEnergy(str(path), raw["architecture"], raw["state_dict"],
                      dict(raw.get("fitted") or {}), dict(raw.get("training") or {}))


def recipe(resolved: PriorOptions, fine: FineEnergy | None = None):
    """(architecture, objective config) from options whose preset values are filled in;
    ``fine`` (--head multiscale) the trained fine energy."""
    from ..errors import UsageError
    from ..priors.energy import RESIDUAL_HEADS, EnergyConfig
    from ..priors.local_energy import LocalEnergyConfig
    from ..priors.unet_energy import UNetEnergyConfig
    from ..training.prior import PriorConfig
    from ..training.score import ScoreConfig

    if resolved.objective not in OBJECTIVES:
        raise UsageError(f"--objective {resolved.objective}: choose ml or dsm")
    if resolved.head not in HEADS:
        raise UsageError(f"--head {resolved.head}: choose global, local, unet or multiscale")
    if resolved.head in RESIDUAL_HEADS:
        dilations = parse_integers(resolved.dilations, "--dilations")
        if not dilations or min(dilations) < 1:
            raise UsageError(f"--dilations {resolved.dilations}: positive integers like "
                             f"1,2,4,2,1")
        if resolved.head == "unet":
            if resolved.stages < 1:
                raise UsageError(f"--stages {resolved.stages}: at least 1 for --head unet")
            architecture = UNetEnergyConfig(width=resolved.width, stages=resolved.stages,
                                            dilations=dilations,
                                            sigma=resolved.sigma_range[0] * 4)
        else:
            architecture = LocalEnergyConfig(width=resolved.width, dilations=dilations,
                                             sigma=resolved.sigma_range[0] * 4)
        if fine is not None:
            from ..priors.multiscale_energy import MultiScaleConfig

            architecture = MultiScaleConfig(fine=fine.architecture,
                                            coarse=architecture.to_dict(),
                                            factor=resolved.factor,
                                            coarse_weight=resolved.coarse_weight)
    else:
        architecture = EnergyConfig(base_width=resolved.width, growth=resolved.growth,
                                    stages=resolved.stages, crop=resolved.crop)
    milestones = parse_milestones(resolved.milestones)
    if resolved.objective == "dsm" and resolved.head not in RESIDUAL_HEADS:
        raise UsageError("--objective dsm: needs --head local or unet (the global head's "
                         "absolute value gives no denoiser)")
    if resolved.objective == "ml" and resolved.head in RESIDUAL_HEADS:
        raise UsageError(f"--objective ml: needs --head global (the {resolved.head} head is "
                         "read as -log p_sigma of score matching, which maximum likelihood "
                         "does not give)")
    if resolved.objective == "dsm":
        low, high = resolved.sigma_range
        return architecture, ScoreConfig(batch=resolved.batch, patch=resolved.patch,
                                         sigma_min=low, sigma_max=high, lr=resolved.lr,
                                         milestones=milestones, gamma=resolved.gamma,
                                         clip_norm=resolved.clip_norm,
                                         precision=resolved.precision)
    if resolved.precision != "float32":
        raise UsageError(f"--precision {resolved.precision}: only --objective dsm (maximum "
                         "likelihood's chains compare energies)")
    return architecture, PriorConfig(
        batch=resolved.batch, buffer=resolved.buffer, chain_max=resolved.chain_max,
        chain_tau=resolved.chain_tau, ula_step=resolved.ula_step, ula_noise=resolved.ula_noise,
        data_noise=resolved.data_noise, restart=resolved.restart, lr=resolved.lr,
        milestones=milestones, gamma=resolved.gamma, energy_penalty=resolved.energy_penalty,
        sample_range=tuple(resolved.sample_range) if resolved.sample_range else None)


def check_recipe(architecture, config, crop: int, world: int) -> None:
    from ..training.prior import PriorConfig, check_config
    from ..training.score import check_score_config

    if isinstance(config, PriorConfig):
        check_config(config, architecture, world)
    else:
        check_score_config(config, crop, world)


def _report_recipe(log, resolved: PriorOptions, chosen: str, architecture, steps, device):
    from ..priors.energy import build_model

    count = sum(p.numel() for p in build_model(architecture.to_dict()).parameters())
    why = "--preset" if resolved.preset != "auto" else f"auto on {device.type}"
    if resolved.head == "local":
        shape = (f"local head, width {resolved.width}, dilations {resolved.dilations} "
                 f"(radius {architecture.radius})")
    elif resolved.head == "multiscale":
        shape = (f"multiscale: the fine energy {resolved.fine} (kept as it is) plus "
                 f"{resolved.coarse_weight:g} x a local head (width {resolved.width}, "
                 f"dilations {resolved.dilations}) on the image's means over "
                 f"{resolved.factor} x {resolved.factor} blocks")
    elif resolved.head == "unet":
        shape = (f"U-Net head, width {resolved.width}, {resolved.stages} stages, dilations "
                 f"{resolved.dilations} at the coarsest")
    else:
        shape = f"width {resolved.width}, {resolved.stages} stages, crop {resolved.crop}"
    if resolved.objective == "dsm":
        how = (f"denoising score matching, {steps} steps of {resolved.batch} patches "
               f"{resolved.patch} x {resolved.patch}, sigma {resolved.sigma_range[0]:g}.."
               f"{resolved.sigma_range[1]:g}")
    else:
        how = (f"maximum likelihood, {steps} steps of batch {resolved.batch}, chains to "
               f"{resolved.chain_max}")
    log(f"preset {chosen} ({why}): {shape}, {count:,} parameters; {how}"
        + ("" if chosen == "paper" else " (--preset paper: the paper's 21.4 M-parameter network)"))


def _report_data(log, desc: dict, resolved: PriorOptions):
    log(f"{desc['slices']} training slices from {len(desc['files'])} file(s), "
        f"{resolved.crop}x{resolved.crop}, {desc['normalisation']}"
        + (f"; {desc['skipped_constant']} constant slices skipped"
           if desc["skipped_constant"] else ""))
