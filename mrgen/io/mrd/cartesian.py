"""Cartesian readouts placed on mrgen's k-space grid (S, C, H, W).

H is the readout (the header's x), W the phase encoding (kspace_encode_step_1, the header's
y), as in fastMRI. Each readout lands where its samples belong: its centre sample
(``center_sample``) at H // 2, so an asymmetric echo leaves its missing early samples zero,
and line ``kspace_encode_step_1`` at ``step - center + W // 2`` with the header's
encoding-limit centre, so a partial-Fourier acquisition leaves its missing lines zero. The
slice-like counters (repetition, contrast, phase, set, slice) index the leading axis; the
``average`` counter is summed, averaged or selected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import DataError, UsageError
from .raw import SLICE_COUNTERS


@dataclass
class Placed:
    """k-space on the encoded grid with its sampled lines and what each slice is."""

    kspace: np.ndarray     # (S, C, Nx, Ny) complex64
    lines: np.ndarray      # (S, Ny) bool: phase-encoding lines acquired
    counters: np.ndarray   # (S, len(SLICE_COUNTERS)) the counter values of each slice
    positions: np.ndarray  # (S, 3) mean slice position in mm


def place(acq, chosen: np.ndarray, header, average, source: str) -> Placed:
    """Place readouts ``chosen`` (indices into ``acq``) on the grid of ``header``.

    ``average``: "mean" (each line divided by how often it was acquired), "sum", or an int
    (only that average)."""
    chosen = _pick_average(acq, chosen, average, source)
    nx, ny = header.encoded_matrix[0], header.encoded_matrix[1]
    keys = np.stack([acq.counters[name][chosen] for name in SLICE_COUNTERS], axis=1)
    counters, slice_of = np.unique(keys, axis=0, return_inverse=True)
    slice_of = slice_of.reshape(-1)
    coils = _channels(acq, chosen, source)
    lines = _line_positions(acq.counters["kspace_encode_step_1"][chosen], header, ny, source)
    kspace = np.zeros((len(counters), coils, nx, ny), np.complex64)
    count = np.zeros((len(counters), ny), np.int64)
    for k, index in enumerate(chosen):
        values, start = _readout(acq, index, nx, source)
        kspace[slice_of[k], :, start:start + values.shape[1], lines[k]] += values
        count[slice_of[k], lines[k]] += 1
    if average == "mean":
        kspace /= np.maximum(count, 1)[:, None, None, :]
    positions = np.stack([acq.position[chosen][slice_of == s].mean(axis=0)
                          for s in range(len(counters))])
    return Placed(kspace, count > 0, counters, positions)


def _pick_average(acq, chosen, average, source):
    if average in ("mean", "sum"):
        return chosen
    present = np.unique(acq.counters["average"][chosen])
    if average not in present:
        raise UsageError(f"--average {average}: {source} holds averages "
                         f"{', '.join(map(str, present))}")
    return chosen[acq.counters["average"][chosen] == average]


def _channels(acq, chosen, source) -> int:
    channels = np.unique(acq.channels[chosen])
    if len(channels) != 1:
        raise DataError(f"{source}: the readouts have different channel counts "
                        f"({', '.join(map(str, channels))})")
    return int(channels[0])


def _line_positions(steps, header, ny, source) -> np.ndarray:
    """Grid column of each phase-encoding step: the limits' centre goes to ny // 2. A centre
    the writer left at 0 (steps 0..ny-1 that it would push off the grid) is taken as unset:
    the steps are then the columns, as a full readout's unset centre_sample (``_readout``)."""
    limit = header.limit("kspace_encoding_step_1")
    center = limit.center if limit is not None else ny // 2
    if center == 0 and steps.min() >= 0 and steps.max() >= ny - ny // 2 and steps.max() < ny:
        center = ny // 2
    columns = steps - center + ny // 2
    if columns.min() < 0 or columns.max() >= ny:
        raise DataError(f"{source}: kspace_encode_step_1 {int(steps.min())}..{int(steps.max())}"
                        f" with centre {center} does not fit the encoded matrix y = {ny}")
    return columns


def _readout(acq, index, nx, source):
    """Readout ``index`` without its discarded samples, and the grid row of its first sample
    (its centre sample lands on nx // 2)."""
    from .raw import REVERSE

    values = acq.readout(index)
    pre, post = int(acq.discard_pre[index]), int(acq.discard_post[index])
    values = values[:, pre:values.shape[1] - post]
    count = values.shape[1]
    center = int(acq.center_sample[index]) - pre
    if acq.has(REVERSE)[index]:
        values, center = values[:, ::-1], count - 1 - center
    if int(acq.center_sample[index]) == 0 and count == nx:
        center = nx // 2   # a full readout whose centre the writer did not set
    start = nx // 2 - center
    if start < 0 or start + count > nx:
        raise DataError(f"{source}: readout {index} ({count} samples, centre sample {center}) "
                        f"does not fit the encoded matrix x = {nx}")
    return values, start


def remove_oversampling(kspace: np.ndarray, keep: int) -> np.ndarray:
    """Crop the readout field of view: the central ``keep`` of the Nx image rows (the inverse
    FFT along the readout, a centre crop, the FFT back), per line, so lines that were not
    acquired stay exactly zero."""
    import torch

    from ...fft import fft2c, ifft2c

    # (S, C, Nx, Ny) -> (S, C, Ny, Nx, 1): the 2D transforms over (Nx, 1) act on the readout.
    lines = torch.from_numpy(np.ascontiguousarray(kspace)).permute(0, 1, 3, 2)[..., None]
    image = ifft2c(lines)
    top = (image.shape[-2] - keep) // 2   # mrgen.resize's centre (fastMRI's for odd sizes)
    cropped = image[..., top:top + keep, :]
    return np.ascontiguousarray(fft2c(cropped)[..., 0].permute(0, 1, 3, 2).numpy())
