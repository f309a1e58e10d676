"""The ISMRMRD XML header: the few fields mrgen needs, read with the standard library.

MRD files carry it in ``dataset/xml``, fastMRI files in ``ismrmrd_header``; both follow the
published schema (namespace http://www.ismrm.org/ISMRMRD). Only the first ``encoding`` is
read: its encoded and recon matrix and field of view, its trajectory and its encoding
limits. The standard library's parser (not the ``ismrmrd`` package's schema binding) keeps
fastMRI files readable without the optional package and tolerates vendor extensions that a
strict schema parse refuses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from ...errors import DataError

# The trajectory words of the schema (trajectoryType).
TRAJECTORIES = ("cartesian", "epi", "radial", "goldenangle", "spiral", "other")

# The encoding-limit names of the schema, in the order of the acquisition counters.
LIMITS = ("kspace_encoding_step_1", "kspace_encoding_step_2", "average", "slice", "contrast",
          "phase", "repetition", "set", "segment")


@dataclass(frozen=True)
class Limit:
    """An encoding counter's range in the header: minimum, maximum and centre."""

    minimum: int
    maximum: int
    center: int


@dataclass(frozen=True)
class EncodingHeader:
    """The first encoding of an ISMRMRD header. Matrices are (x, y, z) = (readout, phase
    encoding, partitions); fields of view in mm."""

    encoded_matrix: tuple[int, int, int]
    encoded_fov: tuple[float, float, float]
    recon_matrix: tuple[int, int, int]
    recon_fov: tuple[float, float, float]
    trajectory: str
    limits: dict = field(default_factory=dict)   # name in LIMITS -> Limit

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along readout, phase encoding and slice: the encoded field of
        view over the encoded matrix (the same after readout oversampling is removed, which
        halves both)."""
        return tuple(f / m for f, m in zip(self.encoded_fov, self.encoded_matrix))

    def limit(self, name: str) -> Limit | None:
        return self.limits.get(name)

    def attributes(self) -> dict:
        """The header's geometry as file attributes (kept by ``mrgen mrd``)."""
        return {"encoded_matrix": list(self.encoded_matrix),
                "encoded_fov_mm": list(self.encoded_fov),
                "recon_matrix": list(self.recon_matrix),
                "recon_fov_mm": list(self.recon_fov),
                "spacing_mm": list(self.spacing),
                "trajectory": self.trajectory}


def parse_header(text, source: str) -> EncodingHeader:
    """Parse an ISMRMRD XML header (str or bytes); DataError naming ``source`` when it is not
    one, has no encoding, or lacks a matrix or field of view."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise DataError(f"{source}: the ISMRMRD header is not valid XML ({err})") from None
    encoding = _child(root, "encoding")
    if encoding is None:
        raise DataError(f"{source}: the ISMRMRD header has no <encoding>")
    trajectory = (_text(encoding, "trajectory") or "").strip()
    if trajectory not in TRAJECTORIES:
        raise DataError(f"{source}: unknown trajectory '{trajectory}' in the ISMRMRD header "
                        f"(the schema knows {', '.join(TRAJECTORIES)})")
    encoded, recon = _child(encoding, "encodedSpace"), _child(encoding, "reconSpace")
    return EncodingHeader(
        encoded_matrix=_triple(encoded, "matrixSize", int, source, "encodedSpace"),
        encoded_fov=_triple(encoded, "fieldOfView_mm", float, source, "encodedSpace"),
        recon_matrix=_triple(recon, "matrixSize", int, source, "reconSpace"),
        recon_fov=_triple(recon, "fieldOfView_mm", float, source, "reconSpace"),
        trajectory=trajectory,
        limits=_limits(_child(encoding, "encodingLimits")))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]   # drop the namespace


def _child(node, name):
    if node is None:
        return None
    return next((c for c in node if _local(c.tag) == name), None)


def _text(node, name) -> str | None:
    child = _child(node, name)
    return None if child is None else child.text


def _triple(space, name, kind, source, where):
    node = _child(space, name)
    try:
        values = tuple(kind(_text(node, axis)) for axis in "xyz")
    except (TypeError, ValueError):
        raise DataError(f"{source}: the ISMRMRD header lacks {where}/{name} (x, y, z)") from None
    if any(v <= 0 for v in values):
        raise DataError(f"{source}: the ISMRMRD header's {where}/{name} must be positive, got "
                        f"{values}")
    return values


def _limits(node) -> dict:
    limits = {}
    for name in LIMITS:
        limit = _child(node, name)
        try:
            limits[name] = Limit(*(int(_text(limit, k)) for k in ("minimum", "maximum",
                                                                   "center")))
        except (TypeError, ValueError):
            continue   # an absent or partial limit: the data decide
    return limits
