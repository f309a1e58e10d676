"""NUFFT backends side by side: accuracy against the direct sum, and wall time.

    OMP_NUM_THREADS=1 python benchmarks/bench_nufft.py [--size 256] [--coils 8] [--repeat 3]

Accuracy: a 64 x 64 complex image, 32 golden-angle spokes of 128 samples; the relative error
||y - y_direct|| / ||y_direct|| of the forward transform against ``mrgen.nufft.direct_nudft``
(float64), and the adjointness error |<A x, y> - <x, A^H y>| / |<A x, y>|. Backends with
another scale convention are compared after the best complex scalar (the sign and the
coordinates are mapped to each backend's convention, so only a constant factor differs).

Time: forward + adjoint of --coils coil images of --size^2 at 64 golden-angle spokes of
2 x size samples (the radial benchmark's case), best of --repeat, plan or setup included
once (plans are built ahead for mrgen and torchkbnufft, as a solver keeps them). bart runs
as a process on .cfl files (its time includes process start and file I/O, which its own
solvers (pics) do not pay per transform).

Backends: mrgen (FINUFFT, eps 1e-6, 2x grid), torchkbnufft (default Kaiser-Bessel table,
2x grid, width 6), sigpy (oversampling 1.25, width 4: its defaults), bart nufft (defaults).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def relative(y, reference):
    """The error after the best complex scalar: ||a y - ref|| / ||ref||, and a."""
    y, reference = np.asarray(y, np.complex128).ravel(), np.asarray(reference).ravel()
    a = np.vdot(y, reference) / np.vdot(y, y)
    return np.linalg.norm(a * y - reference) / np.linalg.norm(reference), a


def adjointness(forward, adjoint, x, y):
    lhs = np.vdot(np.asarray(forward(x), np.complex128).ravel(), y.ravel())
    rhs = np.vdot(x.ravel(), np.asarray(adjoint(y), np.complex128).ravel())
    return abs(lhs - rhs) / abs(lhs)


class Mrgen:
    name = "mrgen (finufft)"

    def __init__(self, coords, grid, batch):
        from mrgen.nufft import Nufft

        self.op = Nufft(torch.from_numpy(coords), grid)

    def forward(self, x):
        return self.op.forward(torch.from_numpy(x)).numpy()

    def adjoint(self, y):
        return self.op.adjoint(torch.from_numpy(y)).numpy()


class TorchKb:
    name = "torchkbnufft"

    def __init__(self, coords, grid, batch):
        import torchkbnufft as tkbn

        # radians, (2, M); the image axes in the same order
        self.k = torch.from_numpy((coords.reshape(-1, 2) * (2 * np.pi / np.array(grid))).T
                                  .astype(np.float32).copy())
        self.shape = coords.shape[:-1]
        self.fwd = tkbn.KbNufft(im_size=grid)
        self.adj = tkbn.KbNufftAdjoint(im_size=grid)

    def forward(self, x):
        y = self.fwd(torch.from_numpy(x).reshape(1, -1, *x.shape[-2:]), self.k)
        return y.reshape(*x.shape[:-2], *self.shape).numpy()

    def adjoint(self, y):
        lead = y.shape[:-len(self.shape)]
        x = self.adj(torch.from_numpy(y).reshape(1, -1, self.k.shape[1]), self.k)
        return x.reshape(*lead, *x.shape[-2:]).numpy()


class Sigpy:
    name = "sigpy (1.25x, width 4)"

    def __init__(self, coords, grid, batch):
        self.coords, self.grid = coords, grid

    def forward(self, x):
        import sigpy

        return sigpy.nufft(x, self.coords)

    def adjoint(self, y):
        import sigpy

        return sigpy.nufft_adjoint(y, self.coords, (*y.shape[:-2], *self.grid))


class Bart:
    name = "bart nufft (process)"

    def __init__(self, coords, grid, batch):
        from mrgen import io
        from mrgen.io.trajectory import trajectory_for_file

        self.folder = Path(tempfile.mkdtemp())
        self.grid, self.shape = grid, coords.shape[:-1]
        array, layout = trajectory_for_file(str(self.folder / "t.cfl"), coords)
        io.write_array(str(self.folder / "t.cfl"), array, layout=layout)

    def _run(self, *args):
        subprocess.run(["bart", *args], check=True, capture_output=True)

    def forward(self, x):
        from mrgen import io
        from mrgen.io.layout import COIL, PHS1, READ
        from mrgen.io.trajectory import read_samples

        lead = x.shape[:-2]
        coils = x.reshape(-1, *x.shape[-2:])
        io.write_array(str(self.folder / "x.cfl"), coils, layout=(COIL, READ, PHS1))
        self._run("nufft", str(self.folder / "t"), str(self.folder / "x"),
                  str(self.folder / "y"))
        y = read_samples(str(self.folder / "y.cfl"))
        return y.reshape(*lead, *self.shape)

    def adjoint(self, y):
        from mrgen import io
        from mrgen.io.cfl import read_cfl
        from mrgen.io.layout import COIL, PHS1, READ
        from mrgen.io.refs import parse_ref
        from mrgen.io.trajectory import samples_for_file

        lead = y.shape[:-len(self.shape)]
        samples = y.reshape(-1, *self.shape)
        array, layout = samples_for_file(str(self.folder / "y.cfl"), samples)
        io.write_array(str(self.folder / "y.cfl"), array, layout=layout)
        self._run("nufft", "-a", "-d", f"{self.grid[0]}:{self.grid[1]}:1",
                  str(self.folder / "t"), str(self.folder / "y"), str(self.folder / "x"))
        x, _ = read_cfl(parse_ref(str(self.folder / "x.cfl")), (COIL, READ, PHS1))
        return x.reshape(*lead, *self.grid)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from mrgen.nufft import direct_nudft
    from mrgen.trajectory import radial

    backends = [Mrgen, TorchKb, Sigpy] + ([Bart] if shutil.which("bart") else [])
    gen = np.random.default_rng(0)
    small, grid = radial(128, 32, 64, golden=True), (64, 64)
    x = (gen.standard_normal((64, 64)) + 1j * gen.standard_normal((64, 64))).astype(np.complex64)
    y = (gen.standard_normal(small.shape[:-1]) + 1j * gen.standard_normal(small.shape[:-1])
         ).astype(np.complex64)
    reference = direct_nudft(torch.from_numpy(x), torch.from_numpy(small)).numpy()

    size = args.size
    big = radial(2 * size, 64, size, golden=True)
    coils = (gen.standard_normal((args.coils, size, size))
             + 1j * gen.standard_normal((args.coils, size, size))).astype(np.complex64)
    print(f"accuracy: 64 x 64, 32 golden spokes x 128; time: {args.coils} coils x {size}^2, "
          f"64 golden spokes x {2 * size}, forward + adjoint, best of {args.repeat}; "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'backend':24s} {'rel. error':>11s} {'scale':>14s} {'adjointness':>12s} "
          f"{'time (s)':>9s}")
    for backend in backends:
        small_op = backend(small, grid, 1)
        error, scale = relative(small_op.forward(x), reference)
        adjoint_error = adjointness(small_op.forward, small_op.adjoint, x, y)
        op = backend(big, (size, size), args.coils)
        best = math.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            op.adjoint(op.forward(coils))
            best = min(best, time.perf_counter() - start)
        print(f"{backend.name:24s} {error:11.2e} {abs(scale):14.4g} {adjoint_error:12.2e} "
              f"{best:9.3f}")


if __name__ == "__main__":
    main()
