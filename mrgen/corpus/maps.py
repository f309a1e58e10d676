"""Coil sensitivities of random geometry, normalised like ``mrgen.phantom.birdcage_maps``.

Coordinates are those of the birdcage maps: x = (column - W/2) / (W/2), y = (row - H/2) /
(H/2), about [-1, 1) over the field of view. The C coil centres lie on an ellipse around the
object: semi-axes ``radius`` (1 + e) and ``radius`` (1 - e) (radius 1.2..1.7 half-widths,
ellipticity e within +-0.25), the ellipse turned by ``tilt``, the coils evenly spaced in angle
from a random start, each moved by up to a quarter of the spacing. Coil c at distance r has
the on-axis field of a circular loop of radius a (Biot-Savart), |s_c| = (1 + r^2/a^2)^(-3/2)
(a = 0.3..0.6 half-widths, the same for all coils), and a phase that turns once around the
coil's centre plus a random offset. The maps are divided by sqrt(sum_c |s_c|^2), so the sum of
squares is 1 at every pixel of the field of view and the noise-free RSS of the coil images is
the magnitude of the image. One coil gives maps of ones.
"""

from __future__ import annotations

import numpy as np


def random_coil_maps(coils: int, size: tuple[int, int],
                     rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Maps (coils, H, W) complex128 and the geometry drawn (for the manifest)."""
    h, w = size
    if coils == 1:
        return np.ones((1, h, w), dtype=np.complex128), {}
    radius = float(rng.uniform(1.2, 1.7))
    ellipticity = float(rng.uniform(-0.25, 0.25))
    tilt = float(rng.uniform(0.0, np.pi))
    loop = float(rng.uniform(0.3, 0.6))
    spacing = 2 * np.pi / coils
    angles = rng.uniform(0, 2 * np.pi) + spacing * (np.arange(coils) +
                                                    rng.uniform(-0.25, 0.25, coils))
    offsets = rng.uniform(0, 2 * np.pi, coils)
    ex = radius * (1 + ellipticity) * np.cos(angles)
    ey = radius * (1 - ellipticity) * np.sin(angles)
    cx = np.cos(tilt) * ex - np.sin(tilt) * ey
    cy = np.sin(tilt) * ex + np.cos(tilt) * ey
    y = ((np.arange(h) - h / 2.0) / (h / 2.0))[None, :, None]
    x = ((np.arange(w) - w / 2.0) / (w / 2.0))[None, None, :]
    dx, dy = x - cx[:, None, None], y - cy[:, None, None]
    magnitude = (1.0 + (dx ** 2 + dy ** 2) / loop ** 2) ** -1.5
    maps = magnitude * np.exp(1j * (np.arctan2(dx, -dy) + offsets[:, None, None]))
    maps /= np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    geometry = {"radius": radius, "ellipticity": ellipticity, "tilt": tilt, "loop_radius": loop,
                "angles": [float(a) for a in angles]}
    return maps, geometry
