"""Posterior sampling throughput: Langevin steps and kept samples per second.

    python benchmarks/bench_sampling.py [--device cuda] [--size 320] [--coils 15] [--steps 30]

The chain of ``mrgen langevin`` on the iPALM posterior with fixed maps (mrgen.posterior), for
the paper-size learned prior (EnergyConfig(): 48-channel base, 6 stages, 320 crop; random
weights: the cost of a step does not depend on them) and for TV, on a synthetic 15-coil scan of
``--size``; ``--chains`` slices advance together as one batch. Samples per second count every
``--thin``-th step (the papers keep every 15th). The default size is the paper's 320 x 320 with
15 coils, for a GPU (benchmarks/gpu_checks.sh); on a CPU use e.g. --size 128 --coils 8.
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


def steps_per_second(regulariser, lam, step, noise, scan, steps, device, scale_crop):
    """Time ``steps`` Langevin steps (after two warm-up steps) of ``mrgen.posterior``."""
    from mrgen.device import generator
    from mrgen.posterior import sample_posterior

    kspace, mask, maps = scan

    def run(count):
        sample_posterior(kspace, mask, maps, regulariser, lam, "zf", 0, count, 1, step, noise,
                         generator(0, device), scale_crop)

    run(2)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


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
    print(f"{'energy':<34} {'steps/s':>9} {'s/step':>9} {f'samples/s (thin {args.thin})':>22}")
    for name, energy, lam, step, noise, crop in energies:
        rate = steps_per_second(energy, lam, step, noise, scan, args.steps, device, crop)
        print(f"{name:<34} {rate:>9.3g} {1 / rate:>9.3g} {rate * args.chains / args.thin:>22.3g}")


if __name__ == "__main__":
    main()
