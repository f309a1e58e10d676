import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from commands.cli import settings


@pytest.fixture(autouse=True)
def _reset_cli_settings():
    """CliRunner runs commands in-process: keep global options from leaking between tests."""
    saved = dict(vars(settings))
    yield
    vars(settings).update(saved)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (tiny convolutions; the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_complex(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def mrgen_cmd():
    """The installed console script, or the module when running from a plain checkout."""
    exe = shutil.which("mrgen")
    return [exe] if exe else [sys.executable, "-m", "commands"]


def run_mrgen(*args, **kwargs):
    return subprocess.run(mrgen_cmd() + [str(a) for a in args], capture_output=True,
                          text=True, **kwargs)


def requires_cuda(test):
    """A GPU test: marked `cuda` (selected by `pytest -m cuda`, as benchmarks/gpu_checks.sh
    does) and skipped without CUDA."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    return pytest.mark.cuda(skip(test))


def cufinufft_loads() -> bool:
    """Whether cuFINUFFT (the `cuda` extra) imports: installed, with its CUDA libraries."""
    from mrgen.nufft import cuda_backend_problem

    return cuda_backend_problem() is None


def requires_cufinufft(test):
    """A GPU test of the NUFFT: needs CUDA and a cuFINUFFT that loads."""
    skip = pytest.mark.skipif(not torch.cuda.is_available() or not cufinufft_loads(),
                              reason="needs CUDA and a cufinufft that loads")
    return pytest.mark.cuda(skip(test))


requires_bart = pytest.mark.skipif(shutil.which("bart") is None, reason="needs bart")


def invoke(*args, input=None):
    """Run mrgen in-process (fast: torch is imported once); .exit_code, .stdout, .stderr."""
    from typer.testing import CliRunner

    from commands.main import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def expect(*args, code=0):
    """invoke() and assert the exit code."""
    result = invoke(*args)
    assert result.exit_code == code, result.output
    return result
