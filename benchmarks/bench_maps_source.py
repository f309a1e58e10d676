"""Joint maps or ESPIRiT's: ipalm's coil maps on validation slices (#13).

    python benchmarks/bench_maps_source.py [--model prior-brain-small] [--snr 30]
        [--slices 6,22,38]

The validation split of `mrgen dataset` (ITK's k-means T1 head, --seed 0, 8 coils at --snr,
4x 1D Cartesian with 8% ACS; bench_map_smoothness' acquisition). For ipalm-TV and the
learned prior at their defaults this prints the PSNR against the noise-free image with joint
maps (ipalm's default, Eq. 15's start) and with ESPIRiT's maps held fixed (`mrgen espirit`,
then `ipalm --maps`), per slice and the mean.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench_ipalm import scores
from bench_map_smoothness import joint_acquisition
from bench_noise_lambda import validation_split


def main() -> None:
    from mrgen.acquisition import Acquisition
    from mrgen.apps.espirit import EspiritOptions, espirit_app
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--snr", type=float, default=30.0)
    parser.add_argument("--slices", default="6,22,38")
    args = parser.parse_args()
    priors = {"ipalm-TV": PriorChoice(reg="tv"), args.model: PriorChoice(model=args.model)}
    print(f"validation, {args.snr:g} dB, 8 coils, 4x 1D with 8% ACS, defaults")
    print("| slice | " + " | ".join(f"{name} joint | {name} ESPIRiT" for name in priors) + " |")
    print("|---" * (2 * len(priors) + 1) + "|")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = validation_split(Path(folder), args.snr)
        for index in [int(i) for i in args.slices.split(",")]:
            acq, truth = joint_acquisition(path, index)
            maps = espirit_app(acq, EspiritOptions()).maps[:, 0]
            fixed = Acquisition(acq.kspace, acq.mask, maps)
            row = [scores(truth, ipalm_app(data, IpalmSettings(choice)).image)[0]
                   for choice in priors.values() for data in (acq, fixed)]
            rows.append(row)
            print(f"| {index} | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
    print("| mean | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")


if __name__ == "__main__":
    main()
