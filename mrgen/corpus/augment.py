"""Random augmentation of a training image on the target grid, from drawn parameters.

``draw`` draws the parameters (all of them numbers, recorded in the manifest); ``apply``
applies them, so a recorded entry reproduces its image. In order:

1. geometry: flips of rows and columns, turns by 90 degrees (180 only on a non-square grid),
   then one resampling (cubic spline, zero outside) through a small affine map (rotation
   within +-10 degrees, scale 0.9..1.1, shear within +-0.08) plus an elastic warp (a smooth
   random displacement field: white noise, Gaussian-smoothed over 1/12 of the grid, scaled
   to a peak of ``elastic_px`` pixels, 1..3 pixels per 128 of the grid);
2. an intensity curve: |x| -> |x|^gamma (gamma 0.7..1.4) on the image normalised to max 1,
   the phase of a complex image kept;
3. a smooth bias field 1 + b(y, x), b a Legendre polynomial of total degree <= 2 without the
   constant term, random coefficients, scaled so max |b| = ``bias`` (0..0.2).

The result is normalised to max |image| = 1 again.
"""

from __future__ import annotations

import numpy as np

ROTATION_DEG = 10.0
SCALE = (0.9, 1.1)
SHEAR = 0.08
ELASTIC_PX = (1.0, 3.0)      # per 128 pixels of the grid
GAMMA = (0.7, 1.4)
BIAS = 0.2
BIAS_ORDER = 2


def draw(rng: np.random.Generator, size: tuple[int, int]) -> dict:
    """Augmentation parameters for an image of ``size``."""
    h, w = size
    terms = [(a, b) for a in range(BIAS_ORDER + 1) for b in range(BIAS_ORDER + 1 - a)
             if a + b > 0]
    return {
        "flip_rows": bool(rng.integers(2)), "flip_cols": bool(rng.integers(2)),
        "turns": int(rng.choice([0, 1, 2, 3] if h == w else [0, 2])),
        "rotation_deg": float(rng.uniform(-ROTATION_DEG, ROTATION_DEG)),
        "scale": float(rng.uniform(*SCALE)),
        "shear": float(rng.uniform(-SHEAR, SHEAR)),
        "elastic_px": float(rng.uniform(*ELASTIC_PX) * max(h, w) / 128.0),
        "elastic_seed": int(rng.integers(2 ** 31)),
        "gamma": float(rng.uniform(*GAMMA)),
        "bias": float(rng.uniform(0.0, BIAS)),
        "bias_terms": [[a, b, float(rng.standard_normal())] for a, b in terms],
    }


def _resample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    def one(part):
        return map_coordinates(part, [rows, cols], order=3, mode="constant", cval=0.0)

    if np.iscomplexobj(image):
        return one(image.real) + 1j * one(image.imag)
    return np.maximum(one(image), 0.0)     # no negative magnitudes from spline overshoot


def warp_coordinates(size: tuple[int, int], params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel samples the input: affine about the centre plus the elastic
    displacement."""
    from scipy.ndimage import gaussian_filter

    h, w = size
    r, c = np.meshgrid(np.arange(h, dtype=np.float64) - (h - 1) / 2,
                       np.arange(w, dtype=np.float64) - (w - 1) / 2, indexing="ij")
    t = np.radians(params["rotation_deg"])
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    matrix = rotation @ np.array([[1.0, params["shear"]], [0.0, 1.0]]) / params["scale"]
    rows = matrix[0, 0] * r + matrix[0, 1] * c + (h - 1) / 2
    cols = matrix[1, 0] * r + matrix[1, 1] * c + (w - 1) / 2
    if params["elastic_px"] > 0:
        noise = np.random.default_rng(params["elastic_seed"]).standard_normal((2, h, w))
        field = np.stack([gaussian_filter(n, max(h, w) / 12.0, mode="reflect") for n in noise])
        peak = np.abs(field).max()
        if peak > 0:
            field *= params["elastic_px"] / peak
        rows, cols = rows + field[0], cols + field[1]
    return rows, cols


def bias_field(size: tuple[int, int], params: dict) -> np.ndarray:
    """1 + b(y, x), max |b| = params["bias"] over the grid."""
    from numpy.polynomial import legendre

    h, w = size
    table = np.zeros((BIAS_ORDER + 1, BIAS_ORDER + 1))
    for a, b, value in params["bias_terms"]:
        table[int(a), int(b)] = value
    y = (np.arange(h) - (h - 1) / 2) / (h / 2)
    x = (np.arange(w) - (w - 1) / 2) / (w / 2)
    field = legendre.leggrid2d(y, x, table)
    peak = np.abs(field).max()
    return 1.0 + (field * (params["bias"] / peak) if peak > 0 else 0.0)


def _normalised(image: np.ndarray) -> np.ndarray:
    peak = np.abs(image).max()
    return image / peak if peak > 0 else image


def apply(image: np.ndarray, params: dict) -> np.ndarray:
    """The augmented image (same shape and kind), max |image| = 1."""
    out = image
    if params["flip_rows"]:
        out = out[::-1]
    if params["flip_cols"]:
        out = out[:, ::-1]
    out = np.rot90(out, params["turns"])
    out = _resample(np.ascontiguousarray(out), *warp_coordinates(out.shape, params))
    out = _normalised(out)
    magnitude = np.abs(out)
    curve = np.power(magnitude, params["gamma"])
    out = curve if not np.iscomplexobj(out) else \
        curve * np.exp(1j * np.angle(out))
    return _normalised(out * bias_field(out.shape, params))
