"""mrgen phantom: simulated k-space with ground truth (library and command)."""

import sys

import h5py
import numpy as np
import pytest
import torch

from mrgen import phantom
from mrgen.fft import fft2c, ifft2c

from .conftest import expect as run


def read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def rss_of(kspace):
    coil_images = ifft2c(torch.from_numpy(kspace.astype(np.complex128))).numpy()
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=-3))


def small(tmp_path, name="p.h5", *extra):
    out = tmp_path / name
    run("phantom", out, "--size", 32, 32, "--coils", 4, *extra)
    return read(out)


# --- the .h5 bundle ------------------------------------------------------------------------


def test_h5_datasets_shapes_and_dtypes(tmp_path):
    data, attrs = small(tmp_path, "one.h5")
    assert data["kspace"].shape == (4, 32, 32) and data["kspace"].dtype == np.complex64
    assert data["maps"].shape == (4, 32, 32) and data["maps"].dtype == np.complex64
    assert data["image"].shape == (32, 32) and data["image"].dtype == np.complex64
    assert data["reconstruction_rss"].shape == (32, 32)
    assert data["reconstruction_rss"].dtype == np.float32
    data, attrs = small(tmp_path, "three.h5", "--slices", 3)
    assert data["kspace"].shape == (3, 4, 32, 32)
    assert data["maps"].shape == (3, 4, 32, 32)
    assert data["image"].shape == (3, 32, 32)
    assert data["reconstruction_rss"].shape == (3, 32, 32)
    assert attrs["acquisition"] == "mrgen phantom shepp-logan"
    assert attrs["max"] == pytest.approx(float(data["reconstruction_rss"].max()))
    assert attrs["norm"] == pytest.approx(float(np.linalg.norm(data["reconstruction_rss"])),
                                          rel=1e-6)
    assert len(attrs["slice_indices"]) == 3 and len(set(attrs["slice_indices"])) == 3
    assert attrs["coils"] == 4 and attrs["oversample"] == 1
    # distinct planes of the 3D phantom
    assert not np.allclose(data["image"][0], data["image"][2])


def test_rss_is_rss_of_the_noisy_kspace(tmp_path):
    data, _ = small(tmp_path, "n.h5", "--slices", 2, "--noise", 0.05)
    np.testing.assert_allclose(data["reconstruction_rss"], rss_of(data["kspace"]),
                               rtol=1e-5, atol=1e-6)


def test_noise_free_exact_model(tmp_path):
    data, _ = small(tmp_path, "exact.h5", "--slices", 2, "--phase", 1.5)
    image, maps = data["image"], data["maps"]
    assert np.abs(image).max() == pytest.approx(1.0, abs=1e-6)
    coil_images = ifft2c(torch.from_numpy(data["kspace"])).numpy()
    np.testing.assert_allclose(coil_images, maps * image[:, None], atol=2e-6)
    np.testing.assert_allclose(data["reconstruction_rss"], np.abs(image), atol=2e-6)
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=-3), 1.0, atol=1e-5)
    # the phase is really there, and smooth
    inside = np.abs(image[0]) > 0.1
    assert np.ptp(np.angle(image[0])[inside]) > 0.05


def test_real_object_with_phase_zero(tmp_path):
    data, _ = small(tmp_path, "real.h5", "--phase", 0)
    assert np.abs(data["image"].imag).max() == 0
    np.testing.assert_allclose(data["image"].real, phantom.shepp_logan((32, 32)), atol=1e-6)


def test_noise_std(tmp_path):
    clean, _ = small(tmp_path, "clean.h5", "--size", 64, 64, "--seed", 7)
    noisy, _ = small(tmp_path, "noisy.h5", "--size", 64, 64, "--seed", 7, "--noise", 0.02)
    np.testing.assert_array_equal(clean["image"], noisy["image"])  # same phase
    noise = (noisy["kspace"] - clean["kspace"]).astype(np.complex128)
    assert np.sqrt(np.mean(np.abs(noise) ** 2)) == pytest.approx(0.02, rel=0.03)
    assert noise.real.std() == pytest.approx(0.02 / np.sqrt(2), rel=0.03)
    assert noise.imag.std() == pytest.approx(0.02 / np.sqrt(2), rel=0.03)
    assert abs(noise.mean()) < 0.02 * 0.05


def test_seed_reproducible(tmp_path):
    a, _ = small(tmp_path, "a.h5", "--noise", 0.01, "--seed", 3)
    b, _ = small(tmp_path, "b.h5", "--noise", 0.01, "--seed", 3)
    c, _ = small(tmp_path, "c.h5", "--noise", 0.01, "--seed", 4)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name
    assert not np.allclose(np.angle(a["image"]), np.angle(c["image"]))  # phase
    assert not np.allclose(a["kspace"], c["kspace"])                      # noise


def test_global_seed_before_the_command(tmp_path):
    run("--seed", 3, "phantom", tmp_path / "x.h5", "--size", 32, 32, "--coils", 4)
    a, _ = read(tmp_path / "x.h5")
    b, _ = small(tmp_path, "y.h5", "--seed", 3)
    assert a["image"].tobytes() == b["image"].tobytes()


# --- oversampling ---------------------------------------------------------------------------


def test_oversample_avoids_inverse_crime(tmp_path):
    data, attrs = small(tmp_path, "os.h5", "--size", 64, 64, "--oversample", 2, "--seed", 1)
    assert attrs["oversample"] == 2
    kspace, image, maps = data["kspace"], data["image"], data["maps"]
    model = fft2c(torch.from_numpy(maps * image[None])).numpy()
    error = np.linalg.norm(kspace - model) / np.linalg.norm(kspace)
    assert error > 1e-2  # not the reconstruction's own discrete model ...
    centre = (..., slice(24, 40), slice(24, 40))
    low = np.linalg.norm((kspace - model)[centre]) / np.linalg.norm(kspace[centre])
    assert low < 1e-2    # ... but the same object at low frequencies
    assert np.abs(image).max() == pytest.approx(1.0, abs=1e-6)


def test_oversample_image_is_the_low_pass_of_the_fine_object():
    size, f, seed = (24, 30), 2, 5
    ph = phantom.make_phantom(size=size, coils=3, phase=1.0, oversample=f, seed=seed)
    phase_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    fine = phantom.shepp_logan(size, factor=f) * np.exp(
        1j * phantom.smooth_phase(size, 1.0, phase_rng, f))
    k = fft2c(torch.from_numpy(fine)).numpy()
    h, w = size
    top, left = f * h // 2 - h // 2, f * w // 2 - w // 2
    expected = ifft2c(torch.from_numpy(k[top:top + h, left:left + w] / f)).numpy()
    np.testing.assert_allclose(ph.image[0], expected / ph.scale, atol=1e-6)
    # the fine grid is aligned: at F = 1 the same functions give the target-grid samples
    np.testing.assert_allclose(phantom.shepp_logan(size, factor=2)[::2, ::2],
                               phantom.shepp_logan(size))
    np.testing.assert_allclose(phantom.birdcage_maps(3, size, 2)[:, ::2, ::2],
                               phantom.birdcage_maps(3, size))


@pytest.mark.parametrize("n,f", [(8, 2), (7, 3), (7, 2), (9, 4)])
def test_fine_grid_centres_coincide(n, f):
    positions = phantom.grid_positions(n, f)
    assert positions[(f * n) // 2] == n // 2
    assert np.allclose(np.diff(positions), 1 / f)


# --- library pieces against sigpy -----------------------------------------------------------


def test_objects_and_maps_match_sigpy():
    import sigpy
    import sigpy.mri

    for size in ((32, 32), (21, 34)):
        np.testing.assert_array_equal(phantom.shepp_logan(size), sigpy.shepp_logan(size).real)
        np.testing.assert_allclose(phantom.birdcage_maps(5, size),
                                   sigpy.mri.birdcage_maps((5, *size)), atol=1e-12)
    volume = sigpy.shepp_logan((16, 16, 20)).real
    for z in (3, 8, 12):
        np.testing.assert_array_equal(phantom.shepp_logan((16, 20), z, 16), volume[z])


def test_choose_slices():
    assert list(phantom.choose_slices(100, None, None, (40, 60))) == [50]
    assert list(phantom.choose_slices(100, None, 3, (40, 60))) == [40, 50, 60]
    assert list(phantom.choose_slices(100, slice(10, 14))) == [10, 11, 12, 13]
    assert list(phantom.choose_slices(100, slice(10, 20), 2)) == [10, 19]
    assert list(phantom.choose_slices(100, [5, 7])) == [5, 7]
    assert list(phantom.choose_slices(100, 42)) == [42]
    from mrgen.errors import UsageError

    for args in ((100, 100), (100, slice(10, 12), 3), (100, None, 30, (0, 9)),
                 (100, [1, 2], 3), (100, 5, 2)):
        with pytest.raises(UsageError):
            phantom.choose_slices(*args)


def test_slice_axis_only_when_asked_for():
    assert not phantom.keeps_slice_axis(None, None, None)
    assert not phantom.keeps_slice_axis(None, 5, None)                  # one index
    assert not phantom.keeps_slice_axis(None, None, np.zeros((4, 4)))   # one image
    assert phantom.keeps_slice_axis(3, None, None)
    assert phantom.keeps_slice_axis(None, slice(2, 4), None)
    assert phantom.keeps_slice_axis(None, [1, 2], None)
    assert phantom.keeps_slice_axis(None, None, np.zeros((2, 4, 4)))
    ph = phantom.make_phantom(size=(8, 6), coils=2)
    assert {k: a.shape for k, a in ph.arrays(False).items()} == {
        "kspace": (2, 8, 6), "image": (8, 6), "maps": (2, 8, 6), "rss": (8, 6)}
    assert ph.arrays()["kspace"].shape == (1, 2, 8, 6)


def test_resample_identity_and_antialias():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((12, 10))
    np.testing.assert_array_equal(phantom.resample(image, (12, 10)), image)
    # shrinking by 2 averages neighbours instead of picking every other pixel
    stripes = np.tile([0.0, 1.0], (16, 8))
    assert np.allclose(phantom.resample(stripes, (8, 8)), 0.5, atol=0.2)
    padded = phantom.pad_to_aspect(np.ones((20, 10)), (32, 32))
    assert padded.shape == (20, 20) and padded.sum() == 200


# --- brain ----------------------------------------------------------------------------------


def test_brain_slices(tmp_path):
    pytest.importorskip("nilearn")
    run("phantom", tmp_path / "b.h5", "--kind", "brain", "--size", 48, 48, "--coils", 2,
        "--slice-index", "60:62", "--phase", 0)
    data, attrs = read(tmp_path / "b.h5")
    assert list(attrs["slice_indices"]) == [60, 61]
    assert data["kspace"].shape == (2, 2, 48, 48)
    assert attrs["acquisition"] == "mrgen phantom brain"
    run("phantom", tmp_path / "c.h5", "--kind", "brain", "--size", 48, 48, "--coils", 2,
        "--slice-index", "61,100", "--phase", 0)
    other, attrs = read(tmp_path / "c.h5")
    assert list(attrs["slice_indices"]) == [61, 100]
    image, image2 = np.abs(data["image"]), np.abs(other["image"])
    # the same template slice gives the same picture (up to the stack's normalisation)
    np.testing.assert_allclose(image[1] / image[1].max(), image2[0] / image2[0].max(),
                               atol=1e-5)
    assert np.linalg.norm(image2[1] - image2[0]) > 0.2 * np.linalg.norm(image2[0])
    # anatomy: a head in the middle, background at the corners
    assert image[0, 24, 24] > 0.1 and image[0, 0, 0] < 1e-3
    # default: one slice from the middle of the brain, no slice axis
    run("phantom", tmp_path / "d.h5", "--kind", "brain", "--size", 32, 32, "--coils", 2)
    single, attrs = read(tmp_path / "d.h5")
    assert single["kspace"].shape == (2, 32, 32) and list(attrs["slice_indices"]) == [85]


def test_brain_without_nilearn(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn.datasets", None)
    result = run("phantom", tmp_path / "b.h5", "--kind", "brain", code=1)
    assert "pip install mrgen[anatomy]" in result.output
    assert not (tmp_path / "b.h5").exists()


# --- --from and separate outputs ------------------------------------------------------------


def test_from_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    stack = rng.uniform(0, 3, (2, 24, 20)).astype(np.float32)
    np.save(tmp_path / "obj.npy", stack)
    run("phantom", tmp_path / "out.h5", "--from", tmp_path / "obj.npy", "--coils", 3,
        "--phase", 0)
    data, attrs = read(tmp_path / "out.h5")
    assert data["kspace"].shape == (2, 3, 24, 20)
    np.testing.assert_allclose(data["image"].real, stack / stack.max(), atol=1e-6)
    np.testing.assert_allclose(data["reconstruction_rss"], stack / stack.max(), atol=1e-5)
    assert list(attrs["slice_indices"]) == [0, 1]
    # one slice of it, at another size: padded to the aspect, resampled
    run("phantom", tmp_path / "one.h5", "--from", tmp_path / "obj.npy", "--coils", 3,
        "--slice-index", 1, "--size", 16, 16)
    one, attrs = read(tmp_path / "one.h5")
    assert one["kspace"].shape == (3, 16, 16) and list(attrs["slice_indices"]) == [1]
    assert np.abs(one["image"][:, 0]).max() < 1e-6  # the padded margin of a tall image
    # never over the input
    run("phantom", tmp_path / "obj.npy", "--from", tmp_path / "obj.npy", code=2)


def test_npy_outputs(tmp_path):
    run("phantom", tmp_path / "k.npy", "--size", 32, 32, "--coils", 4, "--noise", 0.01,
        "--maps-out", tmp_path / "m.npy", "--image-out", tmp_path / "i.npy",
        "--rss-out", tmp_path / "r.npy")
    kspace, maps = np.load(tmp_path / "k.npy"), np.load(tmp_path / "m.npy")
    image, rss = np.load(tmp_path / "i.npy"), np.load(tmp_path / "r.npy")
    assert kspace.shape == maps.shape == (4, 32, 32) and kspace.dtype == np.complex64
    assert image.shape == rss.shape == (32, 32) and rss.dtype == np.float32
    bundle, _ = small(tmp_path, "same.h5", "--noise", 0.01)
    np.testing.assert_array_equal(kspace, bundle["kspace"])
    np.testing.assert_array_equal(maps, bundle["maps"])
    np.testing.assert_array_equal(image, bundle["image"])
    np.testing.assert_array_equal(rss, bundle["reconstruction_rss"])


def test_bad_options(tmp_path):
    assert "--kind" in run("phantom", tmp_path / "x.h5", "--kind", "cube", code=2).output
    run("phantom", tmp_path / "x.h5", "--oversample", 0, code=2)
    run("phantom", tmp_path / "x.h5", "--noise", -1, code=2)
    run("phantom", tmp_path / "x.h5", "--slice-index", "a:b", code=2)
    run("phantom", tmp_path / "x.npy", "--maps-out", tmp_path / "x.npy", code=2)
    run("phantom", tmp_path / "nowhere" / "x.h5", code=2)
    assert not list(tmp_path.iterdir())
