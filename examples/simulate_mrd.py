"""A simulated scan in ISMRMRD (MRD) format, standing in for a scanner's raw data file.

    python examples/simulate_mrd.py raw.h5 [--seed N]

Two slices of the Shepp-Logan phantom seen by 8 coils, written the way scanners' converters
write Cartesian data: a noise scan first (coil noise correlated by a fixed mixing matrix),
readouts twice oversampled (encoded FOV 440 mm, recon FOV 220 mm), every second line plus 24
calibration lines, partial Fourier (the last quarter of the lines not acquired), axial slices
5 mm apart. Needs the ismrmrd package (pip install ismrmrd; in mrgen's test extra).
"""

import argparse

import numpy as np

N, COILS, SLICES, FOV, THICKNESS = 128, 8, 2, 220.0, 5.0


def header(nx: int, ny: int) -> str:
    import ismrmrd.xsd as x

    matrix = (lambda a, b: x.matrixSizeType(x=a, y=b, z=1))
    fov = (lambda a, b: x.fieldOfViewMm(x=a, y=b, z=THICKNESS))
    encoding = x.encodingType(
        encodedSpace=x.encodingSpaceType(matrixSize=matrix(2 * nx, ny), fieldOfView_mm=fov(
            2 * FOV, FOV)),
        reconSpace=x.encodingSpaceType(matrixSize=matrix(nx, ny), fieldOfView_mm=fov(FOV, FOV)),
        encodingLimits=x.encodingLimitsType(
            kspace_encoding_step_1=x.limitType(minimum=0, maximum=ny - 1, center=ny // 2),
            slice=x.limitType(minimum=0, maximum=SLICES - 1, center=0)),
        trajectory=x.trajectoryType.CARTESIAN)
    return x.ToXML(x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[encoding]))


def coil_kspace(seed: int) -> np.ndarray:
    """(slices, coils, 2N, N): the phantom's coil images on a readout FOV twice the object's
    (zero-padded image), to k-space with the centred orthonormal FFT."""
    from mrgen.phantom import make_phantom

    phantom = make_phantom(size=(N, N), coils=COILS, slices=SLICES, seed=seed)
    coils = phantom.image[:, None] * phantom.maps                       # (S, C, N, N)
    padded = np.zeros((SLICES, COILS, 2 * N, N), np.complex64)
    padded[:, :, N // 2:N // 2 + N] = coils
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(padded, axes), norm="ortho"), axes)


def main():
    import ismrmrd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    mixing = np.eye(COILS) + 0.3 * np.tri(COILS, k=-1) * rng.standard_normal((COILS, COILS))
    noise = (lambda *shape: 0.02 * np.tensordot(
        mixing, rng.standard_normal((COILS, *shape)) + 1j * rng.standard_normal((COILS, *shape)),
        axes=1).astype(np.complex64))
    kspace = coil_kspace(args.seed)
    lines = [y for y in range(3 * N // 4) if y % 2 == 0 or abs(y - N // 2) < 12]
    dataset = ismrmrd.Dataset(args.output, "dataset", create_if_needed=True)
    dataset.write_xml_header(header(N, N))
    scan = ismrmrd.Acquisition.from_array(noise(4 * N))
    scan.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    scan.sample_time_us = 5.0
    dataset.append_acquisition(scan)
    for s in range(SLICES):
        for y in lines:
            acq = ismrmrd.Acquisition.from_array(kspace[s, :, :, y] + noise(2 * N))
            acq.idx.kspace_encode_step_1, acq.idx.slice = y, s
            acq.center_sample, acq.sample_time_us = N, 5.0
            acq.position = (0.0, 0.0, THICKNESS * s)   # axial slices: read along x, phase y
            acq.read_dir, acq.phase_dir, acq.slice_dir = (1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)
            dataset.append_acquisition(acq)
    dataset.close()


if __name__ == "__main__":
    main()
