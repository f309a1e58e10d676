"""Start-up time: how fast mrgen answers before any work (issue 12, part 6: fail fast).

`mrgen --help` and a command with a missing input (`mrgen zf missing.h5 out.npy`) should both
answer without importing torch; `python -c 'import torch'` is shown for scale. Each is run
--runs times as a fresh process; the table gives the median wall time and its ratio to
`mrgen --help`.

    python benchmarks/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def mrgen_cmd() -> list[str]:
    exe = shutil.which("mrgen")
    return [exe] if exe else [sys.executable, "-m", "commands"]


def timed(argv, runs, cwd) -> tuple[float, int]:
    """Median wall time of ``runs`` fresh runs of ``argv`` and the exit code of the last."""
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per row (median)")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = [
        ("mrgen --help", mrgen_cmd() + ["--help"]),
        ("mrgen zf missing.h5 out.npy", mrgen_cmd() + ["zf", "missing.h5", "out.npy"]),
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
    ]
    with tempfile.TemporaryDirectory() as folder:
        env_root = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = root + (os.pathsep + env_root if env_root else "")
        results = [(name, *timed(argv, args.runs, folder)) for name, argv in rows]
        left = os.listdir(folder)
    base = results[0][1]
    print(f"start-up, median of {args.runs} runs ({os.cpu_count()} CPUs)")
    print(f"{'command':<32} {'wall [s]':>9} {'x --help':>9} {'exit':>5}")
    for name, seconds, code in results:
        print(f"{name:<32} {seconds:>9.3f} {seconds / base:>9.2f} {code:>5}")
    if left:
        print(f"warning: files left behind: {', '.join(left)}")


if __name__ == "__main__":
    main()
