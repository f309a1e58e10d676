"""mrgen train prior: maximum-likelihood training of the learned energy prior (Zach, Knoll, Pock 2023, preprint)."""

from typing import Annotated, Optional

import typer

from mrgen.apps.train_prior import PRESETS

from .cli import command
from .options import (AT_LEAST_0, AT_LEAST_1, POSITIVE, UNIT, CheckpointEveryOption,
                      CheckpointOption, PngEveryOption, ResumeOption, SamplesPngOption)
from .train import train_app

SUMMARY = "Train the energy prior R_theta (score matching or maximum likelihood)."


def _preset_help(key: str) -> str:
    show = lambda v: "none" if v is None else (" ".join(f"{x:g}" for x in v)  # noqa: E731
                                               if isinstance(v, tuple) else f"{v:g}"
                                               if isinstance(v, float) else str(v))
    return "[default: --preset: " + ", ".join(f"{name} {show(values[key])}"
                                              for name, values in PRESETS.items()) + "]"


@command("prior", SUMMARY, group=train_app, inputs=("data",),
         files_out=("output", "checkpoint", "samples_png"),
         ranges={"steps": AT_LEAST_0, "batch": AT_LEAST_1, "lr": POSITIVE, "gamma": POSITIVE,
                 "energy_penalty": AT_LEAST_0, "data_noise": AT_LEAST_0, "ula_step": POSITIVE,
                 "ula_noise": AT_LEAST_0, "chain_max": AT_LEAST_1, "chain_tau": POSITIVE,
                 "buffer": AT_LEAST_1, "restart": UNIT, "width": AT_LEAST_1, "growth": POSITIVE,
                 "stages": AT_LEAST_1, "crop": AT_LEAST_1, "central_slices": AT_LEAST_0,
                 "patch": AT_LEAST_1, "sigma_range": POSITIVE, "clip_norm": AT_LEAST_0,
                 "checkpoint_every": AT_LEAST_0, "png_every": AT_LEAST_0,
                 "factor": AT_LEAST_1, "coarse_weight": AT_LEAST_0},
         choices={"preset": ("auto", "paper", "cpu", "cpu-ml"), "normalise": ("max", "minmax"),
                  "objective": ("ml", "dsm"),
                  "head": ("global", "local", "unet", "multiscale"),
                  "precision": ("float32", "bfloat16")})
def train_prior(
    data: Annotated[list[str], typer.Argument(
        metavar="DATA...", help="Training images: fastMRI or mrgen phantom .h5 volumes (their "
        "central slices of reconstruction_rss), .npy or .cfl stacks (slices, H, W) or images "
        "(H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT.pt", help="The trained model: a self-describing PyTorch file "
        "(architecture, weights, normalisation, how it was trained).", show_default=False)],
    preset: Annotated[str, typer.Option(
        "--preset", metavar="auto|paper|cpu|cpu-ml", help="The recipe for every option "
        "marked --preset that is not given: paper (the authors' code: maximum likelihood of a "
        "21.4 M-parameter network on 320 x 320 crops, 27000 steps of batch 50 with chains to "
        "500 steps; an 85 MB model: a GPU job), cpu (the shipped prior of models/Makefile: a "
        "fully convolutional energy trained by denoising score matching on 64 x 64 patches; "
        "about an hour on 2 cores) or cpu-ml (maximum likelihood of a 0.23 M-parameter "
        "global-head network on 64 x 64 crops, chains to 30 steps). auto: paper on CUDA, cpu "
        "otherwise.", rich_help_panel="Training")] = "auto",
    objective: Annotated[Optional[str], typer.Option(
        "--objective", metavar="ml|dsm", help="ml: maximum likelihood with Langevin chains "
        "(Zach, Knoll, Pock 2023); dsm: denoising score matching at noise levels drawn from "
        "--sigma-range (Vincent 2011; Song, Ermon 2019), no sampling, --head local only. "
        + _preset_help("objective"), rich_help_panel="Training", show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", help="Parameter updates in all. With --resume, the total to reach. "
        + _preset_help("steps"), rich_help_panel="Training", show_default=False)] = None,
    batch: Annotated[Optional[int], typer.Option(
        "--batch", help="Images per update (data and samples each); split over processes "
        "under torchrun. " + _preset_help("batch"), rich_help_panel="Training",
        show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="AdaBelief learning rate (the authors' code: 5e-5; the paper states "
        "5e-4). " + _preset_help("lr"), rich_help_panel="Training", show_default=False)] = None,
    milestones: Annotated[Optional[str], typer.Option(
        "--milestones", metavar="H,H,...", help="Steps at which the learning rate is "
        "multiplied by --gamma ('' for none). " + _preset_help("milestones"),
        rich_help_panel="Training", show_default=False)] = None,
    gamma: Annotated[float, typer.Option(
        "--gamma", help="Learning-rate factor at each milestone.",
        rich_help_panel="Training")] = 0.5,
    energy_penalty: Annotated[Optional[float], typer.Option(
        "--energy-penalty", help="Add alpha * mean(E^2) of data and samples to the loss, a "
        "stabiliser against the energies' scale running away on short chains (Du & Mordatch "
        "2019); 0 = the authors' method. " + _preset_help("energy_penalty"),
        show_default=False)] = None,
    sample_range: Annotated[Optional[tuple[float, float]], typer.Option(
        "--sample-range", metavar="LO HI", help="Clamp the Langevin chains to [LO, HI] after "
        "each step (e.g. -0.5 1.5 for max-normalised data). "
        + _preset_help("sample_range"), show_default=False)] = None,
    data_noise: Annotated[float, typer.Option(
        "--data-noise", metavar="SIGMA", help="Std of the Gaussian noise added to each "
        "training batch (smooths the data distribution).", rich_help_panel="Training")] = 1.5e-2,
    nan_guard: Annotated[bool, typer.Option(
        "--nan-guard/--no-nan-guard", help="Undo an update whose loss or weights are not "
        "finite and go on (counted as 'skipped').", rich_help_panel="Training")] = False,
    ula_step: Annotated[float, typer.Option(
        "--ula-step", help="ULA step on grad R: x <- x - STEP grad R(x) + NOISE n.",
        rich_help_panel="Sampler")] = 1.0,
    ula_noise: Annotated[float, typer.Option(
        "--ula-noise", help="ULA noise std (the temperature is folded into R).",
        rich_help_panel="Sampler")] = 7.5e-3,
    chain_max: Annotated[Optional[int], typer.Option(
        "--chain-max", metavar="J", help="Longest chain: J_h = ceil(J (1 - exp(-h/TAU) + "
        "0.01)) ULA steps at update h. " + _preset_help("chain_max"),
        rich_help_panel="Sampler", show_default=False)] = None,
    chain_tau: Annotated[Optional[float], typer.Option(
        "--chain-tau", metavar="TAU", help="Time constant (in updates) of the chain-length "
        "schedule. " + _preset_help("chain_tau"), rich_help_panel="Sampler",
        show_default=False)] = None,
    buffer: Annotated[Optional[int], typer.Option(
        "--buffer", help="Replay buffer: persistent chains (starts half data, half "
        "pixel-permuted data). " + _preset_help("buffer"), rich_help_panel="Sampler",
        show_default=False)] = None,
    restart: Annotated[float, typer.Option(
        "--restart", metavar="P", help="Chance that a chain restarts from data or permuted "
        "data (50/50) after each update.", rich_help_panel="Sampler")] = 0.01,
    head: Annotated[Optional[str], typer.Option(
        "--head", metavar="global|local|unet|multiscale", help="global: the paper's network, "
        "one energy for the central --crop square; local: a fully convolutional energy, a sum "
        "of per-pixel terms, that regularises every pixel of an image of any size; unet: the "
        "same energy with a U-Net residual (--stages 2x poolings), whose field spans the image; "
        "multiscale: a trained local or unet energy (--fine) plus --coarse-weight x a local "
        "energy of the image's means over --factor x --factor blocks, trained here on whole "
        "training images so that it sees the whole object (--patch does not apply). "
        + _preset_help("head"),
        rich_help_panel="Architecture", show_default=False)] = None,
    fine: Annotated[Optional[str], typer.Option(
        "--fine", metavar="MODEL", help="--head multiscale: the trained fine energy (a "
        "model file or a shipped name), kept as it is; its fitted level and lambda carry "
        "over.", rich_help_panel="Architecture", show_default=False)] = None,
    factor: Annotated[int, typer.Option(
        "--factor", metavar="F", help="--head multiscale: the coarse energy sees the means "
        "of F x F blocks (8: 256 x 256 -> 32 x 32, which its field covers).",
        rich_help_panel="Architecture")] = 8,
    coarse_weight: Annotated[float, typer.Option(
        "--coarse-weight", metavar="W", help="--head multiscale: R(x) = R_fine(x) + W "
        "R_coarse(D x).", rich_help_panel="Architecture")] = 4.0,
    dilations: Annotated[Optional[str], typer.Option(
        "--dilations", metavar="D,D,...", help="Local head: one 3 x 3 convolution per "
        "dilation (unet head: at its coarsest level). " + _preset_help("dilations"),
        rich_help_panel="Architecture",
        show_default=False)] = None,
    patch: Annotated[Optional[int], typer.Option(
        "--patch", metavar="P", help="dsm: random P x P patches of the training images. "
        + _preset_help("patch"), rich_help_panel="Training", show_default=False)] = None,
    sigma_range: Annotated[Optional[tuple[float, float]], typer.Option(
        "--sigma-range", metavar="LO HI", help="dsm: noise levels, log-uniform in [LO, HI] "
        "(images normalised to max 1). " + _preset_help("sigma_range"),
        rich_help_panel="Training", show_default=False)] = None,
    clip_norm: Annotated[Optional[float], typer.Option(
        "--clip-norm", metavar="G", help="dsm: clip the gradient's global norm to G before "
        "each update (0: no clipping). " + _preset_help("clip_norm"),
        rich_help_panel="Training", show_default=False)] = None,
    precision: Annotated[str, typer.Option(
        "--precision", metavar="float32|bfloat16", help="dsm: the network's forward and "
        "backward passes under bfloat16 autocast: ~2.4x faster steps on CPUs with AMX tiles "
        "(emulated and slower elsewhere); the loss stays float32.",
        rich_help_panel="Training")] = "float32",
    width: Annotated[Optional[int], typer.Option(
        "--width", help="Channels of the first stage. " + _preset_help("width"),
        rich_help_panel="Architecture", show_default=False)] = None,
    growth: Annotated[float, typer.Option(
        "--growth", help="Channel growth: width x int(growth^s) at stage s.",
        rich_help_panel="Architecture")] = 1.75,
    stages: Annotated[Optional[int], typer.Option(
        "--stages", help="Stride-2 stages. " + _preset_help("stages"),
        rich_help_panel="Architecture", show_default=False)] = None,
    crop: Annotated[Optional[int], typer.Option(
        "--crop", metavar="N", help="Training images are centre-cropped (or zero-padded) to "
        "N x N; the model sees this central region. " + _preset_help("crop"),
        rich_help_panel="Data", show_default=False)] = None,
    central_slices: Annotated[int, typer.Option(
        "--central-slices", metavar="N", help="From each .h5 volume the N middle slices (0: "
        "all); .npy/.cfl stacks are used whole.", rich_help_panel="Data")] = 11,
    normalise: Annotated[str, typer.Option(
        "--normalise", metavar="max|minmax", help="Per slice: divide by the maximum (the "
        "authors' code) or map min..max to 0..1 (the paper).", rich_help_panel="Data")] = "max",
    checkpoint: CheckpointOption = None,
    checkpoint_every: CheckpointEveryOption = 50,
    resume: ResumeOption = False,
    samples_png: SamplesPngOption = None,
    png_every: PngEveryOption = 50,
):
    """Train the learned energy R_theta, the prior of `mrgen ipalm` and `mrgen langevin`.

    --objective dsm (--preset cpu, the default on a CPU; the shipped prior-brain-small):
    denoising score matching (Vincent 2011) at noise levels drawn log-uniformly from
    --sigma-range (Song, Ermon 2019) of a fully convolutional energy (--head local): R(x) =
    sum over pixels of r(x; sigma)^2 / (2 sigma^2), r a stack of 3 x 3 convolutions with
    --dilations, SiLU, no stride, fed the image and the level; x - sigma^2 grad R(x) is then a
    denoiser (Hurault, Leclaire, Papadakis 2022) and R = -log p_sigma up to a constant, learned
    without sampling. Each step takes --batch random --patch squares of the training images
    (random positions, turns and flips), Adam at --lr. The energy covers every pixel of an
    image of any size. `mrgen train calibrate` then picks the level sigma and lambda on
    validation data.

    --objective ml (--preset paper, the default on CUDA, and --preset cpu-ml): maximum
    likelihood as Zach, Knoll, Pock 2023 (Eq. 6-7). The model p(x) = exp(-R(x)) / Z is fitted
    with the gradient E_data(grad R) - E_model(grad R), the model expectation taken over
    samples of the unadjusted Langevin algorithm: x <- x - grad R(x) + 7.5e-3 n, run from a
    replay buffer of persistent chains. --preset paper follows the authors' code: batch 50,
    AdaBelief (beta 0.9/0.999, eps 1e-16) at lr 5e-5 halved at steps 500, 2000, 3000, 5000,
    7000, data smoothed by N(0, 1.5e-2^2) noise, chains of J_h = ceil(500 (1 - exp(-h/1000) +
    0.01)) steps at update h, a buffer of 8000 chains started half from data and half from
    pixel-permuted data, each restarting with chance 1% after an update; the network of Eq.
    16 (--head global: 3x3 convolutions, leaky ReLU 0.05, 6 stride-2 stages of 48 x
    int(1.75^s) channels, a final layer to one number, its absolute value) sees the central
    --crop square: 21.4 M parameters, an 85 MB model. --preset cpu-ml: 4 stages of 16 x
    int(1.75^s) channels on 64 x 64 crops, batch 8, chains of at most 30 steps clamped to
    [-0.5, 1.5], energy penalty 0.1; on a CPU budget its MAP stays below TV. Options given on
    the command line override the preset's values.

    Data: from each .h5 volume (fastMRI, or `mrgen phantom` output) the --central-slices
    middle slices of reconstruction_rss (the RSS image fastMRI provides; name another dataset
    as FILE.h5:NAME); .npy and .cfl stacks are taken whole, complex data in magnitude. Every
    slice is centre-cropped or zero-padded to --crop and normalised on its own (--normalise
    max, as the authors' code; minmax as the paper states). Reconstructions must scale their
    data the same way (iPALM divides by the maximum of the initial image).

    Progress (on a terminal): the loss (dsm: the denoising error over sigma^2, 1 for a denoiser
    that returns its input; ml: the energy gap E(data) - E(samples), which hovers around 0
    when the sampler keeps up, both energies and the chain length J), the learning rate and
    updates per second.
    Without a terminal a report line is written at every checkpoint.

    The checkpoint (--checkpoint, default OUT.ckpt) is written atomically every
    --checkpoint-every updates and at the end; it holds the model, optimizer, scheduler, replay
    buffer, step and random states. After a kill, the same command with --resume continues
    exactly (on CPU bit-identically) where the checkpoint left off; a larger --steps extends a
    finished run. A checkpoint of an earlier run is never overwritten without --resume.

    Several GPUs: torchrun --nproc_per_node G -m commands train prior ... runs
    DistributedDataParallel (NCCL on CUDA, gloo on CPU); --batch and --buffer are split over
    the processes, rank 0 writes the files, and a resume needs the same process count.

    OUT.pt records the architecture, the weights, the normalisation, the data (files, slices,
    crop) and the hyper-parameters; mrgen ipalm/langevin rebuild the model from it alone.
    """
    from mrgen.apps.train_prior import PriorOptions, train_prior_app

    from .cli import device
    from .options import training_run

    dev = device()   # before the file checks, as the preset depends on it
    options = PriorOptions(
        preset=preset, objective=objective, head=head, fine=fine, factor=factor,
        coarse_weight=coarse_weight, dilations=dilations, patch=patch,
        sigma_range=sigma_range, clip_norm=clip_norm, precision=precision, steps=steps,
        batch=batch, lr=lr,
        milestones=milestones, gamma=gamma, energy_penalty=energy_penalty,
        sample_range=sample_range, data_noise=data_noise, ula_step=ula_step,
        ula_noise=ula_noise, chain_max=chain_max, chain_tau=chain_tau, buffer=buffer,
        restart=restart, width=width, growth=growth, stages=stages, crop=crop,
        central_slices=central_slices, normalise=normalise)
    run = training_run(data, output, checkpoint, None, checkpoint_every, resume, nan_guard,
                       samples_png, png_every)
    train_prior_app(data, options, run, dev)
