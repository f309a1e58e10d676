"""Image-quality metrics for magnitude images, and the null-space residual of coil maps.

Conventions follow fastMRI's ``evaluate.py`` unless noted:

- NMSE = ||ref - rec||^2 / ||ref||^2.
- PSNR = 10 log10(maxval^2 / MSE), maxval = ``data_range`` = the reference's maximum.
- SSIM = ``skimage.metrics.structural_similarity(ref, rec, data_range=maxval)`` per 2D slice:
  7x7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance (N / (N - 1)), averaged over
  the pixels at least 3 from the border, then over slices.
- MS-SSIM (Wang, Simoncelli, Bovik 2003): 5 scales with weights 0.0448, 0.2856, 0.3001,
  0.2363, 0.1333, 11x11 Gaussian window (sigma 1.5), 2x2 average-pool downsampling; images
  too small for 5 scales use fewer, with the leading weights renormalised to sum 1.
- VIF: pixel-domain VIF (Sheikh & Bovik, "vifp"): 4 scales, Gaussian windows of size
  N = 2^(4-s+1)+1 and sigma N/5, sigma_nsq = 2, as in ``sewar.vifp``. As in ``piq.vif_p`` the
  images are first scaled by 255 / data_range, so that sigma_nsq = 2 means what it does for
  8-bit images and VIF does not depend on the intensity scale of the data.

Arrays are (H, W) or (slices, H, W) tensors (numpy arrays are accepted); complex input is
replaced by its magnitude. Everything is computed in float64. ``data_range`` may be a number
or a tensor with one value per slice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .coils import null_space_residual, rss
from .errors import DataError, UsageError
from .resize import center_crop

METRICS = ("psnr", "nmse", "ssim", "ms_ssim", "vif")
DEFAULT_METRICS = ("psnr", "nmse", "ssim")
NORMALIZATIONS = ("none", "minmax", "meanstd", "meanstd-both")
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 7
MS_SSIM_WINDOW = 11
MS_SSIM_SIGMA = 1.5
VIF_MIN_SIZE = 41  # the smallest image the four VIF scales fit (valid filtering)
K1, K2 = 0.01, 0.03


# ---------------------------------------------------------------------------------------------
# Input handling


def as_magnitude(x) -> torch.Tensor:
    """A float64 tensor of the magnitude of ``x`` (tensor or array), shape kept."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.is_complex():
        return x.to(torch.complex128).abs()
    return x.to(torch.float64)


def _volume(x) -> torch.Tensor:
    """(S, H, W) float64 magnitude."""
    x = as_magnitude(x)
    if x.ndim == 2:
        return x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"expected an image (H, W) or (slices, H, W), got shape {tuple(x.shape)}")
    return x


def _per_slice(value, slices: int, like: torch.Tensor) -> torch.Tensor:
    """``value`` (number or tensor) as a (S, 1, 1) tensor for broadcasting against (S, H, W)."""
    value = torch.as_tensor(value, dtype=torch.float64, device=like.device)
    return value.reshape(-1, 1, 1).expand(slices, 1, 1) if value.numel() == 1 \
        else value.reshape(slices, 1, 1)


def match_reference(reference, recon, name: str = "recon") -> torch.Tensor:
    """Centre-crop ``recon`` to the reference's (H, W); DataError naming ``name`` if it cannot.

    The leading (slice) shapes must agree; a recon smaller than the reference is an error.
    """
    if tuple(recon.shape[:-2]) != tuple(reference.shape[:-2]):
        raise DataError(f"{name}: {_slices_text(recon.shape)} but the reference has "
                        f"{_slices_text(reference.shape)} (shapes {tuple(recon.shape)} and "
                        f"{tuple(reference.shape)})")
    (h, w), (rh, rw) = recon.shape[-2:], reference.shape[-2:]
    if h < rh or w < rw:
        raise DataError(f"{name}: image {h}x{w} is smaller than the reference {rh}x{rw}")
    if (h, w) != (rh, rw):
        recon = center_crop(recon, (rh, rw))
    return recon


def _slices_text(shape) -> str:
    return f"{shape[0]} slices" if len(shape) == 3 else "no slice axis"


# ---------------------------------------------------------------------------------------------
# Normalisation (Darestani, Heckel 2021, appendix A)


def normalize(reference, recon, mode: str = "none", per: str = "volume"):
    """Return ``(reference, recon)`` normalised by ``mode`` (float64 magnitude tensors).

    - ``none``: unchanged.
    - ``minmax``: each image to [0, 1] by its own minimum and maximum.
    - ``meanstd``: the "mean-std (gt)": the reference rescaled to the recon's mean
      and standard deviation, (ref - mean(ref)) / std(ref) * std(rec) + mean(rec).
    - ``meanstd-both``: both images to zero mean and unit standard deviation.

    Statistics are taken over each whole volume (``per="volume"``) or each slice (``"slice"``);
    standard deviations are population ones (numpy's default). A constant image, which has no
    spread to rescale, is mapped to zeros by ``minmax`` and ``meanstd-both``.
    """
    if mode not in NORMALIZATIONS:
        raise UsageError(f"--normalize {mode}: use one of {', '.join(NORMALIZATIONS)}")
    ref, rec = as_magnitude(reference), as_magnitude(recon)
    if mode == "none":
        return ref, rec
    dims = _stat_dims(ref, per)
    if mode == "minmax":
        return _minmax(ref, dims), _minmax(rec, dims)
    if mode == "meanstd":
        return _standardise(ref, dims) * rec.std(dim=dims, correction=0, keepdim=True) + \
            rec.mean(dim=dims, keepdim=True), rec
    return _standardise(ref, dims), _standardise(rec, dims)


def _stat_dims(x, per):
    if per not in ("volume", "slice"):
        raise UsageError(f"--per {per}: use volume or slice")
    return (-2, -1) if per == "slice" else tuple(range(x.ndim))


def _minmax(x, dims):
    low = x.amin(dim=dims, keepdim=True)
    spread = x.amax(dim=dims, keepdim=True) - low
    return torch.where(spread > 0, (x - low) / torch.where(spread > 0, spread, 1), 0.0)


def _standardise(x, dims):
    std = x.std(dim=dims, correction=0, keepdim=True)
    centred = x - x.mean(dim=dims, keepdim=True)
    return torch.where(std > 0, centred / torch.where(std > 0, std, 1), 0.0)


# ---------------------------------------------------------------------------------------------
# NMSE, PSNR


def nmse(reference, recon) -> float:
    """||ref - rec||^2 / ||ref||^2 over all elements (fastMRI)."""
    ref, rec = as_magnitude(reference), as_magnitude(recon)
    return float(torch.sum((ref - rec) ** 2) / torch.sum(ref ** 2))


def psnr(reference, recon, data_range=None) -> float:
    """10 log10(data_range^2 / MSE) over all elements; data_range defaults to ref.max()."""
    ref, rec = as_magnitude(reference), as_magnitude(recon)
    maxval = ref.max() if data_range is None else torch.as_tensor(data_range, dtype=ref.dtype)
    mse = torch.mean((ref - rec) ** 2)
    return float(10 * torch.log10(maxval ** 2 / mse))


def nmse_slices(reference, recon) -> torch.Tensor:
    """NMSE of each slice: (S,)."""
    ref, rec = _volume(reference), _volume(recon)
    return torch.sum((ref - rec) ** 2, dim=(-2, -1)) / torch.sum(ref ** 2, dim=(-2, -1))


def psnr_slices(reference, recon, data_range=None) -> torch.Tensor:
    """PSNR of each slice: (S,); data_range defaults to each slice's maximum."""
    ref, rec = _volume(reference), _volume(recon)
    maxval = ref.amax(dim=(-2, -1)) if data_range is None else \
        _per_slice(data_range, ref.shape[0], ref).reshape(-1)
    mse = torch.mean((ref - rec) ** 2, dim=(-2, -1))
    return 10 * torch.log10(maxval ** 2 / mse)


# ---------------------------------------------------------------------------------------------
# SSIM (skimage / fastMRI)


def ssim_slices(reference, recon, data_range=None, win_size: int = SSIM_WINDOW,
                k1: float = K1, k2: float = K2) -> torch.Tensor:
    """skimage's ``structural_similarity`` of each slice: (S,).

    Uniform ``win_size`` window, sample covariance, mean over the region ``(win_size-1)//2``
    pixels in from the border. data_range defaults to the reference volume's maximum.
    """
    ref, rec = _volume(reference), _volume(recon)
    slices, height, width = ref.shape
    if min(height, width) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, "
                         f"got {height}x{width}")
    maxval = _per_slice(ref.max() if data_range is None else data_range, slices, ref)
    c1 = (k1 * maxval.unsqueeze(1)) ** 2
    c2 = (k2 * maxval.unsqueeze(1)) ** 2
    x, y = ref.unsqueeze(1), rec.unsqueeze(1)

    def mean(z):  # the uniform filter, 'valid' part only (separable)
        return F.avg_pool2d(F.avg_pool2d(z, (1, win_size), stride=1), (win_size, 1), stride=1)

    count = win_size * win_size
    cov_norm = count / (count - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-3, -2, -1))


def ssim(reference, recon, data_range=None) -> float:
    """Mean over slices of the per-slice SSIM; data_range defaults to the reference's max."""
    return float(ssim_slices(reference, recon, data_range).mean())


# ---------------------------------------------------------------------------------------------
# MS-SSIM (Wang et al. 2003)


def ms_ssim_scales(shape, max_scales: int = len(MS_SSIM_WEIGHTS),
                   win_size: int = MS_SSIM_WINDOW) -> int:
    """How many MS-SSIM scales an image of ``shape`` (..., H, W) allows (0 if none)."""
    side = min(shape[-2:])
    scales = 0
    while scales < max_scales and side // 2 ** scales >= win_size:
        scales += 1
    return scales


def ms_ssim_weights(scales: int) -> tuple[float, ...]:
    """The first ``scales`` MS-SSIM weights, renormalised to sum 1 when fewer than 5."""
    weights = MS_SSIM_WEIGHTS[:scales]
    if scales == len(MS_SSIM_WEIGHTS):
        return weights
    total = sum(weights)
    return tuple(w / total for w in weights)


def _gaussian_1d(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=like.device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of (..., H, W) with the 1D kernel ``g`` along both axes.

    A sum of shifted copies: exact in float64 and light on memory (torch's float64 conv2d
    on CPU unfolds the whole image once per kernel tap).
    """
    weights = g.tolist()
    taps = len(weights)
    rows = x.shape[-2] - taps + 1
    out = x[..., 0:rows, :] * weights[0]
    for k in range(1, taps):
        out.add_(x[..., k:k + rows, :], alpha=weights[k])
    cols = x.shape[-1] - taps + 1
    result = out[..., 0:cols] * weights[0]
    for k in range(1, taps):
        result.add_(out[..., k:k + cols], alpha=weights[k])
    return result


def ms_ssim_slices(reference, recon, data_range=None, scales: int | None = None) -> torch.Tensor:
    """MS-SSIM of each slice: (S,).

    ``scales`` defaults to as many of the 5 as the image size allows (the coarsest scale must
    hold an 11x11 window); with fewer than 5 the weights are renormalised. Negative contrast /
    structure terms are clipped at 0 (as pytorch-msssim does) so the fractional powers exist.
    """
    ref, rec = _volume(reference), _volume(recon)
    slices = ref.shape[0]
    allowed = ms_ssim_scales(ref.shape)
    scales = allowed if scales is None else scales
    if scales < 1 or scales > allowed:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_WINDOW}x{MS_SSIM_WINDOW} "
                         f"per scale; {ref.shape[-2]}x{ref.shape[-1]} allows {allowed} "
                         f"scale(s), asked for {scales}")
    weights = torch.tensor(ms_ssim_weights(scales), dtype=torch.float64, device=ref.device)
    maxval = _per_slice(ref.max() if data_range is None else data_range, slices, ref)
    c1 = (K1 * maxval.unsqueeze(1)) ** 2
    c2 = (K2 * maxval.unsqueeze(1)) ** 2
    g = _gaussian_1d(MS_SSIM_WINDOW, MS_SSIM_SIGMA, ref)
    x, y = ref.unsqueeze(1), rec.unsqueeze(1)
    terms = []
    for scale in range(scales):
        if scale > 0:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        mx, my = _filter_valid(x, g), _filter_valid(y, g)
        sxx = _filter_valid(x * x, g) - mx * mx
        syy = _filter_valid(y * y, g) - my * my
        sxy = _filter_valid(x * y, g) - mx * my
        cs_map = (2 * sxy + c2) / (sxx + syy + c2)
        if scale < scales - 1:
            terms.append(cs_map.mean(dim=(-3, -2, -1)))
        else:
            luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            terms.append((luminance * cs_map).mean(dim=(-3, -2, -1)))
    values = torch.relu(torch.stack(terms, dim=-1))  # (S, scales)
    return torch.prod(values ** weights, dim=-1)


def ms_ssim(reference, recon, data_range=None, scales: int | None = None) -> float:
    """Mean over slices of the per-slice MS-SSIM."""
    return float(ms_ssim_slices(reference, recon, data_range, scales).mean())


# ---------------------------------------------------------------------------------------------
# VIF (pixel domain)


def vif_slices(reference, recon, data_range=None, sigma_nsq: float = 2.0) -> torch.Tensor:
    """Pixel-domain VIF (vifp) of each slice: (S,); 1 for identical images.

    Images are scaled by 255 / data_range first (data_range defaults to the reference volume's
    maximum), then the four-scale vifp of Sheikh & Bovik is computed as ``sewar.vifp`` does.
    """
    ref, rec = _volume(reference), _volume(recon)
    slices, height, width = ref.shape
    if min(height, width) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE}, "
                         f"got {height}x{width}")
    maxval = _per_slice(ref.max() if data_range is None else data_range, slices, ref)
    scale_factor = (255.0 / maxval).unsqueeze(1)
    x, y = ref.unsqueeze(1) * scale_factor, rec.unsqueeze(1) * scale_factor
    eps = 1e-10
    num = torch.zeros(slices, dtype=torch.float64, device=ref.device)
    den = torch.zeros_like(num)
    for scale in range(1, 5):
        size = 2 ** (4 - scale + 1) + 1
        win = _gaussian_1d(size, size / 5.0, ref)   # the 2D window is its outer product

        def filt(z):
            return _filter_valid(z, win)

        if scale > 1:
            x, y = filt(x)[..., ::2, ::2], filt(y)[..., ::2, ::2]
        mx, my = filt(x), filt(y)
        sxx = torch.relu(filt(x * x) - mx * mx)
        syy = torch.relu(filt(y * y) - my * my)
        sxy = filt(x * y) - mx * my

        g = sxy / (sxx + eps)
        sv = syy - g * sxy
        flat_ref = sxx < eps
        g = torch.where(flat_ref, 0.0, g)
        sv = torch.where(flat_ref, syy, sv)
        sxx = torch.where(flat_ref, 0.0, sxx)
        flat_rec = syy < eps
        g = torch.where(flat_rec, 0.0, g)
        sv = torch.where(flat_rec, 0.0, sv)
        negative = g < 0
        sv = torch.where(negative, syy, sv)
        g = torch.where(negative, 0.0, g)
        sv = torch.clamp_min(sv, eps)

        num += torch.sum(torch.log10(1 + g * g * sxx / (sv + sigma_nsq)), dim=(-3, -2, -1))
        den += torch.sum(torch.log10(1 + sxx / sigma_nsq), dim=(-3, -2, -1))
    return num / den


def vif(reference, recon, data_range=None, sigma_nsq: float = 2.0) -> float:
    """Mean over slices of the per-slice pixel-domain VIF."""
    return float(vif_slices(reference, recon, data_range, sigma_nsq).mean())


# ---------------------------------------------------------------------------------------------
# Everything at once, as the command reports it


def evaluate(reference, recon, metrics=DEFAULT_METRICS, per: str = "volume",
             normalization: str = "none", ms_ssim_scale_count: int | None = None) -> dict:
    """Compute ``metrics`` of ``recon`` against ``reference`` (same shape; see match_reference).

    ``per="volume"`` (fastMRI): maxval is the reference volume's maximum, NMSE and PSNR are
    taken over the whole volume, SSIM / MS-SSIM / VIF are averaged over slices.
    ``per="slice"``: every slice uses its own maximum and gets its own values; the result
    holds their means and, under ``"slices"``, one dict per slice.
    Normalisation (see ``normalize``) is applied per volume or per slice accordingly.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    ref, rec = normalize(_volume(reference), _volume(recon), normalization, per)
    if ref.shape != rec.shape:
        raise ValueError(f"shapes differ: {tuple(ref.shape)} and {tuple(rec.shape)}")
    if per == "slice":
        maxval = ref.amax(dim=(-2, -1))
    else:
        maxval = ref.max()
    values = {}
    if "psnr" in metrics:
        values["psnr"] = psnr_slices(ref, rec, maxval) if per == "slice" else \
            psnr(ref, rec, maxval)
    if "nmse" in metrics:
        values["nmse"] = nmse_slices(ref, rec) if per == "slice" else nmse(ref, rec)
    if "ssim" in metrics:
        values["ssim"] = ssim_slices(ref, rec, maxval)
    if "ms_ssim" in metrics:
        values["ms_ssim"] = ms_ssim_slices(ref, rec, maxval, ms_ssim_scale_count)
    if "vif" in metrics:
        values["vif"] = vif_slices(ref, rec, maxval)
    result = {name: _mean(value) for name, value in values.items()}
    if per == "slice":
        result["slices"] = [{name: float(value[i]) for name, value in values.items()}
                            for i in range(ref.shape[0])]
    return result


def _mean(value) -> float:
    return float(value.mean()) if isinstance(value, torch.Tensor) else float(value)


# ---------------------------------------------------------------------------------------------
# Null-space residual of sensitivity maps (Zach, Knoll, Pock 2023, Eq. 17)


def relative_null_space_residual(coil_images: torch.Tensor, maps: torch.Tensor,
                                 support_threshold: float | None = None):
    """||pi||_F / ||u||_F for coil images u (..., C, H, W) and maps of the same shape.

    pi = mrgen.coils.null_space_residual(u, maps). With ``support_threshold`` t, only pixels
    where RSS(u) > t * max RSS(u) (the maximum of each slice) count. Returns
    ``(relative residual, RSS residual image |pi| (..., H, W) (zero outside the support),
    fraction of pixels in the support)``.
    """
    u = coil_images.to(torch.complex128)
    residual = null_space_residual(u, maps.to(torch.complex128))
    image = rss(residual)
    power = rss(u) ** 2
    if support_threshold is not None:
        magnitude = power.sqrt()
        peak = magnitude.amax(dim=(-2, -1), keepdim=True)
        support = magnitude > support_threshold * peak
        image = torch.where(support, image, 0.0)
        power = torch.where(support, power, 0.0)
        fraction = float(support.to(torch.float64).mean())
    else:
        fraction = 1.0
    total = float(torch.sum(power))
    if not total > 0:
        raise ValueError("no signal in the coil images" + (
            "" if support_threshold is None else " inside the support"))
    value = math.sqrt(float(torch.sum(image ** 2)) / total)
    return value, image, fraction
