"""Simulated multi-coil k-space with ground truth: test data that needs no download.

The model, per slice s and coil c (all in mrgen's conventions: centred orthonormal FFT,
images (H, W), k-space (coils, H, W)):

    image_s   = object_s * exp(i phase_s)             normalised so max |image| = 1 (stack)
    kspace_sc = fft2c(maps_c * image_s) + noise_sc    noise complex Gaussian, std sigma

* **object**: the modified Shepp-Logan phantom of sigpy (its 3D version for several slices),
  axial slices of the MNI152 T1 template that ships with nilearn (real anatomy), or any image
  (stack) the caller brings.
* **maps**: sigpy's birdcage sensitivities, normalised so that sum_c |s_c|^2 = 1 at every
  pixel of the field of view; noise-free RSS of the coil images then equals |image|.
* **phase**: a smooth random field, a 2D Legendre polynomial of total degree <= 3 with random
  coefficients (degree d weighted 1/(1+d)), scaled so that max |phase| = ``phase`` radians
  on the target grid; 0 gives a real object.
* **noise**: complex circular Gaussian added to every k-space sample, E|n|^2 = sigma^2 (real
  and imaginary parts each sigma/sqrt 2), relative to the image normalised to max 1. The FFT
  is orthonormal, so each coil image carries noise of the same std.

**Oversampling (avoiding the inverse crime).** With ``oversample=F > 1`` the object, phase and
maps are evaluated on a grid F times finer over the same field of view, (F H, F W), the coil
images are formed and transformed there, and only the frequencies of the target grid are kept:
the central H x W samples of the fine k-space (the samples at frequencies -H//2 .. H-H//2-1,
i.e. rows F H//2 - H//2 ... of the fine, centred spectrum), divided by F so that intensities
match (each axis of the orthonormal FFT gains sqrt(F) from F times more samples). The data are
then not products of the reconstruction's own discrete model: maps * image on the target grid
no longer reproduce them exactly. The ground-truth ``image`` is the same low-pass of the fine
object (times phase) without coils:

    image = ifft2c(crop_HxW(fft2c(object_fine * exp(i phase_fine)))) / F,

i.e. the fine object band-limited to the frequencies the k-space holds, sampled at the target
pixels; the returned ``maps`` are the birdcage maps sampled at the target pixels. Fine pixel
j lies at target-pixel coordinate n//2 + (j - F n//2) / F along an axis of n pixels, which is
what keeps the centred FFTs of both grids aligned (pixel n//2 is the centre of both); every
object, phase and map is a continuous function evaluated at these positions. With F = 1 all of
this reduces to the exact discrete model: ifft2c(kspace) = maps * image.

**Non-Cartesian.** With a ``trajectory`` (shots, samples, 2) (``mrgen.trajectory``) the k-space
holds the samples (coils, shots, samples) at its points instead, computed by the NUFFT of the
fine coil images on the fine grid (the same coordinates in cycles per FOV; divided by F as
above), never on the target grid: with F >= 2 (the default for a trajectory) the data again do
not come from the reconstruction's own discrete model. ``rss`` stays that of the Cartesian
fully sampled k-space (a reference image).

Randomness: ``seed`` seeds a numpy SeedSequence with two independent child streams, one for
the phase and one for the noise, so changing ``noise`` leaves the phase unchanged. The same
seed gives bit-identical output on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .errors import DataError, RuntimeFailure, UsageError
from .fft import fft2c, ifft2c

KINDS = ("shepp-logan", "brain")
DEFAULT_SIZE = (256, 256)
PHASE_ORDER = 3

# The MNI152 T1 template (1 mm, 197 x 233 x 189 voxels, x = left->right, y = posterior->
# anterior, z = inferior->superior). Its brain spans axial indices 0..154; the default band
# below (MNI z = -22 .. +48 mm) holds the large central slices (basal ganglia, ventricles,
# centrum semiovale), whose middle, index 85 (MNI z = +13 mm), is the default single slice.
BRAIN_BAND = (50, 120)
BRAIN_SOURCE = "MNI152 T1 template 2009 sym, 1 mm (nilearn); axial slice indices along z"
ANATOMY_HINT = "pip install mrgen[anatomy]"


@dataclass
class Phantom:
    """One simulated acquisition; every array has a leading slice axis S."""

    kspace: np.ndarray          # (S, C, H, W) complex64, with noise
    image: np.ndarray           # (S, H, W) complex64 ground truth, max |image| = 1
    maps: np.ndarray            # (S, C, H, W) complex64 true sensitivities
    rss: np.ndarray             # (S, H, W) float32, RSS of ifft2c(kspace)
    slice_indices: np.ndarray   # (S,) int64: positions in the source volume
    source: str                 # what the object is
    scale: float                # the object was divided by this to bring max |image| to 1
    settings: dict = field(default_factory=dict)

    @property
    def rss_error(self) -> float:
        """||rss - |image||| / |||image|||: noise (and, oversampled, model) error of the RSS."""
        truth = np.abs(self.image).astype(np.float64)
        return float(np.linalg.norm(self.rss - truth) / max(np.linalg.norm(truth), 1e-30))

    def arrays(self, keep_slice_axis: bool = True) -> dict:
        """kspace, image, maps and rss; without the slice axis unless ``keep_slice_axis``."""
        arrays = {"kspace": self.kspace, "image": self.image, "maps": self.maps,
                  "rss": self.rss}
        return arrays if keep_slice_axis else {k: a[0] for k, a in arrays.items()}

    def attributes(self, label: str) -> dict:
        """The .h5 attributes: fastMRI's max and norm of the RSS, the acquisition (``label``:
        the kind or where the image came from), the source and the settings."""
        return {"max": float(self.rss.max()), "norm": float(np.linalg.norm(self.rss)),
                "acquisition": f"mrgen phantom {label}", "source": self.source,
                "slice_indices": self.slice_indices, "image_scale": self.scale,
                **self.settings}

    def summary(self, label: str, kspace_shape: tuple[int, ...]) -> str:
        """One line for the report: shape as written, slices, phase, noise, oversampling."""
        settings = self.settings
        shape = "x".join(str(n) for n in kspace_shape)
        picked = ", ".join(str(i) for i in self.slice_indices[:8])
        more = ", ..." if len(self.slice_indices) > 8 else ""
        noise = settings["noise_sigma"]
        noise_text = (f"noise sigma {noise:g} (RSS error vs truth {100 * self.rss_error:.2f}%)"
                      if noise > 0 else "no noise")
        return (f"phantom {label}: k-space {shape} ({settings['coils']} coils), slice indices "
                f"{picked}{more}, phase {settings['phase_amplitude']:g} rad, {noise_text}, "
                f"oversample {settings['oversample']}")


# ---------------------------------------------------------------------------------------------
# Grids


def grid_positions(n: int, factor: int = 1) -> np.ndarray:
    """Target-pixel coordinates of the ``factor``-times finer grid over ``n`` pixels.

    Fine pixel j sits at n//2 + (j - (factor n)//2) / factor: the centres of the two centred
    FFT grids coincide. ``factor`` = 1 gives 0, 1, ..., n-1.
    """
    fine = factor * n
    return n // 2 + (np.arange(fine, dtype=np.float64) - fine // 2) / factor


def _normalised(n: int, factor: int) -> np.ndarray:
    # sigpy's phantom coordinates: (j - n//2) / n * 2, about [-1, 1) over the field of view.
    return (grid_positions(n, factor) - n // 2) / n * 2.0


# ---------------------------------------------------------------------------------------------
# Objects


# sigpy's modified Shepp-Logan ellipsoids (sigpy/sim.py, BSD-3-Clause): amplitude, semi-axes
# (x, y, z), centre (x, y, z), Euler angles (degrees); tests/test_phantom.py checks equality
# with sigpy. Evaluated here rather than by sigpy.shepp_logan, which builds the whole volume:
# one plane of the 256^3 phantom takes mrgen 0.04 s, sigpy 68 s (and its import 8-20 s).
_SL_AMPS = [1, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
_SL_SCALES = [[0.6900, 0.920, 0.810], [0.6624, 0.874, 0.780], [0.1100, 0.310, 0.220],
              [0.1600, 0.410, 0.280], [0.2100, 0.250, 0.410], [0.0460, 0.046, 0.050],
              [0.0460, 0.046, 0.050], [0.0460, 0.046, 0.050], [0.0230, 0.023, 0.020],
              [0.0230, 0.023, 0.020]]
_SL_OFFSETS = [[0.0, 0.0, 0], [0.0, -0.0184, 0], [0.22, 0.0, 0], [-0.22, 0.0, 0],
               [0.0, 0.35, -0.15], [0.0, 0.1, 0.25], [0.0, -0.1, 0.25], [-0.08, -0.605, 0],
               [0.0, -0.606, 0], [0.06, -0.605, 0]]
_SL_ANGLES = [[0, 0, 0], [0, 0, 0], [-18, 0, 10], [18, 0, 10], [0, 0, 0], [0, 0, 0],
              [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def _rotation(angle) -> np.ndarray:
    # sigpy.sim.rotation_matrix: Euler angles (phi, theta, psi) in degrees
    cphi, sphi = np.cos(np.radians(angle[0])), np.sin(np.radians(angle[0]))
    ctheta, stheta = np.cos(np.radians(angle[1])), np.sin(np.radians(angle[1]))
    cpsi, spsi = np.cos(np.radians(angle[2])), np.sin(np.radians(angle[2]))
    return np.array([
        [cpsi * cphi - ctheta * sphi * spsi, cpsi * sphi + ctheta * cphi * spsi, spsi * stheta],
        [-spsi * cphi - ctheta * sphi * cpsi, -spsi * sphi + ctheta * cphi * cpsi,
         cpsi * stheta],
        [stheta * sphi, -stheta * cphi, ctheta]])


def shepp_logan(size: tuple[int, int], z_index: int | None = None, depth: int | None = None,
                factor: int = 1) -> np.ndarray:
    """sigpy's modified Shepp-Logan phantom, (factor H, factor W) float64.

    The slice is the plane z_index of sigpy's 3D phantom of shape (depth, H, W) (depth default
    H, isotropic); the default, depth//2, is the plane z = 0, which is sigpy's 2D phantom.
    With factor 1 this equals ``sigpy.shepp_logan((depth, H, W))[z_index].real``.
    """
    h, w = size
    depth = h if depth is None else depth
    z_index = depth // 2 if z_index is None else z_index
    y, x = np.meshgrid(_normalised(h, factor), _normalised(w, factor), indexing="ij")
    z = (z_index - depth // 2) / depth * 2.0
    coords = np.stack((x.ravel(), y.ravel(), np.full(x.size, z)))
    out = np.zeros(x.shape, dtype=np.float64)
    for amp, scale, offset, angle in zip(_SL_AMPS, _SL_SCALES, _SL_OFFSETS, _SL_ANGLES):
        # the operations of sigpy.sim.ellipsoid, in its order (bit-identical results)
        local = (np.matmul(_rotation(angle), coords) - np.reshape(offset, (3, 1))) \
            / np.reshape(scale, (3, 1))
        r2 = np.sum(local ** 2, axis=0).reshape(out.shape)
        out[r2 <= 1] += amp
    return out


def load_mni152() -> np.ndarray:
    """The MNI152 T1 template as axial slices (Z, 233, 197) float32, radiological display.

    Row 0 is anterior (top of the picture), and the subject's left is on the right of the
    picture, as MR viewers show axial slices. Needs nilearn (it ships the template: no
    download); raises RuntimeFailure with the install hint without it.
    """
    try:
        from nilearn.datasets import load_mni152_template
    except ImportError:
        raise RuntimeFailure(f"--kind brain needs nilearn for the MNI152 template: "
                             f"{ANATOMY_HINT}") from None
    volume = np.asarray(load_mni152_template(resolution=1).dataobj, dtype=np.float32)
    # (x, y, z) -> (z, y, x), then flip y (anterior up) and x (radiological).
    return np.ascontiguousarray(volume.transpose(2, 1, 0)[:, ::-1, ::-1])


def fit_positions(n_src: int, n: int, factor: int = 1) -> np.ndarray:
    """Source-pixel coordinates of the fine grid when n_src source pixels span the n target
    pixels (the edges of the fields of view coincide)."""
    return (grid_positions(n, factor) + 0.5) * (n_src / n) - 0.5


def _resample_matrix(n_src: int, positions: np.ndarray, spacing: float) -> np.ndarray:
    """Rows of tent weights: linear interpolation, widened to ``spacing`` source pixels when
    the new grid is coarser (antialiasing, as Pillow's bilinear reduction)."""
    support = max(spacing, 1.0)
    src = np.arange(n_src, dtype=np.float64)
    weights = np.maximum(0.0, 1.0 - np.abs(src[None, :] - positions[:, None]) / support)
    total = weights.sum(axis=1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


def pad_to_aspect(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Zero-pad (centred) the last two axes to the aspect ratio of ``size`` (no stretching)."""
    h, w = image.shape[-2:]
    th, tw = size
    if h * tw > w * th:                       # too tall: widen
        new = (h, int(round(h * tw / th)))
    else:                                     # too wide: heighten
        new = (int(round(w * th / tw)), w)
    ph, pw = max(new[0] - h, 0), max(new[1] - w, 0)
    pads = [(0, 0)] * (image.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(image, pads)


def resample(image: np.ndarray, size: tuple[int, int], factor: int = 1) -> np.ndarray:
    """Resample the last two axes of ``image`` onto the (factor H, factor W) grid of ``size``.

    The source spans the same field of view as the target; separable tent filter with
    antialiasing when shrinking. With the source already of ``size`` and factor 1 this is the
    identity. Pad with ``pad_to_aspect`` first to keep proportions.
    """
    h_src, w_src = image.shape[-2:]
    h, w = size
    rows = _resample_matrix(h_src, fit_positions(h_src, h, factor), h_src / (h * factor))
    cols = _resample_matrix(w_src, fit_positions(w_src, w, factor), w_src / (w * factor))
    return np.einsum("ij,...jk,lk->...il", rows, image, cols, optimize=True)


# ---------------------------------------------------------------------------------------------
# Coils and phase


def birdcage_maps(coils: int, size: tuple[int, int], factor: int = 1) -> np.ndarray:
    """sigpy's birdcage sensitivities (coils, factor H, factor W) complex128, sum |s|^2 = 1.

    The formula of ``sigpy.mri.birdcage_maps`` (coils on a ring of radius 1.5 field-of-view
    half-widths), evaluated at the fine grid's positions; factor 1 gives sigpy's maps. Not
    sigpy's function: it evaluates only its own integer grid, which for an odd size is not
    the fine grid of ``--oversample``.
    """
    h, w = size
    c = np.arange(coils, dtype=np.float64)[:, None, None]
    y = grid_positions(h, factor)[None, :, None]
    x = grid_positions(w, factor)[None, None, :]
    radius = 1.5
    coil_x = radius * np.cos(c * (2 * np.pi / coils))
    coil_y = radius * np.sin(c * (2 * np.pi / coils))
    coil_phase = -c * (2 * np.pi / coils)
    x_co = (x - w / 2.0) / (w / 2.0) - coil_x
    y_co = (y - h / 2.0) / (h / 2.0) - coil_y
    rr = np.sqrt(x_co ** 2 + y_co ** 2)
    phi = np.arctan2(x_co, -y_co) + coil_phase
    maps = (1.0 / rr) * np.exp(1j * phi)
    return maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))


def smooth_phase(size: tuple[int, int], amplitude: float, rng: np.random.Generator,
                 factor: int = 1, order: int = PHASE_ORDER) -> np.ndarray:
    """A smooth random phase map (factor H, factor W) float64, max |phase| = ``amplitude``.

    sum over a + b <= order of c_ab P_a(y) P_b(x) (Legendre polynomials over the field of
    view), c_ab ~ N(0, 1) / (1 + a + b); scaled so the maximum over the target grid (factor 1)
    is ``amplitude`` radians. The same draws give the same continuous field for any factor.
    """
    from numpy.polynomial import legendre

    terms = [(a, b) for a in range(order + 1) for b in range(order + 1 - a)]
    coeffs = rng.standard_normal(len(terms)) / np.array([1.0 + a + b for a, b in terms])
    if amplitude == 0:
        h, w = size
        return np.zeros((factor * h, factor * w))
    table = np.zeros((order + 1, order + 1))
    for (a, b), value in zip(terms, coeffs):
        table[a, b] = value

    def field_on(grid_factor):
        y = _normalised(size[0], grid_factor)
        x = _normalised(size[1], grid_factor)
        return legendre.leggrid2d(y, x, table)

    peak = float(np.abs(field_on(1)).max())
    return field_on(factor) * (amplitude / peak if peak > 0 else 0.0)


# ---------------------------------------------------------------------------------------------
# Slice selection


def choose_slices(depth: int, selection=None, count: int | None = None,
                  band: tuple[int, int] | None = None, default_count: int = 1) -> np.ndarray:
    """Indices of the slices to take from a source of ``depth`` slices.

    ``selection``: None (the default ``band``, inclusive, default the whole depth), an int
    (that slice), a ``slice`` (a half-open range A:B) or a sequence of ints (exactly those).
    From a band or range, ``count`` slices (default: ``default_count`` for the band, all of a
    range) are spread evenly, ends included; one slice is the middle one.
    """
    def check(index):
        if not 0 <= index < depth:
            raise UsageError(f"--slice-index {index}: out of range 0..{depth - 1}")
        return index

    if count is not None and count < 1:
        raise UsageError(f"--slices {count}: must be at least 1")
    if isinstance(selection, (int, np.integer)):
        if count not in (None, 1):
            raise UsageError(f"--slices {count} with a single --slice-index {selection}")
        return np.array([check(int(selection))], dtype=np.int64)
    if selection is not None and not isinstance(selection, slice):
        picked = [check(int(i)) for i in selection]
        if count is not None and count != len(picked):
            raise UsageError(f"--slices {count}: --slice-index lists {len(picked)} slices")
        if len(set(picked)) != len(picked):
            raise UsageError("--slice-index: repeated slice")
        return np.array(picked, dtype=np.int64)
    if selection is None:
        lo, hi = band if band is not None else (0, depth - 1)
        what = f"default range {lo}:{hi + 1}"
        count = default_count if count is None else count
    else:
        lo, hi = (selection.start or 0), (depth if selection.stop is None else selection.stop) - 1
        if selection.step not in (None, 1):
            raise UsageError("--slice-index: a range takes no step")
        what = f"range {lo}:{hi + 1}"
        if not 0 <= lo <= hi < depth:
            raise UsageError(f"--slice-index {lo}:{hi + 1}: not a non-empty range within "
                             f"0:{depth}")
        count = hi - lo + 1 if count is None else count
    if count > hi - lo + 1:
        raise UsageError(f"--slices {count}: the {what} holds only {hi - lo + 1} slices "
                         f"(choose another with --slice-index A:B)")
    if count == 1:
        return np.array([(lo + hi) // 2], dtype=np.int64)
    return np.floor(np.linspace(lo, hi, count) + 0.5).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Simulation


def simulate(render: Callable[[int, int], np.ndarray], count: int, size: tuple[int, int],
             coils: int = 8, phase: float = 1.0, noise: float = 0.0, oversample: int = 1,
             seed: int = 0, trajectory: np.ndarray | None = None) -> dict:
    """Coil k-space and ground truth for ``count`` slices of an object.

    ``render(s, factor)`` returns slice s of the object on the fine grid (factor H, factor W)
    (real or complex, at the positions of ``grid_positions``). Returns a dict of the arrays of
    ``Phantom`` (kspace, image, maps, rss) and ``scale``; see the module doc for the model.
    """
    h, w = size
    f = int(oversample)
    if f < 1:
        raise UsageError(f"--oversample {oversample}: must be at least 1")
    if coils < 1:
        raise UsageError(f"--coils {coils}: must be at least 1")
    if h < 2 or w < 2:
        raise UsageError(f"--size {h} {w}: needs at least 2 x 2 pixels")
    if noise < 0 or not math.isfinite(noise):
        raise UsageError(f"--noise {noise}: must be a finite value >= 0")
    if phase < 0 or not math.isfinite(phase):
        raise UsageError(f"--phase {phase}: must be a finite value >= 0")
    phase_rng, noise_rng = (np.random.default_rng(s)
                            for s in np.random.SeedSequence(seed).spawn(2))
    maps_fine = torch.from_numpy(birdcage_maps(coils, size, f))
    top, left = (f * h) // 2 - h // 2, (f * w) // 2 - w // 2

    def low_pass(fine: torch.Tensor) -> torch.Tensor:
        # k-space at the target grid's frequencies, intensities matched (see the module doc)
        k = fft2c(fine)
        return k[..., top:top + h, left:left + w] / f if f > 1 else k

    kspace = np.empty((count, coils, h, w), dtype=np.complex64)
    image = np.empty((count, h, w), dtype=np.complex128)
    sampled = None if trajectory is None else _TrajectorySampler(trajectory, (f * h, f * w), f,
                                                                 count, coils)
    for s in range(count):
        obj = np.asarray(render(s, f))
        if obj.shape != (f * h, f * w):
            raise RuntimeFailure(f"object slice {s}: shape {obj.shape}, expected "
                                 f"{(f * h, f * w)}")
        obj = obj * np.exp(1j * smooth_phase(size, phase, phase_rng, f))
        fine = torch.from_numpy(np.ascontiguousarray(obj, dtype=np.complex128))
        image[s] = ifft2c(low_pass(fine)).numpy() if f > 1 else obj
        kspace[s] = low_pass(maps_fine * fine).numpy()
        if sampled is not None:
            sampled.take(s, maps_fine * fine)
    scale = float(np.abs(image).max())
    if not scale > 0:
        raise DataError("the object is zero everywhere: nothing to simulate")
    image /= scale
    rss = np.empty((count, h, w), dtype=np.float32)
    for s in range(count):
        kspace[s] /= np.float32(scale)
        if noise > 0:
            draws = noise_rng.standard_normal((2, coils, h, w))
            kspace[s] += ((draws[0] + 1j * draws[1]) * (noise / math.sqrt(2))).astype(
                np.complex64)
        coil_images = ifft2c(torch.from_numpy(kspace[s].astype(np.complex128)))
        rss[s] = torch.sqrt(torch.sum(coil_images.abs() ** 2, dim=-3)).numpy()
    maps = birdcage_maps(coils, size, 1).astype(np.complex64)
    if sampled is not None:
        kspace = sampled.finish(scale, noise, noise_rng)
    return {"kspace": kspace, "image": image.astype(np.complex64),
            "maps": np.ascontiguousarray(np.broadcast_to(maps, (count, *maps.shape))),
            "rss": rss, "scale": scale}


class _TrajectorySampler:
    """The non-Cartesian samples of the fine coil images (module doc), slice by slice."""

    def __init__(self, trajectory, fine_grid, factor, count, coils):
        from .nufft import Nufft

        self.nufft = Nufft(torch.as_tensor(np.asarray(trajectory, np.float32)), fine_grid)
        self.factor = factor
        self.samples = np.empty((count, coils, *self.nufft.sample_shape), np.complex64)

    def take(self, s, fine_coil_images):
        self.samples[s] = (self.nufft.forward(fine_coil_images.to(torch.complex64))
                           / self.factor).numpy()

    def finish(self, scale, noise, noise_rng):
        self.samples /= np.float32(scale)
        if noise > 0:
            draws = noise_rng.standard_normal((2, *self.samples.shape))
            self.samples += ((draws[0] + 1j * draws[1]) * (noise / math.sqrt(2))).astype(
                np.complex64)
        return self.samples


def check_request(kind: str, size: tuple[int, int] | None, has_image: bool) -> None:
    """Refuse an unknown kind (unless an image is given) or a size under 2 x 2, before any
    file is read."""
    if not has_image and kind not in KINDS:
        raise UsageError(f"--kind {kind}: expected one of {' | '.join(KINDS)}")
    if size is not None and (size[0] < 2 or size[1] < 2):
        raise UsageError(f"--size {size[0]} {size[1]}: needs at least 2 x 2 pixels")


def keeps_slice_axis(slices: int | None, selection, images: np.ndarray | None) -> bool:
    """Whether outputs keep the slice axis: a slice count, a range or list of slice indices
    (``selection`` as ``parse_slice_index`` gives it) or a whole image stack ask for it."""
    return (slices is not None or (selection is not None and not isinstance(selection, int))
            or (images is not None and images.ndim == 3 and selection is None))


def make_phantom(kind: str = "shepp-logan", size: tuple[int, int] | None = None,
                 coils: int = 8, slices: int | None = None, slice_index=None,
                 phase: float = 1.0, noise: float = 0.0, oversample: int = 1, seed: int = 0,
                 images: np.ndarray | None = None,
                 trajectory: np.ndarray | None = None) -> Phantom:
    """Simulate an acquisition of a ``kind`` of object, or of ``images`` (H, W) / (S, H, W).

    ``kind``: "shepp-logan" (sigpy's modified phantom; slices from its isotropic 3D version
    (H, H, W), default the central plane, a count from the central half of the depth) or
    "brain" (axial slices of the MNI152 template, default from ``BRAIN_BAND``). ``images``
    overrides ``kind``: the user's stack, default all its slices, kept at its size unless
    ``size`` is given. ``slices``/``slice_index``: see ``choose_slices``. Sources of another
    size or aspect are zero-padded to the target aspect and resampled with antialiasing.
    """
    settings = {"coils": coils, "phase_amplitude": float(phase), "noise_sigma": float(noise),
                "oversample": int(oversample), "seed": int(seed)}
    if images is not None:
        stack = np.asarray(images)
        if stack.ndim == 2:
            stack = stack[None]
        if stack.ndim != 3:
            raise DataError(f"an object image needs shape (H, W) or (S, H, W), got "
                            f"{stack.shape}")
        indices = choose_slices(stack.shape[0], slice_index, slices,
                                default_count=stack.shape[0])
        size = tuple(stack.shape[-2:]) if size is None else tuple(size)
        dtype = np.complex128 if np.iscomplexobj(stack) else np.float64
        chosen = pad_to_aspect(stack[indices].astype(dtype), size)
        source = "user image"

        def render(s, factor):
            return resample(chosen[s], size, factor)
        kind = "image"
    elif kind == "shepp-logan":
        size = DEFAULT_SIZE if size is None else tuple(size)
        depth = size[0]
        band = (depth // 2 - depth // 4, depth // 2 + depth // 4)
        indices = choose_slices(depth, slice_index, slices, band)
        source = (f"sigpy modified Shepp-Logan, planes of the 3D phantom "
                  f"({depth}, {size[0]}, {size[1]})")

        def render(s, factor):
            return shepp_logan(size, int(indices[s]), depth, factor)
    elif kind == "brain":
        size = DEFAULT_SIZE if size is None else tuple(size)
        volume = load_mni152()
        indices = choose_slices(volume.shape[0], slice_index, slices, BRAIN_BAND)
        chosen = pad_to_aspect(volume[indices].astype(np.float64), size)
        source = BRAIN_SOURCE

        def render(s, factor):
            return resample(chosen[s], size, factor)
    else:
        raise UsageError(f"--kind {kind}: expected one of {', '.join(KINDS)}")
    size = (int(size[0]), int(size[1]))
    arrays = simulate(render, len(indices), size, coils, phase, noise, oversample, seed,
                      trajectory)
    settings["kind"] = kind
    return Phantom(arrays["kspace"], arrays["image"], arrays["maps"], arrays["rss"],
                   np.asarray(indices, dtype=np.int64), source, arrays["scale"], settings)


def parse_slice_index(text: str | None):
    """``--slice-index`` values: ``I``, ``A:B`` (half-open range) or ``I,J,K``."""
    if text is None or text == "":
        return None
    try:
        if ":" in text:
            start, stop = text.split(":", 1)
            return slice(int(start) if start else None, int(stop) if stop else None)
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        return int(text)
    except ValueError:
        raise UsageError(f"--slice-index {text}: expected I, A:B or I,J,K") from None

