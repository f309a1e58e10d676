"""Non-Cartesian k-space trajectories: radial (uniform, golden-angle) and variable-density
spiral, as coordinates (..., 2).

**Convention.** A trajectory is a float32 array (shots, samples, 2): shot p (a spoke or a
spiral arm), sample n, and the coordinates (k_H, k_W) along mrgen's image axes (H, W) in
cycles per field of view, BART's units: the sample at k of an image x (H, W) is

    y(k) = 1/sqrt(H W) sum_{i, j} x[i, j] exp(-2 pi i (k_H (i - H//2) / H + k_W (j - W//2) / W)),

so integer k on [-H/2, H/2) x [-W/2, W/2) are exactly the samples of ``mrgen.fft.fft2c``
(``mrgen.nufft`` computes this sum). BART's ``traj`` writes (3, samples, spokes) with its
x (READ) and y (PHS1) coordinates first; mrgen's H is BART's READ and W its PHS1, so
``(k_H, k_W) = (traj[0], traj[1])`` and ``mrgen.io.trajectory`` converts by a transpose.

**Radial.** Spoke p has angle theta_p, sample n the signed radius
r_n = (n - (samples - 1) / 2) * size / samples (a readout of ``samples`` points over
``size`` cycles per FOV: 2x readout oversampling for samples = 2 size), at
(k_H, k_W) = r_n (sin theta_p, cos theta_p). Uniform: theta_p = pi p / spokes; golden angle:
theta_p = p pi (sqrt 5 - 1) / 2 (111.25 degrees). With samples = size these are exactly
``bart traj -r -x S -y P`` (``-G`` for golden angle); with samples = 2 size, BART's trajectory
scaled by 1/2 (``bart scale 0.5``).

**Spiral.** Arm a of ``arms`` has k = r(t) (sin phi, cos phi), t = n / (samples - 1) in [0, 1],
r(t) = kmax t^alpha, phi = 2 pi (turns t + a / arms), kmax just under size/2. alpha = 1 is the
Archimedean (uniform-density) spiral; alpha > 1 samples the centre more densely (the distance
between turns grows as t^(alpha-1)): the variable-density spiral.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

GOLDEN_ANGLE = math.pi * (math.sqrt(5.0) - 1.0) / 2.0   # radians, 111.246 degrees
KINDS = ("radial", "golden", "spiral")
NO_JOINT_MAPS = ("--traj needs --maps: iPALM's joint map estimation assumes a Cartesian grid "
                 "(its smoothness prox is a DST); give maps, e.g. from `mrgen espirit`")


def radial(samples: int, spokes: int, size: int, golden: bool = False) -> np.ndarray:
    """Radial spokes through the centre, (spokes, samples, 2) float32 (module doc)."""
    _positive(samples=samples, spokes=spokes, size=size)
    radius = (np.arange(samples) - (samples - 1) / 2.0) * (size / samples)
    step = GOLDEN_ANGLE if golden else math.pi / spokes
    angles = step * np.arange(spokes)
    direction = np.stack([np.sin(angles), np.cos(angles)], axis=-1)        # (P, 2)
    return (radius[None, :, None] * direction[:, None, :]).astype(np.float32)


def spiral(samples: int, arms: int, size: int, turns: float = 16.0,
           alpha: float = 1.5) -> np.ndarray:
    """Interleaved spiral arms from the centre out, (arms, samples, 2) float32 (module doc)."""
    _positive(samples=samples, arms=arms, size=size)
    if not turns > 0 or not alpha > 0:
        raise UsageError(f"spiral: turns ({turns:g}) and alpha ({alpha:g}) must be positive")
    t = np.linspace(0.0, 1.0, samples)
    radius = (size / 2.0 - 0.5) * t ** alpha             # stays inside [-size/2, size/2)
    phi = 2 * math.pi * (turns * t[None, :] + np.arange(arms)[:, None] / arms)
    return np.stack([radius * np.sin(phi), radius * np.cos(phi)], axis=-1).astype(np.float32)


def make_trajectory(kind: str, samples: int, shots: int, size: int, turns: float = 16.0,
                    alpha: float = 1.5) -> np.ndarray:
    """``kind`` radial | golden | spiral with ``shots`` spokes or arms."""
    if kind == "radial" or kind == "golden":
        return radial(samples, shots, size, golden=kind == "golden")
    if kind == "spiral":
        return spiral(samples, shots, size, turns, alpha)
    raise UsageError(f"--kind {kind}: expected one of {' | '.join(KINDS)}")


def grid_for(trajectory) -> tuple[int, int]:
    """The image grid (H, W) when neither ``--grid`` nor maps give one: square, N = 2 ceil(max
    |k|) over all samples (|k| the distance from the centre; always even), so that the grid
    does not depend on the directions the spokes happen to take (3 spokes of a 64 matrix reach
    only 27.3 along H but 31.5 from the centre -> 64 x 64). A BART-style trajectory file holds
    coordinates only, not the matrix it was made for: BART's ``traj -x 512`` spokes reach
    255.5 -> 512; a 2x oversampled 256 readout reaches 127.75 -> 256; a spiral of
    ``mrgen traj --size N`` reaches N/2 - 1/2 -> N."""
    coords = np.asarray(trajectory, dtype=np.float64).reshape(-1, 2)
    reach = float(np.sqrt((coords ** 2).sum(axis=-1)).max()) if coords.size else 0.0
    side = max(2, 2 * math.ceil(reach - 1e-3))
    return side, side


def check_trajectory(trajectory, grid: tuple[int, int], name: str = "trajectory") -> None:
    """Refuse coordinates outside the grid's band [-N/2, N/2] or that are not finite."""
    from .errors import DataError

    coords = np.asarray(trajectory)
    if coords.ndim < 2 or coords.shape[-1] != 2:
        raise DataError(f"{name}: expected coordinates (..., 2), got shape {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise DataError(f"{name}: holds NaN or Inf coordinates")
    for axis, n in enumerate(grid):
        reach = float(np.abs(coords[..., axis]).max())
        if reach > n / 2 + 1e-3:
            raise DataError(f"{name}: coordinates reach {reach:g} along axis {axis}, beyond "
                            f"the {n}-pixel grid's band +-{n / 2:g} (units: cycles per FOV)")


def _positive(**counts) -> None:
    for name, value in counts.items():
        if value < 1:
            raise UsageError(f"--{name} {value}: must be at least 1")
