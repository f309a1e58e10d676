"""Fitting what iPALM needs besides the prior, on validation pairs (Zach, Knoll, Pock 2023, 2.6).

- lambda fit: for each validation slice, the best lambda on a grid (smallest squared error
  to the reference, as the paper) and the initial residual r0; then lambda = max(slope r0 +
  intercept, 0.01) by least squares. For Cartesian masks r0 is zero up to rounding (the
  zero-filled start fits the data exactly), so r0 carries no information there: when the
  residuals do not vary, the fit is the constant mean of the best lambdas (slope 0).
- noise coefficient: the per-slice best lambda refined between grid points (a parabola in
  log lambda) times s^2, s the slice's noise over iPALM's data scale: c of the default
  lambda = c / s^2 of a whole-image prior (geometric mean over slices).
- intensity equaliser (Zach, Knoll, Pock 2023, Section 2.6): a cubic spline with 5 equally spaced knots
  fitted to the scatter of (reconstructed, reference) intensities, in the data's normalised
  scale; applied after reconstruction on request.
"""

from __future__ import annotations

import numpy as np
import torch

from .ipalm import IpalmOptions, ipalm
from .resize import center_crop


def grid_search_lambda(kspace, mask, reference, regulariser, grid, options: IpalmOptions,
                       progress=None):
    """(best lambda per slice (B,), squared errors (len(grid), B), reconstructions at best).

    Reconstructions are centre-cropped to the reference size before comparing."""
    errors, images = [], []
    for lam in grid:
        result = ipalm(kspace, mask, regulariser, _with(options, lam=float(lam)))
        image = _match(result.image, reference)
        errors.append(((image - reference) ** 2).flatten(1).sum(1))
        images.append(image)
        if progress is not None:
            progress(1)
    errors = torch.stack(errors)
    best = errors.argmin(0)
    chosen = torch.stack([images[int(b)][i] for i, b in enumerate(best)])
    return np.asarray(grid, dtype=np.float64)[best.cpu().numpy()], errors, chosen


def fit_lambda(residuals, best, data_energy=None, minimum: float = 0.01) -> dict:
    """Least-squares line best ~ slope * r0 + intercept.

    Constant (slope 0, the mean best lambda) when r0 carries no information: fewer than two
    samples, no spread, or r0 at rounding level, below 1e-5 of the data's energy ||z||^2
    (Cartesian masks), where a line would fit float32 noise."""
    r = np.asarray(residuals, dtype=np.float64)
    y = np.asarray(best, dtype=np.float64)
    spread = r.std()
    rounding = data_energy is not None and \
        np.max(r / np.maximum(np.asarray(data_energy, dtype=np.float64), 1e-30)) < 1e-5
    if len(r) < 2 or rounding or spread <= 1e-6 * max(abs(r.mean()), 1e-30):
        slope, intercept = 0.0, float(y.mean())
    else:
        slope, intercept = np.polyfit(r, y, 1)
    return {"slope": float(slope), "intercept": float(intercept), "minimum": minimum,
            "samples": int(len(r))}


def refine_best(grid, errors) -> np.ndarray:
    """Per slice, the minimum of the parabola through the smallest error on the grid and its
    two neighbours, in log lambda (B,): a continuous best lambda from a coarse grid (the
    grid's best where it lies at an edge of the grid)."""
    logs = np.log(np.asarray(grid, dtype=np.float64))
    errors = np.asarray(torch.as_tensor(errors).cpu(), dtype=np.float64)   # (len(grid), B)
    best = []
    for column in errors.T:
        i = int(np.argmin(column))
        if i == 0 or i == len(logs) - 1:
            best.append(logs[i])
            continue
        a, b, _ = np.polyfit(logs[i - 1:i + 2], column[i - 1:i + 2], 2)
        best.append(float(np.clip(-b / (2 * a), logs[i - 1], logs[i + 1])) if a > 0
                    else logs[i])
    return np.exp(np.asarray(best))


def fit_noise_coefficient(best, relative_noise, power: float = 2.0) -> dict:
    """The coefficient c of lambda = c / s^power that best matches the best lambdas of
    slices whose relative noise is s: the geometric mean of best * s^power."""
    values = np.asarray(best, dtype=np.float64) * \
        np.asarray(relative_noise, dtype=np.float64) ** power
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return {}
    return {"coefficient": float(np.exp(np.log(values).mean())), "power": power,
            "samples": int(values.size)}


def fit_equaliser(recon: np.ndarray, reference: np.ndarray, knots: int = 5,
                  max_points: int = 200_000, seed: int = 0) -> dict:
    """Cubic least-squares spline reference ~ s(recon) with ``knots`` equally spaced knots."""
    from scipy.interpolate import make_lsq_spline

    x, y = np.ravel(recon).astype(np.float64), np.ravel(reference).astype(np.float64)
    if x.size > max_points:
        keep = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
        x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    lo, hi = float(x[0]), float(x[-1])
    interior = np.linspace(lo, hi, knots)[1:-1]
    t = np.concatenate([[lo] * 4, interior, [hi] * 4])
    spline = make_lsq_spline(x, y, t, k=3)
    return {"knots": spline.t.tolist(), "coefficients": spline.c.tolist(), "degree": 3,
            "range": [lo, hi]}


def apply_equaliser(image: torch.Tensor, scale: torch.Tensor, equaliser: dict) -> torch.Tensor:
    """Map intensities through the fitted spline (in the normalised scale, clamped to the
    fitted range so that it never extrapolates)."""
    from scipy.interpolate import BSpline

    spline = BSpline(np.asarray(equaliser["knots"]), np.asarray(equaliser["coefficients"]),
                     int(equaliser["degree"]))
    view = scale.view(-1, *([1] * (image.dim() - 1))).cpu().numpy()
    lo, hi = equaliser["range"]
    normalised = np.clip(image.cpu().numpy() / view, lo, hi)
    return torch.from_numpy((spline(normalised) * view).astype(np.float32)).to(image.device)


def _with(options: IpalmOptions, **changes) -> IpalmOptions:
    from dataclasses import replace

    return replace(options, **changes)


def _match(image, reference):
    """Centre-crop reconstructions to the reference size (fastMRI references are 320x320)."""
    return center_crop(image, tuple(reference.shape[-2:]))


