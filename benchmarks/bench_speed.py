"""Issue 14's speed table from one run: each job as a user runs it (the mrgen command as a fresh
process) beside its peer on the same file, and the ratio mrgen / peer.

    python benchmarks/bench_speed.py [--rows a,b,c,d,e] [--threads N] [--limit S] [--keep DIR]

a  ipalm --reg tv --iters 100, 15 x 640 x 368 (common.knee_like, one .cfl both read) vs
   bart nlinv (target <= 1.0x, stretch 0.5x); bart ecalib + pics -R T -i 100 for reference.
b  ipalm --reg tv with its defaults, 256 x 256, 8 coils (the README's phantom and 4x mask,
   as one .cfl) vs bart pics -R T:3:0:0.01 (ESPIRiT maps from bart ecalib, timed apart;
   target <= 2x pics). Two floor lines follow it: `python -c 'import torch'` and the same
   ipalm command with --iters 1, each the fastest of 3 runs, beside the same pics time.
c  the README's langevin --model prior-brain-small --maps ... --var ... (256 x 256, 8 coils)
   vs 30 x bart nlinv on the same data (target <= 1).
d  deepen --mode sample as the README runs it vs 30 x bart nlinv (target <= 1).
e  convdecoder with its defaults vs 10 minutes (target <= 1).

Rows c-e take minutes each (langevin up to ~20). Every process, mrgen and BART alike, runs
with OMP_NUM_THREADS (and MKL_NUM_THREADS) = --threads (default: the CPU count); the table
says which. Preparation (data, masks, maps the commands read) is not timed. Times are wall
seconds of one run each; the machine's load is printed, as a shared machine inflates both.
Each row is printed as soon as it is done. An mrgen command still running after --limit
seconds is stopped and its row says "> limit" (its ratio is then a lower bound).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NLINV_MULTIPLE = 30        # rows c, d: the target is this many nlinv runs
CONVDECODER_TARGET = 600.0  # row e: seconds


def mrgen_cmd() -> list[str]:
    exe = shutil.which("mrgen")
    return [exe] if exe else [sys.executable, "-m", "commands"]


class Stopped(float):
    """A wall time at which the command was stopped: the real one is longer."""


class Runner:
    """Runs commands in one folder with one thread count; times them."""

    def __init__(self, folder: Path, threads: int, limit: float | None = None):
        self.folder = folder
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.limit = limit

    def run(self, argv, limit=None) -> float:
        start = time.perf_counter()
        try:
            done = subprocess.run([str(a) for a in argv], cwd=self.folder, env=self.env,
                                  capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return Stopped(time.perf_counter() - start)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n"
                               f"{done.stderr[-2000:]}")
        return seconds

    def mrgen(self, *args) -> float:
        return self.run(mrgen_cmd() + list(args), self.limit)

    def bart(self, *args) -> float:
        return self.run(["bart", *args])


def prepare_knee(folder: Path):
    """knee.cfl/.hdr: undersampled 15 x 640 x 368 k-space, zero where not sampled."""
    sys.path.insert(0, str(Path(__file__).parent))
    from common import knee_like
    from mrgen import io

    io.write_array(str(folder / "knee"), knee_like().kspace, io.roles.KSPACE)


def prepare_brain(runner: Runner, rows):
    """The README's phantom (data.h5), its 4x mask, the masked k-space as k256.cfl for both
    tools, and what rows c-d read (iPALM's maps, ESPIRiT maps)."""
    from mrgen import io

    runner.mrgen("phantom", "--size", 256, 256, "--coils", 8, "--noise", 0.002, "data.h5")
    runner.mrgen("mask", "--like", "data.h5", "--kind", "random-exact", "--accel", 4, "mask.npy")
    kspace = io.read_array(str(runner.folder / "data.h5"), io.roles.KSPACE)
    mask = np.load(runner.folder / "mask.npy")
    io.write_array(str(runner.folder / "k256"), (kspace * mask).astype(np.complex64),
                   io.roles.KSPACE)
    if "c" in rows:
        runner.mrgen("ipalm", "--mask", "mask.npy", "--maps-out", "ipmaps.npy", "data.h5",
                     "ipalm.npy")
    if "d" in rows:
        runner.mrgen("espirit", "--mask", "mask.npy", "data.h5", "maps.npy")


def row_a(runner: Runner):
    mrgen = runner.mrgen("ipalm", "--reg", "tv", "--iters", 100, "knee", "a_ipalm")
    nlinv = runner.bart("nlinv", "knee", "a_nlinv")
    ecalib = runner.bart("ecalib", "-m1", "knee", "a_maps")
    pics = runner.bart("pics", "-i", 100, "-R", "T:3:0:0.01", "knee", "a_maps", "a_pics")
    return [("a", "ipalm --reg tv --iters 100, 15 x 640 x 368", mrgen, "bart nlinv", nlinv,
             "<= 1.0 (0.5)"),
            ("", "  (reference)", mrgen, f"bart ecalib + pics -R T -i 100 ({ecalib:.1f} + "
             f"{pics:.1f} s)", ecalib + pics, "")]


def row_b(runner: Runner):
    mrgen = runner.mrgen("ipalm", "--reg", "tv", "k256", "b_ipalm")
    ecalib = runner.bart("ecalib", "-m1", "k256", "b_maps")
    pics = runner.bart("pics", "-R", "T:3:0:0.01", "k256", "b_maps", "b_pics")
    peer = "bart pics -R T:3:0:0.01"
    return [("b", "ipalm --reg tv (defaults), 256 x 256, 8 coils", mrgen, peer, pics, "<= 2"),
            ("", "  (reference)", mrgen, f"bart ecalib + pics ({ecalib:.1f} + {pics:.1f} s)",
             ecalib + pics, ""),
            *start_up_floor(runner, peer, pics)]


def start_up_floor(runner: Runner, peer: str, peer_s: float):
    """Row b's floor, the fastest of 3 runs each: Python importing torch, and the same
    ipalm command stopped after one iteration (start-up, reading, writing). What 100
    iterations may cost is the target minus the latter."""
    import_torch = min(runner.run([sys.executable, "-c", "import torch"]) for _ in range(3))
    one = min(runner.mrgen("ipalm", "--reg", "tv", "--iters", 1, "k256", "b_one")
              for _ in range(3))
    return [("", "  (floor) python -c 'import torch'", import_torch, peer, peer_s, ""),
            ("", "  (floor) the same ipalm, --iters 1", one, peer, peer_s, "")]


def nlinv_multiple(runner: Runner) -> float:
    return NLINV_MULTIPLE * runner.bart("nlinv", "k256", "nlinv256")


def row_c(runner: Runner):
    mrgen = runner.mrgen("langevin", "--model", "prior-brain-small", "--maps", "ipmaps.npy",
                         "--mask", "mask.npy", "--var", "var.npy", "data.h5", "mmse.npy")
    return [("c", "README langevin --model prior-brain-small --var", mrgen,
             f"{NLINV_MULTIPLE} x bart nlinv", nlinv_multiple(runner), "<= 1")]


def row_d(runner: Runner):
    mrgen = runner.mrgen("deepen", "--model", "deepen-brain-small", "--maps", "maps.npy",
                         "--mask", "mask.npy", "--mode", "sample", "--samples", 8, "--chunk", 8,
                         "--steps", 100, "--keep", 25, "--var", "ds-var.npy", "data.h5",
                         "ds-mmse.npy")
    return [("d", "README deepen --mode sample", mrgen, f"{NLINV_MULTIPLE} x bart nlinv",
             nlinv_multiple(runner), "<= 1")]


def row_e(runner: Runner):
    mrgen = runner.mrgen("convdecoder", "--mask", "mask.npy", "data.h5", "cd.npy")
    return [("e", "convdecoder (defaults), 256 x 256, 8 coils", mrgen, "10 minutes",
             CONVDECODER_TARGET, "<= 1")]


ROWS = {"a": row_a, "b": row_b, "c": row_c, "d": row_d, "e": row_e}


def print_header(threads):
    print(f"\n{threads} thread(s) for every process (OMP_NUM_THREADS), {os.cpu_count()} CPUs")
    print("| row | job | mrgen s | peer | peer s | mrgen / peer | target |")
    print("|---|---|---|---|---|---|---|", flush=True)


def print_rows(results):
    for name, job, mrgen, peer, peer_s, target in results:
        more = "> " if isinstance(mrgen, Stopped) else ""
        print(f"| {name} | {job} | {more}{mrgen:.1f} | {peer} | {peer_s:.1f} | "
              f"{more}{mrgen / peer_s:.2f} | {target} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="a,b", help="any of a,b,c,d,e (default a,b)")
    parser.add_argument("--threads", type=int,
                        default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    parser.add_argument("--limit", type=float, metavar="S",
                        help="stop an mrgen command after S seconds (default: no limit)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the outputs")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or shutil.which("bart") is None:
        parser.error(f"unknown rows {unknown}" if unknown else "needs bart on the PATH")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        runner = Runner(folder, args.threads, args.limit)
        print(f"load average {os.getloadavg()[0]:.1f} at the start; preparing ...",
              file=sys.stderr, flush=True)
        if "a" in rows:
            prepare_knee(folder)
        if set(rows) & set("bcde"):
            prepare_brain(runner, rows)
        print_header(args.threads)
        for row in rows:
            print(f"row {row} ...", file=sys.stderr, flush=True)
            print_rows(ROWS[row](runner))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
