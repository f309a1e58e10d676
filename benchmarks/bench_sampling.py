"""Posterior sampling throughput: Langevin steps and kept samples per second.

    python benchmarks/bench_sampling.py [--device cuda] [--size 320] [--coils 15] [--steps 30]

The chain of ``mrgen langevin`` on the iPALM posterior with fixed maps (mrgen.posterior), for
the paper-size learned prior (EnergyConfig(): 48-channel base, 6 stages, 320 crop; random
weights: the cost of a step does not depend on them) and for TV, on a synthetic 15-coil scan of
``--size``, each as plain ULA and with the solved preconditioner of langevin's default (its
setup, a few dozen energy gradients, not counted); ``--chains`` slices advance together as
one batch. Samples per second count every
``--thin``-th step (the papers keep every 15th). The default size is the paper's 320 x 320 with
15 coils, for a GPU (benchmarks/gpu_checks.sh); on a CPU use e.g. --size 128 --coils 8.

    python benchmarks/bench_sampling.py --check [--model prior-brain-small|tv|deepen-brain-small]
        [--factor 10] [--langevin-args "..."]

``--check`` runs the README's example as a user would (whole processes: ``mrgen phantom``,
``mask``, ``ipalm`` for the maps, then ``mrgen langevin --model ... --maps --mask --var`` with
its defaults) and a reference run of ``--factor`` times the steps (burn-in and samples scaled,
same chains and thinning, another seed), and ``bart nlinv`` on the same k-space. It prints,
over the object (phantom > 10% of its maximum), the MMSE's PSNR with the reference's MMSE as
truth (target: within 0.5 dB of the reference, i.e. the two means differ by less than the
reference's own sampling error; read with the PSNR of each against the phantom), the relative
error of the mean variance over the object (target < 10%) and pixel by pixel, the ESS / R-hat
line each run prints, and each wall time beside nlinv's (target: fast run <= 30x nlinv).

    python benchmarks/bench_sampling.py --check --deepen-sample --model deepen-brain-small
        [--deepen-args "--samples 4 --chunk 4 --steps 100 --keep 50 --precondition"]

checks ``mrgen deepen --mode sample`` (ESPIRiT maps) the same way: the reference runs
``--factor`` x the steps per chain and keeps ``--factor`` x the states.
``--reference-args "--precision float32"`` checks bfloat16 chains (the default where the CPU
has AMX, mrgen.precision) against a float32 reference.
"""

from __future__ import annotations

import argparse
import time

import torch


def synthetic_scan(size: int, coils: int, chains: int, device, seed: int = 0):
    """k-space (chains, C, H, W) of a smooth random object seen by smooth random maps, 4x
    undersampled columns with a fully sampled centre; the mask and the unit-RSS maps."""
    from mrgen.fft import fft2c

    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(chains, 1, size // 16, size // 16, generator=gen)
    image = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")[:, 0].abs()
    phases = torch.randn(chains, coils, 4, 4, 2, generator=gen)
    maps = torch.nn.functional.interpolate(phases.permute(0, 1, 4, 2, 3).reshape(
        chains, 2 * coils, 4, 4), size=(size, size), mode="bicubic")
    maps = torch.complex(maps[:, :coils], maps[:, coils:])
    maps = maps / maps.abs().square().sum(1, keepdim=True).sqrt()
    mask = torch.zeros(chains, size, size)
    mask[..., ::4] = 1
    mask[..., size // 2 - size // 16:size // 2 + size // 16] = 1
    kspace = fft2c(maps * image[:, None].to(maps.dtype)) * mask[:, None]
    return kspace.to(device), mask.to(device), maps.to(device)


def steps_per_second(regulariser, lam, step, noise, scan, steps, device, scale_crop,
                     precondition=False):
    """Langevin steps per second of ``mrgen.posterior`` (``precondition``: the solved
    preconditioner, its setup excluded): a run of ``steps`` + 2 steps timed against one of 2."""
    from mrgen.device import generator
    from mrgen.posterior import sample_posterior

    kspace, mask, maps = scan

    def seconds(count):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        sample_posterior(kspace, mask, maps, regulariser, lam, "zf", 0, count, 1, step, noise,
                         generator(0, device), scale_crop, precondition=precondition)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds(2)                                       # warm-up
    return steps / max(seconds(steps + 2) - seconds(2), 1e-9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--coils", type=int, default=15)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--thin", type=int, default=15)
    args = parser.parse_args(argv)
    from mrgen.priors.energy import EnergyConfig, EnergyNet
    from mrgen.priors.tv import CharbonnierTV

    device = torch.device(args.device)
    scan = synthetic_scan(args.size, args.coils, args.chains, device)
    prior = EnergyNet(EnergyConfig(crop=min(320, args.size))).to(device).eval()
    for parameter in prior.parameters():
        parameter.requires_grad_(False)
    energies = [(f"learned prior (paper net, crop {prior.config.crop})", prior, 1.0, 1.0, 7.5e-3, prior.config.crop),
                ("Charbonnier TV", CharbonnierTV(1e-3).to(device), 1000.0, 1e-4, 4.5e-4, None)]
    print(f"Langevin posterior sampling, {args.chains} x {args.coils} x {args.size} x "
          f"{args.size}, {device} ({torch.get_num_threads()} CPU threads)")
    print(f"{'energy':<52} {'steps/s':>9} {'s/step':>9} {f'samples/s (thin {args.thin})':>22}")
    for name, energy, lam, step, noise, crop in energies:
        temperature = noise ** 2 / (2 * step)
        for label, preconditioned, chain_step in (("", False, step),
                                                  (", preconditioned", True, 0.2)):
            rate = steps_per_second(energy, lam, chain_step,
                                    (2 * chain_step * temperature) ** 0.5, scan, args.steps,
                                    device, crop, preconditioned)
            print(f"{name + label:<52} {rate:>9.3g} {1 / rate:>9.3g} "
                  f"{rate * args.chains / args.thin:>22.3g}")


def _run(args, cwd, env):
    """Wall seconds and stderr of one whole process."""
    import subprocess

    start = time.perf_counter()
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, args))}: {done.stderr.strip()}")
    return wall, done.stderr


def _flag_value(args, flag, default):
    return int(args[args.index(flag) + 1]) if flag in args else default


def _without(args, flags):
    """``args`` without the given flags and their values."""
    return [a for i, a in enumerate(args) if a not in flags and
            (i == 0 or args[i - 1] not in flags)]


def _fast_and_reference(fixed, extra, flags, defaults, factor, reference_extra=()):
    """[(run name, its arguments, value 1, value 2)]: ``fixed`` with the two length ``flags``
    at their values in ``extra`` (else ``defaults``), and the reference with ``factor`` x
    both (same other options plus ``reference_extra``, another seed)."""
    first, second = (_flag_value(extra, flag, d) for flag, d in zip(flags, defaults))
    rest = _without(extra, flags)
    return [(name, [*fixed, flags[0], a, flags[1], b, *rest, *more, "--seed", seed], a, b)
            for name, a, b, more, seed in (
                ("fast", first, second, (), 0),
                ("reference", first * factor, second * factor, reference_extra, 1))]


def _langevin_runs(model, extra, factor, reference_extra=()):
    """(the command's fixed part, its runs): the README's langevin example with its defaults
    and the reference with ``factor`` x its burn-in and kept samples (same chains and
    thinning)."""
    from mrgen.apps.langevin import ChainSettings  # the command's defaults

    fixed = ["langevin", "--maps", "ipmaps.npy", "--mask", "mask.npy"]
    if model != "tv":
        fixed = ["langevin", "--model", model, *fixed[1:]]
    defaults = (ChainSettings().burn_in, ChainSettings().samples)
    return fixed, _fast_and_reference(fixed, extra, ("--burn-in", "--samples"), defaults,
                                      factor, reference_extra)


def _deepen_runs(model, extra, factor, reference_extra=()):
    """The same for ``mrgen deepen --mode sample`` (ESPIRiT maps, as the README): the
    reference runs ``factor`` x the steps per chain and keeps ``factor`` x the states."""
    from mrgen.apps.deepen import SampleSettings

    fixed = ["deepen", "--model", model, "--maps", "maps.npy", "--mask", "mask.npy",
             "--mode", "sample"]
    defaults = (SampleSettings().steps, SampleSettings().keep)
    return fixed, _fast_and_reference(fixed, extra, ("--steps", "--keep"), defaults, factor,
                                      reference_extra)


def _prepare(tmp, mrgen, env, size, coils):
    """The README's file, mask, ipalm-TV maps and ESPIRiT maps (kept in ``tmp``)."""
    if not (tmp / "ipmaps.npy").exists():
        _run([*mrgen, "phantom", "--size", size, size, "--coils", coils, "--noise", 0.002,
              "data.h5"], tmp, env)
        _run([*mrgen, "mask", "--like", "data.h5", "--kind", "random-exact", "--accel", 4,
              "mask.npy"], tmp, env)
        _run([*mrgen, "ipalm", "--mask", "mask.npy", "--maps-out", "ipmaps.npy", "data.h5",
              "ipalm.npy"], tmp, env)
    if not (tmp / "maps.npy").exists():
        _run([*mrgen, "espirit", "--mask", "mask.npy", "data.h5", "maps.npy"], tmp, env)


def _nlinv_wall(tmp, env, kspace, mask):
    import shutil

    import numpy as np

    from mrgen import io

    if not shutil.which("bart"):
        return float("nan")
    io.write_array(str(tmp / "k"), (kspace * mask).astype(np.complex64), io.roles.KSPACE)
    return _run(["bart", "nlinv", tmp / "k", tmp / "n"], tmp, env)[0]


def check(model: str, factor: int, extra: list[str], size: int, coils: int, folder=None,
          deepen_sample: bool = False, reference_extra=()):
    """The README example's fast default against a reference of ``factor`` x the steps
    (``deepen_sample``: ``mrgen deepen --mode sample`` instead of ``mrgen langevin``)."""
    import os
    import shlex
    import sys
    import tempfile
    from pathlib import Path

    import h5py
    import numpy as np

    env = dict(os.environ)
    mrgen = [sys.executable, "-m", "commands"]
    tmp = Path(folder or tempfile.mkdtemp(prefix="bench_sampling_"))
    tmp.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    _prepare(tmp, mrgen, env, size, coils)
    with h5py.File(tmp / "data.h5") as f:
        kspace, truth = np.asarray(f["kspace"]), np.abs(np.asarray(f["image"]))
    nlinv = _nlinv_wall(tmp, env, kspace, np.load(tmp / "mask.npy"))
    fixed, plan = (_deepen_runs if deepen_sample else _langevin_runs)(model, extra, factor,
                                                                      reference_extra)
    labels = ("steps", "kept") if deepen_sample else ("burn-in", "samples")
    runs = {}
    for name, args, first, second in plan:
        wall, err = _run([*mrgen, *args, "--var", f"{name}-var.npy", "data.h5",
                          f"{name}-mmse.npy"], tmp, env)
        lines = [line for line in err.splitlines()
                 if "R-hat" in line or "MALA" in line or "preconditioner" in line]
        runs[name] = (wall, np.abs(np.load(tmp / f"{name}-mmse.npy")),
                      np.load(tmp / f"{name}-var.npy"), lines, first, second)
    _print_table(runs, truth, nlinv, fixed, tmp, factor, size, coils, labels, env)
    print("command: " + shlex.join(map(str, ["mrgen", *fixed, *extra, "--var", "var.npy",
                                             "data.h5", "mmse.npy"])))


def _print_table(runs, truth, nlinv, fixed, tmp, factor, size, coils, labels, env):
    import numpy as np

    support = truth > 0.1 * truth.max()
    _, ref_mean, ref_var, *_ = runs["reference"]
    print(f"Sampling check: mrgen {' '.join(map(str, fixed[:3]))} on the README "
          f"file ({coils} x {size} x {size}, 4x random-exact), CPU "
          f"({env.get('OMP_NUM_THREADS', 'all')} threads), factor {factor}; folder {tmp}")
    print(f"{'run':<10} {labels[0]:>8} {labels[1]:>8} {'wall s':>8} {'x nlinv':>8} "
          f"{'MMSE PSNR vs ref dB':>20} {'var rel err':>12} {'var px rel err':>15}")
    for name, (wall, mean, var, lines, first, second) in runs.items():
        peak = ref_mean[support].max()
        mse = np.mean((mean[support] - ref_mean[support]) ** 2)
        psnr = 10 * np.log10(peak ** 2 / mse) if mse > 0 else float("inf")
        err = abs(var[support].mean() - ref_var[support].mean()) / ref_var[support].mean()
        pixel = np.linalg.norm(var[support] - ref_var[support]) / np.linalg.norm(
            ref_var[support])
        print(f"{name:<10} {first:>8} {second:>8} {wall:>8.1f} {wall / nlinv:>8.1f} "
              f"{psnr:>20.2f} {err:>12.3f} {pixel:>15.3f}")
        for line in lines:
            print(f"    {name}: {line}")
    print(f"bart nlinv {'':>17} {nlinv:>8.1f} {1.0:>8.1f}")
    against_truth = {name: 10 * np.log10(truth[support].max() ** 2 / np.mean(
        (run[1][support] - truth[support]) ** 2)) for name, run in runs.items()}
    gap = abs(against_truth["fast"] - against_truth["reference"])
    print(f"MMSE vs the phantom: fast {against_truth['fast']:.2f} dB, reference "
          f"{against_truth['reference']:.2f} dB (gap {gap:.2f} dB; target < 0.5); variance "
          f"target < 10%; fast wall {runs['fast'][0] / nlinv:.1f}x nlinv (target <= 30x)")


def cli(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if "--check" not in argv:
        return main(argv)
    parser = argparse.ArgumentParser(description="sampling check")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--model", default="prior-brain-small")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--folder", default=None)
    parser.add_argument("--langevin-args", default="")
    parser.add_argument("--deepen-sample", action="store_true",
                        help="check mrgen deepen --mode sample (--model deepen-brain-small)")
    parser.add_argument("--deepen-args", default="")
    parser.add_argument("--reference-args", default="",
                        help="options for the reference run only (e.g. --precision float32)")
    args = parser.parse_args(argv)
    extra = (args.deepen_args if args.deepen_sample else args.langevin_args).split()
    check(args.model, args.factor, extra, args.size, args.coils, args.folder,
          args.deepen_sample, args.reference_args.split())


if __name__ == "__main__":
    cli()
