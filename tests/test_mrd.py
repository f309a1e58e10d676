"""ISMRMRD (MRD) raw data in: placement by the counters, partial Fourier and asymmetric echo,
readout oversampling, noise pre-whitening, averages, and refusals; checked against numpy."""

import numpy as np
import pytest

pytest.importorskip("ismrmrd")

from mrgen.errors import DataError, UsageError  # noqa: E402
from mrgen.io.mrd import read_mrd  # noqa: E402

from .mrd_files import fftc, header_xml, ifftc, readout, write_mrd  # noqa: E402

C, NX, NY = 3, 16, 12


def _random(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_partial_fourier_and_asymmetric_echo_land_where_they_belong(tmp_path):
    """Lines 0..8 of 12 with centre 6 (partial Fourier), readouts of 12 of 16 samples with
    their centre at sample 4 (asymmetric echo): the rest of the grid stays zero."""
    rng = np.random.default_rng(0)
    full = _random(rng, 2, C, NX, NY)          # two slices on the encoded grid
    lines, early = range(0, 9), 4              # samples 4..15 of each readout are acquired
    acqs = [readout(full[s, :, early:, y], line=y, center=NX // 2 - early, slice_=s)
            for s in range(2) for y in lines]
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1), center=6), acqs)
    scan = read_mrd(tmp_path / "raw.h5")
    expected = np.zeros_like(full)
    # line y sits at column y - 6 + 12 // 2 = y; sample i of a readout at row i + 4
    expected[:, :, early:, :9] = full[:, :, early:, :9]
    np.testing.assert_array_equal(scan.kspace, expected)
    np.testing.assert_array_equal(scan.mask, (np.arange(NY) < 9).astype(np.float32))
    assert scan.kspace.dtype == np.complex64 and not scan.prewhitened


def test_line_placement_follows_the_encoding_limit_centre(tmp_path):
    """A header centre of 4 (of 12 lines) shifts every line by 12 // 2 - 4 = 2 columns."""
    rng = np.random.default_rng(1)
    data = _random(rng, NY - 2, C, NX)
    acqs = [readout(data[y], line=y) for y in range(NY - 2)]
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1), center=4), acqs)
    kspace = read_mrd(tmp_path / "raw.h5").kspace[0]
    for y in range(NY - 2):
        np.testing.assert_array_equal(kspace[:, :, y + 2], data[y])
    assert not kspace[:, :, :2].any()


def test_an_unset_encoding_limit_centre_places_the_lines_by_their_steps(tmp_path):
    """A header centre of 0 that would push steps 0..11 off the 12-line grid is unset (as
    converters leave it): line y at column y."""
    rng = np.random.default_rng(9)
    data = _random(rng, NY, C, NX)
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1), center=0),
              [readout(data[y], line=y) for y in range(NY)])
    kspace = read_mrd(tmp_path / "raw.h5").kspace[0]
    np.testing.assert_array_equal(kspace, np.moveaxis(data, 0, -1))


def test_readout_oversampling_is_removed_as_a_centre_crop_of_the_image(tmp_path):
    """Encoded FOV x twice the recon FOV: the image of the result is the central half of the
    oversampled image (numpy's FFT as the reference)."""
    rng = np.random.default_rng(2)
    full = _random(rng, C, 2 * NX, NY)
    acqs = [readout(full[:, :, y], line=y) for y in range(NY)]
    xml = header_xml((2 * NX, NY, 1), (320.0, 120.0, 4.0), (NX, NY, 1), (160.0, 120.0, 4.0))
    write_mrd(tmp_path / "raw.h5", xml, acqs)
    scan = read_mrd(tmp_path / "raw.h5")
    assert scan.kspace.shape == (1, C, NX, NY)
    image = ifftc(full)[:, NX // 2:NX // 2 + NX, :]
    np.testing.assert_allclose(ifftc(scan.kspace[0]), image, atol=2e-5)
    assert scan.spacing() == (10.0, 10.0, 4.0)
    attrs = scan.attributes()
    assert attrs["encoded_matrix"] == [2 * NX, NY, 1] and attrs["recon_matrix"] == [NX, NY, 1]
    assert attrs["recon_fov_mm"] == [160.0, 120.0, 4.0]


def test_noise_prewhitening_matches_numpy(tmp_path):
    """Correlated noise: the k-space is L^-1 times the raw data, L the Cholesky factor of
    the noise covariance X X^H / N; the noise scan's dwell time half the data's scales by
    sqrt(2)."""
    rng = np.random.default_rng(3)
    mixing = np.array([[1, 0, 0], [0.5, 1, 0], [0.2j, 0.3, 2]], np.complex64)
    noise = mixing @ _random(rng, C, 256)
    full = _random(rng, C, NX, NY)
    acqs = [readout(noise[:, i:i + 64], flags=[19], dwell=2.5) for i in range(0, 256, 64)]
    acqs += [readout(full[:, :, y], line=y, dwell=5.0) for y in range(NY)]
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1)), acqs)
    scan = read_mrd(tmp_path / "raw.h5")
    noise128 = noise.astype(np.complex128)
    covariance = noise128 @ noise128.conj().T / 256
    whitening = np.sqrt(2.0) * np.linalg.inv(np.linalg.cholesky(covariance))
    expected = np.einsum("ij,jhw->ihw", whitening, full)
    assert scan.prewhitened
    np.testing.assert_allclose(scan.noise_covariance, covariance, rtol=1e-6)
    np.testing.assert_allclose(scan.kspace[0], expected, rtol=1e-5, atol=1e-5)
    # whitened noise has identity covariance (up to the dwell scaling)
    white = np.linalg.inv(np.linalg.cholesky(covariance)) @ noise128
    np.testing.assert_allclose(white @ white.conj().T / 256, np.eye(C), atol=1e-10)
    unwhitened = read_mrd(tmp_path / "raw.h5", prewhiten=False)
    np.testing.assert_array_equal(unwhitened.kspace[0], full)
    assert scan.skipped == {"noise": 4}


def test_averages_mean_sum_or_one_and_contrasts_as_slices(tmp_path):
    rng = np.random.default_rng(4)
    first, second = _random(rng, 2, C, NX, NY)
    acqs = [readout(k[:, :, y], line=y, average=a, contrast=c)
            for c in range(2) for a, k in enumerate((first, second)) for y in range(NY)]
    acqs += [readout(first[:, :, 0], line=0, average=2)]   # line 0 has a third average
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1)), acqs)
    mean = read_mrd(tmp_path / "raw.h5").kspace
    assert mean.shape == (2, C, NX, NY)       # the two contrasts on the slice axis
    expected = (first + second) / 2
    np.testing.assert_allclose(mean[1], expected, rtol=1e-6, atol=1e-6)
    expected[:, :, 0] = (2 * first[:, :, 0] + second[:, :, 0]) / 3   # contrast 0's 3 of line 0
    np.testing.assert_allclose(mean[0], expected, rtol=1e-6, atol=1e-6)
    summed = read_mrd(tmp_path / "raw.h5", average="sum").kspace[0]
    np.testing.assert_allclose(summed[:, :, 1:], (first + second)[:, :, 1:], rtol=1e-6)
    np.testing.assert_array_equal(read_mrd(tmp_path / "raw.h5", average=1).kspace[0], second)
    scan = read_mrd(tmp_path / "raw.h5")
    np.testing.assert_array_equal(scan.counters[:, 1], [0, 1])   # contrast per slice
    with pytest.raises(UsageError, match="--average 5"):
        read_mrd(tmp_path / "raw.h5", average=5)


def test_slices_keep_their_positions_and_spacing(tmp_path):
    rng = np.random.default_rng(5)
    data = _random(rng, 3, C, NX, NY)
    acqs = [readout(data[s, :, :, y], line=y, slice_=s, position=(0, 0, 6.0 * s))
            for s in (2, 0, 1) for y in range(NY)]   # written out of order
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1), (160.0, 120.0, 5.0)), acqs)
    scan = read_mrd(tmp_path / "raw.h5")
    np.testing.assert_array_equal(scan.kspace, data)
    np.testing.assert_allclose(scan.positions[:, 2], [0.0, 6.0, 12.0])
    assert scan.spacing() == (10.0, 10.0, 6.0)


def test_calibration_lines_fill_gaps_and_reversed_or_trimmed_readouts_are_undone(tmp_path):
    """Separate calibration readouts (ACQ_IS_PARALLEL_CALIBRATION) fill lines the imaging did
    not acquire and are left out where it did; ACQ_IS_REVERSE readouts are flipped back;
    discard_pre/discard_post samples are dropped before placement."""
    import ismrmrd

    rng = np.random.default_rng(8)
    full = _random(rng, C, NX, NY)
    acqs = [readout(full[:, :, y], line=y) for y in range(0, NY, 2)]        # even lines
    acqs += [readout(full[:, :, y] * 9, line=y, flags=[20]) for y in (4, 5, 6, 7)]
    reversed_ = readout(full[:, ::-1, 9], line=9, center=NX // 2 - 1, flags=[22])
    trimmed = readout(np.concatenate([np.zeros((C, 2)), full[:, :, 11], np.zeros((C, 1))], 1),
                      line=11, center=NX // 2 + 2)
    trimmed.discard_pre, trimmed.discard_post = 2, 1
    acqs += [reversed_, trimmed]
    write_mrd(tmp_path / "raw.h5", header_xml((NX, NY, 1)), acqs)
    scan = read_mrd(tmp_path / "raw.h5")
    kspace = scan.kspace[0]
    for y in range(0, NY, 2):
        np.testing.assert_array_equal(kspace[:, :, y], full[:, :, y])      # imaging wins
    for y in (5, 7):
        np.testing.assert_array_equal(kspace[:, :, y], full[:, :, y] * 9)  # calibration fills
    np.testing.assert_array_equal(kspace[:, :, 9], full[:, :, 9])
    np.testing.assert_array_equal(kspace[:, :, 11], full[:, :, 11])
    assert not kspace[:, :, [1, 3]].any()   # neither imaged nor calibration
    assert scan.skipped == {"calibration (line also imaged)": 2}
    assert ismrmrd.ACQ_IS_PARALLEL_CALIBRATION == 20 and ismrmrd.ACQ_IS_REVERSE == 22


@pytest.mark.parametrize("xml, acq, word", [
    (None, True, "no ISMRMRD header"),
    (header_xml(trajectory="radial"), True, "non-Cartesian trajectory 'radial'"),
    (header_xml(trajectory="rosette"), True, "unknown trajectory 'rosette'"),
    ("<ismrmrdHeader><encoding>", True, "not valid XML"),
    (header_xml(), False, "no acquisitions"),
    (header_xml((16, 16, 4)), True, "3D encoding"),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, xml, acq, word):
    acqs = [readout(np.ones((C, 16), np.complex64))] if acq else []
    write_mrd(tmp_path / "raw.h5", xml, acqs)
    with pytest.raises(DataError, match=word) as err:
        read_mrd(tmp_path / "raw.h5")
    assert str(err.value).startswith(str(tmp_path / "raw.h5"))


def test_prewhiten_without_a_noise_scan_is_refused(tmp_path):
    write_mrd(tmp_path / "raw.h5", header_xml(), [readout(np.ones((C, 16), np.complex64))])
    with pytest.raises(UsageError, match="no noise scan"):
        read_mrd(tmp_path / "raw.h5", prewhiten=True)


# --- the command, and the header as fastMRI files carry it ---------------------------------

def test_mrd_command_writes_what_zf_reconstructs(tmp_path, monkeypatch):
    """mrgen mrd, then mrgen zf: the RSS of the placed, whitened, cropped k-space (numpy)."""
    import h5py

    from .conftest import expect

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(6)
    full = _random(rng, 2, C, 2 * NX, NY)
    noise = _random(rng, C, 128) * np.array([[1.0], [2.0], [0.5]], np.float32)
    acqs = [readout(noise, flags=[19])]
    acqs += [readout(full[s, :, :, y], line=y, slice_=s, position=(0, 0, 3.0 * s))
             for s in range(2) for y in range(9)]
    xml = header_xml((2 * NX, NY, 1), (320.0, 120.0, 3.0), (NX, NY, 1), (160.0, 120.0, 3.0),
                     center=6)
    write_mrd("raw.h5", xml, acqs)
    expect("mrd", "raw.h5", "k.h5")
    expect("zf", "k.h5", "img.npy")
    whitening = np.linalg.inv(np.linalg.cholesky(
        noise.astype(np.complex128) @ noise.conj().T.astype(np.complex128) / 128))
    kspace = np.einsum("ij,sjhw->sihw", whitening, full)
    kspace[..., 9:] = 0
    coils = ifftc(kspace)[:, :, NX // 2:NX // 2 + NX]
    rss = np.sqrt((np.abs(coils) ** 2).sum(1))
    np.testing.assert_allclose(np.load("img.npy"), rss, rtol=1e-4, atol=1e-5)
    with h5py.File("k.h5") as f:
        assert f["kspace"].shape == (2, C, NX, NY)
        np.testing.assert_array_equal(f["mask"][()], (np.arange(NY) < 9).astype(np.float32))
        np.testing.assert_allclose(f.attrs["spacing_mm"], [10.0, 10.0, 3.0])
        assert list(f.attrs["recon_matrix"]) == [NX, NY, 1] and f.attrs["prewhitened"]
        assert b"ismrmrdHeader" in f["ismrmrd_header"][()]


def test_fastmri_header_sets_the_default_crop(tmp_path, monkeypatch):
    """A fastMRI-style file (k-space on the encoded 32 x 12 grid, header recon 16 x 10): zf
    crops to 16 x 10 unless --crop says otherwise."""
    import h5py

    from .conftest import expect

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(7)
    kspace = _random(rng, 2, C, 2 * NX, NY)
    with h5py.File("fastmri.h5", "w") as f:
        f["kspace"] = kspace
        f["ismrmrd_header"] = header_xml((2 * NX, NY, 1), (320.0, 120.0, 3.0), (NX, 10, 1),
                                         (160.0, 100.0, 3.0))
    result = expect("zf", "fastmri.h5", "img.npy")
    assert "--crop 16 10" in result.stderr
    rss = np.sqrt((np.abs(ifftc(kspace)) ** 2).sum(1))
    np.testing.assert_allclose(np.load("img.npy"), rss[:, NX // 2:NX // 2 + NX, 1:11],
                               rtol=1e-4, atol=1e-5)
    expect("zf", "--crop", 2 * NX, NY, "fastmri.h5", "full.npy")
    assert np.load("full.npy").shape == (2, 2 * NX, NY)
