"""Sampling masks on the Cartesian grid: (H, W) float32 arrays with 1 = sampled.

The 1D kinds undersample along the last axis (W, phase encoding) and sample whole lines; the 2D
kinds pick single grid points. Every random choice comes from ``np.random.default_rng(seed)``
(pass an int, or a ``np.random.Generator`` to draw many masks from one stream); the global numpy
state is never touched. Same seed, same mask.

Kinds (``KINDS``):

- ``random``: fastMRI ``RandomMaskFunc``. ``n_low = round(W * center)`` centre lines starting
  at ``(W - n_low + 1) // 2``; every column is also drawn with probability
  ``(W/R - n_low) / (W - n_low)``, so the *expected* acceleration is R.
- ``random-exact``: the same centre plus exactly ``round(W/R) - n_low`` other lines, uniformly
  at random without replacement.
- ``equispaced``: the centre plus lines at one exact integer spacing (truly equispaced) from a
  random offset; the spacing is the one whose mean net acceleration (over offsets) is closest to
  R, and the offset is drawn among those that land within the tolerance.
- ``equispaced-fraction``: fastMRI ``EquispacedMaskFractionFunc``: spacing
  ``R (n_low - W) / (n_low R - W)`` (fractional), offset random in ``[0, round(spacing))``,
  lines at ``np.around(np.arange(offset, W - 1, spacing))``.
- ``poisson``: variable-density Poisson-disc in the spirit of ``sigpy.mri.poisson``: a fully
  sampled central rectangle, disc radius ``1 + slope * r`` pixels (r: normalised distance beyond
  the centre), corners outside the inscribed ellipse left out; the points come from random
  sequential (maximal) dart throwing on the grid, and ``slope`` is searched to reach R.
  mrgen's own code rather than sigpy's: 0.06-0.13 s against 3-9 s for ``sigpy.mri.poisson``
  at 320 x 320, 4x, on 2 CPU cores (the same 2% tolerance).
- ``sigpy-poisson``: the masks of ``sigpy.mri.poisson`` (dart throwing, Bridson 2007; the same
  density law and corner crop): its numba kernel and its slope bisection step for step, which
  here also ends where no slope fits (sigpy's would run for ever). Its ``calib`` is a centre
  rectangle of the size ``poisson`` would use, its ``seed`` is drawn from the seed's stream,
  its ``tol`` is the 2% tolerance. Seconds per mask (sigpy's import and slope bisection);
  sigpy draws from numba's own random state, so numpy's global state is untouched here too.
- ``gaussian``: a fully sampled central rectangle plus points drawn without replacement with a
  2D Gaussian density (sigma 0.5 of the half-width); exactly ``round(H W / R)`` points in all.
- ``uniform``: exactly ``round(H W / R)`` points uniformly at random; no dense centre.
- ``radial``: pseudo-radial: N straight spokes through the k-space centre (index H//2, W//2) at
  uniformly spaced angles ``pi n / N`` plus a random rotation, rasterised to the nearest grid
  points and running to the grid's edge. N given, or the N that comes closest to R.
- ``spiral``: Archimedean spiral arms (interleaves, equally rotated, plus a random rotation)
  from the centre to the edge of the inscribed ellipse, rasterised; the number of turns is
  bisected to reach R.

For the 2D kinds ``center`` is the fraction of each dimension that is fully sampled: a central
rectangle for ``poisson``/``sigpy-poisson``/``gaussian`` (default 0.32/R, as for the 1D kinds),
a central ellipse for ``radial``/``spiral`` (default 0: they are dense at the centre by
construction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError

ONE_D_KINDS = ("random", "random-exact", "equispaced", "equispaced-fraction")
TWO_D_KINDS = ("poisson", "sigpy-poisson", "gaussian", "uniform", "radial", "spiral")
KINDS = ONE_D_KINDS + TWO_D_KINDS
TOLERANCE = 0.02          # achieved vs requested acceleration, relative
ACS_FACTOR = 0.32         # default centre fraction = ACS_FACTOR / R (0.08 at 4x, as fastMRI)
GAUSSIAN_SIGMA = 0.5      # of the half-width (k-space coordinates normalised to [-1, 1))
_NO_DEFAULT_CENTRE = ("uniform", "radial", "spiral")


@dataclass(frozen=True)
class MaskSpec:
    """What to draw: ``kind``, acceleration ``accel`` and centre fraction ``center``.

    ``center=None`` means the kind's default (``ACS_FACTOR / accel`` for the 1D kinds, poisson,
    sigpy-poisson and gaussian; 0 for uniform, radial and spiral). ``accel`` may be None only
    for radial with ``spokes``. ``swap`` draws on the transposed grid (1D kinds: undersample
    along H).
    """

    kind: str = "random"
    accel: float | None = 4.0
    center: float | None = None
    spokes: int | None = None
    arms: int = 1
    swap: bool = False

    def center_fraction(self) -> float:
        if self.center is not None:
            return float(self.center)
        if self.kind in _NO_DEFAULT_CENTRE or self.accel is None:
            return 0.0
        return ACS_FACTOR / self.accel

    def validate(self) -> None:
        """Raise UsageError naming the option for anything invalid."""
        if self.kind not in KINDS:
            raise UsageError(f"--kind {self.kind}: unknown; choose from {', '.join(KINDS)}")
        if self.accel is None:
            if not (self.kind == "radial" and self.spokes is not None):
                raise UsageError(f"--accel: needed for --kind {self.kind}"
                                 + (" (or give --spokes)" if self.kind == "radial" else ""))
        elif not (isinstance(self.accel, (int, float)) and math.isfinite(self.accel)
                  and self.accel > 1):
            raise UsageError(f"--accel {_num(self.accel)}: must be greater than 1")
        if self.center is not None and not (isinstance(self.center, (int, float))
                                            and math.isfinite(self.center)
                                            and 0 <= self.center < 1):
            raise UsageError(f"--center {_num(self.center)}: must be in [0, 1)")
        if self.kind == "uniform" and self.center:
            raise UsageError(f"--center {self.center:g}: uniform has no dense centre "
                             "(use gaussian or poisson)")
        if self.spokes is not None:
            if self.kind != "radial":
                raise UsageError("--spokes: only for --kind radial")
            if self.spokes < 1:
                raise UsageError(f"--spokes {self.spokes}: must be at least 1")
        if self.arms != 1 and self.kind != "spiral":
            raise UsageError("--arms: only for --kind spiral")
        if self.arms < 1:
            raise UsageError(f"--arms {self.arms}: must be at least 1")

    def __str__(self) -> str:
        parts = [self.kind, "" if self.accel is None else f"{self.accel:g}"]
        if self.center is not None:
            parts.append(f"{self.center:g}")
        if self.spokes is not None:
            parts.append(f"spokes={self.spokes}")
        if self.arms != 1:
            parts.append(f"arms={self.arms}")
        if self.swap:
            parts.append("swap")
        return ":".join(parts)


def parse_mask_spec(text: str) -> MaskSpec:
    """Parse ``kind:accel[:center]`` (e.g. ``random-exact:4:0.08``) into a validated MaskSpec.

    Optional trailing items: ``spokes=N``, ``arms=N``, ``swap``; an empty accel is allowed for
    ``radial::spokes=32``. ``str(spec)`` gives the text back.
    """
    items = [p.strip() for p in str(text).split(":")]
    if not items or not items[0]:
        raise UsageError(f"mask spec {text!r}: expected kind:accel[:center]")
    values = {"kind": items[0], "accel": None}
    positional = ("accel", "center")
    pos = 0
    try:
        for item in items[1:]:
            if item == "swap":
                values["swap"] = True
            elif "=" in item:
                key, value = (s.strip() for s in item.split("=", 1))
                if key in ("spokes", "arms"):
                    values[key] = int(value)
                elif key == "swap":
                    values["swap"] = value.lower() in ("1", "true", "yes")
                elif key in positional:
                    values[key] = float(value)
                else:
                    raise UsageError(f"mask spec {text!r}: unknown item {key!r}")
            else:
                if pos >= len(positional):
                    raise UsageError(f"mask spec {text!r}: too many fields "
                                     "(expected kind:accel[:center])")
                values[positional[pos]] = float(item) if item else None
                pos += 1
    except ValueError:
        raise UsageError(f"mask spec {text!r}: expected numbers in kind:accel[:center]") from None
    if values["accel"] is None and not (values["kind"] == "radial" and "spokes" in values):
        raise UsageError(f"mask spec {text!r}: expected kind:accel[:center]")
    spec = MaskSpec(**values)
    spec.validate()
    return spec


@dataclass
class MaskInfo:
    """What a drawn mask achieved, for reports."""

    kind: str
    shape: tuple[int, int]
    requested: float | None           # requested acceleration (None: radial by --spokes)
    achieved: float                   # H*W / number of sampled entries
    sampled: int                      # number of sampled entries
    center: str                       # "26 centre lines", "26x26 centre", "no centre"
    expected: float | None = None     # random: the expected acceleration
    details: list[str] = field(default_factory=list)   # "spacing 5", "48 spokes", ...

    def summary(self) -> str:
        head = f"{self.kind} mask {self.shape[0]}x{self.shape[1]}: "
        if self.requested is not None:
            head += f"requested {self.requested:g}x, "
        if self.expected is not None:
            head += f"expected {self.expected:.2f}x, "
        head += f"achieved {self.achieved:.2f}x ({self.sampled} of " \
                f"{self.shape[0] * self.shape[1]} sampled), {self.center}"
        return head + "".join(f", {d}" for d in self.details)


def make_mask(spec, shape, seed=0, tolerance: float | None = TOLERANCE) -> np.ndarray:
    """Draw one (H, W) float32 mask for ``spec`` (a MaskSpec or a spec string).

    ``seed``: an int or a ``np.random.Generator``. ``tolerance``: the largest relative
    difference between achieved and requested acceleration (expected, for ``random``) before a
    UsageError naming --accel; None skips the check (e.g. when drawing masks for training).
    """
    return sample_mask(spec, shape, seed, tolerance)[0]


def sample_mask(spec, shape, seed=0, tolerance: float | None = TOLERANCE):
    """Like ``make_mask`` but returns ``(mask, MaskInfo)``."""
    if isinstance(spec, str):
        spec = parse_mask_spec(spec)
    spec.validate()
    height, width = _check_shape(shape)
    check_reachable(spec, (height, width))
    rng = np.random.default_rng(seed)
    grid = (width, height) if spec.swap else (height, width)
    generator = _GENERATORS[spec.kind]
    mask, info = generator(grid, spec, spec.center_fraction(), rng, tolerance)
    if spec.swap:
        mask = mask.T
        info.details.append("swapped: undersampled along H" if spec.kind in ONE_D_KINDS
                            else "drawn transposed")
    info.shape = (height, width)
    return np.ascontiguousarray(mask, dtype=np.float32), info


def check_reachable(spec: MaskSpec, size) -> None:
    """An acceleration beyond what the shape and centre allow (fewer than the centre, or than
    one line or point) is an error that names the largest one possible."""
    if spec.accel is None:
        return
    height, width = size
    fraction = spec.center_fraction()
    if spec.kind in ONE_D_KINDS:
        lines = height if spec.swap else width
        centre = round(lines * fraction)
        largest, what = lines / max(centre, 1), f"{lines} lines"
        held = f"{centre} centre lines" if centre else "no centre: one line"
    else:
        shape = (width, height) if spec.swap else (height, width)
        if spec.kind in ("radial", "spiral"):
            centre = int(_centre_ellipse(shape, fraction)[0].sum())
        elif spec.kind == "uniform":
            centre = 0
        else:
            centre = int(_centre_rect(shape, fraction)[0].sum())
        largest, what = height * width / max(centre, 1), f"{height}x{width} points"
        held = f"{centre} centre points" if centre else "no centre: one point"
    if spec.accel > largest * (1 + TOLERANCE):
        raise UsageError(f"--accel {spec.accel:g}: at most {largest:.6g}x for {what} with "
                         f"{held}" + (" (--center sets the centre)" if centre else ""))


# --------------------------------------------------------------------------------------------
# helpers

def _num(value):
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)


def _check_shape(shape):
    try:
        height, width = (int(s) for s in tuple(shape)[-2:])
    except (TypeError, ValueError):
        raise UsageError(f"--shape {shape}: expected H W") from None
    if len(tuple(shape)) < 2 or height < 1 or width < 1:
        raise UsageError(f"--shape {shape}: expected two positive sizes H W")
    return height, width


def _relative_error(achieved, requested):
    return abs(achieved - requested) / requested


def _within(achieved, requested, tolerance):
    return tolerance is None or _relative_error(achieved, requested) <= tolerance + 1e-12


def _accel_error(spec, message):
    return UsageError(f"--accel {spec.accel:g}: {message}")


def _fmt_fraction(count, size):
    return f"{count / size:.4f}".rstrip("0").rstrip(".")


def _unreachable(spec, achieved, tolerance, what):
    return _accel_error(spec, f"{spec.kind} {what} reaches {achieved:.2f}x, not within "
                        f"{100 * tolerance:g}% of the request")


def _centre_lines(width, fraction):
    n_low = round(width * fraction)
    start = (width - n_low + 1) // 2
    centre = np.zeros(width, dtype=bool)
    centre[start:start + n_low] = True
    return centre, n_low


def _lines_info(spec, width, height, lines, n_low, **extra):
    sampled = int(lines.sum()) * height
    achieved = width / int(lines.sum()) if lines.any() else math.inf
    info = MaskInfo(spec.kind, (height, width), spec.accel, achieved, sampled,
                    f"{n_low} centre lines", **extra)
    info.details.append(f"{int(lines.sum())} of {width} lines")
    return info


def _lines_to_mask(lines, height):
    return np.broadcast_to(lines, (height, lines.size)).copy()


def _check_budget_lines(spec, n_low, width, fraction):
    budget = width / spec.accel
    if n_low > budget + 1e-9:
        raise UsageError(f"--center {fraction:g}: its {n_low} centre lines alone exceed the "
                         f"{budget:.1f} lines of {width} that --accel {spec.accel:g} allows")


# --------------------------------------------------------------------------------------------
# 1D kinds (lines along the last axis)

def _gen_random(grid, spec, fraction, rng, tolerance):
    height, width = grid
    centre, n_low = _centre_lines(width, fraction)
    _check_budget_lines(spec, n_low, width, fraction)
    prob = (width / spec.accel - n_low) / (width - n_low)
    lines = (rng.uniform(size=width) < prob) | centre
    expected = width / (n_low + (width - n_low) * prob)
    if not _within(expected, spec.accel, tolerance):     # cannot happen once the budget fits
        raise _unreachable(spec, expected, tolerance, "(expected)")
    info = _lines_info(spec, width, height, lines, n_low, expected=expected)
    info.details.append(f"line probability {prob:.3f} outside the centre")
    return _lines_to_mask(lines, height), info


def _gen_random_exact(grid, spec, fraction, rng, tolerance):
    height, width = grid
    centre, n_low = _centre_lines(width, fraction)
    _check_budget_lines(spec, n_low, width, fraction)
    total = max(round(width / spec.accel), n_low)
    achieved = width / total if total else math.inf
    if not _within(achieved, spec.accel, tolerance):
        options = sorted({width / n for n in (math.floor(width / spec.accel),
                                              math.ceil(width / spec.accel)) if n > 0})
        raise _accel_error(spec, f"random-exact on {width} lines can give "
                           + " or ".join(f"{a:.2f}x" for a in options)
                           + f", not within {100 * tolerance:g}%")
    lines = centre.copy()
    outside = np.flatnonzero(~centre)
    lines[rng.choice(outside, total - n_low, replace=False)] = True
    return _lines_to_mask(lines, height), _lines_info(spec, width, height, lines, n_low)


def _equispaced_table(width, centre, n_low, spacing):
    """Acceleration for every offset in [0, spacing) at this spacing."""
    outside = np.flatnonzero(~centre)
    counts = n_low + np.bincount(outside % spacing, minlength=spacing)[:spacing]
    return width / counts


def _gen_equispaced(grid, spec, fraction, rng, tolerance):
    height, width = grid
    centre, n_low = _centre_lines(width, fraction)
    _check_budget_lines(spec, n_low, width, fraction)
    ranked, tables, good = _equispaced_fit(width, centre, n_low, spec.accel, tolerance)
    adjusted = None
    if good.size == 0 and spec.center is None:
        # The default centre (ACS_FACTOR / R) does not fit an exact spacing on this width
        # (20 lines at 4x on 256): take the nearest centre that does, and say so.
        fit = _equispaced_centre_lines(width, spec.accel, tolerance, n_low, sorted(ranked[:2]))
        if fit is not None:
            adjusted, (centre, n_low) = n_low, _centre_lines(width, fit / width)
            ranked, tables, good = _equispaced_fit(width, centre, n_low, spec.accel, tolerance)
    if good.size == 0:
        near = sorted(ranked[:2])
        reach = ", ".join(f"spacing {s} gives {_span(tables[s])}" for s in near)
        hint = _equispaced_centre_hint(width, spec.accel, tolerance, n_low, near)
        raise _accel_error(spec, f"equispaced on {width} lines with {n_low} centre lines "
                           f"cannot get within {100 * tolerance:g}% ({reach}); change --accel"
                           + (f" or try --center {hint}" if hint else " or --center"))
    spacing = ranked[0]
    offset = int(rng.choice(good))
    lines = centre.copy()
    lines[offset::spacing] = True
    info = _lines_info(spec, width, height, lines, n_low)
    info.details.append(f"spacing {spacing}, offset {offset}")
    if adjusted is not None:
        info.details.append(f"default centre {adjusted} lines moved to {n_low} to fit "
                            f"(--center {_fmt_fraction(n_low, width)})")
    return _lines_to_mask(lines, height), info


def _equispaced_fit(width, centre, n_low, accel, tolerance):
    """Spacings ranked by distance to ``accel``, their tables, and the good offsets of the
    best spacing."""
    tables = {s: _equispaced_table(width, centre, n_low, s) for s in range(1, width + 1)}
    ranked = sorted(tables, key=lambda s: (_relative_error(tables[s].mean(), accel), s))
    good = np.flatnonzero([_within(a, accel, tolerance) for a in tables[ranked[0]]])
    return ranked, tables, good


def _span(accels):
    low, high = float(np.min(accels)), float(np.max(accels))
    return f"{low:.2f}x" if abs(high - low) < 5e-3 else f"{low:.2f}-{high:.2f}x"


def _equispaced_centre_hint(width, accel, tolerance, n_low, spacings):
    """A centre fraction for which one of ``spacings`` gets within tolerance, nearest n_low."""
    best = _equispaced_centre_lines(width, accel, tolerance, n_low, spacings)
    return None if best is None else _fmt_fraction(best, width)


def _equispaced_centre_lines(width, accel, tolerance, n_low, spacings):
    """The centre line count nearest ``n_low`` for which one of ``spacings`` fits."""
    best = None
    for n in sorted(range(width), key=lambda n: (abs(n - n_low), n)):
        if n > width / accel:
            continue
        centre, got = _centre_lines(width, n / width)
        if got != n:
            continue
        for s in spacings:
            if np.any([_within(a, accel, tolerance)
                       for a in _equispaced_table(width, centre, n, s)]):
                best = n
                break
        if best is not None:
            return best
    return None


def _gen_equispaced_fraction(grid, spec, fraction, rng, tolerance):
    height, width = grid
    centre, n_low = _centre_lines(width, fraction)
    _check_budget_lines(spec, n_low, width, fraction)
    if n_low * spec.accel >= width:
        raise UsageError(f"--center {fraction:g}: its {n_low} centre lines leave no lines for "
                         f"equispaced-fraction sampling at --accel {spec.accel:g}")
    adjusted = (spec.accel * (n_low - width)) / (n_low * spec.accel - width)

    def lines_for(offset):
        lines = centre.copy()
        lines[np.around(np.arange(offset, width - 1, adjusted)).astype(np.int64)] = True
        return lines

    offset = int(rng.integers(0, round(adjusted)))
    lines = lines_for(offset)
    achieved = width / lines.sum()
    if not _within(achieved, spec.accel, tolerance):
        span = _span(np.array([width / lines_for(o).sum() for o in range(round(adjusted))]))
        raise _accel_error(spec, f"equispaced-fraction (fastMRI) on {width} lines gives "
                           f"{achieved:.2f}x at offset {offset} ({span} over offsets), not "
                           f"within {100 * tolerance:g}%; try another --seed, --center or "
                           "--kind equispaced")
    info = _lines_info(spec, width, height, lines, n_low)
    info.details.append(f"spacing {adjusted:.3f}, offset {offset}")
    return _lines_to_mask(lines, height), info


# --------------------------------------------------------------------------------------------
# 2D kinds

def _centre_rect(shape, fraction):
    height, width = shape
    ch, cw = round(height * fraction), round(width * fraction)
    mask = np.zeros(shape, dtype=bool)
    y0, x0 = (height - ch + 1) // 2, (width - cw + 1) // 2
    mask[y0:y0 + ch, x0:x0 + cw] = True
    return mask, ch, cw


def _centre_ellipse(shape, fraction):
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    if fraction <= 0:
        return mask, 0, 0
    y = (np.arange(height) - height // 2) / (fraction * height / 2)
    x = (np.arange(width) - width // 2) / (fraction * width / 2)
    mask = y[:, None] ** 2 + x[None, :] ** 2 <= 1
    return mask, round(height * fraction), round(width * fraction)


def _points_info(spec, shape, mask, centre_text, **extra):
    sampled = int(mask.sum())
    achieved = mask.size / sampled if sampled else math.inf
    return MaskInfo(spec.kind, tuple(shape), spec.accel, achieved, sampled, centre_text, **extra)


def _check_budget_points(spec, n_centre, size, fraction, what):
    budget = size / spec.accel
    if n_centre > budget + 1e-9:
        raise UsageError(f"--center {fraction:g}: the {what} alone ({n_centre} points) exceeds "
                         f"the {budget:.0f} points that --accel {spec.accel:g} allows")


def _exact_total(spec, size, tolerance):
    total = round(size / spec.accel)
    achieved = size / total if total else math.inf
    if total < 1 or not _within(achieved, spec.accel, tolerance):
        raise _accel_error(spec, f"{spec.kind} on {size} points can give "
                           f"{size / max(total, 1):.2f}x at best near this request, not within "
                           f"{100 * tolerance:g}%")
    return total


def _gen_uniform(grid, spec, fraction, rng, tolerance):
    size = grid[0] * grid[1]
    total = _exact_total(spec, size, tolerance)
    flat = np.zeros(size, dtype=bool)
    flat[rng.choice(size, total, replace=False)] = True
    mask = flat.reshape(grid)
    return mask, _points_info(spec, grid, mask, "no centre")


def _normalised_coords(shape):
    height, width = shape
    y = (np.arange(height) - height // 2) / (height / 2)
    x = (np.arange(width) - width // 2) / (width / 2)
    return y[:, None], x[None, :]


def _gen_gaussian(grid, spec, fraction, rng, tolerance):
    size = grid[0] * grid[1]
    centre, ch, cw = _centre_rect(grid, fraction)
    n_centre = int(centre.sum())
    _check_budget_points(spec, n_centre, size, fraction, f"{ch}x{cw} centre")
    total = _exact_total(spec, size, tolerance)
    y, x = _normalised_coords(grid)
    log_weight = -(y ** 2 + x ** 2) / (2 * GAUSSIAN_SIGMA ** 2)
    outside = np.flatnonzero(~centre.ravel())
    extra = total - n_centre
    flat = centre.ravel().copy()
    if extra > 0:
        # Weighted sampling without replacement (Efraimidis-Spirakis): the `extra` largest keys
        # log(u) / w, computed as log(-log(u)) - log(w) smallest to stay finite.
        u = rng.uniform(size=outside.size)
        keys = np.log(-np.log1p(-u)) - np.broadcast_to(log_weight, grid).ravel()[outside]
        chosen = outside[np.argpartition(keys, extra - 1)[:extra]]
        flat[chosen] = True
    mask = flat.reshape(grid)
    info = _points_info(spec, grid, mask, f"{ch}x{cw} centre")
    info.details.append(f"sigma {GAUSSIAN_SIGMA:g}")
    return mask, info


def _gen_poisson(grid, spec, fraction, rng, tolerance):
    height, width = grid
    size = height * width
    calib, ch, cw = _centre_rect(grid, fraction)
    n_calib = int(calib.sum())
    _check_budget_points(spec, n_calib, size, fraction, f"{ch}x{cw} centre")
    target = size / spec.accel
    # Normalised distance beyond the centre rectangle, as sigpy.mri.poisson computes it.
    yy = np.maximum(np.abs(np.arange(height) - height // 2) - ch / 2, 0)
    xx = np.maximum(np.abs(np.arange(width) - width // 2) - cw / 2, 0)
    yy = yy / yy.max() if yy.max() > 0 else yy
    xx = xx / xx.max() if xx.max() > 0 else xx
    r = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    candidates = (~calib) & (r < 1)
    most = n_calib + int(candidates.sum())
    if most < target:
        raise _accel_error(spec, f"poisson on {height}x{width} goes no lower than "
                           f"{size / most:.2f}x (corners outside the inscribed ellipse are "
                           "never sampled)")
    order = rng.permutation(np.flatnonzero(candidates.ravel()))
    sampler = _DartThrower(grid, order, r.ravel()[order])

    # Search the slope (the count falls as it grows): a density model gives the first guess,
    # then Illinois regula falsi on log(count / target) inside a bracket. At slope 0 every
    # candidate is kept (radius 1 blocks nothing), so slope 0 is the low end.
    best = None

    def throw(slope):
        nonlocal best
        kept = sampler.run(slope)
        got = n_calib + kept.size
        if best is None or abs(got - target) < abs(best[1] - target):
            best = (slope, got, kept)
        return math.log(max(got, 1) / target)

    def close_enough():
        return _within(size / best[1], spec.accel, (tolerance or TOLERANCE) / 4)

    a, fa = 0.0, math.log(most / target)
    b = sampler.model_slope(target - n_calib, 0.0, float(max(height, width)))
    fb = throw(b)
    while fb > 0 and not close_enough() and b < 4 * max(height, width):
        a, fa = b, fb
        b = 2 * b + 1
        fb = throw(b)
    for _ in range(14):
        if close_enough() or fb == 0:
            break
        width_ab = abs(b - a)
        c = (a * fb - b * fa) / (fb - fa)
        if not min(a, b) + 0.01 * width_ab < c < max(a, b) - 0.01 * width_ab:
            c = (a + b) / 2
        fc = throw(c)
        if (fc > 0) == (fb > 0):
            fa /= 2                      # Illinois: keep a, damp its weight
        else:
            a, fa = b, fb
        b, fb = c, fc
        if abs(b - a) < 1e-9:
            break
    slope, got, kept = best
    achieved = size / got
    if not _within(achieved, spec.accel, tolerance):
        raise _accel_error(spec, f"poisson on {height}x{width} with a {ch}x{cw} centre comes "
                           f"closest at {achieved:.2f}x, not within {100 * tolerance:g}%")
    mask = calib.ravel().copy()
    mask[kept] = True
    mask = mask.reshape(grid)
    info = _points_info(spec, grid, mask, f"{ch}x{cw} centre")
    info.details.append(f"slope {slope:.3g}")
    return mask, info


def _gen_sigpy_poisson(grid, spec, fraction, rng, tolerance):
    size = grid[0] * grid[1]
    calib, ch, cw = _centre_rect(grid, fraction)
    _check_budget_points(spec, int(calib.sum()), size, fraction, f"{ch}x{cw} centre")
    seed = int(rng.integers(2 ** 31))
    relative = tolerance or TOLERANCE    # sigpy needs one; its tol is absolute
    mask = _sigpy_poisson(grid, spec.accel, (ch, cw), seed, relative * spec.accel)
    if mask is None:
        raise _accel_error(spec, f"sigpy's Poisson-disc on {grid[0]}x{grid[1]} with a {ch}x{cw} "
                           f"centre found no slope within {100 * relative:g}%")
    info = _points_info(spec, grid, mask, f"{ch}x{cw} centre")
    info.details.append(f"sigpy.mri.poisson seed {seed}")
    return mask, info


def _sigpy_poisson(grid, accel, calib, seed, tol, max_steps=100):
    """``sigpy.mri.poisson(grid, accel, calib, seed=seed, tol=tol) > 0`` (sigpy 0.1.27's slope
    bisection around its numba kernel, step for step), or None where sigpy would raise or
    loop for ever: its bisection stalls without ending when no slope reaches ``accel``."""
    from sigpy.mri.samp import _poisson   # here: importing sigpy takes seconds

    ny, nx = grid
    y, x = np.mgrid[:ny, :nx]
    x = np.maximum(abs(x - nx / 2) - calib[-1] / 2, 0)
    x /= x.max()
    y = np.maximum(abs(y - ny / 2) - calib[-2] / 2, 0)
    y /= y.max()
    r = np.sqrt(x ** 2 + y ** 2)
    if nx * ny / np.count_nonzero(r < 1) > accel + tol:
        return None                       # denser than every point inside the crop
    slope_min, slope_max, previous = 0, max(nx, ny), None
    for _ in range(max_steps):
        slope = (slope_max + slope_min) / 2
        if not slope_min < slope_max or slope == previous:
            return None
        previous = slope
        radius_x = np.clip((1 + r * slope) * nx / max(nx, ny), 1, None)
        radius_y = np.clip((1 + r * slope) * ny / max(nx, ny), 1, None)
        mask = _poisson(nx, ny, 30, radius_x, radius_y, calib, seed) * (r < 1)
        actual = nx * ny / np.sum(mask)
        if abs(actual - accel) < tol:
            return mask > 0
        if actual < accel:
            slope_min = slope
        else:
            slope_max = slope
    return None


class _DartThrower:
    """Random sequential (maximal) Poisson-disc on the grid with a variable radius.

    Candidates are visited in one fixed random order; one is kept unless it lies inside the
    disc of a point kept before it. A kept point's disc has radius ``1 + slope * r`` pixels
    (scaled per axis so that the pattern is isotropic in normalised k-space, at least 1, as
    sigpy does). A radius of 1 blocks no other grid point, so the centre rectangle (r = 0)
    needs no discs.
    """

    STEP = 8        # radii quantised to 1/8 pixel for the disc stencils
    SMALL = 24      # stencils up to this many points are stamped in Python, larger by numpy
    PACKING = 0.58  # kept darts per unit of ry * rx, roughly, for the first guess

    def __init__(self, grid, order, r_order):
        self.grid = grid
        self.order = order
        self.r = r_order
        self.ys, self.xs = np.divmod(order, grid[1])
        longest = max(grid)
        self.scale = (grid[0] / longest, grid[1] / longest)
        self.r_counts, edges = np.histogram(r_order, bins=256, range=(0, 1))
        self.r_bins = (edges[:-1] + edges[1:]) / 2

    def radii(self, slope):
        rho = 1 + slope * self.r
        return (np.maximum(rho * self.scale[0], 1), np.maximum(rho * self.scale[1], 1))

    def model_count(self, slope):
        """Darts a jammed packing of these discs would roughly hold (a smooth stand-in)."""
        rho = 1 + slope * self.r_bins
        ry = np.maximum(rho * self.scale[0], 1)
        rx = np.maximum(rho * self.scale[1], 1)
        return float((self.r_counts * np.minimum(1, self.PACKING / (ry * rx))).sum())

    def model_slope(self, wanted, low, high):
        """Slope in [low, high] at which ``model_count`` gives ``wanted``."""
        for _ in range(40):
            mid = (low + high) / 2
            if self.model_count(mid) > wanted:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    def run(self, slope):
        """Flat indices of the kept candidates for this slope, in visiting order."""
        height, width = self.grid
        ry, rx = self.radii(slope)
        keys_y = np.round(ry * self.STEP).astype(np.int64)
        keys_x = np.round(rx * self.STEP).astype(np.int64)
        base = int(keys_x.max()) + 1
        codes, stencil_ids = np.unique(keys_y * base + keys_x, return_inverse=True)
        pairs = np.stack(np.divmod(codes, base), 1)
        pad = int(np.ceil(pairs.max() / self.STEP))
        row = width + 2 * pad
        stencils = []
        for key_y, key_x in pairs.tolist():
            sy, sx = key_y / self.STEP, key_x / self.STEP
            ey, ex = math.ceil(sy) - 1, math.ceil(sx) - 1
            dy, dx = np.mgrid[-ey:ey + 1, -ex:ex + 1]
            inside = ((dy / sy) ** 2 + (dx / sx) ** 2 < 1) & ((dy != 0) | (dx != 0))
            offsets = (dy * row + dx)[inside]
            stencils.append(tuple(offsets.tolist()) if offsets.size <= self.SMALL else offsets)
        padded = ((self.ys + pad) * row + self.xs + pad).tolist()
        buffer = bytearray((height + 2 * pad) * row)
        view = np.frombuffer(buffer, dtype=np.uint8)
        kept = []
        for n, (p, sid) in enumerate(zip(padded, np.ravel(stencil_ids).tolist())):
            if buffer[p]:
                continue
            kept.append(n)
            offsets = stencils[sid]
            if type(offsets) is tuple:
                for o in offsets:
                    buffer[p + o] = 1
            else:
                view[p + offsets] = 1
        return self.order[np.asarray(kept, dtype=np.int64)]


def _rasterise(grid, ky, kx):
    """Grid mask of normalised k-space points (ky, kx in [-1, 1), 0 at index n//2)."""
    height, width = grid
    y = np.rint(ky * (height / 2) + height // 2).astype(np.int64)
    x = np.rint(kx * (width / 2) + width // 2).astype(np.int64)
    keep = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    mask = np.zeros(grid, dtype=bool)
    mask[y[keep], x[keep]] = True
    return mask


def _radial(grid, spokes, rotation):
    """``spokes`` lines through the centre at angles pi n / spokes + rotation (radians)."""
    step = 0.5 / (max(grid) / 2)                   # half a pixel along the longest axis
    t = np.arange(-math.sqrt(2), math.sqrt(2) + step, step)
    angles = rotation + np.pi * np.arange(spokes) / spokes
    ky = np.sin(angles)[:, None] * t[None, :]
    kx = np.cos(angles)[:, None] * t[None, :]
    return _rasterise(grid, ky.ravel(), kx.ravel())


def _gen_radial(grid, spec, fraction, rng, tolerance):
    size = grid[0] * grid[1]
    centre, ch, cw = _centre_ellipse(grid, fraction)
    n_centre = int(centre.sum())
    if spec.accel is not None:
        _check_budget_points(spec, n_centre, size, fraction, f"{ch}x{cw} centre ellipse")
    turn = rng.uniform()                           # rotation as a fraction of pi / spokes

    def draw(n):
        return _radial(grid, n, turn * np.pi / n) | centre

    if spec.spokes is not None:
        spokes = spec.spokes
        mask = draw(spokes)
    else:
        target = size / spec.accel
        low, high = 1, 8                           # grow a bracket, then bisect
        while draw(high).sum() < target:
            if high >= 4 * max(grid):
                raise _accel_error(spec, f"radial reaches at most "
                                   f"{size / draw(high).sum():.2f}x on {grid[0]}x{grid[1]}")
            low, high = high + 1, min(2 * high, 4 * max(grid))
        while low < high:                          # fewest spokes with count >= target
            mid = (low + high) // 2
            if draw(mid).sum() >= target:
                high = mid
            else:
                low = mid + 1
        options = {n: draw(n) for n in (low - 1, low) if n >= 1}
        spokes = min(options, key=lambda n: abs(size / options[n].sum() - spec.accel))
        mask = options[spokes]
    achieved = size / mask.sum()
    if spec.accel is not None and not _within(achieved, spec.accel, tolerance):
        if spec.spokes is not None:
            raise _accel_error(spec, f"--spokes {spokes} gives {achieved:.2f}x on "
                               f"{grid[0]}x{grid[1]}; give only one of them")
        reach = ", ".join(f"{n} spokes give {size / m.sum():.2f}x"
                          for n, m in sorted(options.items()))
        raise _accel_error(spec, f"radial on {grid[0]}x{grid[1]} cannot get within "
                           f"{100 * tolerance:g}% ({reach})")
    info = _points_info(spec, grid, mask,
                        f"{ch}x{cw} centre ellipse" if n_centre else "no centre")
    info.details.append(f"{spokes} spokes, uniform angles")
    return mask, info


def _spiral(grid, turns, arms, rotation):
    """Archimedean arms r = theta / (2 pi turns), r in [0, 1], rasterised."""
    longest = max(grid) / 2                        # pixels per unit of normalised radius
    speed = (1 + 1 / (2 * np.pi * max(turns, 1e-3))) * longest
    dtheta = 0.5 / speed
    theta = np.arange(0, 2 * np.pi * turns + dtheta, dtheta)
    radius = np.minimum(theta / (2 * np.pi * turns), 1) if turns > 0 else theta * 0
    phases = rotation + 2 * np.pi * np.arange(arms) / arms
    angle = theta[None, :] + phases[:, None]
    return _rasterise(grid, (radius * np.sin(angle)).ravel(), (radius * np.cos(angle)).ravel())


def _gen_spiral(grid, spec, fraction, rng, tolerance):
    size = grid[0] * grid[1]
    centre, ch, cw = _centre_ellipse(grid, fraction)
    n_centre = int(centre.sum())
    _check_budget_points(spec, n_centre, size, fraction, f"{ch}x{cw} centre ellipse")
    rotation = rng.uniform() * 2 * np.pi / spec.arms
    target = size / spec.accel

    def draw(turns):
        return _spiral(grid, turns, spec.arms, rotation) | centre

    low, high = 0.0, 1.0                           # grow a bracket of turns, then bisect
    while draw(high).sum() < target:
        if high > max(grid) / spec.arms:
            most = draw(high).sum()
            raise _accel_error(spec, f"spiral reaches at most {size / most:.2f}x on "
                               f"{grid[0]}x{grid[1]} (it stays inside the inscribed ellipse)")
        low, high = high, 2 * high
    best = None
    for _ in range(40):
        mid = (low + high) / 2
        mask = draw(mid)
        got = int(mask.sum())
        if best is None or abs(got - target) < abs(best[1] - target):
            best = (mid, got, mask)
        if _within(size / got, spec.accel, tolerance / 4 if tolerance else 1e-3):
            break
        if got < target:
            low = mid
        else:
            high = mid
    turns, got, mask = best
    achieved = size / got
    if not _within(achieved, spec.accel, tolerance):
        raise _accel_error(spec, f"spiral on {grid[0]}x{grid[1]} with {spec.arms} arm(s) comes "
                           f"closest at {achieved:.2f}x, not within {100 * tolerance:g}%")
    info = _points_info(spec, grid, mask,
                        f"{ch}x{cw} centre ellipse" if n_centre else "no centre")
    info.details.append(f"{spec.arms} arm(s), {turns:.2f} turns")
    return mask, info


_GENERATORS = {
    "random": _gen_random,
    "random-exact": _gen_random_exact,
    "equispaced": _gen_equispaced,
    "equispaced-fraction": _gen_equispaced_fraction,
    "poisson": _gen_poisson,
    "sigpy-poisson": _gen_sigpy_poisson,
    "gaussian": _gen_gaussian,
    "uniform": _gen_uniform,
    "radial": _gen_radial,
    "spiral": _gen_spiral,
}
