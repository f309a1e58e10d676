"""The learned prior's default lambda on single-coil data, chosen on held-out k-space (#13).

    python benchmarks/bench_single_coil_lambda.py [--slices 6,20,24] [--model prior-brain-small]
        [--cases tight,tight@30,native] [--factors 0.01,0.1,1,10,100]

ipalm's default for a learned prior on one coil (``mrgen.apps.ipalm.held_out_factors``):
lambda from the noise rule (lam0) x 1, 10 or 100, whichever run on 85% of the samples best
predicts the other 15% (``held_out_errors``, each from ipalm-TV's image of the kept samples,
as the default run starts). Judged on validation images only (ITK's k-means T1 head, `mrgen
dataset --split validation --coils 1 --seed 0`), sampled with one coil (real-valued), 3x 2D
uniform random without a dense centre (Zach, Knoll, Pock 2023, Table 1), the support
estimated as ipalm does by default:

tight    the head cropped to its bounding box over the slices and resampled onto 256 x 256,
         so that it fills the image as the test split's BrainWeb slices do (about 80% of
         their pixels are object; the validation split's 256 x 256 slices are 2x upsampled
         with 70% background, where the support alone nearly solves the problem);
native   the 128 x 128 slices as acquired (no resampling: k-space filled to its edge);
@30      complex noise at 30 dB SNR added to the k-space.

Each row: PSNR (fastMRI's) of ipalm with the prior at lam0 x each factor on all samples, the
held-out error of each of ipalm's own factors with the one it picks, and ipalm-TV at its
defaults beside them.
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

from bench_ipalm import scores
from bench_tv_iters import single_coil


def native_images(folder: Path, slices: list[int]) -> torch.Tensor:
    """The validation head's magnitude slices (S, 128, 128) as acquired."""
    out = folder / "validation-128"
    subprocess.run([sys.executable, "-m", "commands", "--quiet", "--seed", "0", "dataset",
                    str(out), "--split", "validation", "--size", "128", "128", "--coils", "1"],
                   check=True)
    with h5py.File(out / "validation.h5", "r") as f:
        return torch.from_numpy(np.abs(f["image"][slices]))


def tight_images(native: torch.Tensor, size: int = 256) -> torch.Tensor:
    """The slices cropped to the head's bounding box (above 0.05 x each one's maximum, over all
    of them), zero-padded square and resampled onto size x size, max 1 each."""
    from mrgen.phantom import pad_to_aspect, resample

    peak = native.flatten(1).amax(1).view(-1, 1, 1)
    inside = (native > 0.05 * peak).any(0)
    rows, cols = inside.any(1).nonzero().flatten(), inside.any(0).nonzero().flatten()
    crop = native[:, int(rows.min()):int(rows.max()) + 1, int(cols.min()):int(cols.max()) + 1]
    out = np.stack([resample(pad_to_aspect(c.numpy(), (size, size)), (size, size))
                    for c in crop])
    out = torch.from_numpy(np.abs(out)).float()
    return out / out.flatten(1).amax(1).view(-1, 1, 1)


def one_case(truth, snr, model: str, factors: list[float]):
    """(PSNR per factor (slices scored as one volume), lam0 (S,), held-out errors of ipalm's
    factors (F, S), the factors ipalm picks (S,), ipalm-TV's PSNR at its defaults). Every
    prior run is ipalm's default run but for lambda: within the estimated support, from
    ipalm-TV's image."""
    from mrgen.apps.ipalm import (IpalmSettings, PriorChoice, held_out_errors,
                                  held_out_factors, ipalm_app, ipalm_options, iterations,
                                  slice_lambdas, tv_start, with_estimated_support)
    from mrgen.ipalm import ipalm

    acq = single_coil(truth, "uniform:3:0", snr, torch.Generator().manual_seed(5))
    choice = PriorChoice(model=model)
    regulariser, prior = choice.build(acq.device)
    held = with_estimated_support(acq, "", "ipalm")
    lam0 = torch.as_tensor(slice_lambdas("", prior, held), dtype=torch.float32)
    lam0 = lam0.flatten().expand(acq.slice_count).clone()
    settings = IpalmSettings(choice, start="tv", iters=iterations(IpalmSettings(choice), True))
    start = tv_start(held, None)
    psnrs = []
    for factor in factors:
        options = ipalm_options(settings, prior, held, lam0 * factor, None, False)
        run = ipalm(held.kspace, held.mask, regulariser, options, maps=held.maps, start=start)
        psnrs.append(scores(truth, run.image)[0])
    errors = held_out_errors(held, settings, (regulariser, prior), lam0)
    picked = torch.tensor(held_out_factors(held))[errors.argmin(0)]
    tv = scores(truth, ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"))).image)[0]
    return psnrs, lam0, errors, picked, tv


def main(argv=None) -> None:
    from mrgen.apps.ipalm import SINGLE_COIL_HELD_OUT_FACTORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="6,20,24")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--cases", default="tight,tight@30,native")
    parser.add_argument("--factors", default="0.01,0.1,1,10,100")
    args = parser.parse_args(argv)
    slices = [int(v) for v in args.slices.split(",")]
    factors = [float(v) for v in args.factors.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        native = native_images(Path(folder), slices)
    tight = tight_images(native)
    print(f"one coil, 3x uniform random, validation slices {slices}, {args.model}: PSNR dB "
          f"at lam0 x factor; held-out error at ipalm's factors and its pick per slice")
    print("| case | lam0 | " + " | ".join(f"x{f:g}" for f in factors) + " | held-out error (x"
          + ", x".join(f"{f:g}" for f in SINGLE_COIL_HELD_OUT_FACTORS) + ") | picked | "
          "ipalm-TV |")
    print("|---" * (len(factors) + 5) + "|")
    for case in args.cases.split(","):
        name, _, snr = case.partition("@")
        truth = tight if name == "tight" else native
        psnrs, lam0, errors, picked, tv = one_case(truth, float(snr) if snr else None,
                                               args.model, factors)
        lams = " ".join(f"{float(v):.3g}" for v in lam0)
        held = "; ".join(" ".join(f"{float(e):.3g}" for e in column) for column in errors.T)
        print(f"| {case} | {lams} | " + " | ".join(f"{p:.2f}" for p in psnrs)
              + f" | {held} | " + " ".join(f"x{float(f):g}" for f in picked) + f" | {tv:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
