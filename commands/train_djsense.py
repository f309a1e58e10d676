"""mrgen train djsense: supervised end-to-end training of Deep J-Sense or MoDL (Arvinte et al. 2021)."""

from typing import Annotated

import typer

from .cli import command
from .options import (AT_LEAST_0, AT_LEAST_1, POSITIVE, CheckpointEveryOption, CheckpointOption,
                      ResumeOption)
from .train import train_app

SUMMARY = "Train Deep J-Sense (or MoDL) end to end on fully sampled multi-coil k-space."


@command("djsense", SUMMARY, group=train_app, inputs=("data",),
         files_out=("output", "checkpoint"),
         ranges={"unrolls": AT_LEAST_1, "map_cg": AT_LEAST_1, "image_cg": AT_LEAST_1,
                 "map_kernel": AT_LEAST_1, "width": AT_LEAST_1, "blocks": AT_LEAST_1,
                 "lam": AT_LEAST_0, "steps": AT_LEAST_0, "batch": AT_LEAST_1, "lr": POSITIVE,
                 "decay_every": AT_LEAST_0, "gamma": POSITIVE, "clip": AT_LEAST_0,
                 "curriculum": AT_LEAST_0, "central_slices": AT_LEAST_0,
                 "checkpoint_every": AT_LEAST_0},
         choices={"mode": ("djsense", "modl")})
def train_djsense(
    data: Annotated[list[str], typer.Argument(
        metavar="DATA...", help="Fully sampled multi-coil k-space: fastMRI or mrgen phantom "
        ".h5 volumes (kspace + reconstruction_rss; without a reference dataset the RSS of the "
        "k-space is the target).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT.pt", help="The trained model: a self-describing PyTorch file.",
        show_default=False)],
    mode: Annotated[str, typer.Option(
        "--mode", help="djsense (maps and image, Eq. 5a-5d) or modl (n1 = 0, ESPIRiT maps "
        "fixed).", rich_help_panel="Architecture")] = "djsense",
    unrolls: Annotated[int, typer.Option(
        "--unrolls", metavar="N", help="Outer unrolls.", rich_help_panel="Architecture")] = 6,
    map_cg: Annotated[int, typer.Option(
        "--map-cg", metavar="N1", help="CG steps on the map sub-problem (5a).",
        rich_help_panel="Architecture")] = 6,
    image_cg: Annotated[int, typer.Option(
        "--image-cg", metavar="N2", help="CG steps on the image sub-problem (5c).",
        rich_help_panel="Architecture")] = 6,
    map_kernel: Annotated[tuple[int, int], typer.Option(
        "--map-kernel", metavar="KH KW", help="Map kernel size in k-space (odd).",
        rich_help_panel="Architecture")] = (15, 9),
    width: Annotated[int, typer.Option(
        "--width", help="Channels of the ResNet denoisers.",
        rich_help_panel="Architecture")] = 64,
    blocks: Annotated[int, typer.Option(
        "--blocks", help="Residual blocks per denoiser.", rich_help_panel="Architecture")] = 4,
    lam: Annotated[float, typer.Option(
        "--lam", help="Initial lambda_s and lambda_m (learnable).",
        rich_help_panel="Architecture")] = 0.01,
    mask: Annotated[str, typer.Option(
        "--mask", metavar="SPEC", help="Mask specification (as mrgen mask), a fresh mask drawn "
        "per example and step.", rich_help_panel="Training")] = "random-exact:4:0.08",
    steps: Annotated[int, typer.Option(
        "--steps", help="Parameter updates in all (with --resume: the total to reach).",
        rich_help_panel="Training")] = 1000,
    batch: Annotated[int, typer.Option(
        "--batch", help="Slices per update per process (the paper: 1).",
        rich_help_panel="Training")] = 1,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.",
                                      rich_help_panel="Training")] = 2e-4,
    decay_every: Annotated[int, typer.Option(
        "--decay-every", metavar="STEPS", help="Multiply the learning rate by --gamma every "
        "STEPS updates (the paper: 10 epochs; 0: never).", rich_help_panel="Training")] = 0,
    gamma: Annotated[float, typer.Option("--gamma", help="Learning-rate decay factor.",
                                         rich_help_panel="Training")] = 0.5,
    clip: Annotated[float, typer.Option(
        "--clip", help="Clip every gradient entry to [-CLIP, CLIP] (0: no clipping).",
        rich_help_panel="Training")] = 0.1,
    curriculum: Annotated[int, typer.Option(
        "--curriculum", metavar="STEPS", help="Unroll curriculum: 1 unroll at first, all N "
        "after STEPS updates (0: N from the start).", rich_help_panel="Training")] = 0,
    nan_guard: Annotated[bool, typer.Option(
        "--nan-guard/--no-nan-guard", help="Undo an update whose loss or weights are not "
        "finite and go on.", rich_help_panel="Training")] = True,
    central_slices: Annotated[int, typer.Option(
        "--central-slices", metavar="N", help="From each volume the N middle slices (0: all; "
        "the paper: 5).", rich_help_panel="Data")] = 5,
    checkpoint: CheckpointOption = None,
    checkpoint_every: CheckpointEveryOption = 50,
    resume: ResumeOption = False,
):
    """Train Deep J-Sense (Arvinte et al. 2021) end to end: N unrolls of CG on the map kernels (n1
    steps), the map denoiser, CG on the image (n2 steps), the image denoiser (Eq. 5a-5d), with
    learnable lambda_s, lambda_m; loss -SSIM of the RSS estimate (Eq. 7) on the reference's
    central crop, data range = the reference's max. --mode modl trains MoDL with fixed ESPIRiT
    maps instead.

    Each update draws a fresh mask per slice from --mask (an `mrgen mask` specification), so
    a model can be trained at one acceleration and ACS size and tested at others. k-space is
    divided by max |ACS| (the authors' normalisation). Adam at --lr, gradients clipped by
    value, learning rate x --gamma every --decay-every updates, unroll curriculum 1 -> N over
    --curriculum updates, NaN guard. Defaults follow the paper (N = n1 = n2 = 6, 15x9 map
    kernels, 4 residual blocks of 64 channels).

    Checkpoints (--checkpoint, default OUT.ckpt) every --checkpoint-every updates; --resume
    continues exactly (bit-identically on CPU). Under torchrun the processes train
    DistributedDataParallel, each on its own slices.
    """
    from mrgen.apps.train_djsense import train_djsense_app
    from mrgen.djsense.model import DJSenseConfig
    from mrgen.djsense.training import TrainConfig

    from .cli import device
    from .options import training_run

    run = training_run(data, output, checkpoint, steps, checkpoint_every, resume, nan_guard)
    architecture = DJSenseConfig(mode=mode, unrolls=unrolls, map_cg=map_cg, image_cg=image_cg,
                                 map_kernel=tuple(map_kernel), width=width, blocks=blocks,
                                 lam_map=lam, lam_image=lam)
    config = TrainConfig(mask=mask, batch=batch, lr=lr, decay_every=decay_every, gamma=gamma,
                         clip=clip, curriculum=curriculum)
    train_djsense_app(data, architecture, config, central_slices, run, device())
