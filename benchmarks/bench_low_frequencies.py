"""Where single-coil ipalm's error lies: its lowest k-space values, and how TV and the learned
prior do beyond them (#13).

    python benchmarks/bench_low_frequencies.py [--model prior-brain-small]
        [--cases 20:20,30:42,24:16] [--radii 2,4,8] [--sigmas ""]

The validation cases of bench_start.py (single coil, real-valued, 3x 2D uniform random
without the k-space centre, masks without the (0, +-1) pair). For ipalm-TV and the learned
prior at their defaults (the prior from TV's image), this prints the PSNR against the
noise-free image as reconstructed and with the truth's k-space values within |k| <= r put
into the result (an oracle for the lowest frequencies: what is left is each prior's error
where the data leave it), and the prior's result with TV's lowest values. --sigmas evaluates
the prior also at other trained noise levels (lambda at its cap, 100 / sigma^2).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import torch

from bench_ipalm import scores
from bench_noise_lambda import validation_split
from bench_start import acquisition


def with_low_frequencies(image: torch.Tensor, source: torch.Tensor, radius: float):
    """``image`` with the k-space values of ``source`` within |k| <= radius (real part)."""
    from mrgen.fft import fft2c, ifft2c

    height, width = image.shape[-2:]
    ky = torch.arange(height) - height // 2
    kx = torch.arange(width) - width // 2
    inside = ky[:, None] ** 2 + kx[None, :] ** 2 <= radius ** 2
    kspace = fft2c(image.to(torch.complex64))
    kspace[..., inside] = fft2c(source.to(torch.complex64))[..., inside]
    return ifft2c(kspace).real


def learned_at(acq, model: str, sigma: float | None):
    """The prior's default run; at ``sigma`` (lambda 100 / sigma^2) when given, from TV's
    image as the default run starts."""
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app, tv_start
    from mrgen.ipalm import IpalmOptions, ipalm

    choice = PriorChoice(model=model)
    if sigma is None:
        return ipalm_app(acq, IpalmSettings(choice)).image
    regulariser, prior = choice.build(acq.device)
    regulariser.set_sigma(sigma)
    options = IpalmOptions(lam=100 / sigma ** 2, mu=None, mu_per_lambda=prior.mu_per_lambda,
                           estimate_maps=False, align_map_phase=False, slack=prior.slack,
                           scale_crop=prior.crop)
    return ipalm(acq.kspace, acq.mask, regulariser, options, maps=acq.maps,
                 start=tv_start(acq, None)).image


def main() -> None:
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--cases", default="20:20,30:42,24:16")
    parser.add_argument("--radii", default="2,4,8")
    parser.add_argument("--sigmas", default="")
    args = parser.parse_args()
    cases = [tuple(int(v) for v in case.split(":")) for case in args.cases.split(",")]
    radii = [float(r) for r in args.radii.split(",")]
    sigmas = [None] + [float(s) for s in args.sigmas.split(",") if s]
    with tempfile.TemporaryDirectory() as folder:
        with h5py.File(validation_split(Path(folder), 30.0), "r") as f:
            images = {index: torch.from_numpy(f["image"][index:index + 1]).abs()
                      for index, _ in cases}
    print("| case | method | as is | " + " | ".join(f"truth's |k| <= {r:g}" for r in radii)
          + " | TV's |k| <= 2 |")
    print("|---" * (len(radii) + 4) + "|")
    for index, seed in cases:
        truth, acq = images[index], acquisition(images[index], seed)
        tv = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"))).image
        runs = [("ipalm-TV", tv)] + [
            (f"{args.model}" + ("" if s is None else f" at sigma {s:g}"),
             learned_at(acq, args.model, s)) for s in sigmas]
        for name, image in runs:
            cells = [scores(truth, image)[0]] + \
                [scores(truth, with_low_frequencies(image, truth, r))[0] for r in radii] + \
                [scores(truth, with_low_frequencies(image, tv, 2))[0]]
            print(f"| {index}:{seed} | {name} | " + " | ".join(f"{v:.2f}" for v in cells)
                  + " |", flush=True)


if __name__ == "__main__":
    main()
