"""mrgen deepen: MAP reconstruction and posterior sampling with a DEEPEN energy (Chand, Jacob 2025)."""

from typing import Annotated, Optional

import typer

from .cli import command, device, info, progress_bar, save, settings
from .options import AT_LEAST_0, AT_LEAST_1, POSITIVE, PRECISIONS, PrecisionOption, SliceOption

SUMMARY = "DEEPEN: MAP by majorise-minimise or Langevin posterior samples (Chand, Jacob 2025)."


@command("deepen", SUMMARY, inputs=("kspace", "mask", "maps"), models=("model",),
         outputs=("output", "var", "samples_out"),
         ranges={"iters": AT_LEAST_1, "tol": AT_LEAST_0, "lipschitz": POSITIVE,
                 "cg_iters": AT_LEAST_1, "cg_tol": AT_LEAST_0, "samples": AT_LEAST_1,
                 "steps": AT_LEAST_1, "eps": POSITIVE, "init_std": POSITIVE,
                 "chunk": AT_LEAST_1, "keep": AT_LEAST_1, "step": POSITIVE},
         choices={"mode": ("map", "sample"), "start": ("noise", "sense"),
                  "precision": PRECISIONS},
         precheck=lambda args: _precheck(args))
def deepen(
    kspace: Annotated[str, typer.Argument(
        metavar="KSPACE", help="Undersampled k-space (coils, H, W) or (slices, coils, H, W).",
        show_default=False)],
    output: Annotated[str, typer.Argument(
        metavar="OUT", help="The image: the MAP estimate (--mode map) or the MMSE estimate, "
        "the mean of the samples (--mode sample); complex unless --magnitude.",
        show_default=False)],
    model: Annotated[str, typer.Option(
        "--model", metavar="FILE.pt|NAME", help="A model of mrgen train deepen (or its "
        "training checkpoint).", show_default=False)] = ...,
    mode: Annotated[str, typer.Option(
        "--mode", metavar="map|sample", help="map: majorise-minimise (Eq. 14-15); sample: "
        "Langevin posterior samples (Eq. 16).")] = "map",
    maps: Annotated[Optional[str], typer.Option(
        "--maps", metavar="FILE", help="Coil maps (e.g. mrgen espirit output); default: "
        "ESPIRiT of the data's calibration region, as the paper.", show_default=False)] = None,
    mask: Annotated[Optional[str], typer.Option(
        "--mask", metavar="FILE", help="Sampling mask; default: the non-zero pattern of the "
        "data. It may differ from the training mask.", show_default=False)] = None,
    iters: Annotated[int, typer.Option(
        "--iters", help="Most MM iterations (the paper: 500).", rich_help_panel="MAP")] = 500,
    tol: Annotated[float, typer.Option(
        "--tol", help="Stop when the relative change of the cost is at most TOL (the paper: "
        "1e-6).", rich_help_panel="MAP")] = 1e-6,
    lipschitz: Annotated[Optional[float], typer.Option(
        "--lipschitz", metavar="L", help="Starting L of the surrogate (default: a secant "
        "estimate at the SENSE image); doubled whenever the majorisation fails.",
        show_default=False, rich_help_panel="MAP")] = None,
    cg_iters: Annotated[int, typer.Option(
        "--cg-iters", help="CG iterations per MM step.", rich_help_panel="MAP")] = 10,
    cg_tol: Annotated[float, typer.Option(
        "--cg-tol", help="Relative residual at which CG stops.", rich_help_panel="MAP")] = 1e-3,
    samples: Annotated[int, typer.Option(
        "--samples", help="Independent chains, one sample each (the paper: 100).",
        rich_help_panel="Sampling")] = 100,
    steps: Annotated[int, typer.Option(
        "--steps", help="Langevin steps per chain (the paper: 100).",
        rich_help_panel="Sampling")] = 100,
    eps: Annotated[Optional[float], typer.Option(
        "--eps", help="Langevin noise of Eq. 16 (default: the model's training value).",
        show_default=False, rich_help_panel="Sampling")] = None,
    init_std: Annotated[Optional[float], typer.Option(
        "--init-std", help="Std of the chains' Gaussian start (default: the model's).",
        show_default=False, rich_help_panel="Sampling")] = None,
    chunk: Annotated[int, typer.Option(
        "--chunk", help="Chains run together (memory vs speed).",
        rich_help_panel="Sampling")] = 25,
    keep: Annotated[int, typer.Option(
        "--keep", help="Last states kept per chain (the paper: 1, its final state); from 4 "
        "on the run ends with the effective sample size and split R-hat over the chains.",
        rich_help_panel="Sampling")] = 1,
    precondition: Annotated[bool, typer.Option(
        "--precondition/--no-precondition", help="k-space preconditioned chains (not the "
        "paper's): x <- x - step P grad C + eps sqrt(step) P^(1/2) z, P = F^H D F with D(k) "
        "the inverse of the posterior's curvature at frequency k (1 where k-space was "
        "sampled, plus the energy's, probed at the SENSE image), at the same temperature "
        "eps^2/2: every direction moves at the rate --step per step, where Eq. 16's step 1 "
        "overshoots the sampled ones and barely moves the soft unsampled ones.",
        rich_help_panel="Sampling")] = False,
    start: Annotated[str, typer.Option(
        "--start", metavar="noise|sense", help="The chains' start: Gaussian noise (the "
        "paper; --init-std) or the SENSE image (where the posterior is: from noise this "
        "piecewise-linear energy pulls a chain back only linearly, and 100 steps are not "
        "enough on a 256 x 256 scan).", rich_help_panel="Sampling")] = "noise",
    step: Annotated[Optional[float], typer.Option(
        "--step", help="Langevin step (default: 1, Eq. 16; 0.2 with --precondition); the "
        "noise is eps sqrt(step), the same temperature.", show_default=False,
        rich_help_panel="Sampling")] = None,
    precision: PrecisionOption = "auto",
    var: Annotated[Optional[str], typer.Option(
        "--var", metavar="FILE", help="Write the pixel-wise posterior variance E|x - mean|^2 "
        "(--mode sample).", show_default=False, rich_help_panel="Sampling")] = None,
    samples_out: Annotated[Optional[str], typer.Option(
        "--samples-out", metavar="FILE.npy", help="Stream every sample to this .npy "
        "(samples, [slices,] H, W) (--mode sample).", show_default=False,
        rich_help_panel="Sampling")] = None,
    magnitude: Annotated[bool, typer.Option(
        "--magnitude", help="Write magnitudes instead of complex images.")] = False,
    slice_: SliceOption = None,
):
    """Reconstruct with a DEEPEN energy E_theta trained by mrgen train deepen (Chand, Jacob 2025):
    the posterior is p(x | b) ~ exp(-C(x)), C(x) = 1/2 ||A x - b||^2 + E(x), with A = M F S.

    --mode map minimises C by majorise-minimise (Eq. 14-15): each step solves (A^H A + L I) x =
    A^H b + L x_n - grad E(x_n) by CG, from the SENSE image, until the relative change of C is
    below --tol or --iters steps. L starts from a secant estimate of the Lipschitz constant of
    grad E and is doubled whenever the surrogate fails to majorise C at the new point, so the
    cost never increases.

    --mode sample runs --samples independent Langevin chains of Eq. 16, x <- x - (A^H(Ax - b)
    + grad E(x)) + eps z, --steps steps each from Gaussian noise, --chunk of them as one
    batch; each keeps its last --keep states; OUT is their mean (MMSE), --var their variance
    (pooled over chains and kept states), --samples-out every kept state.

    Data are scaled by the maximum of the SENSE image before the network sees them (as in
    training) and the outputs scaled back. The mask may differ from the training mask.
    --seed makes the sampling (and the L estimate) reproducible.
    """
    from mrgen import io
    from mrgen.acquisition import read_acquisition
    from mrgen.apps import deepen
    from mrgen.device import generator
    from mrgen.io.stream import SampleStream

    inputs = [kspace, mask, maps]
    dev = device()
    model_ = deepen.load_deepen_model(model, dev)
    acq = read_acquisition(kspace, mask, maps, io.parse_slices(slice_)).to(dev)
    acq = deepen.with_deepen_maps(acq, info)
    gen = generator(settings.seed, dev)
    finish_one = (lambda t: t.abs() if magnitude else t)
    finish = (lambda t: acq.squeeze(finish_one(t)))
    if mode == "map":
        with progress_bar(iters * acq.slice_count, "deepen map") as bar:
            image = deepen.deepen_map_app(acq, model_, deepen.MapSettings(
                iters, tol, lipschitz, cg_iters, cg_tol), gen, bar.update, info)
        save(output, finish(image), io.roles.IMAGE, inputs=inputs)
        return
    options = deepen.SampleSettings(samples, steps, eps, init_std, chunk, keep, precondition,
                                    step, start, precision)
    stream = SampleStream(samples_out, samples * min(keep, steps),
                          acq.slice_count if acq.has_slices else None)
    write = (lambda i, s, x: stream.write(i, finish_one(x), s)) if samples_out else None
    with progress_bar(samples * steps * acq.slice_count, "deepen sample") as bar, stream:
        result = deepen.deepen_sample_app(acq, model_, options, gen, write, bar.update, info)
    save(output, finish(result.mean), io.roles.IMAGE, inputs=inputs)
    if var:
        save(var, acq.squeeze(result.variance), io.roles.IMAGE, inputs=inputs)


def _precheck(args):
    """Options of the other mode, and outputs that would replace the model."""
    from pathlib import Path

    from mrgen.errors import UsageError

    if args["mode"] == "map" and (args["var"] or args["samples_out"]):
        raise UsageError("--var and --samples-out need --mode sample")
    if args["mode"] == "map" and args["precision"] == "bfloat16":
        raise UsageError(f"--precision {args['precision']}: only --mode sample's chains use "
                         "it (the MAP's majorisation test needs float32 energies)")
    model = Path(args["model"])
    for target in (args["output"], args["var"], args["samples_out"]):
        if target and Path(target).exists() and model.exists() and \
                Path(target).resolve() == model.resolve():
            raise UsageError(f"{target}: the output would overwrite the model {args['model']}")
