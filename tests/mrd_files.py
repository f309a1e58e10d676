"""Small simulated ISMRMRD (MRD) files, written with the ``ismrmrd`` package (the reference
implementation of the format), for the reader's tests."""

from __future__ import annotations

import numpy as np


def header_xml(encoded=(16, 16, 1), encoded_fov=(160.0, 160.0, 5.0), recon=None,
               recon_fov=None, center=None, trajectory="cartesian") -> str:
    """An ISMRMRD header; ``center`` the encoding limit's centre of kspace_encoding_step_1."""
    import ismrmrd.xsd as x

    recon = recon or encoded
    recon_fov = recon_fov or encoded_fov
    matrix = (lambda m: x.matrixSizeType(x=m[0], y=m[1], z=m[2]))
    fov = (lambda f: x.fieldOfViewMm(x=f[0], y=f[1], z=f[2]))
    limits = x.encodingLimitsType(kspace_encoding_step_1=x.limitType(
        minimum=0, maximum=encoded[1] - 1, center=encoded[1] // 2 if center is None else center))
    encoding = x.encodingType(
        encodedSpace=x.encodingSpaceType(matrixSize=matrix(encoded), fieldOfView_mm=fov(
            encoded_fov)),
        reconSpace=x.encodingSpaceType(matrixSize=matrix(recon), fieldOfView_mm=fov(recon_fov)),
        encodingLimits=limits, trajectory=x.trajectoryType.CARTESIAN)
    header = x.ismrmrdHeader(experimentalConditions=x.experimentalConditionsType(
        H1resonanceFrequency_Hz=63_500_000), encoding=[encoding])
    return x.ToXML(header).replace(">cartesian<", f">{trajectory}<")


def readout(data, line=0, center=None, slice_=0, average=0, contrast=0, repetition=0,
            flags=(), dwell=5.0, position=(0.0, 0.0, 0.0), directions=None):
    """One acquisition of ``data`` (channels, samples)."""
    import ismrmrd

    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, np.complex64))
    acq.center_sample = data.shape[1] // 2 if center is None else center
    acq.idx.kspace_encode_step_1 = line
    acq.idx.slice, acq.idx.average = slice_, average
    acq.idx.contrast, acq.idx.repetition = contrast, repetition
    acq.sample_time_us = dwell
    acq.position = tuple(float(p) for p in position)
    if directions is not None:   # read, phase, slice
        acq.read_dir, acq.phase_dir, acq.slice_dir = (tuple(map(float, d)) for d in directions)
    for flag in flags:
        acq.set_flag(flag)
    return acq


def write_mrd(path, xml: str | None, acquisitions) -> None:
    """An MRD file with header ``xml`` (None: none) and ``acquisitions``."""
    import ismrmrd

    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    if xml is not None:
        dataset.write_xml_header(xml)
    for acq in acquisitions:
        dataset.append_acquisition(acq)
    dataset.close()


def fftc(x, axes=(-2, -1)):
    """numpy's centred orthonormal FFT: the reference the tests compare mrgen against."""
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes), axes=axes, norm="ortho"), axes)


def ifftc(x, axes=(-2, -1)):
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(x, axes), axes=axes, norm="ortho"),
                           axes)
