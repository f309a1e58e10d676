"""ipalm's default map smoothness with joint maps: mu as a ratio to each slice's lambda (#13).

    python benchmarks/bench_map_smoothness.py [--model prior-brain-small] [--snrs 18,24,30,36]
        [--slices 6,14,22,30,38] [--ratios 10,20,40,80] [--iters 100] [--fixed MU]

The maps' sub-problem of iPALM, lam/2 ||M F(u c/|c|) - z||^2 + mu F(c), depends on mu / lam
alone: with lambda from each slice's noise, a fixed mu smooths the maps little at high SNR
and too much at low SNR. This runs ipalm with joint maps (the validation split of `mrgen
dataset`, ITK's k-means T1 head, --seed 0, 8 coils at each --snrs, 4x 1D Cartesian with 8%
ACS, each slice at its default lambda) for mu = r x lambda at each ratio r, and at the fixed
mu given by --fixed (the default before: 1000 for TV, 25 / sigma^2 for the learned prior),
and prints PSNR against the noise-free image per slice and the mean per SNR. --model tv runs
ipalm-TV. Decided here, away from the test split: mrgen.priors.loading's ratios.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

from bench_ipalm import scores
from bench_noise_lambda import validation_split


def joint_acquisition(path: Path, index: int):
    """(acquisition, noise-free truth) of validation slice ``index`` at 4x with 8% ACS."""
    from mrgen.acquisition import Acquisition
    from mrgen.masks import make_mask

    with h5py.File(path, "r") as f:
        kspace = torch.from_numpy(f["kspace"][index:index + 1])
        truth = torch.from_numpy(f["image"][index:index + 1]).abs()
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", kspace.shape[-2:],
                                      seed=100 + index))[None]
    return Acquisition(kspace * mask[:, None], mask, None), truth


def psnr_at(acq, truth, choice, iters: int, mu: float) -> float:
    from mrgen.apps.ipalm import IpalmSettings, ipalm_app

    image = ipalm_app(acq, IpalmSettings(choice, mu=mu, iters=iters)).image
    return scores(truth, image)[0]


def main() -> None:
    from mrgen.apps.ipalm import PriorChoice, slice_lambdas

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--snrs", default="18,24,30,36")
    parser.add_argument("--slices", default="6,14,22,30,38")
    parser.add_argument("--ratios", default="10,20,40,80")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--fixed", type=float, default=None,
                        help="a fixed mu to compare (default: none)")
    args = parser.parse_args()
    choice = PriorChoice(reg="tv") if args.model == "tv" else PriorChoice(model=args.model)
    _, prior = choice.build("cpu")
    ratios = [float(r) for r in args.ratios.split(",")]
    columns = [f"mu {r:g} x lam" for r in ratios] + \
        ([f"mu {args.fixed:g}"] if args.fixed is not None else [])
    print(f"{args.model}, {args.iters} iterations; default ratio {prior.mu_per_lambda:g}")
    print("| SNR dB | slice | lam | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    with tempfile.TemporaryDirectory() as folder:
        for snr in [float(v) for v in args.snrs.split(",")]:
            path = validation_split(Path(folder), snr)
            rows = []
            for index in [int(i) for i in args.slices.split(",")]:
                acq, truth = joint_acquisition(path, index)
                lam = float(torch.as_tensor(slice_lambdas("", prior, acq)).flatten()[0])
                mus = [r * lam for r in ratios] + \
                    ([args.fixed] if args.fixed is not None else [])
                rows.append([psnr_at(acq, truth, choice, args.iters, mu) for mu in mus])
                print(f"| {snr:g} | {index} | {lam:.4g} | " +
                      " | ".join(f"{p:.2f}" for p in rows[-1]) + " |", flush=True)
            print(f"| {snr:g} | mean | | " +
                  " | ".join(f"{p:.2f}" for p in np.mean(rows, axis=0)) + " |", flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
