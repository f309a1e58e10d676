"""Where a learned prior's single-coil ipalm starts: the zero-filled image or ipalm-TV's (#13).

    python benchmarks/bench_start.py [--model prior-brain-small]
        [--cases 20:20,24:16,30:42,36:5,24:24] [--from-truth 100,1000]

The validation split of `mrgen dataset` (ITK's k-means T1 head; --seed 0, 256 x 256) gives
noise-free magnitude images, sampled with one coil (real-valued, ipalm --single-coil) at 3x
2D uniform random without a dense centre (bench_priors' single section). A case SLICE:SEED
takes the mask bench_priors.masks_for draws for index SEED; the default cases are masks
without the (0, +-1) k-space pair, where the prior fails from the zero-filled image. Each
case runs ipalm-TV at its defaults and the learned prior from the zero-filled image
(annealed, the default before) and from TV's image (not annealed, the default now); PSNR /
SSIM against the noise-free image. Decided here, away from the test split.

--from-truth N,M instead starts the learned prior at the noise-free image itself (its default
lambda, no annealing) and reports PSNR after N, M ... iterations: a prior whose energy has
its minimum near real images stays there, one whose minimum lies elsewhere along the
unmeasured frequencies drifts away with the iterations. It tells a new prior's single-coil
fitness on validation data, where from TV's image 100 iterations do not move far enough to
show it. prior-brain-small (2026-12-04):

    | case | 100 iterations | 300 iterations | 1000 iterations |
    | 20:20 | 41.55 | 25.90 | 19.60 |
    | 24:16 | 43.28 | 28.11 | 19.95 |
    | 30:42 | 38.45 | 24.48 | 17.53 |
    | 36:5 | 44.07 | 27.94 | 20.24 |
    | 24:24 | 47.19 | 47.55 | 47.58 |

It drifts on exactly the four masks that leave the DC unsampled (24:24 samples it and (+-1, 0),
(+-2, 0)); on 20:20 after 300 iterations the image's mean is 7% high and the k-space ring at
|k| = 1 15% low. Holding the unsampled DC at ipalm-TV's value changed nothing there (19.60
after 1000), the five values within |k| <= 1 gave 23.25 (TV 25.84).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from bench_ipalm import scores
from bench_noise_lambda import validation_split
from bench_priors import masks_for


def acquisition(truth: torch.Tensor, seed: int):
    from mrgen.acquisition import Acquisition
    from mrgen.fft import fft2c

    mask = masks_for("uniform:3:0", seed + 1, truth.shape[-2:])[seed:seed + 1]
    kspace = (fft2c(truth.to(torch.complex64)) * mask)[:, None]
    return Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)


def drift_from_truth(model: str, cases, images, counts) -> None:
    """PSNR of the learned prior's ipalm started at the truth, after each of ``counts``
    iterations (one run per case, read at those iterations)."""
    from mrgen.apps.ipalm import (IpalmSettings, PriorChoice, ipalm_options,
                                  slice_lambdas)
    from mrgen.ipalm import ipalm

    print(f"single coil, 3x uniform random, {model} started at the truth, validation cases")
    print("| case | " + " | ".join(f"{n} iterations" for n in counts) + " |")
    print("|---" * (len(counts) + 1) + "|")
    settings = IpalmSettings(PriorChoice(model=model), iters=max(counts), start="tv")
    for index, seed in cases:
        truth, acq = images[index], acquisition(images[index], seed)
        regulariser, prior = settings.prior.build(acq.device)
        options = ipalm_options(settings, prior, acq, slice_lambdas("", prior, acq), None,
                                anneal_default=False)
        at = {}

        def keep(k, u, c, energies):
            if k + 1 in counts:
                at[k + 1] = u.detach().clone()

        result = ipalm(acq.kspace, acq.mask, regulariser, options, maps=acq.maps,
                       callback=keep, start=truth)
        cells = " | ".join(f"{scores(truth, at[n] * result.scale.view(-1, 1, 1))[0]:.2f}"
                           for n in counts)
        print(f"| {index}:{seed} | {cells} |", flush=True)


def main() -> None:
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--cases", default="20:20,24:16,30:42,36:5,24:24")
    parser.add_argument("--from-truth", default="", help="iteration counts, e.g. 100,1000")
    args = parser.parse_args()
    cases = [tuple(int(v) for v in case.split(":")) for case in args.cases.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        with h5py.File(validation_split(Path(folder), 30.0), "r") as f:
            images = {index: torch.from_numpy(f["image"][index:index + 1]).abs()
                      for index, _ in cases}
    if args.from_truth:
        drift_from_truth(args.model, cases, images,
                         [int(n) for n in args.from_truth.split(",")])
        return
    runs = {"ipalm-TV": IpalmSettings(PriorChoice(reg="tv")),
            "learned from zero-filled (annealed)":
                IpalmSettings(PriorChoice(model=args.model), start="zero-filled"),
            "learned from TV": IpalmSettings(PriorChoice(model=args.model), start="tv")}
    print(f"single coil, 3x uniform random, {args.model}, validation cases (slice:mask)")
    print("| case | " + " | ".join(f"{name} PSNR | SSIM" for name in runs) + " | time |")
    print("|---" * (2 * len(runs) + 2) + "|")
    rows = []
    for index, seed in cases:
        acq, started = acquisition(images[index], seed), time.perf_counter()
        row = [value for settings in runs.values()
               for value in scores(images[index], ipalm_app(acq, settings).image)]
        rows.append(row)
        cells = " | ".join(f"{value:.2f}" if i % 2 == 0 else f"{value:.4f}"
                           for i, value in enumerate(row))
        print(f"| {index}:{seed} | {cells} | {time.perf_counter() - started:.0f} s |",
              flush=True)
    mean = np.mean(rows, axis=0)
    print("| mean | " + " | ".join(f"{value:.2f}" if i % 2 == 0 else f"{value:.4f}"
                                   for i, value in enumerate(mean)) + " | |")


if __name__ == "__main__":
    main()
