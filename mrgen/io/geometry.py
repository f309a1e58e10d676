"""What a k-space file says about its images: voxel size, the scanner's recon matrix, and
(from ``mrgen mrd``) where the slices are in the patient.

fastMRI files carry the ISMRMRD XML header as the ``ismrmrd_header`` dataset (their k-space
is the encoded matrix, e.g. 640 x 368, their images the recon matrix, 320 x 320); files of
``mrgen mrd`` carry the same dataset and the geometry as attributes. Image writers (NIfTI,
DICOM) take the voxel size from here, and the reconstruction commands their default --crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .refs import parse_ref


@dataclass(frozen=True)
class Geometry:
    spacing: tuple[float, float, float]       # mm along H, W and slices
    recon_shape: tuple[int, int] | None = None  # the scanner's image matrix (H, W)
    # In the patient (DICOM's LPS, mm), from ``mrgen mrd``: the read (H), phase (W) and slice
    # directions (3, 3), and each slice's centre (S, 3).
    directions: np.ndarray | None = field(default=None, compare=False)
    positions: np.ndarray | None = field(default=None, compare=False)
    # The header's slice thickness (mm): its encoded field of view over the encoded matrix
    # along the slice axis; spacing[2] is the distance between the slices' positions.
    thickness: float | None = None
    # The image grid (H, W) of the file's k-space, whose pixel (H // 2, W // 2) the positions
    # give: an output centre-cropped or padded from it keeps that pixel where mrgen.resize puts
    # it (``images.frame``).
    grid: tuple[int, int] | None = None

    def select(self, slices) -> "Geometry":
        """The geometry of the slices an output holds: ``slices`` as ``io.parse_slices``
        gives them (an index, a slice or None for all) picks their positions."""
        if self.positions is None or slices is None:
            return self
        from dataclasses import replace

        picked = np.asarray(self.positions)[slices]
        return replace(self, positions=picked.reshape(-1, 3))


def read_geometry(text: str) -> Geometry | None:
    """The geometry of array file ``text``, or None when it carries none (a .npy, BART file,
    an .h5 without header or attributes, or one whose header cannot be read)."""
    import h5py

    from ..errors import DataError, UsageError
    from .mrd.header import parse_header

    try:
        ref = parse_ref(str(text))
    except UsageError:
        return None
    if ref.format != "h5" or ref.path is None or not ref.path.is_file():
        return None
    try:
        with h5py.File(ref.path, "r") as handle:
            attrs = dict(handle.attrs)
            xml = handle["ismrmrd_header"][()] if "ismrmrd_header" in handle else None
    except OSError:
        return None
    if "spacing_mm" in attrs:
        recon = attrs.get("recon_matrix")
        directions = attrs.get("patient_directions")
        return _with_grid(str(text), Geometry(tuple(float(v) for v in attrs["spacing_mm"]),
                        None if recon is None else (int(recon[0]), int(recon[1])),
                        None if directions is None else np.asarray(directions, np.float64),
                        None if directions is None else
                        np.asarray(attrs.get("slice_positions_mm"), np.float64),
                        _thickness(attrs.get("encoded_fov_mm"), attrs.get("encoded_matrix"))))
    if xml is None:
        return None
    try:
        header = parse_header(xml, str(ref.path))
    except DataError:
        return None
    return _with_grid(str(text), Geometry(header.spacing, header.recon_matrix[:2],
                                          thickness=header.spacing[2]))


def _with_grid(text: str, geometry: Geometry) -> Geometry:
    """``geometry`` with the grid (H, W) of the file's k-space, when it holds one."""
    from dataclasses import replace

    from ..errors import DataError, UsageError
    from . import roles
    from .arrays import read_shape

    try:
        shape = read_shape(text, roles.KSPACE)
    except (DataError, UsageError, OSError, KeyError):
        return geometry
    return replace(geometry, grid=(int(shape[-2]), int(shape[-1])))


def _thickness(fov, matrix) -> float | None:
    """The slice thickness of an encoded field of view and matrix (x, y, z), if both hold a
    positive z."""
    if fov is None or matrix is None or len(fov) < 3 or len(matrix) < 3:
        return None
    if not (float(fov[2]) > 0 and int(matrix[2]) > 0):
        return None
    return float(fov[2]) / int(matrix[2])


def find_geometry(texts) -> Geometry | None:
    """The geometry of the first of ``texts`` (a command's inputs) that has one."""
    for text in texts:
        if text is not None and text != "-":
            geometry = read_geometry(text)
            if geometry is not None:
                return geometry
    return None


def default_crop(text: str) -> tuple[int, int] | None:
    """The recon matrix of k-space file ``text`` when it is smaller than its k-space grid
    along an axis (clipped to the grid); None otherwise."""
    from . import roles
    from .arrays import read_shape

    geometry = read_geometry(text)
    if geometry is None or geometry.recon_shape is None:
        return None
    grid = read_shape(text, roles.KSPACE)[-2:]
    crop = tuple(min(r, s) for r, s in zip(geometry.recon_shape, grid))
    return crop if crop != tuple(grid) else None
