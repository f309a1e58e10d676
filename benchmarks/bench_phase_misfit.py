"""ipalm on validation slices whose phase changes at tissue edges (#13): what the test split's
complex slice does to the learned prior, reproduced on data no decision may touch there.

    python benchmarks/bench_phase_misfit.py [--model prior-brain-small] [--slices 6,22,38]
        [--factors 0.3,0.1] [--phase 0.25]

The validation split of `mrgen dataset` (--seed 0, 8 coils, 30 dB; bench_noise_lambda's) as
it is ("plain") and with its image times exp(i phi), phi = -PHASE / 0 / +PHASE rad where
its magnitude is below 0.3 / between 0.3 and 0.6 / above 0.6 of its maximum inside the head
(above 0.05; a phase std of 0.13-0.15 rad there; ITK's complex BrainWeb slice of the test
split has 0.18), its noise kept: the k-space noise is the file's k-space minus
F(maps x image). 4x 1D Cartesian with 8% ACS (bench_map_smoothness' masks), joint maps, 100
iterations. Each slice prints ipalm-TV and the learned prior at their defaults (lambda from
the noise, lowered where the misfit exceeds it) and the learned prior at fixed lambda = its
default lam0 times each --factor.

iPALM's image is real and its maps smooth (Zach, Knoll, Pock 2023): neither carries such a
phase, and with 4x lines a real image can explain part of the imaginary residual by aliasing
stripes. TV penalises stripes; a prior trained on clean magnitude images less so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import torch

from bench_ipalm import scores
from bench_noise_lambda import validation_split


def phase_case(path: Path, index: int, phase: float):
    """(k-space plain, k-space with tissue phase, maps, noise-free magnitude) of a slice."""
    from mrgen.fft import fft2c

    with h5py.File(path, "r") as f:
        kspace = torch.from_numpy(f["kspace"][index:index + 1])
        image = torch.from_numpy(f["image"][index:index + 1])
        maps = torch.from_numpy(f["maps"][index:index + 1])
    noise = kspace - fft2c(maps * image[:, None])
    magnitude = image.abs()
    level = magnitude / magnitude.max()
    phi = torch.where(level > 0.6, phase, torch.where(level > 0.3, 0.0, -phase))
    phi = phi * (level > 0.05)
    phased = image * torch.polar(torch.ones_like(phi), phi)
    return kspace, fft2c(maps * phased[:, None]) + noise, magnitude


def main() -> None:
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app, slice_lambdas
    from mrgen.masks import make_mask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--slices", default="6,22,38")
    parser.add_argument("--factors", default="0.3,0.1")
    parser.add_argument("--phase", type=float, default=0.25)
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    tv, learned = PriorChoice(reg="tv"), PriorChoice(model=args.model)
    _, prior = learned.build(torch.device("cpu"))
    columns = ["ipalm-TV", args.model] + [f"{args.model} lam0 x {f:g}" for f in factors]
    print("validation, 30 dB, 8 coils, 4x 1D with 8% ACS, joint maps; PSNR dB")
    print("| slice | data | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    with tempfile.TemporaryDirectory() as folder:
        path = validation_split(Path(folder), 30.0)
        for index in [int(i) for i in args.slices.split(",")]:
            plain, phased, truth = phase_case(path, index, args.phase)
            mask = torch.from_numpy(make_mask("random-exact:4:0.08", plain.shape[-2:],
                                              seed=100 + index))[None]
            for name, kspace in (("plain", plain), ("tissue phase", phased)):
                acq = Acquisition(kspace * mask[:, None], mask, None)
                lam0 = float(torch.as_tensor(slice_lambdas("", prior, acq)).flatten()[0])
                runs = [IpalmSettings(tv), IpalmSettings(learned)] + [
                    IpalmSettings(learned, lam=f"{lam0 * f:.6g}") for f in factors]
                row = [scores(truth, ipalm_app(acq, run).image)[0] for run in runs]
                print(f"| {index} | {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |",
                      flush=True)


if __name__ == "__main__":
    main()
