"""Real pipelines through files: phantom -> mask -> zf -> metrics, in every file format."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mrgen import io

from .conftest import invoke, mrgen_cmd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stderr)
    return result


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    _ok("phantom", "--size", 64, 64, "--coils", 4, "--noise", 0.001, folder / "data.h5")
    return folder / "data.h5"


@pytest.mark.parametrize("ext", [".npy", ".h5", ""])
def test_phantom_mask_zf_metrics_in_each_format(tmp_path, phantom, ext):
    kspace = io.read_array(str(phantom), io.roles.KSPACE)
    k_file, m_file, z_file = (str(tmp_path / f"{n}{ext}") for n in ("k", "m", "z"))
    io.write_array(k_file, kspace, io.roles.KSPACE)
    _ok("mask", "--like", k_file, "--kind", "random-exact", "--accel", 4, m_file)
    _ok("zf", "--mask", m_file, k_file, z_file)
    table = json.loads(_ok("metrics", "--json", str(phantom), z_file).stdout)
    # The same seed gives the same mask in every format, so the same numbers.
    mask = io.read_array(m_file, io.roles.MASK)
    assert mask.size / mask.sum() == pytest.approx(4, rel=0.02)
    expected_zf = np.sqrt((np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(
        kspace * mask, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))) ** 2).sum(0))
    assert np.allclose(io.read_array(z_file, io.roles.IMAGE), expected_zf, atol=1e-5)
    reference = io.read_array(str(phantom), io.roles.REFERENCE)
    mse = np.mean((reference - expected_zf) ** 2)
    assert table[0]["psnr"] == pytest.approx(10 * np.log10(reference.max() ** 2 / mse), abs=1e-3)


def test_fully_sampled_zf_reproduces_reference(tmp_path, phantom):
    _ok("zf", str(phantom), tmp_path / "z.npy")
    table = json.loads(_ok("metrics", "--json", str(phantom), tmp_path / "z.npy").stdout)
    assert table[0]["nmse"] < 1e-10 and table[0]["ssim"] > 0.9999


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_examples_makefile(tmp_path):
    out = tmp_path / "out"
    cmd = " ".join(mrgen_cmd())
    run = subprocess.run(["make", "-C", str(EXAMPLES), f"OUT={out}", f"MRGEN={cmd}",
                          "SIZE=64 64", "COILS=4"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = json.loads((out / "metrics.json").read_text())
    psnr = {Path(r["recon"]).name: r["psnr"] for r in rows}
    # More undersampling, worse zero-filled images.
    assert psnr["zf-R2.npy"] > psnr["zf-R4.npy"] > psnr["zf-R8.npy"]
    assert "PSNR" in (out / "metrics.txt").read_text()
