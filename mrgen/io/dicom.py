"""DICOM output: a folder with one MR image file per slice, for PACS and viewers.

Pixels are the magnitude scaled to unsigned 16 bits with RescaleSlope (value = stored x
slope), so the full dynamic range survives; each file carries the pixel spacing, the
slice thickness (the header's when the inputs have one), the spacing between slices (the
distance of their positions), orientation and position of ``mrgen.io.images.frame`` (the
patient's when the inputs know it), and a window (centre, width) over 0 to the 99.5th
percentile. The files are written into a temporary folder that replaces the target at the
end, so a failed run leaves no partial series.
"""

from __future__ import annotations

import numpy as np

from .atomic import atomic_folder
from . import roles
from .images import frame, magnitude_stack, need

LEVELS = 65535


def write_dicom(ref, array: np.ndarray, geometry=None, role=None,
                description: str = "mrgen") -> None:
    """Write ``array`` (H, W) or (slices, H, W) as a series of MR images in folder
    ``ref.path`` (slice_000.dcm, ...)."""
    need("pydicom", "DICOM")
    stack = magnitude_stack(ref, array, role or roles.IMAGE)
    where = frame(geometry, *stack.shape)
    peak = float(stack.max())
    slope = peak / LEVELS if peak > 0 else 1.0
    stored = np.round(stack / slope).astype(np.uint16)
    high = float(np.percentile(stack, 99.5)) or peak or 1.0
    series = _series(description)
    thickness = None if geometry is None else geometry.thickness
    with atomic_folder(ref.path) as folder:
        for index, pixels in enumerate(stored):
            dataset = _slice(series, index, pixels, where, slope, high, thickness)
            _save(dataset, folder / f"slice_{index:03d}.dcm")


def _number(value) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    return f"{float(value):.8g}"


def _save(dataset, path) -> None:
    try:
        dataset.save_as(path, enforce_file_format=True)
    except TypeError:   # pydicom 2: the encoding is set on the dataset itself
        dataset.is_little_endian, dataset.is_implicit_VR = True, False
        dataset.save_as(path, write_like_original=False)


def _series(description: str) -> dict:
    from pydicom.uid import generate_uid

    return {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid(),
            "description": description[:64]}


def _slice(series, index, pixels, where, slope, high, thickness=None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ImageType = "MR", ["DERIVED", "SECONDARY"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series["study"], series["series"]
    ds.FrameOfReferenceUID = series["frame"]
    ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = series["description"], 1, index + 1
    ds.PatientName, ds.PatientID = "mrgen", "mrgen"
    ds.Rows, ds.Columns = pixels.shape
    # PixelSpacing is (between rows, between columns): H then W.
    spacing = [np.linalg.norm(where.down), np.linalg.norm(where.across),
               np.linalg.norm(where.step)]
    ds.PixelSpacing = [_number(spacing[0]), _number(spacing[1])]
    # the header's slice thickness (slices may have gaps or overlap), else the step
    ds.SliceThickness = _number(thickness if thickness else spacing[2])
    ds.SpacingBetweenSlices = _number(spacing[2])
    # The first triplet is the direction along a row (the W index grows), the second down a
    # column (H).
    ds.ImageOrientationPatient = [_number(v) for v in np.concatenate(
        [where.across / spacing[1], where.down / spacing[0]])]
    ds.ImagePositionPatient = [_number(v) for v in where.origins[index]]
    normal = np.cross(where.across, where.down)
    ds.SliceLocation = _number(where.origins[index] @ normal / np.linalg.norm(normal))
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", 0, "US"
    ds.WindowCenter, ds.WindowWidth = f"{high / 2:.6g}", f"{high:.6g}"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds
