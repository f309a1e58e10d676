"""The acquisitions of an ISMRMRD (MRD) HDF5 file, read in one go.

An MRD file holds a group (``dataset``) with the XML header ``xml`` and the acquisitions
``data``: a one-dimensional compound dataset of (head, traj, data), ``data`` each readout's
(channels, samples) complex values flattened to float32 pairs. One bulk read of the compound
dataset with h5py gives every header field as a numpy column; reading acquisition by
acquisition through ``ismrmrd.Dataset.read_acquisition`` takes ~2.6 ms each (measured: two
minutes for a 3D scan of 50,000 readouts), so the bulk read is used and the ``ismrmrd``
package serves the tests, which write MRD files with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import DataError

# Flag bits of the acquisition header (ISMRMRD's ACQ_* constants, numbered from 1).
NOISE = 19
CALIBRATION = 20
CALIBRATION_AND_IMAGING = 21
REVERSE = 22
# Readouts that are not image k-space: navigators, phase correction, feedback, dummy scans,
# surface-coil correction, phase stabilisation.
NOT_IMAGING = {23: "navigator", 24: "phase correction", 26: "HP feedback", 27: "dummy scan",
               28: "RT feedback", 29: "surface-coil correction",
               30: "phase stabilisation reference", 31: "phase stabilisation"}
COMPRESSED = (53, 54, 55, 56)

# The counters that index slice-like images, outermost first (slices vary fastest).
SLICE_COUNTERS = ("repetition", "contrast", "phase", "set", "slice")


@dataclass
class Acquisitions:
    """Every readout of the file: header columns (one entry per readout) and the data."""

    flags: np.ndarray            # uint64
    counters: dict               # counter name -> int array (kspace_encode_step_1, slice, ...)
    center_sample: np.ndarray
    discard_pre: np.ndarray
    discard_post: np.ndarray
    channels: np.ndarray         # active_channels
    samples: np.ndarray          # number_of_samples
    encoding: np.ndarray         # encoding_space_ref
    dwell_us: np.ndarray         # sample_time_us
    position: np.ndarray         # (N, 3) mm, the centre of the slice
    directions: np.ndarray       # (N, 3, 3) read, phase and slice direction (unit vectors)
    data: np.ndarray             # object array of float32 vectors

    def __len__(self) -> int:
        return len(self.flags)

    def has(self, bit: int) -> np.ndarray:
        """Which readouts carry flag ``bit`` (numbered from 1, as ISMRMRD's constants)."""
        return (self.flags >> np.uint64(bit - 1)) & np.uint64(1) == 1

    def readout(self, index: int) -> np.ndarray:
        """Readout ``index`` as (channels, samples) complex64."""
        values = np.asarray(self.data[index], np.float32).view(np.complex64)
        return values.reshape(int(self.channels[index]), int(self.samples[index]))


def read_raw(path, group: str = "dataset") -> tuple[str, Acquisitions]:
    """The XML header text and the acquisitions of MRD file ``path``; DataError naming the
    file when it is not one."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path}: not a readable HDF5 file (an ISMRMRD/MRD file is HDF5)") \
            from None
    with handle:
        if group not in handle or not isinstance(handle[group], h5py.Group):
            raise DataError(f"{path}: not an ISMRMRD/MRD file (no '{group}' group)")
        node = handle[group]
        if "xml" not in node:
            raise DataError(f"{path}: no ISMRMRD header ({group}/xml is missing)")
        if "data" not in node:
            raise DataError(f"{path}: no acquisitions ({group}/data is missing)")
        xml = node["xml"][0] if node["xml"].shape else node["xml"][()]
        try:
            table = node["data"][()]
            head = table["head"]
            idx = head["idx"]
        except (KeyError, ValueError, OSError) as err:
            raise DataError(f"{path}: {group}/data is not an ISMRMRD acquisition table "
                            f"({err})") from None
    text = xml.decode("utf-8", "replace") if isinstance(xml, bytes) else str(xml)
    counters = {name: idx[name].astype(np.int64) for name in idx.dtype.names
                if name != "user"}
    column = (lambda name: head[name].astype(np.int64))
    return text, Acquisitions(
        flags=head["flags"].astype(np.uint64), counters=counters,
        center_sample=column("center_sample"), discard_pre=column("discard_pre"),
        discard_post=column("discard_post"), channels=column("active_channels"),
        samples=column("number_of_samples"), encoding=column("encoding_space_ref"),
        dwell_us=head["sample_time_us"].astype(np.float64),
        position=head["position"].astype(np.float64),
        directions=np.stack([head[name] for name in ("read_dir", "phase_dir", "slice_dir")],
                            axis=1).astype(np.float64),
        data=table["data"])
