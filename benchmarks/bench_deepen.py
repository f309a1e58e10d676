"""DEEPEN MAP vs its SENSE initialisation and the un-trained baselines, as Tables I / II of
Chand, Jacob 2025; and the time of the paper's sampling.

Small synthetic setting (CPU): MNI152 brain slices simulated with ``mrgen.phantom`` (birdcage
coils, smooth phase, k-space noise). Either DEEPEN is trained in the run (training and test
slices interleaved, disjoint) or ``--model`` gives a trained one (e.g. the shipped
``deepen-brain-small``, trained on slices 50..95): then the test slices are drawn from the
held-out slices 100..115 at the model's matrix size and coil count. DEEPEN is trained at 2D
4x (``poisson:4``) and tested at 2D 4x and, for generalisation (Table II), at 1D 2x
(``random-exact:2``).

Every method gets the true maps where it takes maps. Baselines without training: zero
filling; SENSE (lam 0.01, DEEPEN's initialisation); joint ipalm-TV and BART pics -R T (each
the best of a small lambda grid: an upper bound for TV); ConvDecoder with maps (Darestani, Heckel 2021,
un-trained network, small configuration for the CPU, data consistency). Metrics on magnitudes
against the true image magnitude: PSNR and SSIM (data range = the reference's max), mean over
the test slices.

    python benchmarks/bench_deepen.py [--model deepen-brain-small] [--size 48] [--steps 100]
        [--device cuda]

With --device cuda the DEEPEN MAP, the sampling and the baselines run on the GPU (BART on
the CPU); the time lines then report GPU seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import bart_pics_tv, ipalm_tv


def train_in_run(args, kspace, maps, truth, train):
    """Train DEEPEN on the given slices; returns (frozen network, description line)."""
    import tempfile
    from pathlib import Path

    from mrgen.deepen.model import DeepenConfig
    from mrgen.deepen.training import DeepenExamples, DeepenTrainConfig, train_deepen
    from mrgen.training.engine import EngineOptions

    examples = DeepenExamples(kspace[train], maps[train], truth[train],
                              {"files": [], "slices": len(train), "shape": list(kspace.shape[1:]),
                               "normalisation": "bench"})
    arch = DeepenConfig(width=args.width, depth=args.depth)
    config = DeepenTrainConfig(mask="poisson:4", batch=args.batch, lr=args.lr, eps=args.eps,
                               chain_steps=args.chain_steps, energy_penalty=args.energy_penalty)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.time()
        result, method = train_deepen(examples, arch, config, Path(tmp) / "m.pt",
                                      EngineOptions(steps=args.steps, seed=0))
        seconds = time.time() - began
    net = method.model.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, (f"trained here: {args.steps} steps (batch {args.batch}, {args.chain_steps} "
                 f"Langevin steps) in {seconds:.0f} s, last gap "
                 f"{result.metrics.get('loss', float('nan')):.3g}")


def test_data(args, shape=None, coils=None):
    """(kspace, maps, truth, test indices, train indices) of the phantom."""
    from mrgen.phantom import make_phantom, parse_slice_index

    size = shape or (args.size, args.size)
    coils = coils or args.coils
    if args.model:
        ph = make_phantom("brain", size=size, coils=coils, slices=args.test_slices,
                          noise=args.noise, seed=3, slice_index=parse_slice_index("100:116"))
        test, train = np.arange(args.test_slices), np.array([], dtype=int)
    else:
        total = args.train_slices + args.test_slices
        ph = make_phantom("brain", size=size, coils=coils, slices=total, noise=args.noise,
                          seed=0)
        test = np.arange(total)[:: max(total // args.test_slices, 1)][: args.test_slices]
        train = np.setdiff1d(np.arange(total), test)
    return (torch.from_numpy(ph.kspace), torch.from_numpy(ph.maps),
            torch.from_numpy(ph.image), test, train)


def untrained_baselines(args, y, maps, mask, ref):
    """({name: (S, H, W) image}, {name: seconds per slice}) of the methods that need no
    training data (the TV grids are timed per lambda)."""
    from mrgen.metrics import psnr_slices
    from mrgen.untrained import fit_untrained

    def best(candidates):   # per method one lambda for all slices: the best mean PSNR
        stacks = [torch.stack(c) for c in zip(*candidates)]
        return max(stacks, key=lambda s: float(psnr_slices(ref, s, ref.amax((1, 2))).mean()))

    images, seconds = {}, {}
    name = "ipalm-TV joint (best lam of 3)"
    began = time.time()
    images[name] = best([ipalm_tv(y[s], mask[s]) for s in range(len(y))])
    seconds[name] = elapsed(began, y.device) / len(y) / 3
    name = "BART pics -R T, same maps (best of 4)"
    began = time.time()
    bart = [bart_pics_tv(y[s].cpu(), maps[s].cpu()) for s in range(len(y))]
    if all(bart):
        images[name] = best([[b.to(ref.device) for b in c] for c in bart])
        seconds[name] = (time.time() - began) / len(y) / 4
    name = f"ConvDecoder {args.cd_layers}x{args.cd_channels}, maps, {args.cd_iters} it"
    began = time.time()
    images[name] = fit_untrained(y, mask, maps, layers=args.cd_layers,
                                 channels=args.cd_channels, iters=args.cd_iters, seed=0,
                                 device=y.device)["image"].to(y.device)
    seconds[name] = elapsed(began, y.device) / len(y)
    return images, seconds


def elapsed(began, device):
    """Seconds since ``began``, after the device's queued work has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.time() - began


def where(device, threads):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {threads} thread(s)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None,
                        help="a trained DEEPEN model (file or shipped name) instead of training")
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
    parser.add_argument("--cd-layers", type=int, default=5)
    parser.add_argument("--cd-channels", type=int, default=64)
    parser.add_argument("--cd-iters", type=int, default=500)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    from mrgen.deepen.recon import deepen_map, deepen_sample
    from mrgen.deepen.training import load_deepen, sampler_eps
    from mrgen.fft import ifft2c
    from mrgen.linops import SenseOp
    from mrgen.masks import make_mask
    from mrgen.metrics import psnr_slices, ssim_slices

    if args.model:
        net, metadata = load_deepen(args.model)
        coils, height, width = metadata["training"]["data"]["shape"]
        kspace, maps, truth, test, train = test_data(args, (height, width), coils)
        args.eps = sampler_eps(metadata)
        source = f"model {args.model} ({metadata['training'].get('steps', '?')} training steps)"
    else:
        kspace, maps, truth, test, train = test_data(args)
        net, source = train_in_run(args, kspace, maps, truth, train)
    size = tuple(kspace.shape[-2:])
    net = net.to(device)
    kspace, maps, truth = kspace.to(device), maps.to(device), truth.to(device)
    count = sum(p.numel() for p in net.parameters())
    print(f"DEEPEN ({count} parameters), {size[0]}x{size[1]}, {kspace.shape[1]} coils, "
          f"{len(train)} training / {len(test)} test slices; {source}")

    ref = truth[test].abs()
    rng = np.random.default_rng(7)
    rows = []
    for spec, label in (("poisson:4", "2D 4x (train)"), ("random-exact:2", "1D 2x")):
        mask = torch.from_numpy(np.stack([make_mask(spec, size, seed=int(rng.integers(1 << 30)))
                                          for _ in test])).to(device)
        y = kspace[test] * mask.unsqueeze(1)
        zf = SenseOp(maps[test]).reduce(ifft2c(y))
        began = time.time()
        out = deepen_map(net, y, maps[test], mask, iters=args.map_iters,
                         generator=torch.Generator(device).manual_seed(0))
        map_s = elapsed(began, device)
        images = {"zero-filled": zf, "SENSE (init, lam 0.01)": out.sense}
        seconds = {}
        if not args.no_baselines:
            more, seconds = untrained_baselines(args, y, maps[test], mask, ref)
            images.update(more)
        images["DEEPEN MAP"] = out.image
        seconds["DEEPEN MAP"] = map_s / len(test)
        for name, image in images.items():
            mag = image.to(ref.device).abs()
            rows.append((label, name, float(psnr_slices(ref, mag, ref.amax((1, 2))).mean()),
                         float(ssim_slices(ref, mag, ref.amax((1, 2))).mean()),
                         seconds.get(name)))
        print(f"{label}: DEEPEN MAP mean iterations {np.mean(out.iterations):.0f}")
    print()
    print("| mask | method | PSNR dB | SSIM | s per slice |")
    print("|---|---|---|---|---|")
    for label, name, a, b, t in rows:
        print(f"| {label} | {name} | {a:.2f} | {b:.4f} | {'' if t is None else f'{t:.2f}'} |")

    mask = torch.from_numpy(make_mask("poisson:4", size, seed=11))[None].to(device)
    y = kspace[test[:1]] * mask.unsqueeze(1)
    began = time.time()
    res = deepen_sample(net, y, maps[test[:1]], mask, args.eps, args.samples,
                        args.sample_steps, 1.0, 25, torch.Generator(device).manual_seed(0))
    sample_s = elapsed(began, device)
    mmse = res.mean.abs()
    print()
    print(f"sampling: {args.samples} samples x {args.sample_steps} steps, one "
          f"{size[0]}x{size[1]} slice, {where(device, args.threads)}: {sample_s:.1f} s; MMSE "
          f"PSNR {float(psnr_slices(ref[:1], mmse, ref[:1].amax((1, 2))).mean()):.2f} dB, "
          f"mean variance {float(res.variance.mean()):.3g}")


if __name__ == "__main__":
    main()
