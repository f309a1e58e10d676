"""mrgen train deepen: maximum likelihood of DEEPEN's posterior energy (Chand, Jacob 2025)."""

from typing import Annotated

import typer

from .cli import command
from .options import (AT_LEAST_0, AT_LEAST_1, POSITIVE, CheckpointEveryOption,
                      CheckpointOption, PngEveryOption, Range, ResumeOption, SamplesPngOption)
from .train import train_app

SUMMARY = ("Train DEEPEN's end-to-end posterior energy by maximum likelihood or score matching "
           "(Chand, Jacob 2025).")


@command("deepen", SUMMARY, group=train_app, inputs=("data",),
         files_out=("output", "checkpoint", "samples_png"),
         ranges={"steps": AT_LEAST_0, "batch": AT_LEAST_1, "lr": POSITIVE,
                 "energy_penalty": AT_LEAST_0, "central_slices": AT_LEAST_0, "eps": POSITIVE,
                 "chain_steps": AT_LEAST_1, "init_std": POSITIVE, "width": AT_LEAST_1,
                 "depth": AT_LEAST_1, "checkpoint_every": AT_LEAST_0, "png_every": AT_LEAST_0,
                 "sigma": AT_LEAST_0, "patch": Range(8), "patches": AT_LEAST_1},
         choices={"activation": ("relu", "softplus"), "objective": ("ml", "dsm")},
         models=("init",))
def train_deepen(
    data: Annotated[list[str], typer.Argument(
        metavar="DATA...", help="Fully sampled k-space: mrgen phantom .h5 files (kspace, maps "
        "and the complex truth image), fastMRI .h5 (kspace; maps by ESPIRiT, truth the coil "
        "combination), .npy or .cfl k-space (coils, H, W) or (slices, coils, H, W).",
        show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT.pt", help="The trained model: a self-describing PyTorch file "
        "(architecture, weights, normalisation, mask, data, command).", show_default=False)],
    mask: Annotated[str, typer.Option(
        "--mask", metavar="KIND:ACCEL[:CENTER]", help="Sampling masks of the training forward "
        "operator, one drawn per example and step (mrgen mask syntax; the paper: 2D 4x).",
        rich_help_panel="Training")] = "poisson:4",
    steps: Annotated[int, typer.Option(
        "--steps", help="Parameter updates in all. With --resume, the total to reach.",
        rich_help_panel="Training")] = 10000,
    batch: Annotated[int, typer.Option(
        "--batch", help="Slices per update (true and fake samples each); split over processes "
        "under torchrun.", rich_help_panel="Training")] = 4,
    lr: Annotated[float, typer.Option(
        "--lr", help="Adam learning rate (constant; the paper does not state one).",
        rich_help_panel="Training")] = 1e-4,
    objective: Annotated[str, typer.Option(
        "--objective", metavar="ml|dsm", help="ml: the paper's maximum likelihood with Langevin "
        "fake samples; dsm: denoising score matching at --sigma on image patches (no chains; "
        "a warm start for ml through --init).", rich_help_panel="Training")] = "ml",
    sigma: Annotated[float, typer.Option(
        "--sigma", help="dsm: the noise level, normalised scale (0: eps / sqrt(2), the noise "
        "of the data term at the sampler's temperature).", rich_help_panel="Training")] = 0.0,
    patch: Annotated[int, typer.Option(
        "--patch", help="dsm: patch size.", rich_help_panel="Training")] = 64,
    patches: Annotated[int, typer.Option(
        "--patches", help="dsm: patches per update, cut from the --batch slices.",
        rich_help_panel="Training")] = 16,
    init: Annotated[str | None, typer.Option(
        "--init", metavar="FILE.pt|NAME", help="Start from the weights of this DEEPEN model "
        "(same architecture), e.g. a dsm run, instead of random ones.",
        rich_help_panel="Training", show_default=False)] = None,
    energy_penalty: Annotated[float, typer.Option(
        "--energy-penalty", help="Add alpha * mean(E^2) to the loss (a stabiliser, not the "
        "paper's; 0 = the paper).", rich_help_panel="Training")] = 0.0,
    central_slices: Annotated[int, typer.Option(
        "--central-slices", metavar="N", help="From each multi-slice file the N middle slices "
        "(0: all).", rich_help_panel="Data")] = 0,
    eps: Annotated[float, typer.Option(
        "--eps", help="Langevin noise eps of Eq. 16; the training images get N(0, (2 eps^2)^2) "
        "noise. Stored in the model: the default of mrgen deepen --mode sample.",
        rich_help_panel="Sampler")] = 0.02,
    chain_steps: Annotated[int, typer.Option(
        "--chain-steps", help="Langevin steps per fake sample (the paper: 100).",
        rich_help_panel="Sampler")] = 100,
    init_std: Annotated[float, typer.Option(
        "--init-std", help="Std of the Gaussian noise the chains start from (per real "
        "component, normalised scale).", rich_help_panel="Sampler")] = 1.0,
    width: Annotated[int, typer.Option(
        "--width", help="Channels of each convolution (the paper: 64).",
        rich_help_panel="Architecture")] = 64,
    depth: Annotated[int, typer.Option(
        "--depth", help="3x3 convolutions (the paper: 5).",
        rich_help_panel="Architecture")] = 5,
    activation: Annotated[str, typer.Option(
        "--activation", metavar="relu|softplus", help="Non-linearity (the paper: relu).",
        rich_help_panel="Architecture")] = "relu",
    nan_guard: Annotated[bool, typer.Option(
        "--nan-guard/--no-nan-guard", help="Undo an update whose loss or weights are not "
        "finite and go on.", rich_help_panel="Training")] = False,
    checkpoint: CheckpointOption = None,
    checkpoint_every: CheckpointEveryOption = 50,
    resume: ResumeOption = False,
    samples_png: SamplesPngOption = None,
    png_every: PngEveryOption = 50,
):
    """Train DEEPEN's energy E_theta end to end for a forward operator (Chand, Jacob 2025): the
    posterior p(x | b) ~ exp(-1/2 ||A x - b||^2 - E(x)) is fitted to the training images by
    maximum likelihood (Eq. 8-13).

    Each update: a batch of slices, a mask per slice drawn from --mask, b = the masked k-space
    and A = M F S with the file's maps (else ESPIRiT of the full k-space); image and k-space
    divided by the maximum of the SENSE image of b. True samples x+ are the ground truth (the
    file's complex image, else the coil combination) plus N(0, (2 eps^2)^2) noise; fake samples
    x- come from --chain-steps Langevin steps of the scaled posterior (Eq. 16) x <- x -
    (A^H(Ax - b) + grad E(x)) + eps z started from Gaussian noise; the loss is E(x+) - E(x-)
    (no back-propagation through the chain) and Adam takes one step.

    --objective dsm fits the same energy by denoising score matching instead (Vincent 2011):
    on --patches random patches of the normalised truth images, y = x + sigma n, the loss
    ||(sigma^2 / s^2) grad E(y) - sigma n||^2 / sigma^2 with s^2 = eps^2 / 2 (the data term's
    noise at the sampler's temperature), so that E = s^2 (-log p_sigma) in the posterior's
    own units. No Langevin chains: it trains on a CPU budget, and ml can start from it
    (--init).

    The network: --depth 3x3 convolutions of --width channels with ReLU, a per-pixel linear
    layer, absolute values summed over the image (E >= 0). Progress: the loss (the energy gap,
    negative when the data have lower energy than the fake samples), both energies, the
    learning rate.

    Checkpoints, --resume (bit-identical on CPU) and torchrun DDP work as for mrgen train
    prior. OUT.pt records the architecture, weights, normalisation, mask, eps, data and
    command; mrgen deepen rebuilds the model from it alone.
    """
    from mrgen.apps.train_deepen import train_deepen_app
    from mrgen.deepen.model import DeepenConfig
    from mrgen.deepen.training import DeepenTrainConfig

    from .cli import device
    from .options import training_run

    run = training_run(data, output, checkpoint, steps, checkpoint_every, resume, nan_guard,
                       samples_png, png_every)
    architecture = DeepenConfig(width=width, depth=depth, activation=activation)
    config = DeepenTrainConfig(mask=mask, batch=batch, lr=lr, eps=eps, chain_steps=chain_steps,
                               init_std=init_std, energy_penalty=energy_penalty,
                               objective=objective, sigma=sigma, patch=patch, patches=patches,
                               init=init)
    train_deepen_app(data, architecture, config, central_slices, run, device())
