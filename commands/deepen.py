"""mrgen deepen: MAP reconstruction and posterior sampling with a DEEPEN energy (Chand, Jacob 2025)."""

from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from .cli import check_output, command, device, info, load, save, settings, show_progress
from .options import AT_LEAST_0, AT_LEAST_1, POSITIVE, SliceOption

SUMMARY = "DEEPEN: MAP by majorise-minimise or Langevin posterior samples (Chand, Jacob 2025)."


@command("deepen", SUMMARY, inputs=("kspace", "mask", "maps"), models=("model",),
         outputs=("output", "var", "samples_out"),
         ranges={"iters": AT_LEAST_1, "tol": AT_LEAST_0, "lipschitz": POSITIVE,
                 "cg_iters": AT_LEAST_1, "cg_tol": AT_LEAST_0, "samples": AT_LEAST_1,
                 "steps": AT_LEAST_1, "eps": POSITIVE, "init_std": POSITIVE,
                 "chunk": AT_LEAST_1},
         choices={"mode": ("map", "sample")})
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
    + grad E(x)) + eps z, --steps steps each from Gaussian noise; OUT is their mean (MMSE),
    --var their variance, --samples-out every sample.

    Data are scaled by the maximum of the SENSE image before the network sees them (as in
    training) and the outputs scaled back. The mask may differ from the training mask.
    --seed makes the sampling (and the L estimate) reproducible.
    """
    import sys

    import numpy as np
    from tqdm import tqdm

    from mrgen import io
    from mrgen.deepen.recon import deepen_map, deepen_sample
    from mrgen.deepen.training import sampler_eps
    from mrgen.device import generator as make_generator
    from mrgen.errors import UsageError

    if mode not in ("map", "sample"):
        raise UsageError(f"--mode {mode}: expected map or sample")
    for name, value, low in (("--iters", iters, 1), ("--cg-iters", cg_iters, 1),
                             ("--samples", samples, 1), ("--steps", steps, 1),
                             ("--chunk", chunk, 1)):
        if value < low:
            raise UsageError(f"{name} {value}: must be at least {low}")
    if tol < 0 or cg_tol < 0:
        raise UsageError("--tol and --cg-tol must be at least 0")
    if lipschitz is not None and not lipschitz > 0:
        raise UsageError(f"--lipschitz {lipschitz}: must be positive")
    if eps is not None and not eps > 0:
        raise UsageError(f"--eps {eps}: must be positive")
    if mode == "map" and (var or samples_out):
        raise UsageError("--var and --samples-out need --mode sample")
    from pathlib import Path

    inputs = [kspace, mask, maps]
    check_output(output, inputs)
    for extra in (var, samples_out):
        if extra:
            check_output(extra, inputs + [output])
    for target in (output, var, samples_out):
        if target and Path(str(target)).exists() and Path(model).exists() and \
                Path(str(target)).resolve() == Path(model).resolve():
            raise UsageError(f"{target}: the output would overwrite the model {model}")
    dev = device()
    problem = load_deepen_problem("deepen", model, kspace, mask, maps, slice_, dev)
    energy, metadata, batched = problem.energy, problem.metadata, problem.kspace
    mask_t, maps_t, single = problem.mask, problem.maps, problem.single
    gen = make_generator(settings.seed, dev)
    squeeze = problem.squeeze
    finish = (lambda t: t.abs()) if magnitude else (lambda t: t)

    if mode == "map":
        bar = tqdm(total=iters * batched.shape[0], desc="deepen map", file=sys.stderr,
                   disable=not show_progress())
        with bar:
            result = deepen_map(energy, batched, maps_t, mask_t, iters=iters, tol=tol,
                                lipschitz=lipschitz, cg_iters=cg_iters, cg_tol=cg_tol,
                                generator=gen, progress=bar.update)
        for s, (costs, n, L) in enumerate(zip(result.costs, result.iterations,
                                              result.lipschitz)):
            info(f"deepen map: slice {s}: {n} MM iterations, cost {costs[0]:.6g} -> "
                 f"{costs[-1]:.6g}, L {L:.4g}, {result.backtracks[s]} backtracks")
        save(output, finish(squeeze(result.image)), io.roles.IMAGE, inputs=inputs)
        return

    eps = sampler_eps(metadata) if eps is None else eps
    init_std = problem.init_std if init_std is None else init_std
    info(f"deepen sample: {problem.description}, {samples} chains x {steps} steps, eps {eps:.3g}, "
         f"start N(0, {init_std:.3g}^2), {dev}")
    writer = None
    if samples_out:
        from mrgen.io.stream import NpyStackWriter

        shape = tuple(batched.shape[-2:]) if single else \
            (batched.shape[0], *batched.shape[-2:])
        writer = NpyStackWriter(samples_out, samples, shape,
                                dtype=np.float32 if magnitude else np.complex64)

    def on_sample(i, s, x):
        value = finish(x).detach().cpu().numpy()
        if single:
            writer.write(i, value)
        else:
            writer.array[i, s] = value

    bar = tqdm(total=samples * steps * batched.shape[0], desc="deepen sample", file=sys.stderr,
               disable=not show_progress())
    try:
        with bar:
            result = deepen_sample(energy, batched, maps_t, mask_t, eps, samples, steps,
                                   init_std, chunk, gen,
                                   on_sample if writer is not None else None, bar.update)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    save(output, finish(squeeze(result.mean)), io.roles.IMAGE, inputs=inputs)
    if var:
        save(var, squeeze(result.variance), io.roles.IMAGE, inputs=inputs)


@dataclass
class DeepenProblem:
    """A DEEPEN model and its inputs on the device: k-space (S, C, H, W), mask (S, H, W),
    maps (S, C, H, W); ``single``: the file held one slice (no slice axis)."""

    energy: object
    metadata: dict
    kspace: object
    mask: object
    maps: object
    single: bool
    slices: object

    @property
    def description(self) -> str:
        arch = self.metadata["architecture"]
        return f"DEEPEN energy (width {arch.get('width')}, depth {arch.get('depth')})"

    @property
    def init_std(self) -> float:
        """The std of the Gaussian start of the chains the model was trained with."""
        hyper = (self.metadata.get("training") or {}).get("hyperparameters") or {}
        return float(hyper.get("init_std", 1.0))

    def squeeze(self, t):
        """Drop the slice axis again when the file held one slice."""
        return t[0] if self.single else t


def load_deepen_problem(who, model, kspace, mask, maps, slice_, dev) -> DeepenProblem:
    """The model and the inputs that mrgen deepen and mrgen langevin --model deepen.pt share:
    the mask (default: the data's non-zero pattern) and the maps (default: ESPIRiT of the
    calibration region, as the paper)."""
    import torch

    from mrgen import io, shapes
    from mrgen.deepen.training import espirit_full, load_deepen

    energy, metadata = load_deepen(model, dev)
    slices = io.parse_slices(slice_)
    data = load(kspace, io.roles.KSPACE, slices)
    batched = torch.from_numpy(data[None] if data.ndim == 3 else data).to(dev)
    if mask is None:
        mask_t = (batched.abs() > 0).any(dim=1).float()
    else:
        fitted = torch.from_numpy(shapes.fit_mask(load(mask, io.roles.MASK), data.shape, mask))
        mask_t = (fitted if fitted.dim() == 3 else fitted[None]).to(dev)
        mask_t = mask_t.expand(batched.shape[0], *mask_t.shape[-2:]).float()
    if maps is not None:
        fitted = shapes.fit_maps(load(maps, io.roles.MAPS, slices), data.shape, maps)
        maps_t = torch.from_numpy(fitted if fitted.ndim == 4 else fitted[None]).to(dev)
    else:
        info(f"{who}: ESPIRiT maps from the calibration region")
        maps_t = espirit_full(batched * mask_t.unsqueeze(1))
    return DeepenProblem(energy, metadata, batched, mask_t, maps_t, data.ndim == 3, slices)
