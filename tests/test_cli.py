"""The command-line spine: help, version, global options, error reporting, man pages."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import typer

from commands.main import app

from .conftest import invoke, mrgen_cmd, random_complex, requires_cuda, run_mrgen

from commands.manpages import _leaf_commands

COMMANDS = sorted(name for name, _ in _leaf_commands(typer.main.get_command(app)))


def test_every_issue_command_is_registered():
    for name in ("phantom", "mask", "zf", "espirit", "sense", "ipalm", "langevin",
                 "convdecoder", "djsense", "deepen", "metrics", "show", "train prior",
                 "train calibrate", "train djsense", "train deepen"):
        assert name in COMMANDS


def test_top_level_help_lists_every_command_with_summary():
    result = run_mrgen("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert name.split()[0] in result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help(name):
    result = invoke(*name.split(), "--help")
    assert result.exit_code == 0, result.stderr
    assert "--device" in result.stdout  # global options are accepted after the command too


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from commands.main import app; "
            "from typer.testing import CliRunner; CliRunner().invoke(app, ['--help']); "
            "heavy = [m for m in ('torch', 'h5py', 'sigpy', 'scipy') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_version():
    from mrgen import __version__

    result = run_mrgen("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mrgen {__version__}"


def _kspace(tmp_path, rng, shape=(4, 16, 12)):
    path = tmp_path / "k.npy"
    np.save(path, random_complex(rng, *shape))
    return path


@pytest.mark.parametrize("args, message", [
    (["--device", "bogus"], "--device bogus: unknown device"),
    (["--device", "cuda:x"], "--device cuda:x"),
])
def test_device_errors(tmp_path, rng, args, message):
    k = _kspace(tmp_path, rng)
    for argv in (args + ["zf", k, tmp_path / "z.npy"], ["zf", *args, k, tmp_path / "z.npy"]):
        result = invoke(*argv)
        assert result.exit_code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"mrgen zf: {message}")
        assert not (tmp_path / "z.npy").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_requested_but_unavailable(tmp_path, rng):
    result = invoke("zf", "--device", "cuda", _kspace(tmp_path, rng), tmp_path / "z.npy")
    assert result.exit_code == 2
    assert "CUDA is not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_env_device_is_used(tmp_path, rng, monkeypatch):
    # A bad value from the environment names the variable, not an option never given.
    monkeypatch.setenv("MRGEN_DEVICE", "tpu")
    result = invoke("zf", _kspace(tmp_path, rng), tmp_path / "z.npy")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("mrgen zf: MRGEN_DEVICE=tpu: unknown device; use auto, "
                                     "cpu, cuda or cuda:N")
    assert not (tmp_path / "z.npy").exists()
    result = invoke("zf", "--device", "tpu", _kspace(tmp_path, rng), tmp_path / "z.npy")
    assert result.exit_code == 2 and "mrgen zf: --device tpu: unknown device" in result.stderr


def test_error_lines_and_exit_codes(tmp_path, rng):
    k = _kspace(tmp_path, rng)
    cases = [
        (["zf", tmp_path / "missing.npy", tmp_path / "o.npy"], 2, "no such file"),
        (["zf", k, k], 2, "overwrite the input"),
        (["zf", "--complex", k, tmp_path / "o.npy"], 2, "--complex: needs --maps"),
        (["zf", k, tmp_path / "nodir" / "o.npy"], 2, "does not exist"),
    ]
    for argv, code, text in cases:
        result = invoke(*argv)
        assert result.exit_code == code, (argv, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path):
    result = run_mrgen("--debug", "zf", tmp_path / "missing.npy", tmp_path / "o.npy")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_mask_that_does_not_fit(tmp_path, rng):
    k = _kspace(tmp_path, rng)
    np.save(tmp_path / "m.npy", np.ones((16, 13), np.float32))
    result = invoke("zf", "--mask", tmp_path / "m.npy", k, tmp_path / "o.npy")
    assert result.exit_code == 2 and "does not fit k-space" in result.stderr


def test_nan_input(tmp_path, rng):
    data = random_complex(rng, 2, 8, 8)
    data[0, 0, 0] = np.inf
    np.save(tmp_path / "k.npy", data)
    result = invoke("zf", tmp_path / "k.npy", tmp_path / "o.npy")
    assert result.exit_code == 2 and "NaN or Inf" in result.stderr


def test_zf_equals_rss_of_ifft_and_masks(tmp_path, rng):
    import torch

    from mrgen.fft import ifft2c

    data = random_complex(rng, 3, 4, 16, 12)
    np.save(tmp_path / "k.npy", data)
    mask = np.zeros(12, np.float32)
    mask[::3] = 1
    np.save(tmp_path / "m.npy", mask)
    result = invoke("zf", "--mask", tmp_path / "m.npy", "--slice", "1:3", "--crop", 8, 8,
                    tmp_path / "k.npy", tmp_path / "z.npy")
    assert result.exit_code == 0, result.stderr
    expected = ifft2c(torch.from_numpy(data[1:3] * mask)).abs().pow(2).sum(1).sqrt()
    assert np.allclose(np.load(tmp_path / "z.npy"), expected[..., 4:12, 2:10].numpy(), atol=1e-5)


def test_zf_with_maps_complex(tmp_path, rng):
    import torch

    from mrgen.fft import fft2c

    maps = random_complex(rng, 4, 8, 8)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    image = random_complex(rng, 8, 8)
    np.save(tmp_path / "k.npy", fft2c(torch.from_numpy(maps * image)).numpy())
    np.save(tmp_path / "s.npy", maps)
    result = invoke("zf", "--maps", tmp_path / "s.npy", "--complex", tmp_path / "k.npy",
                    tmp_path / "x.npy")
    assert result.exit_code == 0, result.stderr
    assert np.allclose(np.load(tmp_path / "x.npy"), image, atol=1e-5)


def test_pipes_stream_npy_on_stdin_and_stdout(tmp_path, rng):
    k = _kspace(tmp_path, rng)
    assert invoke("zf", k, tmp_path / "file.npy").exit_code == 0
    piped = subprocess.run(mrgen_cmd() + ["zf", "-", "-"], input=k.read_bytes(),
                           capture_output=True)
    assert piped.returncode == 0, piped.stderr
    import io

    assert np.array_equal(np.load(io.BytesIO(piped.stdout)), np.load(tmp_path / "file.npy"))


def test_man_pages_are_current():
    from pathlib import Path

    from commands.manpages import render_all

    folder = Path(__file__).resolve().parent.parent / "man"
    for name, text in render_all().items():
        page = folder / name
        assert page.exists() and page.read_text() == text, \
            f"{name} is stale: run python -m commands.manpages man"


@requires_cuda
def test_zf_on_cuda_matches_cpu(tmp_path, rng):
    k = _kspace(tmp_path, rng)
    for dev in ("cpu", "cuda"):
        assert invoke("zf", "--device", dev, k, tmp_path / f"{dev}.npy").exit_code == 0
    assert np.allclose(np.load(tmp_path / "cpu.npy"), np.load(tmp_path / "cuda.npy"), atol=1e-5)
