"""mrgen ipalm: joint image and coil-map reconstruction with a generative or TV prior."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save
from .options import (AT_LEAST_1, POSITIVE, GridOption, Range, SliceOption, SupportOption,
                      TrajOption, read_held_acquisition, support_file)

SUMMARY = "Joint image + coil-map reconstruction by iPALM with a learned or TV prior (Zach, Knoll, Pock 2023, preprint)."


@command("ipalm", SUMMARY, inputs=("kspace", "mask", "maps", "traj", "support||auto|off"),
         models=("model",), outputs=("output", "maps_out"), not_images=("maps_out",),
         files_out=("energy_log",),
         ranges={"lam": Range(0, low_open=True, words=("", "auto", "noise")), "mu": POSITIVE,
                 "iters": AT_LEAST_1, "tv_eps": POSITIVE, "max_backtracks": AT_LEAST_1,
                 "grid": AT_LEAST_1, "anneal_iters": Range(0),
                 "anneal": Range(0, words=("", "off", "none"))},
         choices={"reg": ("", "learned", "tv")}, precheck=lambda args: _exclusive(args))
def ipalm(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled multi-coil k-space (coils, H, W) or (slices, "
        "coils, H, W); with --single-coil also (H, W).", show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="The image (H, W) or (slices, H, W), float32, real and "
        "non-negative, in the scale of the data.", show_default=False)],
    model: Annotated[Optional[str], typer.Option(
        "--model", metavar="FILE.pt|NAME", help="Learned energy prior from `mrgen train prior`"
        " or a shipped one (prior-brain-small). Without it the prior is TV (--reg tv).",
        show_default=False)] = None,
    reg: Annotated[str, typer.Option(
        "--reg", metavar="learned|tv", help="Regulariser; learned needs --model. Default: "
        "learned with --model, else tv.", show_default=False)] = "",
    lam: Annotated[str, typer.Option(
        "--lam", metavar="VALUE|auto|noise", help="Weight of the data term (the authors' code "
        "convention: H = lam/2 ||data residual||^2 + R(u)). auto: the linear fit on the initial "
        "residual stored in the model (Zach, Knoll, Pock 2023, preprint, Section 2.6). noise: "
        "from each slice's noise std s (estimated from the k-space edge and the calibration "
        "centre) over its data scale: a whole-image learned prior c / s^2 (the posterior's weight, c "
        "= 2 or its calibrated value) in [0.1, 100] / sigma^2; TV 0.4 / s^1.5 in [1, 1000] "
        "(1000 for noise-free data). Default: noise, except for a learned prior with joint maps "
        "on multi-coil Cartesian data: noise or noise x 0.3, whichever predicts 15% of the "
        "sampled lines held out best (two more runs; --seed draws them); on single-coil data "
        "(TV and learned priors) noise x 1, 10 or 100, so judged on 15% of the samples "
        "(three more runs; a learned prior's each from ipalm-TV's image of the rest: the "
        "noise rule takes an image's own texture at the k-space edge for noise). Without a "
        "noise "
        "estimate (non-Cartesian data): the fit, else the prior's default.",
        show_default=False)] = "",
    mu: Annotated[Optional[float], typer.Option(
        "--mu", help="Weight of the map smoothness (Eq. 12). Default: 30 x each slice's "
        "lambda (18 x for a crop-head learned prior, the authors' ratio): the maps' step sees "
        "mu / lambda alone, so the maps stay equally smooth whatever lambda the noise gives.",
        show_default=False)] = None,
    iters: Annotated[Optional[int], typer.Option(
        "--iters", help="iPALM iterations. Default: 100; 1000 for TV with --single-coil (the "
        "unmeasured k-space converges slowly without other coils).",
        show_default=False)] = None,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask (1 = sampled); default: the non-zero "
        "pattern of the data.", show_default=False)] = None,
    maps: Annotated[Optional[str], typer.Option(
        "--maps", metavar="FILE", help="Fixed coil maps (coils, H, W), e.g. from `mrgen "
        "espirit`: only the image is estimated.", show_default=False)] = None,
    single_coil: Annotated[bool, typer.Option(
        "--single-coil", help="One coil with sensitivity 1 (the real-valued simulation study of "
        "Zach, Knoll, Pock 2023, preprint, Section 2.5).")] = False,
    maps_out: Annotated[Optional[str], typer.Option(
        "--maps-out", metavar="FILE", help="Write the estimated maps (coils, H, W), normalised "
        "to unit root-sum-of-squares.", show_default=False)] = None,
    energy_log: Annotated[Optional[str], typer.Option(
        "--energy-log", metavar="FILE", help="Write the energy after each iteration, (iters,) or"
        " (iters, slices): .txt for text, else an array file.", show_default=False)] = None,
    tv_eps: Annotated[float, typer.Option(
        "--tv-eps", help="Charbonnier smoothing of TV (Zach, Knoll, Pock 2023, Eq. 18).")] = 1e-3,
    equalise: Annotated[bool, typer.Option(
        "--equalise", help="Map intensities through the model's fitted spline equaliser "
        "(Zach, Knoll, Pock 2023, 2.6; fitted by `mrgen train calibrate`).")] = False,
    max_backtracks: Annotated[int, typer.Option(
        "--max-backtracks", help="Backtracking tries per block and iteration (the authors' "
        "code: 10; the paper: until the test passes).")] = 40,
    strict: Annotated[bool, typer.Option(
        "--strict-backtracking", help="The paper's exact sufficient-decrease test instead of "
        "the code's 1.01 slack.")] = False,
    anneal: Annotated[str, typer.Option(
        "--anneal", metavar="SIGMA|off", help="Coarse to fine for a score-matching prior "
        "(a model trained with --objective dsm, e.g. prior-brain-small): its noise level "
        "falls geometrically from SIGMA to its own over --anneal-iters iterations, the data "
        "weight with it (lam as if the data's noise grew by that level), so smooth content "
        "the data miss is settled first. Default: with --single-coil from the highest level "
        "the model was trained at (3x random sampling without the k-space centre, validation "
        "slices: +2.4 dB), else off (8 coils, joint maps: the maps drift, -11 dB).",
        show_default=False)] = "",
    start: Annotated[str, typer.Option(
        "--start", metavar="zero-filled|tv", help="The initial image: zero-filled (Eq. 15) or "
        "tv (ipalm-TV's result at its defaults). Default: tv for a learned prior with "
        "--single-coil (it then does not anneal), else zero-filled.",
        show_default=False)] = "",
    anneal_iters: Annotated[Optional[int], typer.Option(
        "--anneal-iters", metavar="N", help="Iterations of --anneal. Default: 70% of --iters.",
        show_default=False)] = None,
    support: SupportOption = "",
    slice_: SliceOption = None,
    traj: TrajOption = None,
    grid: GridOption = None,
):
    """Reconstruct an image u >= 0 and coil maps jointly by iPALM (Zach, Knoll, Pock 2023,
    Algorithms 1 and 2): minimise lam/2 sum_c ||M F(u c / |c|) - z_c||^2 + R(u) + mu F(c),
    with F the Dirichlet smoothness of the maps (prox exact by the discrete sine transform),
    inertia k/(k+3) and Lipschitz backtracking for each block. R is a learned energy
    (--model) or Charbonnier TV (--reg tv). The data are scaled by the maximum of the
    zero-filled RSS image (within the prior's crop) and the result scaled back.

    Modes: joint (default); --maps FILE fixes the maps; --single-coil has one coil of
    sensitivity 1, and by default the image is held at zero off the object (--support: the
    object found in a first ipalm-TV run). Slices are reconstructed together as one batch.
    --traj (non-Cartesian samples; M F becomes the NUFFT) needs --maps: the joint maps' prox
    assumes a grid."""
    from mrgen import io
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app, total_iterations

    from .cli import settings as cli_settings

    inputs = [kspace, mask, maps, traj, *support_file(support)]
    acq, support = read_held_acquisition(kspace, mask, maps, io.parse_slices(slice_),
                                         single_coil, traj, grid, support,
                                         device(nufft=traj is not None))
    settings = IpalmSettings(PriorChoice(model, reg, tv_eps), lam, mu, iters, equalise,
                             max_backtracks, strict, anneal, anneal_iters, start,
                             support=support, seed=cli_settings.seed)
    iters = total_iterations(settings, acq)
    with progress_bar(iters, "ipalm") as bar:
        result = ipalm_app(acq, settings, _energy_progress(bar, iters), info)
    save(output, acq.squeeze(result.image), io.roles.IMAGE, inputs=inputs)
    if maps_out is not None:
        save(maps_out, acq.squeeze(result.maps), io.roles.MAPS, inputs=inputs)
    if energy_log is not None:
        _write_energy_log(energy_log, result.energies, acq.has_slices, inputs)


def _exclusive(args):
    from mrgen.errors import UsageError

    if args["maps"] is not None and args["single_coil"]:
        raise UsageError("--maps and --single-coil exclude each other")
    if args["traj"] is not None and args["maps"] is None:
        from mrgen.trajectory import NO_JOINT_MAPS

        raise UsageError(NO_JOINT_MAPS)
    if args["traj"] is not None and args["single_coil"]:
        raise UsageError("--traj and --single-coil exclude each other")


def _energy_progress(bar, iters):
    """The progress callback: the bar advances each iteration and shows the energy every 5."""
    def advance(k, u, c, energies):
        if k % 5 == 0 or k == iters - 1:
            bar.set_postfix(energy=f"{energies.sum().item():.4g}")
        bar.update(1)

    return advance


def _write_energy_log(path, energies, has_slices, inputs):
    import numpy as np

    from mrgen import io

    values = energies.cpu().numpy() if has_slices else energies[:, 0].cpu().numpy()
    if path.endswith(".txt"):
        np.savetxt(path, values, fmt="%.8g", header="energy per iteration (columns: slices)")
    else:
        save(path, values.astype(np.float32), io.roles.ANY, inputs=inputs)
