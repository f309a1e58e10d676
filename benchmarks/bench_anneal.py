"""ipalm with a score-matching prior, annealed or not, on validation slices (#13).

    python benchmarks/bench_anneal.py [--model prior-brain-small] [--slices 12,24,36]
        [--iters 100] [--sections single,multi]

The validation split of `mrgen dataset` (ITK's k-means T1 head: no model trained on it) is
built with --seed 0 at 256 x 256, 8 coils, 30 dB SNR. For each slice, ipalm at its default
lambda runs with `--anneal off` and with annealing from the prior's top trained level over
70% of the iterations (mrgen.ipalm.Annealing):

single   the noise-free magnitude image, one coil, 3x 2D uniform random sampling without a
         dense centre (bench_priors' single section, on validation slices);
multi    8 coils, 4x 1D Cartesian with 8% ACS, joint maps.

PSNR / SSIM against the noise-free image. The default of `ipalm --anneal` follows this
table (decided here, away from the test split).
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


def run(acq, model: str, anneal: str, iters: int) -> tuple[torch.Tensor, str]:
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app

    result = ipalm_app(acq, IpalmSettings(PriorChoice(model=model), iters=iters, anneal=anneal))
    return result.image, result.description


def acquisitions(path: Path, index: int, section: str):
    """(acquisition, noise-free reference (1, H, W)) of one validation slice."""
    from mrgen.acquisition import Acquisition
    from mrgen.fft import fft2c

    with h5py.File(path, "r") as f:
        kspace = torch.from_numpy(f["kspace"][index:index + 1])
        image = torch.from_numpy(f["image"][index:index + 1]).abs()
        rss = torch.from_numpy(f["reconstruction_rss"][index:index + 1])
    shape = kspace.shape[-2:]
    if section == "single":
        mask = torch.from_numpy(np.stack([_mask("uniform:3:0", shape, index)]))
        single = (fft2c(image.to(torch.complex64)) * mask)[:, None]
        return Acquisition(single, mask, torch.ones_like(single), single_coil=True), image
    mask = torch.from_numpy(np.stack([_mask("random-exact:4:0.08", shape, index)]))
    return Acquisition(kspace * mask[:, None], mask, None), rss


def _mask(spec, shape, index):
    return masks_for(spec, index + 1, shape)[index].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--slices", default="12,24,36")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--sections", default="single,multi")
    args = parser.parse_args()
    slices = [int(i) for i in args.slices.split(",")]
    from mrgen.apps.ipalm import PriorChoice

    top = f"{PriorChoice(model=args.model).build('cpu')[1].anneal_from:g}"
    with tempfile.TemporaryDirectory() as folder:
        path = validation_split(Path(folder), 30.0)
        for section in args.sections.split(","):
            print(f"\n{section}: {args.model}, {args.iters} iterations, validation slices "
                  f"{args.slices}")
            print("| slice | anneal off PSNR | SSIM | annealed PSNR | SSIM | annealing |")
            print("|---|---|---|---|---|---|")
            rows = []
            for index in slices:
                acq, truth = acquisitions(path, index, section)
                started = time.perf_counter()
                off, _ = run(acq, args.model, "off", args.iters)
                on, description = run(acq, args.model, top, args.iters)
                row = [*scores(truth, off), *scores(truth, on)]
                rows.append(row)
                how = description.split("iterations, annealed from ")[-1].split(",")[0]
                print(f"| {index} | {row[0]:.2f} | {row[1]:.4f} | {row[2]:.2f} | "
                      f"{row[3]:.4f} | {how} ({time.perf_counter() - started:.0f} s) |",
                      flush=True)
            mean = np.mean(rows, axis=0)
            print(f"| mean | {mean[0]:.2f} | {mean[1]:.4f} | {mean[2]:.2f} | {mean[3]:.4f} | |")


if __name__ == "__main__":
    main()
