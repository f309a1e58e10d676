"""Choosing the learned prior's lambda by held-out k-space lines (#13): the rule behind
ipalm's default lambda for a learned prior with joint maps (``held_out_lambdas``), judged.

    python benchmarks/bench_lambda_cv.py [--split validation|test] [--slices ...]
        [--factors 1,0.3] [--hold 0.15] [--seed 0]

For each slice: 15% (--hold) of the sampled lines outside the calibration centre are held out
(--seed, ipalm's default 0; ``mrgen.heldout``),
ipalm with the learned prior runs on the rest at lambda = lam0 x each factor (lam0: its
noise-based default), and the factor whose image and maps predict the held-out lines best,
||M_h F(c u) - z_h||^2, is picked. Each row also prints the PSNR of ipalm on all the lines
at each factor (fixed lambda), so the pick can be checked against the truth.

validation: bench_phase_misfit's slices (6, 22, 38), plain and with a tissue phase, where the
rule was judged. test: bench_priors' multi-coil test slices (0-5), where it is only measured.
Why: the prior's default keeps aliasing stripes where the image's phase changes at tissue
edges, and its residual stays at the noise there, so no residual rule sees it
(bench_phase_misfit); stripes fitted to the measured lines do not predict the held-out ones.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from bench_ipalm import scores
from bench_noise_lambda import validation_split
from bench_phase_misfit import phase_case
from bench_priors import masks_for, test_split


def pick(kspace, mask, truth, choice, prior, factors, fraction, seed):
    """[(factor, held-out error, PSNR on all lines)] and the picked factor: the rule of
    ``mrgen.apps.ipalm.held_out_lambdas`` (its hold-out, error and argmin), with each
    factor's PSNR beside it."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import IpalmSettings, ipalm_app, slice_lambdas
    from mrgen.heldout import held_out_samples, prediction_error

    everything = Acquisition(kspace * mask[:, None], mask, None)
    lam0 = float(torch.as_tensor(slice_lambdas("", prior, everything)).flatten()[0])
    hold = held_out_samples(mask, fraction, seed)
    rest = mask * (1 - hold)
    fitted = Acquisition(kspace * rest[:, None], rest, None)
    rows = []
    for factor in factors:
        lam = f"{lam0 * factor:.9g}"
        run = ipalm_app(fitted, IpalmSettings(choice, lam=lam))
        error = float(prediction_error(run.image, run.maps, kspace, hold)[0])
        psnr = scores(truth, ipalm_app(everything, IpalmSettings(choice, lam=lam)).image)[0]
        rows.append((factor, error, psnr))
    return rows, min(rows, key=lambda row: row[1])[0]


def cases(split: str, folder: Path, slices: list[int]):
    """(name, k-space (1, C, H, W), mask (1, H, W), truth (1, H, W)) of each case."""
    if split == "test":
        data = test_split(folder, 8, 256)
        truth = data["image"].abs()
        masks = masks_for("random-exact:4:0.08", max(slices) + 1, truth.shape[-2:])
        for index in slices:
            yield (str(index), data["kspace"][index:index + 1], masks[index:index + 1],
                   truth[index:index + 1])
        return
    from mrgen.masks import make_mask

    path = validation_split(folder, 30.0)
    for index in slices:
        plain, phased, truth = phase_case(path, index, 0.25)
        mask = torch.from_numpy(make_mask("random-exact:4:0.08", plain.shape[-2:],
                                          seed=100 + index))[None]
        yield f"{index} plain", plain, mask, truth
        yield f"{index} tissue phase", phased, mask, truth


def main() -> None:
    from mrgen.apps.ipalm import PriorChoice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--slices", default=None, help="validation 6,22,38; test 0-5")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--factors", default="1,0.3")
    parser.add_argument("--hold", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default = "6,22,38" if args.split == "validation" else "0,1,2,3,4,5"
    slices = [int(i) for i in (args.slices or default).split(",")]
    factors = [float(f) for f in args.factors.split(",")]
    choice = PriorChoice(model=args.model)
    _, prior = choice.build(torch.device("cpu"))
    print(f"{args.split}, 8 coils, 4x 1D with 8% ACS, joint maps, {args.model}; "
          f"held-out error (x1e0) and PSNR dB at lam0 x factor")
    print("| case | " + " | ".join(f"x{f:g} held-out | x{f:g} PSNR" for f in factors)
          + " | picked |")
    print("|---" * (2 * len(factors) + 2) + "|")
    with tempfile.TemporaryDirectory() as folder:
        for name, kspace, mask, truth in cases(args.split, Path(folder), slices):
            rows, picked = pick(kspace, mask, truth, choice, prior, factors, args.hold,
                                args.seed)
            cells = " | ".join(f"{error:.4g} | {psnr:.2f}" for _, error, psnr in rows)
            print(f"| {name} | {cells} | x{picked:g} |", flush=True)


if __name__ == "__main__":
    main()
