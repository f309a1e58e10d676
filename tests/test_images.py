"""Images out for viewers: NIfTI (.nii, .nii.gz) and DICOM (a .dcm folder), by suffix or
--format, read back with nibabel and pydicom: pixels, voxel size, positions, window."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from .conftest import expect, invoke

nibabel = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

S, C, H, W = 3, 2, 16, 12
HEADER = """<?xml version="1.0"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>16</x><y>12</y><z>1</z></matrixSize>
<fieldOfView_mm><x>200</x><y>120</y><z>4</z></fieldOfView_mm></encodedSpace>
<reconSpace><matrixSize><x>16</x><y>12</y><z>1</z></matrixSize>
<fieldOfView_mm><x>200</x><y>120</y><z>4</z></fieldOfView_mm></reconSpace>
<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"""
SPACING = (12.5, 10.0, 4.0)   # mm along H, W, slices: FOV / matrix (200 / 16, 120 / 12)


@pytest.fixture
def scan(tmp_path, monkeypatch):
    """k.h5 with a fastMRI-style ismrmrd_header, k.npy without; and the zf image as .npy."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W)))
    with h5py.File("k.h5", "w") as f:
        f["kspace"] = kspace.astype(np.complex64)
        f["ismrmrd_header"] = HEADER
    np.save("k.npy", kspace.astype(np.complex64))
    expect("zf", "k.h5", "img.npy")
    return np.load("img.npy")


@pytest.mark.parametrize("name", ["img.nii", "img.nii.gz"])
def test_nifti_holds_the_magnitude_with_slices_third_and_the_voxel_size(scan, name):
    expect("zf", "k.h5", name)
    volume = nibabel.load(name)
    assert volume.shape == (H, W, S) and volume.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(volume.dataobj), np.moveaxis(scan, 0, -1))
    np.testing.assert_allclose(volume.affine, np.diag([*SPACING, 1.0]))
    np.testing.assert_allclose(volume.header.get_zooms(), SPACING)
    assert volume.header.get_xyzt_units()[0] == "mm"


def test_dicom_series_pixels_geometry_and_window(scan):
    expect("zf", "k.h5", "img.dcm")
    files = sorted(Path("img.dcm").glob("*.dcm"))
    assert len(files) == S
    nifti_affine = np.diag([*SPACING, 1.0])
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        assert ds.Modality == "MR" and ds.SOPClassUID == pydicom.uid.MRImageStorage
        assert (ds.Rows, ds.Columns) == (H, W)
        slope = float(ds.RescaleSlope)
        np.testing.assert_allclose(ds.pixel_array * slope, scan[k], atol=slope / 2 + 1e-7)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], SPACING[:2])
        assert float(ds.SliceThickness) == SPACING[2]
        # pixel (r, c) of slice k sits where the NIfTI affine puts voxel (r, c, k)
        position = np.array([float(v) for v in ds.ImagePositionPatient])
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient])
        r, c = 5, 7
        world = position + r * SPACING[0] * cosines[3:] + c * SPACING[1] * cosines[:3]
        np.testing.assert_allclose(world, (nifti_affine @ [r, c, k, 1])[:3])
        high = np.percentile(scan, 99.5)
        np.testing.assert_allclose(float(ds.WindowWidth), high, rtol=1e-5)
        np.testing.assert_allclose(float(ds.WindowCenter), high / 2, rtol=1e-5)
    uids = {pydicom.dcmread(p).SeriesInstanceUID for p in files}
    assert len(uids) == 1


def test_without_a_header_identity_affine_and_one_warning(scan):
    result = expect("zf", "k.npy", "plain.nii")
    warnings = [line for line in result.stderr.splitlines() if "voxel size" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: plain.nii")
    volume = nibabel.load("plain.nii")
    np.testing.assert_array_equal(volume.affine, np.eye(4))
    np.testing.assert_array_equal(np.asarray(volume.dataobj), np.moveaxis(scan, 0, -1))


def test_format_option_overrides_the_suffix_and_replaces_a_series(scan):
    expect("zf", "--format", "nifti", "k.h5", "volume")
    volume = nibabel.Nifti1Image.from_bytes(open("volume", "rb").read())   # no suffix
    np.testing.assert_array_equal(np.asarray(volume.dataobj), np.moveaxis(scan, 0, -1))
    expect("--format", "dicom", "zf", "k.h5", "series")
    expect("zf", "--slice", "1", "--format", "dicom", "k.h5", "series")   # replaces it
    files = sorted(Path("series").iterdir())
    assert [p.name for p in files] == ["slice_000.dcm"]
    ds = pydicom.dcmread(files[0])
    np.testing.assert_allclose(ds.pixel_array * float(ds.RescaleSlope), scan[1],
                               atol=float(ds.RescaleSlope))
    Path("series/notes.txt").write_text("mine")
    result = invoke("zf", "--format", "dicom", "k.h5", "series")
    assert result.exit_code == 2 and "other files" in result.stderr


def test_nifti_reads_back_as_an_image_and_maps_are_refused(scan, tmp_path):
    from mrgen import io
    from mrgen.errors import DataError

    expect("zf", "k.h5", "img.nii.gz")
    np.testing.assert_array_equal(io.read_array("img.nii.gz", io.roles.IMAGE), scan)
    result = expect("metrics", "img.npy", "img.nii.gz")
    assert "inf" in result.stdout.lower()   # identical images: infinite PSNR
    with pytest.raises(DataError, match="images"):
        io.write_array("maps.nii", np.ones((S, C, H, W), np.complex64), io.roles.MAPS)


def test_save_refuses_maps_before_any_voxel_size_warning(scan, capsys):
    """A command whose maps output was not declared ``not_images`` still gets one line: the
    role is checked before the warning that the inputs give no voxel size."""
    from commands.cli import save
    from mrgen import io
    from mrgen.errors import DataError

    with pytest.raises(DataError, match="maps.nii: NIfTI and DICOM outputs hold images"):
        save("maps.nii", np.ones((S, C, H, W), np.complex64), io.roles.MAPS, inputs=["k.npy"])
    assert "voxel size" not in capsys.readouterr().err
    assert not Path("maps.nii").exists()


def test_the_scanners_slice_positions_and_directions_place_the_pixels(tmp_path, monkeypatch):
    """An MRD scan in a coronal orientation: every pixel of the NIfTI (RAS) and DICOM (LPS)
    outputs sits where the readout and phase directions put it from the slice centre."""
    pytest.importorskip("ismrmrd")
    monkeypatch.chdir(tmp_path)
    from .mrd_files import header_xml, readout, write_mrd

    rng = np.random.default_rng(1)
    read, phase, normal = (1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)
    centres = [(10.0, 5.0 + 4.0 * s, -3.0) for s in range(S)]
    data = rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))
    acqs = [readout(data[s, :, :, y], line=y, slice_=s, position=centres[s],
                    directions=(read, phase, normal)) for s in range(S) for y in range(W)]
    write_mrd("raw.h5", header_xml((H, W, 1), (200.0, 120.0, 3.0)), acqs)
    expect("mrd", "raw.h5", "k.h5")
    expect("zf", "k.h5", "img.nii")
    expect("zf", "k.h5", "img.dcm")

    def lps(k, r, c):   # the pixel's centre in the patient
        return (np.array(centres[k]) + (r - H // 2) * SPACING[0] * np.array(read)
                + (c - W // 2) * SPACING[1] * np.array(phase))

    affine = nibabel.load("img.nii").affine
    files = sorted(Path("img.dcm").glob("*.dcm"))
    for k, r, c in [(0, 0, 0), (1, 5, 7), (2, H - 1, W - 1)]:
        ras = affine @ [r, c, k, 1]
        np.testing.assert_allclose(ras[:3], lps(k, r, c) * [-1, -1, 1], atol=1e-4)
        ds = pydicom.dcmread(files[k])
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient])
        spacing = [float(v) for v in ds.PixelSpacing]
        where = (np.array([float(v) for v in ds.ImagePositionPatient])
                 + r * spacing[0] * cosines[3:] + c * spacing[1] * cosines[:3])
        np.testing.assert_allclose(where, lps(k, r, c), atol=1e-4)
    np.testing.assert_allclose(float(pydicom.dcmread(files[1]).SpacingBetweenSlices), 4.0)
    np.testing.assert_allclose(float(pydicom.dcmread(files[1]).SliceThickness), 3.0)  # header
    header = nibabel.load("img.nii").header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 1)   # scanner
    np.testing.assert_allclose(nibabel.load("img.nii").get_qform(), affine, atol=1e-4)
    # an odd --crop of the even grid keeps each pixel where it was: mrgen.resize's offset
    # (16 - 15) // 2 = 0, so the scanner's centre (pixel 8) is pixel 8 = 15 // 2 + 1 of the crop
    expect("zf", "--crop", "15", "11", "k.h5", "crop.nii")
    expect("zf", "--crop", "15", "11", "k.h5", "crop.dcm")
    cropped = nibabel.load("crop.nii").affine
    ds = pydicom.dcmread(sorted(Path("crop.dcm").glob("*.dcm"))[1])
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], lps(1, 0, 0),
                               atol=1e-4)
    for k, r, c in [(0, 0, 0), (2, 14, 10), (1, 8, 6)]:
        np.testing.assert_allclose((cropped @ [r, c, k, 1])[:3], lps(k, r, c) * [-1, -1, 1],
                                   atol=1e-4)
    # --slice: the output holds those slices, placed where they were scanned
    expect("zf", "--slice", "1:3", "k.h5", "part.nii")
    expect("zf", "--slice", "2", "k.h5", "one.dcm")
    affine = nibabel.load("part.nii").affine
    for k, r, c in [(0, 0, 0), (1, 5, 7)]:
        np.testing.assert_allclose((affine @ [r, c, k, 1])[:3],
                                   lps(k + 1, r, c) * [-1, -1, 1], atol=1e-4)
    ds = pydicom.dcmread(next(Path("one.dcm").glob("*.dcm")))
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], lps(2, 0, 0),
                               atol=1e-4)


def test_a_failed_series_replace_keeps_the_earlier_series(tmp_path, monkeypatch):
    """The earlier DICOM folder is moved aside before the new one takes its name; when that
    rename fails, it is moved back (it used to be deleted with the aside folder)."""
    import os

    from mrgen.io import atomic

    series = tmp_path / "img.dcm"
    series.mkdir()
    (series / "slice_000.dcm").write_bytes(b"earlier")
    real_replace = os.replace

    def failing(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("device busy")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(OSError, match="device busy"):
        with atomic.atomic_folder(series) as folder:
            (folder / "slice_000.dcm").write_bytes(b"new")
    monkeypatch.undo()
    assert (series / "slice_000.dcm").read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["img.dcm"]   # no temporary left


def test_unevenly_spaced_slices_warn_once_for_nifti(tmp_path, monkeypatch):
    """Slices 4 mm then 6 mm apart: the NIfTI affine has one step, so the output says in one
    line that the third slice is misplaced (by 2 mm); DICOM keeps every position, no word."""
    pytest.importorskip("ismrmrd")
    monkeypatch.chdir(tmp_path)
    from .mrd_files import header_xml, readout, write_mrd

    rng = np.random.default_rng(2)
    directions = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    centres = [(0.0, 0.0, z) for z in (0.0, 4.0, 10.0)]
    data = rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))
    acqs = [readout(data[s, :, :, y], line=y, slice_=s, position=centres[s],
                    directions=directions) for s in range(S) for y in range(W)]
    write_mrd("raw.h5", header_xml((H, W, 1), (200.0, 120.0, 3.0)), acqs)
    expect("mrd", "raw.h5", "k.h5")
    result = expect("zf", "k.h5", "img.nii")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "unevenly spaced (4 to 6 mm apart)" in warnings[0], warnings
    assert "misplaced by up to 2 mm" in warnings[0]
    assert "warning" not in expect("zf", "k.h5", "img.dcm").stderr
    assert "warning" not in expect("zf", "--slice", "0:2", "k.h5", "two.nii").stderr
