"""CG-SENSE speed and agreement: mrgen sense vs BART pics -l2 vs sigpy SenseRecon, in one run.

    python benchmarks/bench_sense.py [--coils 15] [--shape 640 368] [--iters 30] [--lam 0.01]

Same synthetic knee-sized scan as bench_espirit.py (every 4th line + 24 centre lines), with
the true maps, so that only the solver is timed. All tools run the same number of CG
iterations on (A^H A + lam I) x = A^H y (BART: pics -l2 -r lam -S -i iters; sigpy:
SenseRecon(lamda=lam, max_iter=iters), whose objective 1/2||Ax - y||^2 + lam/2||x||^2 has the
same minimiser). Times are wall seconds (best of --repeat); PSNR against the true image over
the object's bounding frame, data range = its maximum.

On a shared machine torch's and BART's OpenMP threads spin-wait for each other and both slow
down several-fold; OMP_WAIT_POLICY=PASSIVE (honoured by both) gives steadier numbers.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import best_time, knee_like


def psnr(image, reference, frame):
    image, reference = np.abs(np.asarray(image))[frame], np.abs(np.asarray(reference))[frame]
    return 10 * np.log10(reference.max() ** 2 / np.mean((image - reference) ** 2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--shape", type=int, nargs=2, default=(640, 368))
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-sigpy", action="store_true")
    args = parser.parse_args(argv)

    from mrgen import io
    from mrgen.sense import sense_reconstruction

    scan = knee_like(args.coils, tuple(args.shape))
    kspace, maps, image, frame = scan.kspace, scan.maps, scan.image, scan.frame
    ksp, mps = torch.from_numpy(kspace), torch.from_numpy(maps)
    sense_reconstruction(ksp, mps, lam=args.lam, iters=2)           # warm-up
    rows = []
    t_lib, ours = best_time(lambda: sense_reconstruction(ksp, mps, lam=args.lam,
                                                         iters=args.iters, tol=0),
                            args.repeat)
    rows.append(("mrgen sense (in-process, CPU)", t_lib, ours.numpy()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        io.write_array(str(tmp / "k.cfl"), kspace, io.roles.KSPACE)
        io.write_array(str(tmp / "m.cfl"), maps, io.roles.MAPS)
        command = [sys.executable, "-m", "commands", "--quiet", "--device", "cpu", "sense",
                   str(tmp / "k.cfl"), str(tmp / "m.cfl"), str(tmp / "x.cfl"), "--lam",
                   str(args.lam), "--iters", str(args.iters), "--tol", "0"]
        t_cli, _ = best_time(lambda: subprocess.run(command, check=True), args.repeat)
        rows.append(("mrgen sense (command, .cfl in/out)", t_cli,
                     io.read_array(str(tmp / "x"), io.roles.IMAGE)))
        bart = shutil.which("bart")
        if bart:
            command = [bart, "pics", "-l2", "-r", str(args.lam), "-i", str(args.iters), "-S",
                       str(tmp / "k"), str(tmp / "m"), str(tmp / "b")]
            t_bart, _ = best_time(lambda: subprocess.run(command, check=True,
                                                         capture_output=True), args.repeat)
            rows.append(("BART pics -l2 (command, .cfl in/out)", t_bart,
                         io.read_array(str(tmp / "b"), io.roles.IMAGE)))
    if not args.no_sigpy:
        import sigpy.mri

        weights = (np.abs(kspace).sum(0) > 0).astype(np.float32)
        t_sigpy, sig = best_time(lambda: sigpy.mri.app.SenseRecon(
            kspace, maps, lamda=args.lam, weights=weights, max_iter=args.iters,
            show_pbar=False).run(), 1)
        rows.append(("sigpy SenseRecon (in-process)", t_sigpy, sig))

    print(f"\nCG-SENSE, {args.coils} coils {args.shape[0]}x{args.shape[1]}, R=4, lam "
          f"{args.lam:g}, {args.iters} iterations, CPU ({torch.get_num_threads()} threads)")
    print(f"| {'tool':40s} | {'wall s':>7s} | {'x mrgen':>7s} | {'PSNR dB':>7s} |")
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for name, seconds, result in rows:
        print(f"| {name:40s} | {seconds:7.2f} | {seconds / t_lib:7.1f} | "
              f"{psnr(result, image, frame):7.2f} |")
    if bart:
        reference = rows[-2 if not args.no_sigpy else -1][2]
        diff = np.linalg.norm(rows[0][2] - reference) / np.linalg.norm(reference)
        print(f"\nrelative difference mrgen vs BART: {diff:.1e}")


if __name__ == "__main__":
    main()
