"""Benchmark of `mrgen convdecoder` (Darestani, Heckel 2021): presets, fitting speed and reconstruction quality.

    python benchmarks/bench_convdecoder.py                 # the preset table (whole commands)
    python benchmarks/bench_convdecoder.py --tables timing quality   # tables 1 and 2
    python benchmarks/bench_convdecoder.py --tables quality --quick  # smaller quality problem

Table 0, presets (the default): the README's phantom and mask, made by the commands as written
(`mrgen phantom --size 256 256 --coils 8 --noise 0.002`, `mrgen mask --kind random-exact
--accel 4`), then `mrgen zf`, `mrgen ipalm` (TV, its defaults) and `mrgen convdecoder --preset
P` for each --presets entry (default: cpu, and paper with CUDA), each a whole process with
OMP_NUM_THREADS=--threads (default 2), in one run: iterations run (of the preset's maximum;
fewer after early stopping), wall time, PSNR and SSIM against the phantom's reconstruction_rss
(mrgen metrics' conventions), and the margins the cpu preset was chosen for (over zero-filling,
under ipalm-TV). With --skip-timing or --skip-quality alone (the older interface), tables 1
and 2 run as before without table 0.

Table 1, speed: seconds per 1,000 Adam iterations of the default ConvDecoder (8 layers x 256
channels, 8x4 input) on the CPU at 256 x 256 with 8 coils, measured over --timing-iters
iterations after one warm-up and scaled; with CUDA also at fastMRI knee size (15 coils,
640 x 368, 8 layers x 256 channels), float32 (TF32 convolutions) and with --amp (bfloat16
autocast, channels_last).

Table 2, quality: a brain slice (MNI152; Shepp-Logan without nilearn) with birdcage maps
(sum |s|^2 = 1), noise-free, or with --noise simulated on a 2x finer grid, under 1D random
column masks with exactly W / R columns (fastMRI centre fractions: 8% at 4x, 4% at 8x); PSNR
and SSIM against the fully sampled RSS image (noisy with --noise, as fastMRI scores real scans;
mrgen.metrics: fastMRI conventions, maxval = the reference's maximum) for zero-filling, the
TV baselines and, for each --variants entry (coils: no maps, RSS; maps: the simulation's
maps, SENSE model), ConvDecoder with data consistency: run 1 alone, the mean and the best of
the single runs' scores, and the image averaged over --runs runs (Darestani, Heckel 2021, Section 6 and
Table 7). Times are per run; the average's is the total.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mrgen import metrics
from mrgen.coils import rss
from mrgen.fft import fft2c, ifft2c
from mrgen.untrained import build_generator, fit_network, fit_untrained

from common import bart_pics_tv, ipalm_tv


def phantom(n: int, coils: int, noise: float = 0.0):
    """A brain slice (MNI152 via mrgen phantom; Shepp-Logan without nilearn): (k-space, maps,
    reference). Noise-free, the k-space of the same grid and the exact RSS; with ``noise``,
    simulated on a 2x finer grid (no inverse crime) with that k-space noise, and the reference
    is the fully sampled noisy RSS, as fastMRI's."""
    from mrgen.phantom import make_phantom

    settings = {"size": (n, n), "coils": coils, "seed": 0}
    if noise > 0:
        settings.update(noise=noise, oversample=2)
    try:
        ph = make_phantom("brain", **settings)
    except Exception:  # nilearn missing: the optional anatomy extra
        ph = make_phantom("shepp-logan", **settings)
    maps = torch.from_numpy(np.array(ph.maps[0]))
    if noise > 0:
        kspace = torch.from_numpy(np.array(ph.kspace[0]))
        return kspace, maps, torch.from_numpy(np.array(ph.rss[0])).float()
    coil_images = torch.from_numpy(np.array(ph.maps[0] * ph.image[0]))
    return fft2c(coil_images), maps, rss(coil_images)


def column_mask(shape, accel: float, centre: float, seed: int = 0) -> torch.Tensor:
    """1D random column mask with exactly round(W / accel) columns: round(W * centre) centre
    columns (placed as fastMRI does) and the rest drawn uniformly without replacement."""
    height, width = shape
    rng = np.random.default_rng(seed)
    n_low = int(round(width * centre))
    start = (width - n_low + 1) // 2
    columns = np.zeros(width, dtype=bool)
    columns[start:start + n_low] = True
    others = np.flatnonzero(~columns)
    columns[rng.choice(others, size=max(0, round(width / accel) - n_low), replace=False)] = True
    return torch.from_numpy(np.broadcast_to(columns, shape).astype(np.float32).copy())


def seconds_per_1000(shape, coils, layers, channels, input_size, iters, device, amp=False):
    height, width = shape
    gen = torch.Generator().manual_seed(0)
    kspace = torch.randn((coils, height, width), dtype=torch.complex64, generator=gen)
    mask = column_mask(shape, 4, 0.08)
    kspace, mask = (kspace * mask).to(device), mask.to(device).bool()
    net = build_generator("convdecoder", shape, 2 * coils, layers, channels, input_size,
                          generator=gen).to(device)
    if amp and device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
        net.input = net.input.contiguous(memory_format=torch.channels_last)
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"
    try:
        warm = 10 if device.type == "cuda" else 1
        fit_network(net, kspace, mask, iters=warm, amp=amp)   # allocation, cuDNN autotuning
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fit_network(net, kspace, mask, iters=iters, amp=amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / iters * 1000
    finally:
        torch.backends.cudnn.benchmark = saved


def timing_table(args):
    rows = []
    cpu = torch.device("cpu")
    for layers, channels, input_size, note in ((8, 256, (8, 4), "default"),
                                               (6, 64, (4, 4), "paper's 8x config")):
        s = seconds_per_1000((args.size, args.size), args.coils, layers, channels, input_size,
                             args.timing_iters, cpu)
        rows.append((f"cpu ({torch.get_num_threads()} threads)",
                     f"{args.coils} x {args.size} x {args.size}",
                     f"{layers} x {channels} ({note})", "fp32", args.timing_iters, s))
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
        for amp in (False, True):
            s = seconds_per_1000((640, 368), 15, 8, 256, (8, 4), args.cuda_iters, cuda, amp)
            rows.append((name, "15 x 640 x 368", "8 x 256 (default)",
                         "bf16 amp" if amp else "fp32/tf32", args.cuda_iters, s))
    else:
        rows.append(("cuda", "15 x 640 x 368", "8 x 256", "-", 0, float("nan")))
    print("\nTable 1: ConvDecoder fitting speed (seconds per 1,000 iterations, measured over "
          "the iterations shown after a warm-up, scaled)")
    header = f"{'device':<28} {'k-space':>16} {'layers x channels':>28} {'precision':>10} " \
             f"{'iters':>6} {'s/1000 it':>10}"
    print(header)
    print("-" * len(header))
    for dev, size, net, precision, iters, s in rows:
        value = "n/a (no CUDA)" if s != s else f"{s:10.1f}"
        print(f"{dev:<28} {size:>16} {net:>28} {precision:>10} {iters:>6} {value:>10}")


def quality_table(args):
    kspace, maps, truth = phantom(args.quality_size, args.coils, args.noise)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    acquisition = (f"noise {args.noise:g}, simulated on a 2x grid" if args.noise > 0 else
                   "noise-free")
    print(f"\nTable 2: phantom {args.coils} x {args.quality_size} x {args.quality_size} "
          f"({acquisition}), "
          f"ConvDecoder {args.quality_layers} x {args.quality_channels}, input "
          f"{args.input_size[0]}x{args.input_size[1]}, {args.quality_iters} iterations, "
          f"lr 0.008, with data consistency, on {device}")
    header = f"{'accel':>5} {'sampled':>8} {'method':<34} {'PSNR [dB]':>10} {'SSIM':>7} " \
             f"{'time [s]':>9}"
    print(header)
    print("-" * len(header))
    for accel, centre in ((4, 0.08), (8, 0.04)):
        mask = column_mask(truth.shape, accel, centre, seed=accel)
        measured = kspace * mask
        fraction = f"{float(mask[0].mean()):.3f}"

        def row(name, image, seconds=None):
            """One line; baselines (seconds None) are not timed."""
            timing = "-" if seconds is None else f"{seconds:.1f}"
            print(f"{accel:>4}x {fraction:>8} {name:<34} {metrics.psnr(truth, image):>10.2f} "
                  f"{metrics.ssim(truth, image):>7.4f} {timing:>9}", flush=True)

        row("zero-filled", rss(ifft2c(measured)))
        for name, images in (("ipalm-TV joint (best lam of 3)", ipalm_tv(measured, mask)),
                             ("BART pics -R T (best lam of 4)", bart_pics_tv(measured))):
            if images:
                row(name, max(images, key=lambda x: float(metrics.psnr(truth, x))))
        for variant in args.variants:
            start = time.perf_counter()
            result = fit_untrained(measured, mask, maps if variant == "maps" else None,
                                   layers=args.quality_layers, channels=args.quality_channels,
                                   input_size=args.input_size, iters=args.quality_iters,
                                   runs=args.runs, seed=0, device=device)
            elapsed = time.perf_counter() - start
            row(f"ConvDecoder, {variant}, run 1", result["runs"][0], elapsed / args.runs)
            each = [(metrics.psnr(truth, r), metrics.ssim(truth, r)) for r in result["runs"]]
            print(f"{accel:>4}x {fraction:>8} {f'ConvDecoder, {variant}, runs: mean':<34} "
                  f"{np.mean([p for p, _ in each]):>10.2f} {np.mean([q for _, q in each]):>7.4f}"
                  f" {elapsed / args.runs:>9.1f}")
            print(f"{accel:>4}x {fraction:>8} {f'ConvDecoder, {variant}, runs: best':<34} "
                  f"{max(p for p, _ in each):>10.2f} {max(q for _, q in each):>7.4f}")
            row(f"ConvDecoder, {variant}, image mean of {args.runs}", result["image"], elapsed)


def run_command(args, threads: int, quiet: bool = True) -> tuple[float, str]:
    """Run `mrgen ARGS` as a new process with ``threads`` intra-op threads: (wall s, stderr);
    ``quiet=False`` keeps the command's report lines (and progress lines) in stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "commands", *map(str, args)]
                          + (["--quiet"] if quiet else []),
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"mrgen {' '.join(map(str, args))} failed:\n{done.stderr}")
    return elapsed, done.stderr


def preset_table(args):
    from mrgen import io

    presets = args.presets or (["cpu", "paper"] if torch.cuda.is_available() else ["cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data, mask = tmp / "data.h5", tmp / "mask.npy"
        run_command(["phantom", "--size", 256, 256, "--coils", 8, "--noise", 0.002, data],
                    args.threads)
        run_command(["mask", "--like", data, "--kind", "random-exact", "--accel", 4, mask],
                    args.threads)
        truth = torch.from_numpy(np.asarray(io.read_array(f"{data}:reconstruction_rss",
                                                          io.roles.IMAGE)))
        rows = []

        def score(name, preset, iterations, seconds, path):
            image = torch.from_numpy(np.abs(np.asarray(io.read_array(str(path),
                                                                     io.roles.IMAGE))))
            rows.append((name, preset, iterations, seconds, metrics.psnr(truth, image),
                         metrics.ssim(truth, image)))

        seconds, _ = run_command(["zf", "--mask", mask, data, tmp / "zf.npy"], args.threads)
        score("zero-filled (mrgen zf)", "-", "-", seconds, tmp / "zf.npy")
        seconds, _ = run_command(["ipalm", "--mask", mask, data, tmp / "tv.npy"], args.threads)
        score("ipalm-TV (mrgen ipalm)", "-", "100", seconds, tmp / "tv.npy")
        for preset in presets:
            out = tmp / f"cd-{preset}.npy"
            device = ["--device", "cuda"] if preset == "paper" and torch.cuda.is_available() \
                else []
            seconds, log = run_command(["convdecoder", "--mask", mask, data, out,
                                        "--preset", preset, *device, *args.extra],
                                       args.threads, quiet=False)
            chosen = re.search(r"up to (\d+) iterations", log)
            ran = re.search(r"x (\d+(?: to \d+)?) iterations on", log)
            iterations = f"{ran.group(1) if ran else '?'}/{chosen.group(1) if chosen else '?'}"
            score("ConvDecoder (mrgen convdecoder)", preset, iterations, seconds, out)
            for line in log.splitlines():
                if "convdecoder: preset" in line:
                    print(line.strip(), flush=True)
    loaded = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nTable 0: the README's phantom (8 x 256 x 256, noise 0.002), random-exact 4x mask; "
          f"whole commands with OMP_NUM_THREADS={args.threads} on {os.cpu_count()} CPUs "
          f"(load average at the end {loaded:.2f})")
    header = f"{'method':<32} {'preset':>6} {'iterations':>11} {'wall [s]':>9} " \
             f"{'PSNR [dB]':>10} {'SSIM':>7}"
    print(header)
    print("-" * len(header))
    for name, preset, iterations, seconds, psnr, ssim in rows:
        print(f"{name:<32} {preset:>6} {iterations:>11} {seconds:>9.1f} {psnr:>10.2f} "
              f"{ssim:>7.4f}")
    zf_psnr, tv_psnr = rows[0][4], rows[1][4]
    for name, preset, _, seconds, psnr, _ in rows[2:]:
        print(f"ConvDecoder {preset}: {psnr - zf_psnr:+.2f} dB over zero-filled (target >= +5), "
              f"{psnr - tv_psnr:+.2f} dB against ipalm-TV (target >= -1), {seconds / 60:.1f} "
              f"min (target <= 10 on 2 cores)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="CPU timing image size")
    parser.add_argument("--coils", type=int, default=8)
    parser.add_argument("--timing-iters", type=int, default=3,
                        help="CPU iterations timed (scaled to 1,000)")
    parser.add_argument("--cuda-iters", type=int, default=100)
    parser.add_argument("--quality-size", type=int, default=256)
    parser.add_argument("--quality-layers", type=int, default=8)
    parser.add_argument("--quality-channels", type=int, default=256)
    parser.add_argument("--quality-iters", type=int, default=2500)
    parser.add_argument("--input-size", type=int, nargs=2, default=(8, 4))
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--variants", nargs="+", choices=("coils", "maps"),
                        default=["coils", "maps"], help="without / with sensitivity maps")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="k-space noise std of the quality phantom (e.g. 0.005, as "
                             "bench_ipalm's TV section); > 0 also simulates on a 2x grid")
    parser.add_argument("--quick", action="store_true",
                        help="quality on 128 x 128: 6 x 32 networks, 4x4 input, 600 iterations")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (table 0: OMP_NUM_THREADS, default 2)")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--tables", nargs="+", choices=("presets", "timing", "quality"),
                        default=None, help="default: presets")
    parser.add_argument("--presets", nargs="+", choices=("cpu", "paper"), default=None,
                        help="table 0's convdecoder presets (default: cpu, and paper with "
                             "CUDA)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="table 0: further convdecoder options (the rest of the line)")
    args = parser.parse_args()
    if args.tables is None:
        legacy = args.skip_timing or args.skip_quality
        args.tables = [t for t, skip in (("timing", args.skip_timing),
                                         ("quality", args.skip_quality)) if not skip] \
            if legacy else ["presets"]
    if args.quick:
        args.quality_size, args.quality_layers, args.quality_channels = 128, 6, 32
        args.quality_iters, args.input_size = 600, (4, 4)
    if "presets" in args.tables:
        args.threads = args.threads or 2
        preset_table(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if "timing" in args.tables:
        timing_table(args)
    if "quality" in args.tables:
        quality_table(args)


if __name__ == "__main__":
    main()
