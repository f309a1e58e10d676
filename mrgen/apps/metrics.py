"""Image-quality rows of reconstructions against a reference, and the null-space residual of
coil maps against fully sampled k-space (``mrgen metrics``)."""

from __future__ import annotations

import torch

from .. import metrics as quality
from ..errors import DataError, UsageError
from ..fft import ifft2c


def image_metrics_app(reference: torch.Tensor, recons, chosen, per: str, normalization: str,
                      reference_name: str = "reference", first_slice: int = 0,
                      log=None) -> list[dict]:
    """One row {"recon": name, metric: value, ...} per (name, image) of ``recons``, images
    compared by magnitude; larger recons are centre-cropped to the reference; with per
    "slice" also the per-slice entries, numbered from ``first_slice``."""
    ref = quality.as_magnitude(reference)
    scales = _check_sizes(ref.shape, chosen, reference_name, log)
    rows = []
    for name, image in recons:
        rec = quality.as_magnitude(image.to(ref.device))
        cropped = quality.match_reference(ref, rec, name)
        if cropped.shape != rec.shape and log is not None:
            log(f"{name}: centre-cropped {rec.shape[-2]}x{rec.shape[-1]} to "
                f"{ref.shape[-2]}x{ref.shape[-1]}")
        values = quality.evaluate(ref, cropped, chosen, per, normalization, scales)
        row = {"recon": name, **{key: values[key] for key in chosen}}
        if per == "slice":
            row["slices"] = [{"slice": first_slice + i, **entry}
                             for i, entry in enumerate(values["slices"])]
        rows.append(row)
    return rows


def _check_sizes(shape, chosen, reference_name, log):
    """Images too small for a chosen metric are refused; MS-SSIM's scales for this size."""
    height, width = shape[-2:]
    if min(height, width) < quality.SSIM_WINDOW:
        raise DataError(f"{reference_name}: image {height}x{width} is too small for SSIM (needs "
                        f"at least {quality.SSIM_WINDOW}x{quality.SSIM_WINDOW})")
    scales = None
    if "ms_ssim" in chosen:
        scales = quality.ms_ssim_scales(shape)
        weights, window = len(quality.MS_SSIM_WEIGHTS), quality.MS_SSIM_WINDOW
        if scales == 0:
            raise UsageError(f"--ms-ssim: images of {height}x{width} are too small (needs at "
                             f"least {window}x{window})")
        if scales < weights and log is not None:
            log(f"MS-SSIM: {height}x{width} images allow {scales} of {weights} scales; their "
                "weights are renormalised to sum 1")
    if "vif" in chosen and min(height, width) < quality.VIF_MIN_SIZE:
        raise UsageError(f"--vif: images of {height}x{width} are too small (needs at least "
                         f"{quality.VIF_MIN_SIZE}x{quality.VIF_MIN_SIZE})")
    return scales


def null_space_app(kspace: torch.Tensor, maps, support_threshold: float | None = None,
                   kspace_name: str = "k-space"):
    """(rows {"maps": name, "relative_residual": ..., ["support_fraction"]}, residual images)
    for each (name, maps) of ``maps`` against fully sampled k-space (Zach, Knoll, Pock 2023,
    Eq. 17), in float64."""
    coil_images = ifft2c(kspace.to(torch.complex128))
    rows, images = [], []
    for name, sensitivities in maps:
        try:
            value, image, fraction = quality.relative_null_space_residual(
                coil_images, sensitivities.to(coil_images.device), support_threshold)
        except ValueError as err:
            if support_threshold is None:
                raise DataError(f"{kspace_name}: {err}") from None
            raise UsageError(f"--support-threshold {support_threshold}: {err}") from None
        row = {"maps": name, "relative_residual": value}
        if support_threshold is not None:
            row["support_fraction"] = fraction
        rows.append(row)
        images.append(image.to(torch.float32))
    return rows, images
