"""How many iterations ipalm-TV needs on single-coil data (the default of `ipalm --iters`).

    python benchmarks/bench_tv_iters.py [--slices 6,12,20,24,30,36,42] [--iters 100,300,1000,3000]

The validation split of `mrgen dataset` (ITK's k-means T1 head; --seed 0, 256 x 256) gives
noise-free magnitude images; each is sampled with one coil (real-valued, as ipalm
--single-coil) under three settings: 3x 2D uniform random without a dense centre (Zach, Knoll,
Pock 2023, Table 1), 4x 2D random with an 8% fully sampled centre, and the same with complex
noise at 30 dB SNR. ipalm-TV runs at its default lambda for each iteration count; the table
gives PSNR (fastMRI's, against the noise-free image) per slice and the mean. Decided here,
away from the test split: TV's single-coil default (mrgen.apps.ipalm.default_iters).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

from bench_noise_lambda import validation_split

SETTINGS = (("uniform:3:0", None), ("random:4:0.08", None), ("random:4:0.08", 30.0))


def single_coil(truth: torch.Tensor, spec: str, snr: float | None, generator):
    """One-coil acquisition of the images (S, H, W) under mask ``spec`` (seeds 200 + i)."""
    from mrgen.acquisition import Acquisition
    from mrgen.fft import fft2c
    from mrgen.masks import make_mask

    masks = torch.from_numpy(np.stack([make_mask(spec, truth.shape[-2:], seed=200 + i)
                                       for i in range(truth.shape[0])])).float()
    kspace = fft2c(truth.to(torch.complex64))
    if snr is not None:
        std = kspace.abs().square().mean().sqrt() * 10 ** (-snr / 20)
        noise = torch.complex(torch.randn(kspace.shape, generator=generator),
                              torch.randn(kspace.shape, generator=generator))
        kspace = kspace + std * noise / 2 ** 0.5
    kspace = (kspace * masks)[:, None]
    return Acquisition(kspace, masks, torch.ones_like(kspace), single_coil=True)


def validation_images(slices: list[int]) -> torch.Tensor:
    """The noise-free magnitude images (S, 256, 256) of those validation slices."""
    with tempfile.TemporaryDirectory() as folder:
        with h5py.File(validation_split(Path(folder), 30.0), "r") as f:
            return torch.from_numpy(f["image"][slices]).abs()


def main(argv=None):
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app
    from mrgen.metrics import psnr_slices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="6,12,20,24,30,36,42")
    parser.add_argument("--iters", default="100,300,1000,3000")
    args = parser.parse_args(argv)
    slices = [int(v) for v in args.slices.split(",")]
    truth = validation_images(slices)
    generator = torch.Generator().manual_seed(5)
    print(f"ipalm-TV, one coil, default lambda, validation slices {slices}")
    print("| mask | noise | iterations | PSNR per slice | mean |")
    print("|---|---|---|---|---|")
    for spec, snr in SETTINGS:
        acq = single_coil(truth, spec, snr, generator)
        for iters in [int(v) for v in args.iters.split(",")]:
            image = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), iters=iters)).image
            psnr = psnr_slices(truth, image)
            noise = "none" if snr is None else f"{snr:g} dB"
            print(f"| {spec} | {noise} | {iters} | {' '.join(f'{p:.2f}' for p in psnr)} | "
                  f"{float(psnr.mean()):.2f} |", flush=True)


if __name__ == "__main__":
    main()
