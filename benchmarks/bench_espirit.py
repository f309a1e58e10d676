"""ESPIRiT speed and agreement: mrgen vs BART ecalib -m1 vs sigpy EspiritCalib, in one run.

    python benchmarks/bench_espirit.py [--coils 15] [--shape 640 368] [--acs 24] [--repeat 3]

Data: a synthetic knee-sized scan (fastMRI knee: 15 coils, 640 x 368 with 2x readout
oversampling): a textured Shepp-Logan object in the central half of the readout, coils on an
ellipse close around it (1/r fall-off, varying phase), complex noise, every 4th line plus
``--acs`` centre lines. All three tools get the same k-space and the same parameters:
calibration 24x24, kernel 6, BART's threshold 0.001 (sigpy thresh = sqrt(0.001)), crop 0.8,
one set of maps. Times are wall-clock seconds, the best of ``--repeat`` runs (sigpy: one run);
"in-process" is the library call on tensors already in memory; BART and the mrgen CLI are
whole commands (process start, reading and writing the .cfl files). Agreement is the median
over the object of |<s, s_bart>| / (|s| |s_bart|).

On a shared machine torch's and BART's OpenMP threads spin-wait for each other and both slow
down several-fold; OMP_WAIT_POLICY=PASSIVE (honoured by both) gives steadier numbers.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import best_time, knee_like


def agreement(maps, reference, support):
    maps, reference = np.asarray(maps), np.asarray(reference)
    inner = np.abs((maps.conj() * reference).sum(0))
    norms = np.linalg.norm(maps, axis=0) * np.linalg.norm(reference, axis=0)
    value = np.where(norms > 0, inner / np.maximum(norms, 1e-30), 0)
    return float(np.median(value[support]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--shape", type=int, nargs=2, default=(640, 368))
    parser.add_argument("--acs", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-sigpy", action="store_true", help="skip sigpy (about 30 s)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mrgen import io
    from mrgen.espirit import espirit

    scan = knee_like(args.coils, tuple(args.shape), args.acs)
    kspace, support = scan.kspace, scan.support
    ksp = torch.from_numpy(kspace)
    print(f"k-space {kspace.shape} complex64, {args.acs} calibration lines, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads", file=sys.stderr)
    espirit(ksp)                                             # warm-up (lazy library loads)
    rows = []
    t_lib, result = best_time(lambda: espirit(ksp), args.repeat)
    ours = result.maps[0].numpy()
    rows.append(("mrgen espirit (in-process, CPU)", t_lib, None))
    t_exact, exact = best_time(lambda: espirit(ksp, factor=1), 1)
    rows.append(("mrgen espirit --exact (in-process, CPU)", t_exact, None))

    bart = shutil.which("bart")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        io.write_array(str(tmp / "k.cfl"), kspace, io.roles.KSPACE)
        np.save(tmp / "k.npy", kspace)
        mrgen_cli = [sys.executable, "-m", "commands", "--quiet", "--device", "cpu", "espirit",
                     str(tmp / "k.cfl"), str(tmp / "m.cfl")]
        t_cli, _ = best_time(lambda: subprocess.run(mrgen_cli, check=True), args.repeat)
        rows.append(("mrgen espirit (command, .cfl in/out)", t_cli, None))
        if bart:
            command = [bart, "ecalib", "-m1", str(tmp / "k"), str(tmp / "b")]
            t_bart, _ = best_time(lambda: subprocess.run(command, check=True,
                                                         capture_output=True), args.repeat)
            reference = io.read_array(str(tmp / "b"), io.roles.MAPS)
            rows.append(("BART ecalib -m1 (command, .cfl in/out)", t_bart, None))
    if not args.no_sigpy:
        import sigpy.mri

        def run_sigpy():
            return sigpy.mri.app.EspiritCalib(kspace, calib_width=24, thresh=math.sqrt(0.001),
                                              kernel_width=6, crop=0.8,
                                              show_pbar=False).run()

        t_sigpy, sig_maps = best_time(run_sigpy, 1)
        rows.append(("sigpy EspiritCalib (in-process)", t_sigpy, sig_maps))

    print(f"\nESPIRiT, {args.coils} coils {args.shape[0]}x{args.shape[1]}, "
          f"{args.acs} calibration lines, CPU ({torch.get_num_threads()} threads)")
    print(f"| {'tool':42s} | {'wall s':>7s} | {'x mrgen':>7s} | {'vs BART':>8s} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 9}|{'-' * 10}|")
    for name, seconds, maps in rows:
        if name.startswith("mrgen espirit (in"):
            maps = ours
        elif name.startswith("mrgen espirit --exact"):
            maps = exact.maps[0].numpy()
        agree = "" if reference is None or maps is None else \
            f"{agreement(maps, reference, support):.6f}"
        print(f"| {name:42s} | {seconds:7.2f} | {seconds / t_lib:7.1f} | {agree:>8s} |")
    print()
    if not args.no_sigpy:
        print(f"mrgen vs sigpy: {t_sigpy / t_lib:.1f}x faster (target >= 8x)")
    if bart:
        print(f"mrgen vs BART: {t_bart / t_lib:.1f}x faster in-process, {t_bart / t_cli:.1f}x "
              f"command vs command (target: no slower than BART / 1.5)")


if __name__ == "__main__":
    main()
