"""Where ipalm-TV's time goes: FFTs per iteration, backtracking tries, time per part, float64
and allocations, and the FFT floor (issue 14, part 1).

    OMP_NUM_THREADS=1 python benchmarks/profile_ipalm.py [--size knee|256] [--iters 20]

knee: 15 x 640 x 368 (common.knee_like); 256: a Shepp-Logan phantom, 8 coils, 4x
random-exact mask; both with lam = mu = 1000. The floor is the number of coil-stack
transforms per iteration (2D FFTs; 1D FFTs as halves; each 2D DST of the maps' prox as one)
times the measured time of one torch.fft.fft2 of the coil stack. Times are wall and CPU
(process) time: on a shared machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import statistics
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from common import knee_like


def problem(size):
    if size == "knee":
        scan = knee_like()
        kspace = torch.from_numpy(scan.kspace)[None]
        mask = torch.from_numpy(np.broadcast_to(scan.mask, scan.kspace.shape[-2:]).copy())[None]
        return kspace, mask
    from mrgen.masks import make_mask
    from mrgen.phantom import make_phantom

    ph = make_phantom("shepp-logan", size=(256, 256), coils=8, noise=0.002, seed=0)
    mask = torch.from_numpy(make_mask("random-exact:4", (256, 256), seed=0))
    return torch.from_numpy(ph.kspace) * mask, mask[None]  # kspace (1, 8, 256, 256)


class FFTCounter:
    """Wraps torch.fft's transforms: full coil-stack 2D transform equivalents and seconds."""

    def __init__(self, full_elements):
        self.full = full_elements
        self.equivalents = 0.0
        self.calls = collections.Counter()
        self.seconds = 0.0
        self.dst_seconds = 0.0
        self.saved = {}

    def __enter__(self):
        import mrgen.ipalm

        # the maps' DST-II pair (scipy's on the CPU, torch.fft's otherwise): one 2D transform
        # each; the torch version's own FFTs are then not counted again
        for name in ("dst2d", "idst2d"):
            original = getattr(mrgen.ipalm, name)
            self.saved[(mrgen.ipalm, name)] = original
            setattr(mrgen.ipalm, name, self._wrap_dst(original, name))
        for name, dims in (("fft2", 2), ("ifft2", 2), ("fft", 1), ("ifft", 1)):
            original = getattr(torch.fft, name)
            self.saved[(torch.fft, name)] = original
            setattr(torch.fft, name, self._wrap(original, name, dims))
        self.inside_dst = False
        return self

    def __exit__(self, *exc):
        for (module, name), original in self.saved.items():
            setattr(module, name, original)

    def _wrap_dst(self, original, name):
        def counted(x):
            start = time.perf_counter()
            self.inside_dst = True
            try:
                out = original(x)
            finally:
                self.inside_dst = False
            self.dst_seconds += time.perf_counter() - start
            self.equivalents += x.numel() / self.full
            self.calls[f"{name} {tuple(x.shape)}"] += 1
            return out
        return counted

    def _wrap(self, original, name, dims):
        def counted(x, *args, **kwargs):
            if self.inside_dst:
                return original(x, *args, **kwargs)
            start = time.perf_counter()
            out = original(x, *args, **kwargs)
            self.seconds += time.perf_counter() - start
            self.equivalents += x.numel() / self.full * dims / 2
            self.calls[f"{name} {tuple(x.shape)}"] += 1
            return out
        return counted


class OpCensus(TorchDispatchMode):
    """Counts aten ops, the bytes of new tensors they return, and ops touching float64."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()
        self.allocated = 0
        self.double_ops = collections.Counter()
        self.grad_ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__
        self.ops[name] += 1
        inputs = [a for a in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(a, torch.Tensor)]
        if any(t.dtype in (torch.float64, torch.complex128) for t in inputs):
            self.double_ops[name] += 1
        outs = out if isinstance(out, (tuple, list)) else (out,)
        inplace = name.endswith("_") or "out" in (kwargs or {})
        for o in outs:
            if isinstance(o, torch.Tensor) and not inplace and o.numel() > 1000:
                if not any(o.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
                           for t in inputs):
                    self.allocated += o.numel() * o.element_size()
        return out


def count_tries():
    """Patches mrgen.ipalm.backtrack to record the tries of each call: [(block, tries)]."""
    import mrgen.ipalm as module

    original = module.backtrack
    records = []

    def recording(energy_fn, candidate, *args, **kwargs):
        tries = [0]

        def counted(lip):
            tries[0] += 1
            return candidate(lip)
        result = original(energy_fn, counted, *args, **kwargs)
        records.append(tries[0])
        return result

    module.backtrack = recording
    return records, lambda: setattr(module, "backtrack", original)


def fft_time(shape, repeat=15):
    """(median, best) wall seconds of torch.fft.fft2 of a complex64 array of ``shape``."""
    x = torch.randn(shape, dtype=torch.complex64)
    torch.fft.fft2(x, norm="ortho")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        torch.fft.fft2(x, norm="ortho")
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="knee", choices=("knee", "256"))
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--cprofile", action="store_true", help="print cProfile's top 25")
    args = parser.parse_args()
    from mrgen.ipalm import IpalmOptions, ipalm
    from mrgen.priors.tv import CharbonnierTV

    kspace, mask = problem(args.size)
    options = IpalmOptions(lam=1000.0, mu=1000.0, iters=args.iters)
    regulariser = CharbonnierTV()
    ipalm(kspace, mask, regulariser, IpalmOptions(lam=1000.0, mu=1000.0, iters=2))  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    ipalm(kspace, mask, regulariser, options)
    seconds = (time.perf_counter() - start) / args.iters
    cpu = (time.process_time() - cpu) / args.iters

    records, restore = count_tries()
    with FFTCounter(kspace.numel()) as ffts:
        ipalm(kspace, mask, regulariser, options)
    restore()
    with OpCensus() as census:
        ipalm(kspace, mask, regulariser, IpalmOptions(lam=1000.0, mu=1000.0, iters=5))
    image_tries, maps_tries = records[0::2], records[1::2]
    median_fft, best_fft = fft_time(tuple(kspace.shape[1:]))
    per_iter = ffts.equivalents / args.iters
    floor = per_iter * median_fft
    print(f"{args.size}: {tuple(kspace.shape)}, {torch.get_num_threads()} thread(s), "
          f"{args.iters} iterations")
    print(f"iteration: {seconds * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU (100 iterations: "
          f"{seconds * 100:.1f} s wall; load average {os.getloadavg()[0]:.1f})")
    print(f"transforms per iteration (coil-stack 2D equivalents, 1D = 1/2, a 2D DST = 1): "
          f"{per_iter:.2f}; in FFTs {ffts.seconds / args.iters * 1e3:.1f} ms, in DSTs "
          f"{ffts.dst_seconds / args.iters * 1e3:.1f} ms per iteration")
    print(f"backtracking tries per iteration: image {np.mean(image_tries):.2f} "
          f"(max {max(image_tries)}), maps {np.mean(maps_tries):.2f} (max {max(maps_tries)})")
    print(f"torch.fft.fft2 of {tuple(kspace.shape[1:])} complex64: median "
          f"{median_fft * 1e3:.1f} ms (best {best_fft * 1e3:.1f})")
    print(f"floor: {per_iter:.2f} x {median_fft * 1e3:.1f} ms = {floor * 1e3:.1f} ms; "
          f"iteration = {seconds / floor:.2f} x floor (wall; CPU {cpu / floor:.2f} x)")
    print(f"aten ops per iteration: {sum(census.ops.values()) / 5:.0f}; new tensors "
          f"{census.allocated / 5 / 2 ** 20:.0f} MiB per iteration "
          f"({census.allocated / 5 / (kspace.numel() * 8):.1f} coil stacks)")
    print(f"ops touching float64/complex128: {dict(census.double_ops) or 'none'}")
    backward = sum(n for op, n in census.ops.items() if "backward" in op)
    print(f"autograd backward ops per run: {backward}; top ops {census.ops.most_common(12)}")
    print(f"FFT calls: {dict(ffts.calls)}")
    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        ipalm(kspace, mask, regulariser, options)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
