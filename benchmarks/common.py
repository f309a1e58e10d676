"""What the benchmarks share: a synthetic knee-sized scan, timing, and BART/mrgen runners.

Run the benchmarks as scripts (python benchmarks/bench_X.py); this folder is then on the path.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class KneeScan:
    kspace: np.ndarray   # (coils, H, W) complex64, undersampled
    maps: np.ndarray     # (coils, H, W) true maps, unit root-sum-of-squares
    image: np.ndarray    # (H, W) complex truth
    frame: tuple         # the object's bounding box, for scoring
    mask: np.ndarray     # (W,) sampled columns

    @property
    def support(self) -> np.ndarray:
        magnitude = np.abs(self.image)
        return magnitude > 0.05 * magnitude.max()


def knee_like(coils=15, shape=(640, 368), acs=24, accel=4, noise=1e-3, seed=0) -> KneeScan:
    """fastMRI-knee-sized k-space: a textured Shepp-Logan object in the central half of the
    readout (2x readout oversampling), coils on an ellipse around it, complex noise, every
    ``accel``-th column plus ``acs`` centre columns."""
    from scipy.ndimage import gaussian_filter
    import sigpy

    from mrgen.fft import fft2c

    height, width = shape
    gen = np.random.default_rng(seed)
    oh, ow = int(height * 0.45), int(width * 0.85)
    obj = np.abs(sigpy.shepp_logan((oh, ow)))
    texture = gaussian_filter(gen.standard_normal((oh, ow)), 2)
    obj = obj * (1 + 0.15 * texture / texture.std()) * (obj > 0)
    image = np.zeros(shape, np.complex128)
    top, left = (height - oh) // 2, (width - ow) // 2
    image[top:top + oh, left:left + ow] = obj
    y, x = np.mgrid[:height, :width]
    image *= np.exp(1j * (0.8 * np.pi * x / width + 0.5 * np.pi * (y / height) ** 2))
    yn, xn = (y - height / 2) / (height / 2), (x - width / 2) / (width / 2)
    maps = []
    for c in range(coils):
        angle = 2 * np.pi * c / coils + 0.1 * gen.standard_normal()
        dy = (yn - 0.52 * np.sin(angle)) * height / 2
        dx = (xn - 0.94 * np.cos(angle)) * width / 2
        r = np.sqrt(dy ** 2 + dx ** 2 + (0.02 * height) ** 2)
        maps.append(np.exp(1j * (np.arctan2(dx, -dy) - angle + 0.02 * (dx + dy))) / r)
    maps = np.array(maps)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    kspace = fft2c(torch.from_numpy(maps * image)).numpy()
    kspace += noise * np.abs(kspace).max() / np.sqrt(2) * (
        gen.standard_normal(kspace.shape) + 1j * gen.standard_normal(kspace.shape))
    mask = np.zeros(width, np.float32)
    mask[::accel] = 1
    mask[width // 2 - acs // 2:width // 2 - acs // 2 + acs] = 1
    frame = (slice(top, top + oh), slice(left, left + ow))
    return KneeScan((kspace * mask).astype(np.complex64), maps.astype(np.complex64),
                    image.astype(np.complex64), frame, mask)


def best_time(func, repeat):
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def ipalm_tv(measured, mask, weights=(300.0, 1000.0, 3000.0)):
    """Joint ipalm-TV of one slice (C, H, W), 100 iterations, for each lam = mu of ``weights``
    (the caller keeps the best: an upper bound for TV)."""
    from mrgen.ipalm import IpalmOptions, ipalm
    from mrgen.priors.tv import CharbonnierTV

    return [ipalm(measured[None], mask[None], CharbonnierTV(),
                  IpalmOptions(lam=w, mu=w, iters=100)).image[0] for w in weights]


def bart_pics_tv(measured, maps=None, weights=(0.001, 0.003, 0.01, 0.03)):
    """BART pics -R T (100 iterations) of one slice (C, H, W) for each weight, magnitudes;
    with the given maps, else ecalib -m1's. [] without bart or when ecalib fails."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from mrgen import io

    if shutil.which("bart") is None:
        return []
    images = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        io.write_array(str(tmp / "k"), np.asarray(measured), io.roles.KSPACE)
        if maps is not None:
            io.write_array(str(tmp / "m"), np.asarray(maps), io.roles.MAPS)
        else:
            calibrated = subprocess.run(["bart", "ecalib", "-m1", str(tmp / "k"),
                                         str(tmp / "m")], capture_output=True)
            if calibrated.returncode != 0:  # e.g. too few ACS lines for its kernel
                print("  (BART ecalib failed on this mask; no BART row)", flush=True)
                return []
        for weight in weights:
            subprocess.run(["bart", "pics", "-S", "-i", "100", "-R", f"T:3:0:{weight}",
                            str(tmp / "k"), str(tmp / "m"), str(tmp / "x")], check=True,
                           capture_output=True)
            images.append(torch.from_numpy(np.abs(io.read_array(str(tmp / "x"),
                                                                io.roles.IMAGE))))
    return images
