"""mrgen show: PNG pictures of arrays (windowing, montage, the PNG encoding itself)."""

import math
import struct
import sys
import zlib

import numpy as np
import pytest

from mrgen import show as display
from mrgen.png import encode_png

from .conftest import expect as run


def decode_png(data: bytes):
    """Parse an 8-bit grayscale PNG with the stdlib, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB",
                                                                        chunks[0][1])
    assert (depth, colour, comp, filt, interlace) == (8, 0, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width + 1)
    assert np.all(rows[:, 0] == 0)  # filter "none"
    text = {body.split(b"\0")[0].decode(): body.split(b"\0", 1)[1].decode("latin-1")
            for kind, body in chunks if kind == b"tEXt"}
    return rows[:, 1:].copy(), text


def show(tmp_path, array, *options, name="a.npy"):
    np.save(tmp_path / name, array)
    run("show", tmp_path / name, tmp_path / "out.png", *options)
    return decode_png((tmp_path / "out.png").read_bytes())[0]


def test_png_encoding_round_trip():
    pixels = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5) * 7
    decoded, text = decode_png(encode_png(pixels, {"Software": "mrgen test"}))
    np.testing.assert_array_equal(decoded, pixels)
    assert text == {"Software": "mrgen test"}
    with pytest.raises(ValueError):
        encode_png(pixels.astype(np.float32))


def test_png_matches_pillow(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(0).integers(0, 256, (13, 17), dtype=np.uint8)
    (tmp_path / "p.png").write_bytes(encode_png(pixels))
    with image_module.open(tmp_path / "p.png") as img:
        assert img.mode == "L" and img.size == (17, 13)
        np.testing.assert_array_equal(np.asarray(img), pixels)


def test_absolute_window(tmp_path):
    values = np.linspace(-0.5, 1.5, 6 * 8, dtype=np.float32).reshape(6, 8)
    pixels = show(tmp_path, values, "--part", "real", "--window", 0, 1)
    assert pixels.shape == (6, 8)
    expected = np.clip(np.floor(values.astype(np.float64) * 255 + 0.5), 0, 255)
    np.testing.assert_array_equal(pixels, expected)


def test_default_percentile_window(tmp_path):
    values = np.arange(1, 201, dtype=np.float32).reshape(10, 20)
    pixels = show(tmp_path, values)
    hi = np.percentile(values, 99.5)
    expected = np.clip(np.floor(values / hi * 255 + 0.5), 0, 255)
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.max() == 255 and (pixels == 255).sum() == 2
    pixels = show(tmp_path, values, "--percentile", 50)
    assert (pixels == 255).sum() == 100


def test_parts_of_complex(tmp_path):
    z = np.array([[1, -1, 1j, -1j], [2, 0, -2, 1 + 1j]], dtype=np.complex64)
    phase = show(tmp_path, z, "--part", "phase")
    expected = np.floor((np.angle(z).astype(np.float64) + math.pi) / (2 * math.pi) * 255 + 0.5)
    np.testing.assert_array_equal(phase, expected)
    real = show(tmp_path, z, "--part", "real", "--window", -2, 2)
    np.testing.assert_array_equal(real[0], [191, 64, 128, 128])  # 127.5 rounds up
    imag = show(tmp_path, z, "--part", "imag", "--percentile", 100)
    np.testing.assert_array_equal(imag[0], [128, 128, 255, 0])
    magnitude = show(tmp_path, z, "--percentile", 100)
    assert magnitude[1, 0] == 255 and magnitude[1, 1] == 0


def test_montage_of_a_stack(tmp_path):
    stack = np.stack([np.full((5, 7), k + 1, dtype=np.float32) for k in range(4)])
    pixels = show(tmp_path, stack, "--window", 0, 4)
    assert pixels.shape == (10, 14)  # 2 x 2 tiles
    for k in range(4):
        r, c = divmod(k, 2)
        assert np.all(pixels[5 * r:5 * r + 5, 7 * c:7 * c + 7] == round((k + 1) / 4 * 255))
    pixels = show(tmp_path, stack, "--window", 0, 4, "--columns", 3)
    assert pixels.shape == (10, 21)
    assert np.all(pixels[5:, 7:] == 0)  # empty tiles are black
    assert np.all(pixels[5:, :7] == 255)
    # (slices, coils, H, W): one row of coils per slice; --slice picks one slice
    maps = np.ones((2, 3, 4, 4), dtype=np.complex64)
    assert show(tmp_path, maps, name="m.npy").shape == (8, 12)
    assert show(tmp_path, maps, "--slice", 1, name="m.npy").shape == (8, 8)  # 2 x 2 of 3


def test_grid_shape():
    assert display.grid_shape((8, 8)) == (1, 1)
    assert display.grid_shape((4, 8, 8)) == (2, 2)
    assert display.grid_shape((5, 8, 8)) == (2, 3)
    assert display.grid_shape((2, 8, 8, 8)) == (2, 8)
    assert display.grid_shape((3, 8, 8), columns=10) == (1, 3)
    assert display.grid_shape((2, 3, 4, 8, 8)) == (6, 4)


def test_log_kspace(tmp_path):
    kspace = np.zeros((16, 16), dtype=np.complex64)
    kspace[8, 8], kspace[8, 9], kspace[0, 0] = 1.0, 1e-3, 1e-9
    pixels = show(tmp_path, kspace, "--log", "--percentile", 100)
    assert pixels[8, 8] == 255 and pixels[3, 3] == 0
    assert pixels[8, 9] == round(3 / 6 * 255)  # three of six decades
    result = run("show", tmp_path / "a.npy", tmp_path / "x.png", "--log", "--part", "phase",
                 code=2)
    assert "--log" in result.output


def test_h5_dataset_and_provenance(tmp_path, monkeypatch):
    run("phantom", tmp_path / "p.h5", "--size", 32, 32, "--coils", 4, "--slices", 2)
    monkeypatch.setattr(sys, "argv", ["mrgen", "show", "p.h5:maps", "maps.png"])
    run("show", f"{tmp_path / 'p.h5'}:maps", tmp_path / "maps.png", "--part", "phase")
    pixels, text = decode_png((tmp_path / "maps.png").read_bytes())
    assert pixels.shape == (64, 128)
    assert text["Software"].startswith("mrgen ")
    assert text["Comment"] == "mrgen show p.h5:maps maps.png"  # the command line


def test_stdout(tmp_path):
    np.save(tmp_path / "a.npy", np.eye(4, dtype=np.float32))
    result = run("show", tmp_path / "a.npy", "-")
    pixels, _ = decode_png(result.stdout_bytes)
    np.testing.assert_array_equal(pixels, np.eye(4) * 255)


def test_refusals(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((4, 4), dtype=np.float32))
    run("show", tmp_path / "a.npy", tmp_path / "a.npy", code=2)       # not a PNG / the input
    run("show", tmp_path / "a.npy", tmp_path / "no" / "x.png", code=2)
    run("show", tmp_path / "a.npy", tmp_path / "x.png", "--part", "abs", code=2)
    run("show", tmp_path / "a.npy", tmp_path / "x.png", "--window", 1, 0, code=2)
    run("show", tmp_path / "a.npy", tmp_path / "x.png", "--percentile", 0, code=2)
    run("show", tmp_path / "missing.npy", tmp_path / "x.png", code=2)
    np.save(tmp_path / "v.npy", np.ones(4, dtype=np.float32))
    run("show", tmp_path / "v.npy", tmp_path / "x.png", code=2)       # 1D
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "v.npy"]
