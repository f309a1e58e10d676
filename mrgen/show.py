"""Turning arrays into 8-bit grayscale pictures: part, windowing and montage.

``render`` does it all: it takes one part of the (complex) array, optionally on a log scale,
lays the leading axes out as a grid of tiles (a montage) and maps a window [lo, hi] of values
linearly onto 0..255 (values outside are clipped). One window is used for the whole montage,
so tiles (coils, slices) stay comparable. Row 0 of each tile is its top row, as in
``matplotlib.pyplot.imshow``.

Default windows:

- magnitude: [0, the P-th percentile of the magnitudes] (P = 99.5);
- magnitude with ``log``: values are log10(|x| + eps), eps = 1e-6 max|x| (six decades at
  most), window [their minimum, their P-th percentile];
- real, imag: symmetric [-a, a], a = the P-th percentile of |values| (zero is mid-gray);
- phase: [-pi, pi] (the percentile does not apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PARTS = ("magnitude", "phase", "real", "imag")
DEFAULT_PERCENTILE = 99.5
LOG_DECADES = 6.0


@dataclass
class Rendered:
    pixels: np.ndarray              # (rows * H, columns * W) uint8
    window: tuple[float, float]     # the values mapped to 0 and 255
    grid: tuple[int, int]           # (rows, columns) of tiles
    tile: tuple[int, int]           # (H, W) of one tile
    tiles: int                      # how many tiles hold data (the rest are black)


def part_values(array, part: str = "magnitude", log: bool = False) -> np.ndarray:
    """The real values to display (float64): one part of ``array``, or log10 magnitude."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if log and part != "magnitude":
        raise ValueError("a log scale applies only to the magnitude")
    array = np.asarray(array)
    if part == "magnitude":
        values = np.abs(array).astype(np.float64)
        if log:
            peak = float(values.max()) if values.size else 0.0
            eps = peak * 10.0 ** -LOG_DECADES if peak > 0 else 1.0
            values = np.log10(values + eps)
        return values
    if part == "phase":
        return np.angle(array).astype(np.float64)
    if part == "real":
        return np.real(array).astype(np.float64)
    return np.imag(array).astype(np.float64)


def default_window(values: np.ndarray, part: str = "magnitude", log: bool = False,
                   percentile: float | None = None) -> tuple[float, float]:
    """The default display window for ``values`` from ``part_values`` (see the module doc)."""
    p = DEFAULT_PERCENTILE if percentile is None else float(percentile)
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    if part == "phase":
        return (-math.pi, math.pi)
    if values.size == 0:
        return (0.0, 1.0)
    if part == "magnitude":
        hi = float(np.percentile(values, p))
        lo = float(values.min()) if log else 0.0
        return (lo, hi)
    a = float(np.percentile(np.abs(values), p))
    return (-a, a)


def grid_shape(shape: tuple[int, ...], columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of the montage for an array of ``shape`` (..., H, W).

    Default columns: 1 for an image; about sqrt(N) for a stack of N (a square-ish grid); the
    size of the axis just before H, W for rank 4 and up, so that each row of tiles is e.g.
    the coils of one slice.
    """
    count = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
    if count == 0:
        raise ValueError(f"nothing to show in an array of shape {tuple(shape)}")
    if columns is None:
        if len(shape) <= 2:
            columns = 1
        elif len(shape) == 3:
            columns = math.ceil(math.sqrt(count))
        else:
            columns = shape[-3]
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, count)
    return (math.ceil(count / columns), columns)


def montage(values: np.ndarray, columns: int | None = None, fill: float = 0.0):
    """Tile the (H, W) images of ``values`` (..., H, W) row by row into one 2D array.

    Returns (picture, (rows, columns)); tiles beyond the data are ``fill``.
    """
    values = np.asarray(values)
    if values.ndim < 2:
        raise ValueError(f"need at least 2 axes (H, W), got shape {values.shape}")
    rows, cols = grid_shape(values.shape, columns)
    h, w = values.shape[-2:]
    stack = values.reshape(-1, h, w)
    padded = np.full((rows * cols, h, w), fill, dtype=values.dtype)
    padded[:stack.shape[0]] = stack
    picture = padded.reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    return picture, (rows, cols)


def to_uint8(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255 (rounding half up), clipping outside; an empty window
    (hi <= lo) is a threshold: values above lo are white."""
    lo, hi = float(window[0]), float(window[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"window must be finite, got [{lo}, {hi}]")
    if hi <= lo:
        return np.where(values > lo, 255, 0).astype(np.uint8)
    scaled = (values - lo) / (hi - lo) * 255.0
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)  # round half up


def render(array, part: str = "magnitude", window: tuple[float, float] | None = None,
           percentile: float | None = None, log: bool = False,
           columns: int | None = None) -> Rendered:
    """An 8-bit picture of ``array`` (..., H, W): montage of its leading axes, windowed.

    ``window`` (absolute, in the units of the displayed values: log10 with ``log``, radians
    for the phase) overrides the default from ``percentile`` (see the module doc).
    """
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"need at least 2 axes (H, W), got shape {array.shape}")
    values = part_values(array, part, log)
    if window is None:
        window = default_window(values, part, log, percentile)
    window = (float(window[0]), float(window[1]))
    # Empty tiles are black: fill with the window's low end before mapping.
    picture, grid = montage(values, columns, fill=window[0])
    count = int(np.prod(array.shape[:-2], dtype=np.int64)) if array.ndim > 2 else 1
    return Rendered(to_uint8(picture, window), window, grid, tuple(array.shape[-2:]), count)
