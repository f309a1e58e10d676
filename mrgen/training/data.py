"""Training images for the learned prior: slices from files, centre-cropped and normalised.

Sources, any mix:

- ``.h5`` volumes (fastMRI, or what ``mrgen phantom`` writes): the magnitude images of
  ``reconstruction_rss`` (else ``image``, else ``reconstruction``; name another as
  ``file.h5:NAME``); from a volume (slices, H, W) only the ``central`` middle slices are used
  (slices S//2 - n//2 ... S//2 - n//2 + n - 1, as the authors' code; the paper's 11), all of
  them when it has fewer. RSS is what fastMRI gives for training, and for a phantom file it is
  what a scanner would deliver; the phantom's complex ``image`` is its noise-free truth.
- ``.npy`` and BART ``.cfl`` stacks (slices, H, W) or single images (H, W): every slice (a
  prepared stack is taken as it is). Complex data are taken in magnitude.

Each slice is centre-cropped or zero-padded to ``crop x crop`` (the fastMRI convention) and
then normalised on its own: ``max`` divides it by its maximum (the authors' code), ``minmax``
maps it to [0, 1] by (x - min) / (max - min) (Zach, Knoll, Pock 2023, preprint, Section 2.3). A slice that is constant
after cropping cannot be normalised and is skipped (counted in the description).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, UsageError

NORMALISATIONS = {
    "max": "each slice divided by its maximum",
    "minmax": "each slice mapped to [0, 1] by (x - min) / (max - min)",
}


@dataclass
class TrainingImages:
    images: np.ndarray      # (N, crop, crop) float32
    description: dict       # files, slices per file, crop, normalisation, skipped


def central_range(count: int, central: int | None) -> tuple[int, int]:
    """[start, stop) of the ``central`` middle slices of ``count`` (all for None, 0 or more
    than there are)."""
    if not central or central >= count:
        return 0, count
    start = count // 2 - central // 2
    return start, start + central


def normalise_slices(stack: np.ndarray, mode: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Normalise each slice of (N, H, W); returns (normalised, kept) with ``kept`` the boolean
    mask of slices that were not constant (the others are dropped)."""
    if mode not in NORMALISATIONS:
        raise UsageError(f"--normalise {mode}: expected one of {', '.join(NORMALISATIONS)}")
    flat = stack.reshape(stack.shape[0], -1).astype(np.float64)
    high = flat.max(axis=1)
    low = flat.min(axis=1) if mode == "minmax" else np.zeros_like(high)
    span = high - low
    kept = span > 0
    out = (flat[kept] - low[kept, None]) / span[kept, None]
    return out.reshape(-1, *stack.shape[1:]).astype(np.float32), kept


def load_training_images(paths, central: int | None = 11, crop: int = 320,
                         normalise: str = "max") -> TrainingImages:
    """Read, crop and normalise the training slices of ``paths`` (see the module doc)."""
    import torch

    from .. import io
    from ..resize import crop_or_pad

    if normalise not in NORMALISATIONS:
        raise UsageError(f"--normalise {normalise}: expected one of "
                         f"{', '.join(NORMALISATIONS)}")
    if crop < 1:
        raise UsageError(f"--crop {crop}: must be positive")
    if central is not None and central < 0:
        raise UsageError(f"--central-slices {central}: must be at least 0 (0 = all)")
    if not paths:
        raise UsageError("no training data given")
    stacks, files, skipped = [], [], 0
    for text in paths:
        text = str(text)
        ref = io.parse_ref(text)
        if ref.format == "h5":
            shape = io.read_shape(text, io.roles.REFERENCE)
            if len(shape) == 3:
                start, stop = central_range(shape[0], central)
                array = io.read_array(text, io.roles.REFERENCE, slice(start, stop))
                chosen = [start, stop]
            else:
                array = io.read_array(text, io.roles.REFERENCE)
                chosen = [0, 1]
        else:
            array = io.read_array(text, io.roles.IMAGE)
            shape = array.shape
            chosen = [0, array.shape[0] if array.ndim == 3 else 1]
        if array.ndim == 2:
            array = array[None]
        if np.iscomplexobj(array):
            array = np.abs(array)
        if array.shape[0] == 0:
            raise DataError(f"{text}: holds no slices")
        cropped = crop_or_pad(torch.from_numpy(np.ascontiguousarray(array, np.float32)),
                              (crop, crop)).numpy()
        normalised, kept = normalise_slices(cropped, normalise)
        skipped += int((~kept).sum())
        stacks.append(normalised)
        files.append({"path": text, "shape": [int(n) for n in shape], "slices": chosen,
                      "used": int(kept.sum())})
    images = np.concatenate(stacks, axis=0)
    if images.shape[0] == 0:
        raise DataError(f"{paths[0]}: every slice is constant: no training data"
                        if len(paths) == 1 else "every training slice is constant")
    description = {
        "files": files,
        "slices": int(images.shape[0]),
        "skipped_constant": skipped,
        "central_slices": central or "all",
        "crop": [crop, crop],
        "normalisation": NORMALISATIONS[normalise],
        "normalise": normalise,
        "magnitude": "RSS / magnitude images (complex data taken in magnitude)",
    }
    return TrainingImages(images, description)
