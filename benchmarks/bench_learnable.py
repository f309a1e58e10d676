"""What any learned model could add to ipalm-TV on single-coil data, on this corpus and budget (#13).

    python benchmarks/bench_learnable.py --corpus models/build/corpus [--tasks 256]
        [--minutes 20] [--slices 6,20,24,30,36,42] [--cache tasks.pt]

An upper bound for #13's single-coil target (a learned prior's MAP >= ipalm-TV + 3 dB at 3x
2D uniform random without a dense centre; Zach, Knoll, Pock 2023, Table 1): instead of a
prior, a network trained directly for the task, f(ipalm-TV's image, its support) -> truth, a
residual CNN with MSE loss, on the same 2 CPU cores. Two fields: "local" (14 3x3 layers, 29
pixels, what the shipped energy's field sees) and "unet" (4 levels, the whole crop).

Tasks: random 128 x 128 crops of the training split (``mrgen dataset --split train``; 55-97%
object), each sampled with its own mask and reconstructed by ipalm-TV at its defaults (the
support shrink-wrapped from TV's image, lambda chosen on held-out k-space), in ipalm's data
scale. The first 32 tasks are held out. Then the validation split's slices made like the test
slices (bench_support --case tight), 256 x 256, with bench_priors' masks: the network on
ipalm-TV's default image, then the measured k-space put back, the support and non-negativity.
A prior is a weaker learner than this (the same data, no task loss), so a gain this bound
does not reach on a budget is out of a prior's reach on that budget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn as nn

from bench_priors import masks_for
from bench_support import images

HELD_OUT = 32          # at most; a quarter of a smaller set
CROP = 128


def default_tv(truth: torch.Tensor, masks: torch.Tensor):
    """ipalm-TV at its single-coil defaults: (image in the data scale, support, scale, k-space)."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app, with_estimated_support
    from mrgen.fft import fft2c
    from mrgen.ipalm import initialise

    kspace = (fft2c(truth.to(torch.complex64)) * masks)[:, None]
    acq = Acquisition(kspace, masks, torch.ones_like(kspace), single_coil=True)
    held = with_estimated_support(acq, "", "ipalm")
    image = ipalm_app(held, IpalmSettings(PriorChoice(reg="tv"), support="off")).image
    scale = initialise(kspace, masks[:, None].float())[2].view(-1, 1, 1)
    return image / scale, (held.maps[:, 0].real > 0).float(), scale, kspace


def training_tasks(corpus: str, count: int, seed: int) -> dict:
    """``count`` crops of the training split with ipalm-TV's default image of each."""
    from mrgen.masks import make_mask

    rng = np.random.default_rng(seed)
    with h5py.File(f"{corpus}/train.h5") as f:
        slices = np.abs(f["image"][:]).astype(np.float32)
    slices /= slices.reshape(len(slices), -1).max(1)[:, None, None]
    crops = []
    while len(crops) < count:
        i = int(rng.integers(len(slices)))
        y, x = (int(v) for v in rng.integers(0, slices.shape[-1] - CROP + 1, 2))
        crop = slices[i, y:y + CROP, x:x + CROP]
        if 0.55 <= float((crop > 0.1).mean()) <= 0.97:
            crops.append(crop / crop.max())
    truth = torch.from_numpy(np.stack(crops))
    masks = torch.from_numpy(np.stack([make_mask("uniform:3:0", (CROP, CROP),
                                                 seed=int(rng.integers(1 << 30)))
                                       for _ in range(count)]))
    parts = [default_tv(truth[j:j + 32], masks[j:j + 32]) for j in range(0, count, 32)]
    tv, support, scale, kspace = (torch.cat([p[k] for p in parts]) for k in range(4))
    return {"truth": truth / scale, "tv": tv, "support": support, "scale": scale,
            "kspace": kspace, "masks": masks}


def _pair(channels_in: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels_in, channels, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1))


def _zero(layer: nn.Conv2d) -> nn.Conv2d:
    """The last layer starts at zero: each network starts as ipalm-TV's image and can only
    learn to improve it."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class LocalNet(nn.Module):
    """x + CNN(x, support): 14 3x3 layers of 48 channels, a 29-pixel field."""

    def __init__(self, channels: int = 48, layers: int = 14):
        super().__init__()
        body = [nn.Conv2d(2, channels, 3, padding=1), nn.LeakyReLU(0.1)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1)]
        self.body = nn.Sequential(*body, _zero(nn.Conv2d(channels, 1, 3, padding=1)))

    def forward(self, image, support):
        return image + self.body(torch.cat([image, support], 1))


class UNet(nn.Module):
    """x + U-Net(x, support): 4 levels of 24 * 2^l channels, a field over the whole crop."""

    def __init__(self, channels: int = 24, depth: int = 4):
        super().__init__()
        widths = [channels * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList(_pair(2 if level == 0 else widths[level - 1], widths[level])
                                  for level in range(depth))
        self.bottom = _pair(widths[depth - 1], widths[depth])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2)
                                for level in range(depth))
        self.merge = nn.ModuleList(_pair(2 * widths[level], widths[level])
                                   for level in range(depth))
        self.head = _zero(nn.Conv2d(widths[0], 1, 1))

    def forward(self, image, support):
        h, skips = torch.cat([image, support], 1), []
        for down in self.down:
            h = down(h)
            skips.append(h)
            h = nn.functional.avg_pool2d(h, 2)
        h = self.bottom(h)
        for level in reversed(range(len(self.merge))):
            h = self.merge[level](torch.cat([self.up[level](h), skips[level]], 1))
        return image + self.head(h)


def held_out(tasks: dict) -> int:
    return min(HELD_OUT, len(tasks["tv"]) // 4)


def apply(model: nn.Module, tv: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (model(tv[:, None], support[:, None])[:, 0] * support).clamp(min=0)


def train(model: nn.Module, tasks: dict, minutes: float, seed: int) -> int:
    """Adam on the MSE to the truth, batches of 8 training tasks turned and flipped at random,
    for ``minutes`` of wall time; returns the number of steps."""
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)
    start, steps = time.time(), 0
    while time.time() - start < 60 * minutes:
        j = torch.from_numpy(rng.choice(np.arange(held_out(tasks), len(tasks["tv"])), 8))
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        x, y, m = (torch.rot90(tasks[k][j, None], turns, (-2, -1))
                   for k in ("tv", "truth", "support"))
        if flip:
            x, y, m = x.flip(-1), y.flip(-1), m.flip(-1)
        loss = (model(x, m) * m - y).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps += 1
    return steps


def with_data(image: torch.Tensor, kspace: torch.Tensor, masks: torch.Tensor,
              support: torch.Tensor) -> torch.Tensor:
    """The measured k-space put back, then the support and non-negativity."""
    from mrgen.fft import fft2c, ifft2c

    merged = torch.where(masks > 0, kspace[:, 0], fft2c(image.to(torch.complex64)))
    return (ifft2c(merged).real * support).clamp(min=0)


def main(argv=None):
    from mrgen.metrics import psnr_slices

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="folder of mrgen dataset's train.h5")
    parser.add_argument("--tasks", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per network")
    parser.add_argument("--slices", default="6,20,24,30,36,42")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="keep the training tasks in this file (made if missing)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    began = time.time()
    made = f"from {args.cache}"
    if args.cache and Path(args.cache).exists():
        tasks = torch.load(args.cache)
    else:
        tasks = training_tasks(args.corpus, args.tasks, args.seed)
        if args.cache:
            torch.save(tasks, args.cache)
        made = f"made in {time.time() - began:.0f} s"
    truth = images("tight", [int(v) for v in args.slices.split(",")]).abs()
    masks = masks_for("uniform:3:0", truth.shape[0], truth.shape[-2:])
    tv, support, scale, kspace = default_tv(truth, masks)
    held = {k: v[:held_out(tasks)] for k, v in tasks.items()}

    def corrected(model, data):
        """The network on TV's image, then the measured k-space, in the data scale."""
        image = apply(model, data["tv"], data["support"]) * data["scale"]
        return with_data(image, data["kspace"], data["masks"], data["support"]) / data["scale"]

    def row(name, crops, slices):
        per_slice = psnr_slices(truth, slices)
        print(f"| {name} | {float(psnr_slices(held['truth'], crops).mean()):.2f} | "
              f"{' '.join(f'{p:.2f}' for p in per_slice)} | {float(per_slice.mean()):.2f} |",
              flush=True)

    print(f"single coil, 3x 2D uniform random; {args.tasks} training crops ({len(held['tv'])} "
          f"held out, "
          f"{made}), validation slices {args.slices} (tight), PSNR dB")
    print("| method | held-out crops | validation slices | mean |")
    print("|---|---|---|---|")
    row("ipalm-TV, default", held["tv"], tv * scale)
    valid = {"tv": tv, "support": support, "scale": scale, "kspace": kspace, "masks": masks}
    for name, model in (("local", LocalNet()), ("unet", UNet())):
        steps = train(model, tasks, args.minutes, args.seed)
        label = f"{name} ({sum(p.numel() for p in model.parameters())} parameters, {steps} steps)"
        row(f"{label}, on TV's image", apply(model, held["tv"], held["support"]),
            apply(model, tv, support) * scale)
        row(f"{label}, + data", corrected(model, held), corrected(model, valid) * scale)


if __name__ == "__main__":
    main()
