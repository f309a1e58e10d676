"""DEEPEN MAP vs SENSE (its initialisation) vs zero filling, as Table I / II of paper 004.

Small synthetic setting (CPU): MNI152 brain slices simulated with ``mrgen.phantom`` (birdcage
coils, smooth phase, k-space noise), training and test slices interleaved (disjoint). DEEPEN
is trained at 2D 4x (``poisson:4``, a mask drawn per example and step) and tested at 2D 4x
and, for generalisation (Table II), at 1D 2x (``random-exact:2``). Metrics on magnitudes
against the true image magnitude: PSNR and SSIM (data range = the reference's max), mean
over the test slices. Also the time of the paper's sampling (100 chains x 100 steps) for one
slice.

    python benchmarks/bench_deepen.py [--size 48] [--steps 100] [--width 16] [--depth 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--coils", type=int, default=4)
    parser.add_argument("--train-slices", type=int, default=16)
    parser.add_argument("--test-slices", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--chain-steps", type=int, default=100)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--energy-penalty", type=float, default=0.0)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--noise", type=float, default=0.005)
    parser.add_argument("--map-iters", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--sample-steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mrgen.deepen.model import DeepenConfig
    from mrgen.deepen.recon import deepen_map, deepen_sample
    from mrgen.deepen.training import DeepenExamples, DeepenTrainConfig, train_deepen
    from mrgen.fft import ifft2c
    from mrgen.linops import SenseOp
    from mrgen.masks import make_mask
    from mrgen.metrics import psnr_slices, ssim_slices
    from mrgen.phantom import make_phantom
    from mrgen.training.engine import EngineOptions

    total = args.train_slices + args.test_slices
    ph = make_phantom("brain", size=(args.size, args.size), coils=args.coils, slices=total,
                      noise=args.noise, seed=0)
    kspace = torch.from_numpy(ph.kspace)
    maps = torch.from_numpy(ph.maps)
    truth = torch.from_numpy(ph.image)
    test = np.arange(total)[:: max(total // args.test_slices, 1)][: args.test_slices]
    train = np.setdiff1d(np.arange(total), test)
    examples = DeepenExamples(kspace[train], maps[train], truth[train],
                              {"files": [], "slices": len(train), "shape": list(kspace.shape[1:]),
                               "normalisation": "bench"})
    arch = DeepenConfig(width=args.width, depth=args.depth)
    config = DeepenTrainConfig(mask="poisson:4", batch=args.batch, lr=args.lr, eps=args.eps,
                               chain_steps=args.chain_steps,
                               energy_penalty=args.energy_penalty)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        began = time.time()
        result, method = train_deepen(examples, arch, config, Path(tmp) / "m.pt",
                                      EngineOptions(steps=args.steps, seed=0))
        train_s = time.time() - began
    net = method.model.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    count = sum(p.numel() for p in net.parameters())
    print(f"DEEPEN width {args.width} depth {args.depth} ({count} parameters), "
          f"{args.size}x{args.size}, {args.coils} coils, {len(train)} training / "
          f"{len(test)} test slices; trained {args.steps} steps (batch {args.batch}, "
          f"{args.chain_steps} Langevin steps) in {train_s:.0f} s, last gap "
          f"{result.metrics.get('loss', float('nan')):.3g}")

    ref = truth[test].abs()
    rng = np.random.default_rng(7)
    rows = []
    for spec, label in (("poisson:4", "2D 4x (train)"), ("random-exact:2", "1D 2x")):
        mask = torch.from_numpy(np.stack([make_mask(spec, (args.size, args.size),
                                                    seed=int(rng.integers(1 << 30)))
                                          for _ in test]))
        y = kspace[test] * mask.unsqueeze(1)
        zf = SenseOp(maps[test]).reduce(ifft2c(y))
        began = time.time()
        out = deepen_map(net, y, maps[test], mask, iters=args.map_iters,
                         generator=torch.Generator().manual_seed(0))
        map_s = time.time() - began
        for name, image in (("zero-filled", zf), ("SENSE (init)", out.sense),
                            ("DEEPEN MAP", out.image)):
            mag = image.abs()
            rows.append((label, name, float(psnr_slices(ref, mag, ref.amax((1, 2))).mean()),
                         float(ssim_slices(ref, mag, ref.amax((1, 2))).mean())))
        rows.append((label, "  (MAP iterations / time)",
                     float(np.mean(out.iterations)), map_s / len(test)))
    print()
    print("| mask | method | PSNR dB | SSIM |")
    print("|---|---|---|---|")
    for label, name, a, b in rows:
        if name.startswith("  ("):
            print(f"| {label} | MAP mean iterations {a:.0f}, {b:.2f} s per slice | | |")
        else:
            print(f"| {label} | {name} | {a:.2f} | {b:.4f} |")

    mask = torch.from_numpy(make_mask("poisson:4", (args.size, args.size), seed=11))[None]
    y = kspace[test[:1]] * mask.unsqueeze(1)
    began = time.time()
    res = deepen_sample(net, y, maps[test[:1]], mask, args.eps, args.samples,
                        args.sample_steps, 1.0, 25, torch.Generator().manual_seed(0))
    sample_s = time.time() - began
    mmse = res.mean.abs()
    print()
    print(f"sampling: {args.samples} samples x {args.sample_steps} steps, one "
          f"{args.size}x{args.size} slice, CPU {args.threads} thread(s): {sample_s:.1f} s; MMSE "
          f"PSNR {float(psnr_slices(ref[:1], mmse, ref[:1].amax((1, 2))).mean()):.2f} dB, "
          f"mean variance {float(res.variance.mean()):.3g}")


if __name__ == "__main__":
    main()
