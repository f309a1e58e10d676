"""Deep J-Sense vs MoDL (ESPIRiT maps) vs L2 J-Sense, as Table 1 and Fig. 3 of Arvinte et al. 2021.

Small synthetic setting (CPU): MNI152 brain slices simulated with ``mrgen.phantom`` (birdcage
coils, smooth phase, noise), training and test slices interleaved (disjoint). Both learned
models use the same image denoiser, the same unrolls and CG steps, are trained with the same
steps, loss (-SSIM), optimizer and masks (random-exact at R = 4 with a fixed ACS fraction), and
are tested at R = 2..6 with the same ACS lines (Fig. 3's protocol). Metrics on the RSS
images against the reference RSS: SSIM (data range = reference max) and NMSE per slice; mean,
median and std over the test slices and 3 masks each.

    python benchmarks/bench_djsense.py [--size 48] [--steps 150] [--coils 4]
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
    parser.add_argument("--test-slices", type=int, default=6)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--unrolls", type=int, default=3)
    parser.add_argument("--cg", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--kernel", type=int, nargs=2, default=(9, 7))
    parser.add_argument("--center", type=float, default=0.125)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mrgen.djsense.model import DJSense, DJSenseConfig
    from mrgen.djsense.training import Examples, TrainConfig, reconstruct, train_djsense
    from mrgen.masks import make_mask
    from mrgen.metrics import nmse_slices, ssim_slices
    from mrgen.phantom import make_phantom
    from mrgen.training.engine import EngineOptions

    total = args.train_slices + args.test_slices
    ph = make_phantom("brain", size=(args.size, args.size), coils=args.coils, slices=total,
                      noise=0.002, seed=0)
    test_idx = np.arange(total)[1::max(1, total // args.test_slices)][:args.test_slices]
    train_idx = np.setdiff1d(np.arange(total), test_idx)
    train = Examples([ph.kspace[i] for i in train_idx], [ph.rss[i] for i in train_idx],
                     {"files": [], "slices": len(train_idx)})
    common = dict(unrolls=args.unrolls, image_cg=args.cg, map_kernel=tuple(args.kernel),
                  width=args.width, blocks=4)
    config = TrainConfig(mask=f"random-exact:4:{args.center}", lr=args.lr,
                         decay_every=max(1, args.steps // 3), curriculum=args.steps // 4)
    models = {}
    for name, arch in (("Deep J-Sense", DJSenseConfig(mode="djsense", map_cg=args.cg, **common)),
                       ("MoDL (ESPIRiT)", DJSenseConfig(mode="modl", map_cg=0, **common))):
        began = time.monotonic()
        _, method = train_djsense(train, arch, config, f"/tmp/bench_djsense_{arch.mode}.pt",
                                  EngineOptions(steps=args.steps))
        params = sum(p.numel() for p in method.model.parameters())
        print(f"trained {name}: {args.steps} steps in {time.monotonic() - began:.0f} s, "
              f"{params} parameters")
        models[name] = method.model.eval()
    models["L2 J-Sense"] = DJSense(DJSenseConfig(mode="l2", map_cg=args.cg, **common)).eval()

    def evaluate(model, accel, center=args.center):
        ssims, nmses = [], []
        for i in test_idx:
            for rep in range(3):
                mask = make_mask(f"random-exact:{accel}:{center}", (args.size, args.size),
                                 seed=1000 + 10 * int(i) + rep, tolerance=None)
                k = torch.from_numpy(ph.kspace[i:i + 1])
                m = torch.from_numpy(mask[None])
                out = reconstruct(model, k * m.unsqueeze(1), m)["rss"][0].float()
                ref = torch.from_numpy(ph.rss[i])
                ssims.append(float(ssim_slices(ref, out, data_range=ref.max())[0]))
                nmses.append(float(nmse_slices(ref, out)[0]))
        return np.array(ssims), np.array(nmses)

    print(f"\nTable 1 analogue: R = 4, {args.size}x{args.size}, {args.coils} coils, "
          f"{len(test_idx)} test slices x 3 masks, ACS {args.center}")
    print(f"{'method':16s} {'avg SSIM':>9s} {'med SSIM':>9s} {'std SSIM':>9s} "
          f"{'avg NMSE':>9s} {'med NMSE':>9s} {'std NMSE':>9s}")
    for name, model in models.items():
        s, n = evaluate(model, 4)
        print(f"{name:16s} {s.mean():9.4f} {np.median(s):9.4f} {s.std():9.4f} "
              f"{n.mean():9.4f} {np.median(n):9.4f} {n.std():9.4f}")
    print("\nFig. 3 analogue: mean SSIM (std) at R = 2..6, models trained at R = 4, same ACS")
    print(f"{'method':16s} " + " ".join(f"{'R=' + str(r):>15s}" for r in range(2, 7)))
    for name, model in models.items():
        cells = []
        for accel in range(2, 7):
            s, _ = evaluate(model, accel)
            cells.append(f"{s.mean():.4f} ({s.std():.3f})")
        print(f"{name:16s} " + " ".join(f"{c:>15s}" for c in cells))

    centres = (args.center, args.center * 2 / 3, args.center / 2)
    print(f"\nFig. 4 analogue: mean SSIM at R = 4 as the ACS region shrinks (trained with "
          f"ACS {args.center}); the Deep J-Sense - MoDL gap")
    print(f"{'method':16s} " + " ".join(f"{'ACS ' + format(c, '.3f'):>12s}" for c in centres))
    table = {name: [evaluate(model, 4, c)[0].mean() for c in centres]
             for name, model in models.items()}
    for name, values in table.items():
        print(f"{name:16s} " + " ".join(f"{v:12.4f}" for v in values))
    gaps = [a - b for a, b in zip(table["Deep J-Sense"], table["MoDL (ESPIRiT)"])]
    print(f"{'gap':16s} " + " ".join(f"{g:12.4f}" for g in gaps))


if __name__ == "__main__":
    main()
