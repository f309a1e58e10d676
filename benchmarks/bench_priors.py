"""Learned priors against the classical baselines on the corpus's held-out test split (#13).

    python benchmarks/bench_priors.py [--sections single,multi,djsense,deepen]
        [--model prior-brain-small] [--djsense djsense-brain-small[,modl.pt]]
        [--deepen deepen-brain-small] [--slices 6] [--iters N] [--deepen-iters 100]

The test split of `mrgen dataset` (ITK's BrainWeb-derived slices: one subject that no model
trained or was calibrated on; 256 x 256) is built in a temporary folder with --seed 0, and
each method runs at its shipped default (lambda from each slice's noise: the prior's
calibrated c / s^2 at its fitted sigma, TV's 0.4 / s^1.5) beside the best of a small lambda
grid around that default (one lambda for all slices, the slices' median times 1/3, 1, 3: an
upper bound, chosen on the test slices themselves). PSNR/SSIM as fastMRI (data range =
reference maximum) against the noise-free magnitude image, the slices scored as one volume;
the defaults' PSNR of each slice is printed above each table. ipalm runs its default iterations
(100; TV on single-coil data 1000) unless --iters is given.

single   single coil, real-valued, 3x 2D uniform random sampling without a dense centre
         (Zach, Knoll, Pock 2023, Table 1's hardest setting; mrgen ipalm --single-coil):
         zero-filled, ipalm-TV, ipalm with the learned prior, and its Langevin MMSE, each
         holding the background at zero by default (the support from ipalm-TV's image,
         mrgen.support); ipalm-TV without it (--support off) beside them.
         Targets: learned >= TV + 3 dB and SSIM higher; the MMSE >= the MAP.
multi    8 coils of random geometry, noise at 30 dB SNR, 4x 1D Cartesian with 8% ACS, joint
         maps: ipalm-TV against ipalm with the learned prior. Target: learned >= TV + 1 dB.
         Then both with ESPIRiT's maps fixed (ipalm --maps), at their defaults.
djsense  8 coils, 4x 1D Cartesian with 20 and with 6 ACS lines: ESPIRiT + CG-SENSE against
         Deep J-Sense (and MoDL models given in --djsense). Targets: Deep J-Sense >= ESPIRiT +
         SENSE + 1 dB at both, and >= MoDL trained on the same budget.
deepen   8 coils, 2D 4x Poisson and 1D 2x, ESPIRiT maps: DEEPEN's MAP against its SENSE start.
         Targets: + 1.5 dB at 2D 4x, + 1 dB at 1D 2x.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from bench_ipalm import scores, table


def test_split(folder: Path, coils: int, size: int) -> dict:
    """The corpus test split (kspace, image, maps) built by the command, as arrays."""
    out = folder / f"test-{coils}"
    subprocess.run([sys.executable, "-m", "commands", "--quiet", "--seed", "0", "dataset",
                    str(out), "--split", "test", "--size", str(size), str(size), "--coils",
                    str(coils)], check=True)
    with h5py.File(out / "test.h5", "r") as f:
        return {name: torch.from_numpy(f[name][()]) for name in ("kspace", "image", "maps")}


def masks_for(spec: str, count: int, shape) -> torch.Tensor:
    from mrgen.masks import make_mask

    return torch.from_numpy(np.stack([make_mask(spec, shape, seed=100 + i)
                                      for i in range(count)]))


def reconstruct(acq, model, lam: str, iters: int, support: str = ""):
    """ipalm's reconstruction (image, description, the lambda it ran at)."""
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app

    settings = IpalmSettings(PriorChoice(model=model), lam=lam, iters=iters, support=support)
    result = ipalm_app(acq, settings)
    return result.image, result.description, torch.as_tensor(result.lam).flatten()


def default_and_grid(name, acq, model, truth, iters, factors=(1 / 3, 3), support=""):
    """Rows for the method at its default lambda and the best of default x factors (the
    default's lambda as it ran: the slices' median). ``support``: ipalm's --support
    ("off" where ``acq`` is already held to the one ipalm would estimate)."""
    image, description, lams = reconstruct(acq, model, "", iters, support)
    default = float(lams.median())
    shown = f"{float(lams.min()):.3g}" if lams.min() == lams.max() else \
        f"{float(lams.min()):.3g}..{float(lams.max()):.3g} per slice"
    if "held-out" in description:       # ipalm's default: chosen slice by slice
        shown += ", chosen on held-out k-space"
    rows = [(f"{name}, default (lam {shown})", *scores(truth, image))]
    best = (default, *scores(truth, image), image)
    for factor in factors:
        lam = default * factor
        candidate, _, _ = reconstruct(acq, model, f"{lam:.6g}", iters, support)
        values = scores(truth, candidate)
        if values[0] > best[1]:
            best = (lam, *values, candidate)
    grid = ", ".join(["1", *(f"{f:.3g}" if f >= 1 else f"1/{1 / f:.3g}" for f in factors)])
    rows.append((f"{name}, best of lam x {grid} (lam {best[0]:.3g})", best[1], best[2]))
    print(f"  {name}: {description}", file=sys.stderr, flush=True)
    print(f"  {name}, default, PSNR per slice: {per_slice(truth, image)}", flush=True)
    return rows, image, lams


def per_slice(truth, image) -> str:
    """Each slice's PSNR (dB), ' / '-separated: the tables' rows score the slices as one
    volume (fastMRI's PSNR), which the worst slice dominates."""
    return " / ".join(f"{scores(truth[i:i + 1], image[i:i + 1])[0]:.2f}"
                      for i in range(truth.shape[0]))


def section_single(data: dict, model: str, count: int, iters: int, mmse_steps: int):
    from mrgen.acquisition import Acquisition
    from mrgen.apps.langevin import ChainSettings, sample_posterior_app
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app, with_estimated_support
    from mrgen.fft import fft2c
    from mrgen.zerofill import zero_filled

    truth = data["image"][:count].abs()
    masks = masks_for("uniform:3:0", count, truth.shape[-2:])
    kspace = (fft2c(truth.to(torch.complex64)) * masks)[:, None]
    acq = Acquisition(kspace, masks, torch.ones_like(kspace), single_coil=True)
    rows = [("zero-filled", *scores(truth, zero_filled(kspace, masks)))]
    # the support ipalm estimates by default (TV runs within it until it holds still),
    # estimated once for every ipalm run below: the same runs, ~30 TV runs fewer
    held = with_estimated_support(acq, "", "ipalm")
    tv_rows, _, _ = default_and_grid("ipalm-TV", held, None, truth, iters, support="off")
    learned_rows, learned, lams = default_and_grid(f"ipalm, {model}", held, model, truth,
                                                   iters, support="off")
    rows += tv_rows + learned_rows
    # Both defaults hold the background at zero (the support estimated from ipalm-TV's
    # image, mrgen.support); TV without it is the paper's baseline (Zach, Knoll, Pock 2023
    # Table 1: TV 20.81 dB) and the default before: a row for it, to compare with earlier
    # tables.
    free = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), support="off")).image
    rows.append(("ipalm-TV, --support off (the default before)", *scores(truth, free)))
    start = time.perf_counter()
    burn_in = mmse_steps // 2
    settings = ChainSettings(burn_in=burn_in, samples=(mmse_steps - burn_in) // 5, thin=5,
                             chains=1)
    result = sample_posterior_app(acq, PriorChoice(model=model), settings, learned,
                                  torch.Generator().manual_seed(0), lam=lams)  # the MAP's
    rows.append((f"Langevin MMSE, {model} (from the MAP, {burn_in} burn-in + "
                 f"{settings.samples} x 5)", *scores(truth, result.mean)))
    table(f"Single coil, real-valued, 3x 2D uniform random, {count} test slices "
          f"{tuple(truth.shape[-2:])} (MMSE took {time.perf_counter() - start:.0f} s)", rows)


def section_multi(data: dict, model: str, count: int, iters: int):
    from mrgen.acquisition import Acquisition
    from mrgen.zerofill import zero_filled

    truth = data["image"][:count].abs()
    kspace = data["kspace"][:count]
    masks = masks_for("random-exact:4:0.08", count, truth.shape[-2:])
    acq = Acquisition(kspace * masks[:, None], masks, None)
    rows = [("zero-filled (RSS)", *scores(truth, zero_filled(acq.kspace, masks)))]
    tv_rows, _, _ = default_and_grid("ipalm-TV", acq, None, truth, iters)
    learned_rows, _, _ = default_and_grid(f"ipalm, {model}", acq, model, truth, iters)
    table(f"{kspace.shape[1]} coils, 30 dB SNR, 4x 1D Cartesian 8% ACS, joint maps, {count} "
          f"test slices {tuple(truth.shape[-2:])}", rows + tv_rows + learned_rows)
    table("The same, with ESPIRiT maps fixed (mrgen espirit, then ipalm --maps), defaults",
          espirit_rows(acq, model, truth, iters))


def espirit_rows(acq, model: str, truth, iters: int):
    """ipalm-TV and the learned prior at their defaults with ESPIRiT's maps held fixed."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.espirit import EspiritOptions, espirit_app

    maps = espirit_app(acq, EspiritOptions()).maps[:, 0]
    with_maps = Acquisition(acq.kspace, acq.mask, maps)
    rows = []
    for name, chosen in (("ipalm-TV", None), (f"ipalm, {model}", model)):
        image = reconstruct(with_maps, chosen, "", iters)[0]
        print(f"  {name}, ESPIRiT maps, PSNR per slice: {per_slice(truth, image)}", flush=True)
        rows.append((f"{name}, ESPIRiT maps", *scores(truth, image)))
    return rows


def espirit_sense(acq):
    """ESPIRiT maps from the ACS lines, then CG-SENSE at its defaults: RSS-like magnitude."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.espirit import EspiritOptions, espirit_app
    from mrgen.apps.sense import SenseOptions, sense_app

    maps = espirit_app(acq, EspiritOptions()).maps[:, 0]
    with_maps = Acquisition(acq.kspace, acq.mask, maps)
    return sense_app(with_maps, SenseOptions(magnitude=True)).image


def section_djsense(data: dict, models: list[str], count: int):
    """Deep J-Sense (and MoDL) against ESPIRiT + SENSE at 4x with 20 and with 6 ACS lines."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.djsense import djsense_app, djsense_network

    truth = data["image"][:count].abs()
    kspace = data["kspace"][:count]
    width = truth.shape[-1]
    for lines in (20, 6):
        masks = masks_for(f"random-exact:4:{lines / width:.6g}", count, truth.shape[-2:])
        acq = Acquisition(kspace * masks[:, None], masks, None)
        rows = [("ESPIRiT + SENSE", *scores(truth, espirit_sense(acq)))]
        for model in models:
            start = time.perf_counter()
            network = djsense_network(model, None, "cpu")
            result = djsense_app(acq, network, "cpu")
            rows.append((f"{result.method}, {model} ({time.perf_counter() - start:.0f} s)",
                         *scores(truth, result.rss)))
        table(f"{kspace.shape[1]} coils, 30 dB SNR, 4x 1D Cartesian, {lines} ACS lines, "
              f"{count} test slices {tuple(truth.shape[-2:])}", rows)


def section_deepen(data: dict, models: list[str], count: int, iters: int):
    """DEEPEN's MAP against its SENSE start (ESPIRiT maps of the calibration region, as the
    paper and mrgen deepen's default) at 2D 4x Poisson and at 1D 2x."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.deepen import MapSettings, deepen_map_app, load_deepen_model, with_deepen_maps
    from mrgen.deepen.model import data_scale

    truth = data["image"][:count].abs()
    kspace = data["kspace"][:count]
    for spec, what in (("poisson:4", "2D 4x Poisson"), ("random-exact:2", "1D 2x")):
        masks = masks_for(spec, count, truth.shape[-2:])
        acq = with_deepen_maps(Acquisition(kspace * masks[:, None], masks, None))
        _, start = data_scale(acq.kspace, acq.maps, acq.mask)
        rows = [("SENSE (lam 0.01; DEEPEN's start)", *scores(truth, start))]
        for model in models:
            began = time.perf_counter()
            image = deepen_map_app(acq, load_deepen_model(model, "cpu"),
                                   MapSettings(iters=iters), torch.Generator().manual_seed(0))
            rows.append((f"DEEPEN MAP, {model} ({iters} MM its, "
                         f"{time.perf_counter() - began:.0f} s)", *scores(truth, image)))
        table(f"DEEPEN, {kspace.shape[1]} coils, 30 dB SNR, {what}, ESPIRiT maps, {count} "
              f"test slices {tuple(truth.shape[-2:])}", rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="single,multi,djsense,deepen")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--iters", type=int, default=None,
                        help="ipalm iterations (default: each method's own)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--mmse-steps", type=int, default=400)
    parser.add_argument("--djsense", default="djsense-brain-small",
                        help="comma-separated Deep J-Sense / MoDL models (names or files)")
    parser.add_argument("--deepen", default="deepen-brain-small",
                        help="comma-separated DEEPEN models (names or files)")
    parser.add_argument("--deepen-iters", type=int, default=100)
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        data = test_split(Path(tmp), 8, args.size)   # single coil uses its noise-free image
    if "single" in sections:
        section_single(data, args.model, args.slices, args.iters, args.mmse_steps)
    if "multi" in sections:
        section_multi(data, args.model, args.slices, args.iters)
    if "djsense" in sections:
        section_djsense(data, args.djsense.split(","), args.slices)
    if "deepen" in sections:
        section_deepen(data, args.deepen.split(","), args.slices, args.deepen_iters)


if __name__ == "__main__":
    main()
