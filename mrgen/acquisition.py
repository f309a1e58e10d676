"""One scan as every method sees it: k-space, sampling mask, coil maps, with a slice axis.

``read_acquisition`` is the one way to turn file arguments into an ``Acquisition``: it reads the
k-space (selecting ``--slice``), fits a mask and maps to it (``mrgen.shapes``), applies the one
default-mask rule (``default_mask``: sampled where any coil is non-zero) and always adds the
slice axis, remembering whether the file had one so that outputs keep the input's rank
(``squeeze``). Methods take an Acquisition and never see a file; ``batches`` walks the slices in
chunks (a GPU holds several slices at once, a CPU does best with one).

Shapes (S slices, C coils): kspace (S, C, H, W) complex64; mask (S, H, W) float32, 1 = sampled
(or sampling weights); maps (S, C, H, W) complex64 or None (to be estimated).

Non-Cartesian (``nufft`` set, from ``read_acquisition(..., trajectory=FILE)``): kspace holds the
samples (S, C, shots, samples) at the trajectory's points (``mrgen.trajectory``), mask is ones
of (S, shots, samples), and the image grid (H, W) is ``nufft.grid``; maps are (S, C, H, W).
One trajectory serves every slice.

Example::

    acq = read_acquisition("knee.h5", mask="mask.npy", slices=io.parse_slices("10:12"))
    image = zero_filled(acq.kspace, acq.mask)          # (2, H, W)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from .errors import DataError, UsageError


@dataclass
class Acquisition:
    kspace: torch.Tensor
    mask: torch.Tensor
    maps: torch.Tensor | None = None
    has_slices: bool = True      # the k-space file had a slice axis: outputs keep one
    single_coil: bool = False    # one coil of sensitivity 1 (maps are ones)
    source: str = "k-space"      # the k-space file, for messages
    nufft: object = None         # mrgen.nufft.Nufft of a non-Cartesian scan (None: Cartesian)

    @property
    def device(self) -> torch.device:
        return self.kspace.device

    @property
    def slice_count(self) -> int:
        return self.kspace.shape[0]

    @property
    def coils(self) -> int:
        return self.kspace.shape[1]

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.nufft.grid if self.nufft is not None else tuple(self.kspace.shape[-2:])

    @property
    def file_shape(self) -> tuple[int, ...]:
        """The k-space shape as the file held it (for messages and image checks); of a
        non-Cartesian scan, (..., coils, H, W) of its image grid."""
        shape = (*self.kspace.shape[:-2], *self.image_shape)
        return shape if self.has_slices else shape[1:]

    def to(self, device) -> "Acquisition":
        """On ``device``, every tensor contiguous (a mask or maps shared by all slices are
        broadcast views until here)."""
        move = (lambda t: None if t is None else t.to(device).contiguous())
        return replace(self, kspace=move(self.kspace), mask=move(self.mask),
                       maps=move(self.maps),
                       nufft=None if self.nufft is None else self.nufft.to(device))

    def with_maps(self, maps: torch.Tensor) -> "Acquisition":
        return replace(self, maps=maps)

    def with_mask(self, mask: torch.Tensor) -> "Acquisition":
        """The acquisition under another sampling: ``mask`` (H, W) or (S, H, W)."""
        mask = mask.to(self.kspace.device, torch.float32)
        return replace(self, mask=mask.expand(self.slice_count, *self.image_shape))

    def squeeze(self, t):
        """Drop the slice axis of a result again when the input file had none."""
        return t if self.has_slices else t[0]

    def select(self, start: int, stop: int) -> "Acquisition":
        """Slices start..stop-1, as a contiguous copy (writable, ready for a device)."""
        take = (lambda t: None if t is None else t[start:stop].contiguous())
        return replace(self, kspace=take(self.kspace), mask=take(self.mask),
                       maps=take(self.maps))

    def batches(self, size: int, device=None) -> Iterator[tuple[int, int, "Acquisition"]]:
        """(start, stop, the slices start..stop-1 on ``device``) in chunks of ``size``."""
        for start in range(0, self.slice_count, size):
            stop = min(start + size, self.slice_count)
            part = self.select(start, stop)
            yield start, stop, part if device is None else part.to(device)


def default_mask(kspace: torch.Tensor) -> torch.Tensor:
    """The sampling when no mask is given: 1 where any coil of (..., C, H, W) is non-zero."""
    return (kspace != 0).any(dim=-3).to(kspace.real.dtype)


def read_acquisition(kspace: str, mask: str | None = None, maps: str | None = None,
                     slices=None, single_coil: bool = False,
                     trajectory: str | None = None, grid=None) -> Acquisition:
    """An Acquisition (CPU tensors) from file arguments; ``slices`` from ``io.parse_slices``.

    ``single_coil``: the k-space may be (H, W), (S, H, W) or (S, 1, H, W); maps are ones.
    ``trajectory``: a non-Cartesian scan (``read_noncartesian``) on the image grid ``grid``
    (H, W) if given (``--grid``; only with a trajectory).
    Raises DataError naming the file when the arrays do not fit together.
    """
    if trajectory is not None:
        if mask is not None:
            raise UsageError("--mask and --traj exclude each other: a trajectory's samples are "
                             "all sampled")
        return read_noncartesian(kspace, trajectory, maps, slices, grid)
    if grid is not None:
        raise UsageError("--grid needs --traj: a Cartesian scan's grid is its k-space's shape")
    data = _read_kspace(kspace, slices, single_coil)
    has_slices = data.ndim == 4
    batched = torch.from_numpy(data if has_slices else data[None])
    mask_t = default_mask(batched) if mask is None else _read_mask(mask, data.shape, batched)
    maps_t = torch.ones_like(batched) if single_coil else None
    if maps is not None:
        maps_t = _read_maps(maps, data.shape, slices, batched.shape)
    return Acquisition(batched, mask_t, maps_t, has_slices, single_coil, kspace)


def read_noncartesian(kspace: str, trajectory: str, maps: str | None = None,
                      slices=None, grid=None) -> Acquisition:
    """A non-Cartesian Acquisition: samples (coils, shots, samples) or (S, coils, shots,
    samples) (.npy/.h5, or BART's (1, samples, spokes, coils) .cfl) at the points of a
    trajectory file (``mrgen.io.trajectory``). The image grid (H, W): ``grid`` (--grid) if
    given, else that of the maps if given, else ``trajectory.grid_for``'s (a trajectory file
    does not record the matrix it was made for)."""
    from . import io
    from .io.trajectory import read_samples, read_trajectory
    from .nufft import Nufft
    from .shapes import fit_maps
    from .trajectory import check_trajectory, grid_for

    data = read_samples(kspace, slices)
    coords = read_trajectory(trajectory)
    if data.ndim < 3 or tuple(data.shape[-2:]) != coords.shape[:2]:
        raise DataError(f"{kspace}: samples of shape {data.shape} do not fit the trajectory "
                        f"{trajectory} of {coords.shape[0]} shots x {coords.shape[1]} samples "
                        "(expected (coils, shots, samples))")
    maps_array = None if maps is None else io.read_array(maps, io.roles.MAPS, slices)
    if grid is not None:
        grid = tuple(int(n) for n in grid)
        if maps_array is not None and tuple(maps_array.shape[-2:]) != grid:
            raise UsageError(f"--grid {grid[0]} {grid[1]} does not match the maps {maps} "
                             f"({maps_array.shape[-2]} x {maps_array.shape[-1]})")
    elif maps_array is not None and maps_array.ndim >= 3:
        grid = tuple(int(n) for n in maps_array.shape[-2:])
    else:
        grid = grid_for(coords)
    check_trajectory(coords, grid, trajectory)
    has_slices = data.ndim == 4
    batched = torch.from_numpy(data if has_slices else data[None])
    mask_t = torch.ones(batched.shape[0], *batched.shape[-2:])
    maps_t = None
    if maps_array is not None:
        fitted = fit_maps(maps_array, (*data.shape[:-2], *grid), maps)
        maps_t = torch.from_numpy(fitted).expand(*batched.shape[:-2], *grid)
    return Acquisition(batched, mask_t, maps_t, has_slices, False, kspace,
                       Nufft(torch.from_numpy(coords), grid))


def read_matching_image(path: str, acq: Acquisition, slices=None) -> torch.Tensor:
    """An image file (a start, a warm start) checked against the acquisition: (S, H, W)."""
    from . import io
    from .shapes import fit_image

    image = fit_image(io.read_array(path, io.roles.IMAGE, slices), acq.file_shape, path)
    return torch.from_numpy(image if acq.has_slices else image[None])


def _read_kspace(path: str, slices, single_coil: bool) -> np.ndarray:
    from . import io

    if not single_coil:
        return io.read_array(path, io.roles.KSPACE, slices)
    data = io.read_array(path, io.roles.SINGLE_COIL_KSPACE, slices)
    if data.ndim == 4 and data.shape[1] != 1:
        raise DataError(f"{path}: --single-coil needs (H, W), (slices, H, W) or (slices, 1, H, "
                        f"W) k-space, got {data.shape[1]} coils (shape {data.shape})")
    # (H, W) -> (1, H, W); (S, H, W) single-coil slices -> (S, 1, H, W)
    return data[None] if data.ndim == 2 else data[:, None] if data.shape[-3] != 1 else data


def _read_mask(path: str, file_shape, batched: torch.Tensor) -> torch.Tensor:
    from . import io
    from .shapes import fit_mask

    fitted = torch.from_numpy(fit_mask(io.read_array(path, io.roles.MASK), file_shape, path))
    count, _, height, width = batched.shape
    return fitted.to(torch.float32).expand(count, height, width)


def _read_maps(path: str, file_shape, slices, shape) -> torch.Tensor:
    """The maps file fitted to the k-space (``file_shape``, as the file has it), broadcast to
    ``shape`` (S, C, H, W)."""
    from . import io
    from .shapes import fit_maps

    fitted = torch.from_numpy(fit_maps(io.read_array(path, io.roles.MAPS, slices), file_shape,
                                       path))
    return fitted.expand(shape)
