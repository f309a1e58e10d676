"""The whole-image prior's default lambda = c / s^2 on validation slices at several SNRs (#13).

    python benchmarks/bench_noise_lambda.py [--model prior-brain-small] [--snrs 24,30,36]
        [--slices 12,24,36] [--grid 0.5,1,2,4,8] [--iters 100] [--sigma S]

s is the data's noise std over iPALM's data scale (mrgen.noise), c the coefficient. The
posterior's MAP has c = 2 (R = -log p, complex noise of std s); this prints, for each slice
of the validation split (ITK's k-means T1 head: never trained on) built at each SNR with
--seed 0, the PSNR against the noise-free RSS when each slice gets lambda = c / s^2 (8 coils,
4x 1D Cartesian with 8% ACS, joint maps, the prior's sigma and mu), and the mean over slices
per c: the c that ipalm's default should take, measured away from the test split.
--sigma evaluates the prior at another of its trained noise levels (the map smoothness mu
is ipalm's default, its ratio to each lambda).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch


def validation_split(folder: Path, snr: float) -> Path:
    out = folder / f"validation-{snr:g}"
    subprocess.run([sys.executable, "-m", "commands", "--quiet", "--seed", "0", "dataset",
                    str(out), "--split", "validation", "--size", "256", "256", "--coils", "8",
                    "--snr", f"{snr:g}"], check=True)
    return out / "validation.h5"


def psnr_row(path: Path, index: int, regulariser, prior, grid, iters: int):
    """(s, [PSNR for each c]) of validation slice ``index``."""
    from mrgen.ipalm import IpalmOptions, ipalm
    from mrgen.masks import make_mask
    from mrgen.metrics import psnr
    from mrgen.priors.loading import relative_noise

    with h5py.File(path, "r") as f:
        kspace = torch.from_numpy(f["kspace"][index:index + 1])
        reference = torch.from_numpy(f["reconstruction_rss"][index:index + 1])
    mask = torch.from_numpy(make_mask("random-exact:4:0.08", kspace.shape[-2:],
                                      seed=100 + index))[None]
    kspace = kspace * mask[:, None]
    s = float(relative_noise(kspace, mask, prior.crop)[0])
    scores = []
    for c in grid:
        options = IpalmOptions(lam=c / s ** 2, mu=None, mu_per_lambda=prior.mu_per_lambda,
                               iters=iters, slack=prior.slack)
        image = ipalm(kspace, mask, regulariser, options).image
        scores.append(float(psnr(reference, image)))
    return s, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--snrs", default="24,30,36")
    parser.add_argument("--slices", default="12,24,36")
    parser.add_argument("--grid", default="0.5,1,2,4,8")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--sigma", type=float, default=None,
                        help="the prior's noise level (default: the model's calibrated one)")
    args = parser.parse_args()
    grid = [float(c) for c in args.grid.split(",")]
    slices = [int(i) for i in args.slices.split(",")]
    torch.manual_seed(0)
    from mrgen.priors.loading import build_regulariser

    regulariser, prior = build_regulariser(args.model, "", 1e-3, "cpu")
    if args.sigma is not None:
        regulariser.set_sigma(args.sigma)
    print(f"sigma {float(regulariser.sigma):g}, mu {prior.mu_per_lambda:.3g} x lambda")
    print("| SNR dB | slice | s | " + " | ".join(f"c {c:g}" for c in grid) + " |")
    print("|---|---|---|" + "---|" * len(grid))
    every = []
    with tempfile.TemporaryDirectory() as folder:
        for snr in [float(v) for v in args.snrs.split(",")]:
            path = validation_split(Path(folder), snr)
            rows = []
            for index in slices:
                s, scores = psnr_row(path, index, regulariser, prior, grid, args.iters)
                rows.append(scores)
                print(f"| {snr:g} | {index} | {s:.4f} | " +
                      " | ".join(f"{p:.2f}" for p in scores) + " |", flush=True)
            mean = np.mean(rows, axis=0)
            every += rows
            print(f"| {snr:g} | mean | | " + " | ".join(f"{p:.2f}" for p in mean) + " |",
                  flush=True)
    mean = np.mean(every, axis=0)
    print("| all | mean | | " + " | ".join(f"{p:.2f}" for p in mean) + " |")
    print(f"best c: {grid[int(np.argmax(mean))]:g} (the posterior's: 2)")


if __name__ == "__main__":
    main()
