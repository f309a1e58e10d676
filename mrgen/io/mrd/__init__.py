"""ISMRMRD (MRD) raw data in: Cartesian k-space, mask and geometry in mrgen's layout.

``read_mrd(path)`` reads an MRD HDF5 file (the ``dataset`` group: ``xml`` header and ``data``
acquisitions) into an ``MrdScan``: k-space (S, C, H, W) with H the readout and W the phase
encoding, placed by the encoding counters (``cartesian``), noise pre-whitened from the noise
scan (``noise``), readout oversampling removed when the recon field of view is smaller than
the encoded one, the acquired lines as the mask, and the header's matrix, field of view and
voxel size as attributes. Non-Cartesian and 3D data are refused with a one-line DataError.

Modules: ``header`` (the XML header, also fastMRI's ``ismrmrd_header``), ``raw`` (the
acquisition table), ``cartesian`` (placement, oversampling), ``noise`` (pre-whitening).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import DataError, UsageError
from .cartesian import place, remove_oversampling
from .header import EncodingHeader, parse_header
from .noise import noise_covariance, whiten, whitening_matrix
from .raw import (CALIBRATION, CALIBRATION_AND_IMAGING, COMPRESSED, NOISE, NOT_IMAGING,
                  SLICE_COUNTERS, read_raw)

__all__ = ["MrdScan", "read_mrd", "parse_header", "EncodingHeader", "SLICE_COUNTERS"]


@dataclass
class MrdScan:
    """One MRD file in mrgen's layout."""

    kspace: np.ndarray            # (S, C, H, W) complex64
    mask: np.ndarray              # (W,) when every slice has the same lines, else (S, H, W)
    header: EncodingHeader
    xml: str                      # the header as the file holds it
    counters: np.ndarray          # (S, 5): repetition, contrast, phase, set, slice per slice
    positions: np.ndarray         # (S, 3) slice centres in mm
    directions: np.ndarray | None = None  # (3, 3) read, phase, slice direction (patient, LPS)
    noise_covariance: np.ndarray | None = None   # (C, C), before whitening
    prewhitened: bool = False
    skipped: dict = field(default_factory=dict)  # kind of readout -> how many were left out

    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (H, W, slices) in mm; between slices the distance of their positions
        when there are several, else the slice thickness of the header."""
        spacing = list(self.header.spacing)
        slices = self.counters[:, -1]
        first = np.all(self.counters[:, :-1] == self.counters[0, :-1], axis=1)
        if len(np.unique(slices[first])) > 1:
            order = np.argsort(slices[first])
            steps = np.linalg.norm(np.diff(self.positions[first][order], axis=0), axis=1)
            if np.all(steps > 0):
                spacing[2] = float(np.median(steps))
        return tuple(spacing)

    def attributes(self) -> dict:
        """The header's geometry and what each slice is, for the output file."""
        attrs = self.header.attributes()
        attrs.update(spacing_mm=list(self.spacing()), slice_counters=list(SLICE_COUNTERS),
                     slice_counter_values=self.counters.astype(np.int64),
                     slice_positions_mm=self.positions, prewhitened=self.prewhitened)
        if self.directions is not None:
            attrs["patient_directions"] = self.directions
        return attrs


def read_mrd(path, average="mean", prewhiten: bool | None = None) -> MrdScan:
    """Read MRD file ``path``. ``average``: "mean", "sum" or an average's index;
    ``prewhiten``: None = when the file has a noise scan, True = required, False = never."""
    source = str(path)
    xml, acq = read_raw(path)
    header = parse_header(xml, source)
    _check_supported(header, acq, source)
    noise = acq.has(NOISE)
    chosen, skipped = _imaging_readouts(acq, noise, source)
    placed = place(acq, chosen, header, average, source)
    kspace, covariance = placed.kspace, None
    keep = _readout_keep(header)
    if keep < kspace.shape[2]:   # first: whitening (over coils, which commutes) has less to do
        kspace = remove_oversampling(kspace, keep)
    if prewhiten is None:
        prewhiten = bool(noise.any())
    if prewhiten:
        if not noise.any():
            raise UsageError(f"--prewhiten: {source} has no noise scan (no readout flagged "
                             "ACQ_IS_NOISE_MEASUREMENT)")
        covariance, matrix = _whitening(acq, noise, chosen, kspace.shape[1], source)
        kspace = whiten(kspace, matrix)
    return MrdScan(kspace, _mask(placed.lines, kspace.shape[2]), header, xml, placed.counters,
                   placed.positions, _directions(acq, chosen), covariance, bool(prewhiten),
                   skipped)


def _check_supported(header, acq, source) -> None:
    if header.trajectory != "cartesian":
        raise DataError(f"{source}: non-Cartesian trajectory '{header.trajectory}' in the "
                        "ISMRMRD header; mrgen reads Cartesian MRD data only")
    if header.encoded_matrix[2] > 1 or np.any(acq.counters["kspace_encode_step_2"] > 0):
        raise DataError(f"{source}: 3D encoding (kspace_encode_step_2, encoded matrix z = "
                        f"{header.encoded_matrix[2]}); mrgen reads 2D multi-slice data only")
    if any(acq.has(bit).any() for bit in COMPRESSED):
        raise DataError(f"{source}: compressed readouts (ACQ_COMPRESSION flags) are not "
                        "supported")


def _imaging_readouts(acq, noise, source):
    """Indices of the readouts that are image k-space, and counts of those left out.
    Calibration-only readouts fill lines the imaging readouts did not acquire."""
    skipped = {"noise": int(noise.sum())}
    useful = ~noise
    for bit, kind in NOT_IMAGING.items():
        flagged = acq.has(bit) & useful
        if flagged.any():
            skipped[kind] = int(flagged.sum())
            useful &= ~flagged
    other = useful & (acq.encoding != 0)
    if other.any():
        skipped["other encoding spaces"] = int(other.sum())
        useful &= ~other
    calibration = useful & acq.has(CALIBRATION) & ~acq.has(CALIBRATION_AND_IMAGING)
    imaging = useful & ~calibration
    key = _line_keys(acq)
    taken = set(key[imaging].tolist())
    extra = calibration & np.array([k not in taken for k in key.tolist()], bool)
    if (calibration & ~extra).any():
        skipped["calibration (line also imaged)"] = int((calibration & ~extra).sum())
    chosen = np.flatnonzero(imaging | extra)
    if not len(chosen):
        raise DataError(f"{source}: no imaging readouts (only "
                        f"{', '.join(k for k, v in skipped.items() if v) or 'nothing'})")
    return chosen, {k: v for k, v in skipped.items() if v}


def _line_keys(acq) -> np.ndarray:
    """One text key per readout: its slice-like counters and phase-encoding step."""
    names = SLICE_COUNTERS + ("kspace_encode_step_1",)
    columns = np.stack([acq.counters[n] for n in names], axis=1)
    return np.array([",".join(map(str, row)) for row in columns.tolist()])


def _whitening(acq, noise, chosen, coils, source):
    readouts = [acq.readout(i) for i in np.flatnonzero(noise)]
    if any(r.shape[0] != coils for r in readouts):
        raise DataError(f"{source}: the noise scan has {readouts[0].shape[0]} channels, the "
                        f"imaging readouts {coils}")
    covariance = noise_covariance(np.concatenate(readouts, axis=1))
    noise_dwell = float(np.median(acq.dwell_us[noise]))
    data_dwell = float(np.median(acq.dwell_us[chosen]))
    ratio = data_dwell / noise_dwell if noise_dwell > 0 and data_dwell > 0 else 1.0
    return covariance, whitening_matrix(covariance, source, ratio)


def _directions(acq, chosen) -> np.ndarray | None:
    """The read, phase and slice directions of the first imaging readout, when the file sets
    them (unit vectors; converters that do not fill them leave zeros)."""
    directions = acq.directions[chosen[0]]
    if np.allclose(np.linalg.norm(directions, axis=1), 1, atol=1e-3):
        return directions
    return None


def _readout_keep(header) -> int:
    """Grid rows kept along the readout: all, or the recon field of view's share of them
    when the header's recon FOV x is smaller than its encoded FOV x (oversampling)."""
    nx = header.encoded_matrix[0]
    ratio = header.recon_fov[0] / header.encoded_fov[0]
    return nx if ratio >= 1 - 1e-6 else max(1, int(round(nx * ratio)))


def _mask(lines: np.ndarray, height: int) -> np.ndarray:
    """(W,) when every slice has the same lines (as fastMRI stores it), else (S, H, W)."""
    if np.all(lines == lines[0]):
        return lines[0].astype(np.float32)
    return np.repeat(lines[:, None, :], height, axis=1).astype(np.float32)
