"""Array files: round trips, BART layout, fastMRI datasets, slices, errors, atomic writes."""

import h5py
import numpy as np
import pytest

from mrgen import io
from mrgen.errors import DataError, UsageError
from mrgen.io import roles
from mrgen.io.cfl import read_header

from .conftest import random_complex, requires_bart, run_mrgen


@pytest.mark.parametrize("name", ["a.npy", "a.h5", "a.h5:custom", "a", "a.cfl"])
@pytest.mark.parametrize("shape", [(3, 8, 6), (2, 3, 8, 6)])
def test_round_trip_kspace(tmp_path, rng, name, shape):
    data = random_complex(rng, *shape)
    path = str(tmp_path / name)
    io.write_array(path, data, roles.KSPACE, command="mrgen test")
    back = io.read_array(path, roles.KSPACE)
    assert back.dtype == np.complex64 and np.array_equal(back, data)


def test_cfl_layout_is_bart_column_major(tmp_path):
    """mrgen (coils, H, W) is BART (H, W, 1, coils): element [c, h, w] sits at h + w*H + c*H*W."""
    coils, height, width = 2, 3, 4
    data = np.arange(coils * height * width).reshape(coils, height, width).astype(np.complex64)
    io.write_array(str(tmp_path / "k"), data, roles.KSPACE)
    assert read_header(io.parse_ref(str(tmp_path / "k")))[:4] == [height, width, 1, coils]
    raw = np.fromfile(tmp_path / "k.cfl", dtype=np.complex64)
    c, h, w = 1, 2, 3
    assert raw[h + w * height + c * height * width] == data[c, h, w]


def test_cfl_slices_and_maps_use_bart_dims(tmp_path, rng):
    maps = random_complex(rng, 2, 3, 5, 4)  # (sets, coils, H, W)
    io.write_array(str(tmp_path / "m"), maps, roles.MAPS, layout=(4, 3, 0, 1))
    dims = read_header(io.parse_ref(str(tmp_path / "m")))
    assert dims[:5] == [5, 4, 1, 3, 2]
    assert np.array_equal(io.read_array(str(tmp_path / "m"), roles.MAPS), maps)
    stack = random_complex(rng, 3, 2, 5, 4)  # (slices, coils, H, W)
    io.write_array(str(tmp_path / "s"), stack, roles.KSPACE)
    assert read_header(io.parse_ref(str(tmp_path / "s")))[13] == 3


def test_cfl_keeps_singleton_coil_axis(tmp_path, rng):
    image = random_complex(rng, 5, 4)
    io.write_array(str(tmp_path / "i"), image, roles.IMAGE)
    assert io.read_array(str(tmp_path / "i"), roles.KSPACE).shape == (1, 5, 4)
    assert io.read_array(str(tmp_path / "i"), roles.IMAGE).shape == (5, 4)


def test_cfl_header_records_command(tmp_path, rng):
    io.write_array(str(tmp_path / "k"), random_complex(rng, 2, 4, 4), roles.KSPACE,
                   command="mrgen zf in out")
    assert "# Command\nmrgen zf in out" in (tmp_path / "k.hdr").read_text()


def test_h5_default_datasets_and_provenance(tmp_path, rng):
    kspace = random_complex(rng, 2, 3, 8, 6)
    rss = np.abs(kspace).sum(1).astype(np.float32)
    path = str(tmp_path / "f.h5")
    io.write_bundle(path, {"kspace": kspace, "reconstruction_rss": rss}, command="mrgen x")
    assert np.array_equal(io.read_array(path, roles.KSPACE), kspace)
    assert np.array_equal(io.read_array(path, roles.REFERENCE), rss)
    with h5py.File(path) as f:
        assert f.attrs["mrgen_command"] == "mrgen x"
        assert "mrgen_version" in f.attrs


def test_h5_unknown_dataset_lists_existing(tmp_path, rng):
    path = str(tmp_path / "f.h5")
    io.write_bundle(path, {"kspace": random_complex(rng, 2, 4, 4), "maps": random_complex(rng, 2, 4, 4)})
    with pytest.raises(DataError, match="no dataset 'nope'; it has: kspace, maps"):
        io.read_array(path + ":nope", roles.KSPACE)
    with pytest.raises(DataError, match="no dataset 'mask'"):
        io.read_array(path, roles.MASK)


@pytest.mark.parametrize("name", ["a.npy", "a.h5", "a"])
def test_slice_selection(tmp_path, rng, name):
    data = random_complex(rng, 4, 2, 6, 5)
    path = str(tmp_path / name)
    io.write_array(path, data, roles.KSPACE)
    assert np.array_equal(io.read_array(path, roles.KSPACE, io.parse_slices("2")), data[2])
    assert np.array_equal(io.read_array(path, roles.KSPACE, io.parse_slices("1:3")), data[1:3])
    assert np.array_equal(io.read_array(path, roles.KSPACE, io.parse_slices(":2")), data[:2])
    with pytest.raises(DataError, match="out of range"):
        io.read_array(path, roles.KSPACE, io.parse_slices("9"))


def test_slice_on_data_without_slice_axis_is_an_error(tmp_path, rng):
    path = str(tmp_path / "a.h5")
    io.write_array(path, random_complex(rng, 2, 6, 5), roles.KSPACE)
    with pytest.raises(DataError, match="no slice axis"):
        io.read_array(path, roles.KSPACE, 0)


def test_bad_inputs(tmp_path, rng):
    with pytest.raises(DataError, match="no such file"):
        io.read_array(str(tmp_path / "missing.npy"), roles.KSPACE)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        io.read_array(str(tmp_path / "junk.h5"), roles.KSPACE)
    np.save(tmp_path / "real.npy", np.ones((2, 4, 4), np.float32))
    with pytest.raises(DataError, match="must be complex"):
        io.read_array(str(tmp_path / "real.npy"), roles.KSPACE)
    np.save(tmp_path / "rank.npy", np.ones((4,), np.complex64))
    with pytest.raises(DataError, match="needs 3 to 4 axes"):
        io.read_array(str(tmp_path / "rank.npy"), roles.KSPACE)
    bad = random_complex(rng, 2, 4, 4)
    bad[0, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="1 NaN or Inf"):
        io.read_array(str(tmp_path / "nan.npy"), roles.KSPACE)
    np.save(tmp_path / "str.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DataError, match="unsupported data type"):
        io.read_array(str(tmp_path / "str.npy"), roles.IMAGE)


def test_truncated_files(tmp_path, rng):
    io.write_array(str(tmp_path / "k"), random_complex(rng, 2, 8, 8), roles.KSPACE)
    data = (tmp_path / "k.cfl").read_bytes()
    (tmp_path / "k.cfl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        io.read_array(str(tmp_path / "k"), roles.KSPACE)
    io.write_array(str(tmp_path / "t.npy"), random_complex(rng, 2, 8, 8), roles.KSPACE)
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:200])
    with pytest.raises(DataError, match="not a readable .npy"):
        io.read_array(str(tmp_path / "t.npy"), roles.KSPACE)


def test_casts_to_complex64_and_float32(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((2, 4, 4), np.complex128))
    assert io.read_array(str(tmp_path / "d.npy"), roles.KSPACE).dtype == np.complex64
    np.save(tmp_path / "m.npy", np.ones((4, 4), bool))
    assert io.read_array(str(tmp_path / "m.npy"), roles.MASK).dtype == np.float32


def test_refuses_to_overwrite_inputs(tmp_path):
    with pytest.raises(UsageError, match="overwrite the input"):
        io.ensure_distinct(str(tmp_path / "a.h5:recon"), [str(tmp_path / "a.h5")])
    with pytest.raises(UsageError, match="overwrite the input"):
        io.ensure_distinct(str(tmp_path / "k.cfl"), [str(tmp_path / "k")])
    io.ensure_distinct(str(tmp_path / "b.h5"), [str(tmp_path / "a.h5")])


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.npy"
    np.save(target, np.zeros(3, np.float32))

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError):
        io.write_array(str(target), np.ones((4, 4), np.float32), roles.IMAGE)
    monkeypatch.undo()
    assert np.array_equal(np.load(target), np.zeros(3, np.float32))  # old output untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]        # no temporary left


def test_parse_ref_and_slices():
    assert io.parse_ref("x.h5:kspace").dataset == "kspace"
    assert io.parse_ref("dir.v2/x").format == "cfl"
    assert io.parse_ref("-").format == "stdio"
    assert io.parse_slices("3:") == slice(3, None)
    with pytest.raises(UsageError):
        io.parse_slices("a:b")
    with pytest.raises(UsageError, match="not an array file"):
        io.parse_ref("picture.png")


@requires_bart
def test_bart_reads_what_mrgen_writes_and_back(tmp_path, rng):
    import subprocess

    data = random_complex(rng, 3, 6, 5)
    io.write_array(str(tmp_path / "k"), data, roles.KSPACE, command="mrgen test")
    # bart fft -u -i 3 computes an orthonormal (unitary) inverse FFT over READ and PHS1.
    subprocess.run(["bart", "fft", "-u", "-i", "3", str(tmp_path / "k"), str(tmp_path / "img")],
                   check=True, capture_output=True)
    bart_image = io.read_array(str(tmp_path / "img"), roles.COIL_IMAGES)
    from mrgen.fft import ifft2c
    import torch

    ours = ifft2c(torch.from_numpy(data)).numpy()
    assert np.allclose(bart_image, ours, atol=1e-5)


@requires_bart
def test_bart_rss_matches_mrgen_zf(tmp_path, rng):
    import subprocess

    data = random_complex(rng, 4, 8, 6)
    io.write_array(str(tmp_path / "k"), data, roles.KSPACE)
    subprocess.run(["bart", "fft", "-u", "-i", "3", str(tmp_path / "k"), str(tmp_path / "c")],
                   check=True, capture_output=True)
    subprocess.run(["bart", "rss", "8", str(tmp_path / "c"), str(tmp_path / "r")], check=True,
                   capture_output=True)
    result = run_mrgen("zf", tmp_path / "k", tmp_path / "z.npy")
    assert result.returncode == 0, result.stderr
    bart_rss = io.read_array(str(tmp_path / "r"), roles.IMAGE)
    assert np.allclose(np.abs(bart_rss), np.load(tmp_path / "z.npy"), atol=1e-5)


@pytest.mark.parametrize("name", ["a.npy", "a.h5", "a"])
def test_read_shape_without_reading(tmp_path, rng, name):
    data = random_complex(rng, 2, 3, 8, 6)
    io.write_array(str(tmp_path / name), data, roles.KSPACE)
    assert io.read_shape(str(tmp_path / name), roles.KSPACE) == data.shape
