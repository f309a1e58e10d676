"""Radial reconstruction side by side: mrgen CG-SENSE vs BART pics -l2 -t, and ipalm-TV.

    OMP_NUM_THREADS=1 python benchmarks/bench_radial.py [--size 256] [--spokes 64] [--coils 8]

The issue's case (#17): 64 golden-angle spokes of 2 x size samples, a size^2 Shepp-Logan
phantom with 8 birdcage coils, simulated by ``mrgen phantom --traj``'s model (NUFFT of the 2x
finer coil images: no inverse crime), complex noise 1e-3. BART's maps: ESPIRiT (``bart ecalib
-m1``) of the Cartesian k-space of BART's inverse NUFFT of the data. With those maps:
``bart pics -l2 -r LAM -S -i ITERS -t traj`` and mrgen ``sense_reconstruction(..., nufft=)``
at the same lam and CG iterations (BART's NUFFT has mrgen's scale, ``bench_nufft.py``, so the
same lam is the same problem), and mrgen iPALM with TV and the same fixed maps. PSNR of the
magnitude against the true image over the whole grid (data range: its maximum); wall
seconds (BART: the pics process, file I/O included; mrgen: in-process, best of --repeat).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def psnr(image, truth):
    image, truth = np.abs(np.asarray(image)), np.abs(truth)
    return 10 * np.log10(truth.max() ** 2 / np.mean((image - truth) ** 2))


def bart(*args):
    start = time.perf_counter()
    subprocess.run(["bart", *map(str, args)], check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--spokes", type=int, default=64)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--tv-lam", type=float, default=300.0)
    parser.add_argument("--tv-iters", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from mrgen import io
    from mrgen.io.trajectory import read_samples, samples_for_file, trajectory_for_file
    from mrgen.ipalm import IpalmOptions, ipalm
    from mrgen.nufft import Nufft
    from mrgen.phantom import make_phantom
    from mrgen.priors.loading import build_regulariser
    from mrgen.sense import sense_reconstruction
    from mrgen.trajectory import radial

    n = args.size
    traj = radial(2 * n, args.spokes, n, golden=True)
    phantom = make_phantom(size=(n, n), coils=args.coils, oversample=2, noise=1e-3,
                           trajectory=traj)
    samples, truth = phantom.kspace[0], phantom.image[0]
    folder = Path(tempfile.mkdtemp())
    for name, (array, layout) in {"t.cfl": trajectory_for_file("t.cfl", traj),
                                  "k.cfl": samples_for_file("k.cfl", samples)}.items():
        io.write_array(str(folder / name), array, layout=layout)
    f = folder
    bart("nufft", "-i", "-d", f"{n}:{n}:1", f / "t", f / "k", f / "coils")
    bart("fft", "-u", 3, f / "coils", f / "grid")
    bart("ecalib", "-m1", f / "grid", f / "maps")
    maps = io.read_array(str(f / "maps.cfl"), io.roles.MAPS)
    bart_time = min(bart("pics", "-l2", "-r", args.lam, "-S", "-i", args.iters, "-t", f / "t",
                         f / "k", f / "maps", f / "pics") for _ in range(args.repeat))
    pics = io.read_array(str(f / "pics.cfl"), io.roles.IMAGE)
    assert np.allclose(read_samples(str(f / "k.cfl")), samples)

    kspace, maps_t = torch.from_numpy(samples), torch.from_numpy(maps)
    nufft = Nufft(torch.from_numpy(traj), (n, n))
    best, image = np.inf, None
    for _ in range(args.repeat):
        start = time.perf_counter()
        image = sense_reconstruction(kspace, maps_t, lam=args.lam, iters=args.iters, tol=0,
                                     nufft=Nufft(torch.from_numpy(traj), (n, n)))
        best = min(best, time.perf_counter() - start)

    regulariser, _ = build_regulariser(None, "tv", 1e-3, torch.device("cpu"))
    start = time.perf_counter()
    result = ipalm(kspace[None], torch.ones(1, *kspace.shape[-2:]), regulariser,
                   IpalmOptions(lam=args.tv_lam, mu=1000.0, iters=args.tv_iters,
                                estimate_maps=False), maps=maps_t[None], nufft=nufft)
    tv_time = time.perf_counter() - start

    print(f"radial: {args.spokes} golden spokes x {2 * n} samples, {n} x {n}, {args.coils} "
          f"coils, noise 1e-3, BART's ESPIRiT maps; lam {args.lam:g}, {args.iters} CG "
          f"iterations; {torch.get_num_threads()} thread(s)")
    print(f"{'method':34s} {'PSNR (dB)':>9s} {'wall (s)':>9s}")
    rows = [("bart pics -l2 -t (process)", psnr(pics, truth), bart_time),
            ("mrgen CG-SENSE (NUFFT, Toeplitz)", psnr(image, truth), best),
            (f"mrgen ipalm TV, lam {args.tv_lam:g}, {args.tv_iters} it.",
             psnr(result.image[0], truth), tv_time)]
    for name, value, seconds in rows:
        print(f"{name:34s} {value:9.2f} {seconds:9.2f}")
    print(f"CG-SENSE - pics: {rows[1][1] - rows[0][1]:+.2f} dB, wall ratio "
          f"{rows[1][2] / rows[0][2]:.2f}; ipalm TV - CG-SENSE: {rows[2][1] - rows[1][1]:+.2f} dB")


if __name__ == "__main__":
    main()
