"""Maximum-likelihood training of the learned energy prior (Zach, Knoll, Pock 2023) from its
options and presets (``mrgen train prior``).

Imports nothing heavy at module level: the command's help shows the presets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Two recipes; an option not given takes its value from the preset. paper: the authors'
# code (Zach, Knoll, Pock 2023; a 21.4 M-parameter network, an 85 MB model, a GPU job); cpu: the
# shipped demo model prior-brain-small (models/Makefile; 0.23 M parameters, about 1 MB).
PRESETS = {
    "paper": {"steps": 27000, "batch": 50, "lr": 5e-5, "milestones": "500,2000,3000,5000,7000",
              "energy_penalty": 0.0, "sample_range": None, "chain_max": 500,
              "chain_tau": 1000.0, "buffer": 8000, "width": 48, "stages": 6, "crop": 320},
    "cpu": {"steps": 1500, "batch": 8, "lr": 2e-4, "milestones": "1000,1300",
            "energy_penalty": 0.1, "sample_range": (-0.5, 1.5), "chain_max": 30,
            "chain_tau": 300.0, "buffer": 1000, "width": 16, "stages": 4, "crop": 64},
}


@dataclass
class PriorOptions:
    """The prior's recipe; a None takes the value of the preset."""
    preset: str = "auto"                   # auto (paper on CUDA, cpu elsewhere), paper, cpu
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
        raise UsageError(f"--preset {options.preset}: choose auto, paper or cpu")
    chosen = resolve_preset(options.preset, device)
    filled = {key: value if getattr(options, key) is None else getattr(options, key)
              for key, value in PRESETS[chosen].items()}
    return replace(options, **filled), chosen


def parse_milestones(text: str) -> tuple:
    from ..errors import UsageError

    text = text.strip()
    if not text or text.lower() == "none":
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--milestones {text}: expected step numbers like 500,2000") from None


def train_prior_app(data: list[str], options: PriorOptions, run, device):
    """Train the prior on the images of ``data`` (file names) and write ``run.output``;
    returns the engine's TrainResult. ``run`` is an ``apps.train_run.TrainingRun`` whose
    ``steps`` None takes the preset's."""
    from ..priors.energy import EnergyConfig
    from ..training.data import load_training_images
    from ..training.prior import PriorConfig, check_config, train_prior
    from .train_run import distributed

    resolved, chosen = with_preset(options, device)
    run = replace(run, steps=run.steps if run.steps is not None else resolved.steps)
    run.check_checkpoint()
    architecture = EnergyConfig(base_width=resolved.width, growth=resolved.growth,
                                stages=resolved.stages, crop=resolved.crop)
    config = PriorConfig(
        batch=resolved.batch, buffer=resolved.buffer, chain_max=resolved.chain_max,
        chain_tau=resolved.chain_tau, ula_step=resolved.ula_step, ula_noise=resolved.ula_noise,
        data_noise=resolved.data_noise, restart=resolved.restart, lr=resolved.lr,
        milestones=parse_milestones(resolved.milestones), gamma=resolved.gamma,
        energy_penalty=resolved.energy_penalty,
        sample_range=tuple(resolved.sample_range) if resolved.sample_range else None)
    run.check_counts(resolved.central_slices)
    with distributed(device) as context:
        check_config(config, architecture, context.world_size)
        loaded = load_training_images(data, resolved.central_slices, resolved.crop,
                                      resolved.normalise)
        log = run.main_log(context.is_main)
        if context.is_main:   # the parameter count builds a network: rank 0 only
            _report_recipe(log, resolved, chosen, architecture, run.steps, device)
            _report_data(log, loaded.description, resolved)
        result, _ = train_prior(loaded.images, loaded.description, architecture, config,
                                run.output, run.engine_options("train prior", context.is_main),
                                context, samples_png=run.samples_png, png_every=run.png_every,
                                command=run.command)
        m = result.metrics
        gap = f", energy gap {m['loss']:.4g}" if "loss" in m else ""
        skipped = f", {result.nan_skipped} updates undone" if result.nan_skipped else ""
        log(f"wrote {run.output} (step {result.step}{gap}{skipped}); checkpoint "
            f"{run.checkpoint}")
        return result


def _report_recipe(log, resolved: PriorOptions, chosen: str, architecture, steps, device):
    from ..priors.energy import EnergyNet

    count = sum(p.numel() for p in EnergyNet(architecture).parameters())
    why = "--preset" if resolved.preset != "auto" else f"auto on {device.type}"
    log(f"preset {chosen} ({why}): width {resolved.width}, {resolved.stages} stages, crop "
        f"{resolved.crop}, {count:,} parameters; {steps} steps of batch {resolved.batch}, "
        f"chains to {resolved.chain_max}"
        + ("" if chosen == "paper" else " (--preset paper: the paper's 21.4 M-parameter network)"))


def _report_data(log, desc: dict, resolved: PriorOptions):
    log(f"{desc['slices']} training slices from {len(desc['files'])} file(s), "
        f"{resolved.crop}x{resolved.crop}, {desc['normalisation']}"
        + (f"; {desc['skipped_constant']} constant slices skipped"
           if desc["skipped_constant"] else ""))
