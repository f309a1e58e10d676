"""The object's support on single-coil data (`ipalm --support`, mrgen.support; #13).

    python benchmarks/bench_support.py [--slices 6,20,24,30,36,42] [--model prior-brain-small]
        [--settings uniform:3:0,random:4:0.08,random:4:0.08@30] [--case split|tight|native]

The validation split of `mrgen dataset` (ITK's k-means T1 head; --seed 0, 256 x 256; never the
test split) gives noise-free magnitude images, each sampled with one coil (real-valued, ipalm
--single-coil) as benchmarks/bench_tv_iters.py does: 3x 2D uniform random without a dense
centre (Zach, Knoll, Pock 2023, Table 1), 4x 2D random with an 8% centre, and that with
complex noise at 30 dB SNR (``@30``). Each method runs at its defaults with --support off,
with the support estimated from ipalm-TV's image (the default), and, for TV, within the
truth's own support (above 0.02 x its maximum, grown 3 pixels: what a perfect estimate gives),
and from TV's first image alone (one estimate, not shrink-wrapped: the default before).
--case tight crops the head to fill the image as the test split's slices do (about 80%
object; bench_single_coil_lambda.tight_images), native takes the 128 x 128 slices as acquired;
split (the default) the split's 256 x 256 slices, 2x upsampled with 70% background.
PSNR (fastMRI's, against the noise-free image) per slice and the mean. Decided here: the
support's default (``mrgen.apps.ipalm.estimates_support``) and its threshold and margin.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from bench_single_coil_lambda import native_images, tight_images
from bench_tv_iters import single_coil, validation_images


def truth_support(truth: torch.Tensor) -> torch.Tensor:
    """The truth's object (above 0.02 x each slice's maximum), grown 3 pixels."""
    peak = truth.flatten(1).amax(1).view(-1, 1, 1)
    inside = (truth > 0.02 * peak).float()[:, None]
    return (F.max_pool2d(inside, 7, 1, 3)[:, 0] > 0).float()


def images(case: str, slices: list[int]) -> torch.Tensor:
    """The validation slices as --case says."""
    if case == "split":
        return validation_images(slices)
    with tempfile.TemporaryDirectory() as folder:
        native = native_images(Path(folder), slices)
    return tight_images(native) if case == "tight" else native


def first_support(acq) -> torch.Tensor:
    """The support from ipalm-TV's image with every pixel free, not shrink-wrapped."""
    from mrgen.apps.ipalm import tv_start
    from mrgen.support import estimate_support

    return estimate_support(tv_start(acq, None))


def default_support(acq) -> torch.Tensor:
    """The support ipalm estimates by default (shrink-wrapped)."""
    from mrgen.apps.ipalm import tv_start
    from mrgen.support import shrink_wrap

    return shrink_wrap(acq, lambda held: tv_start(held, None))[0]


def main(argv=None):
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app
    from mrgen.metrics import psnr_slices
    from mrgen.support import restrict_to_support

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="6,20,24,30,36,42")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--settings", default="uniform:3:0,random:4:0.08,random:4:0.08@30")
    parser.add_argument("--case", default="split", choices=("split", "tight", "native"))
    args = parser.parse_args(argv)
    slices = [int(v) for v in args.slices.split(",")]
    truth = images(args.case, slices)
    generator = torch.Generator().manual_seed(5)
    tv, learned = PriorChoice(reg="tv"), PriorChoice(model=args.model)
    print(f"one coil, validation slices {slices} ({args.case}), PSNR dB per slice | mean")
    print("| mask | noise | method | PSNR per slice | mean | support (% of image) |")
    print("|---|---|---|---|---|---|")
    for setting in args.settings.split(","):
        spec, _, snr = setting.partition("@")
        acq = single_coil(truth, spec, float(snr) if snr else None, generator)
        supports = {"first": first_support(acq), "default": default_support(acq)}
        runs = {"ipalm-TV, --support off": (acq, IpalmSettings(tv, support="off")),
                "ipalm-TV, support from its image (default)": (acq, IpalmSettings(tv)),
                "ipalm-TV, support from its first image only (the default before)": (
                    restrict_to_support(acq, supports["first"]),
                    IpalmSettings(tv, support="off")),
                "ipalm-TV, the truth's support": (
                    restrict_to_support(acq, truth_support(truth)),
                    IpalmSettings(tv, support="off")),
                f"{args.model}, --support off": (acq, IpalmSettings(learned, support="off")),
                f"{args.model}, support from TV's image (default)":
                    (acq, IpalmSettings(learned))}
        for name, (data, settings) in runs.items():
            image = ipalm_app(data, settings).image
            psnr = psnr_slices(truth, image)
            covered = ""
            if name.startswith("ipalm-TV, support from"):
                estimated = supports["first" if "first" in name else "default"]
                peak = truth.flatten(1).amax(1).view(-1, 1, 1)
                cut = ((truth > 0.02 * peak) & (estimated == 0)).flatten(1).sum(1)
                covered = (f"{100 * float(estimated.mean()):.0f} (object pixels left out: "
                           f"{' '.join(str(int(n)) for n in cut)})")
            noise = f"{snr} dB" if snr else "none"
            print(f"| {spec} | {noise} | {name} | {' '.join(f'{p:.2f}' for p in psnr)} | "
                  f"{float(psnr.mean()):.2f} | {covered} |", flush=True)


if __name__ == "__main__":
    main()
