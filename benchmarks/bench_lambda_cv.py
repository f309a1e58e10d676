"""Choosing the learned prior's lambda by held-out k-space lines (#13): the rule behind
ipalm's default lambda for a learned prior with joint maps (``held_out_lambdas``), judged.

    python benchmarks/bench_lambda_cv.py [--split validation|test] [--slices ...]
        [--seed 0]

For each slice: ipalm's rule, as it runs (``mrgen.apps.ipalm.held_out_errors``): 15% of the
sampled lines outside the calibration centre are held out (--seed, ipalm's default 0),
ipalm with the learned prior runs on the rest at lambda = lam0 x 1 and x 0.3 (lam0: its
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


def pick(kspace, mask, truth, choice, seed):
    """[(factor, held-out error, PSNR on all lines)] and the picked factor: ipalm's rule
    (``held_out_errors`` and its argmin, ``held_out_lambdas``), each factor's PSNR beside it."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import HELD_OUT_FACTORS, IpalmSettings, held_out_errors, ipalm_app, \
        slice_lambdas

    settings = IpalmSettings(choice, seed=seed)
    acq = Acquisition(kspace * mask[:, None], mask, None)
    energy = choice.build(acq.device)
    lam0 = torch.as_tensor(slice_lambdas("", energy[1], acq), dtype=torch.float32).reshape(1)
    errors = held_out_errors(acq, settings, energy, lam0)[:, 0]
    rows = []
    for factor, error in zip(HELD_OUT_FACTORS, errors.tolist()):
        image = ipalm_app(acq, IpalmSettings(choice, lam=f"{float(lam0) * factor:.9g}")).image
        rows.append((factor, error, scores(truth, image)[0]))
    return rows, HELD_OUT_FACTORS[int(errors.argmin())]


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
    from mrgen.apps.ipalm import HELD_OUT_FACTORS, PriorChoice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--slices", default=None, help="validation 6,22,38; test 0-5")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default = "6,22,38" if args.split == "validation" else "0,1,2,3,4,5"
    slices = [int(i) for i in (args.slices or default).split(",")]
    choice = PriorChoice(model=args.model)
    print(f"{args.split}, 8 coils, 4x 1D with 8% ACS, joint maps, {args.model}; "
          f"held-out error and PSNR dB at lam0 x factor")
    print("| case | " + " | ".join(f"x{f:g} held-out | x{f:g} PSNR" for f in HELD_OUT_FACTORS)
          + " | picked |")
    print("|---" * (2 * len(HELD_OUT_FACTORS) + 2) + "|")
    with tempfile.TemporaryDirectory() as folder:
        for name, kspace, mask, truth in cases(args.split, Path(folder), slices):
            rows, picked = pick(kspace, mask, truth, choice, args.seed)
            cells = " | ".join(f"{error:.4g} | {psnr:.2f}" for _, error, psnr in rows)
            print(f"| {name} | {cells} | x{picked:g} |", flush=True)


if __name__ == "__main__":
    main()
