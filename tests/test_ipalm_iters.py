"""ipalm's default iteration count: 1000 for TV on single-coil data, else 100
(mrgen.apps.ipalm.default_iters; measured by benchmarks/bench_tv_iters.py)."""

import numpy as np
import pytest
import torch

from mrgen.acquisition import Acquisition
from mrgen.apps.ipalm import IpalmSettings, PriorChoice, default_iters, ipalm_app, iterations
from mrgen.fft import fft2c
from mrgen.metrics import psnr_slices
from mrgen.phantom import shepp_logan

from .conftest import invoke

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tv_on_one_coil_defaults_to_1000_iterations_everything_else_to_100():
    tv, learned = PriorChoice(reg="tv"), PriorChoice(model="prior-brain-small")
    assert PriorChoice().is_tv and tv.is_tv and not learned.is_tv
    assert default_iters(tv, single_coil=True) == 1000
    assert default_iters(tv, single_coil=False) == 100
    assert default_iters(learned, single_coil=True) == 100
    assert iterations(IpalmSettings(tv, iters=7), single_coil=True) == 7   # asked for: kept


def _uniform_random(size: int, seed: int):
    """A Shepp-Logan slice sampled with one coil at 3x uniform random, without the k-space
    centre (the case the default is for)."""
    truth = torch.from_numpy(np.abs(shepp_logan((size, size)))).float()[None]
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(truth.shape, generator=generator) < 1 / 3).float()
    for centre in ((size // 2, size // 2), (size // 2, size // 2 + 1), (size // 2, size // 2 - 1)):
        mask[0][centre] = 0          # no DC, no (0, +-1): the mean returns only slowly
    kspace = (fft2c(truth.to(torch.complex64)) * mask)[:, None]
    return truth, Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)


def test_the_single_coil_tv_default_converges_where_100_iterations_do_not():
    truth, acq = _uniform_random(128, 3)
    default = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv")))
    hundred = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), iters=100))
    assert default.energies.shape[0] == 1000 and "1000 iterations" in default.description
    gain = float(psnr_slices(truth, default.image) - psnr_slices(truth, hundred.image))
    assert gain > 1, gain      # 2.4 dB here; +4.4 dB mean on 7 validation brain slices
    assert float(default.energies[-1, 0]) < float(hundred.energies[-1, 0])


def test_the_cli_reports_the_default_it_chose(tmp_path):
    _, acq = _uniform_random(32, 4)
    path = tmp_path / "k.npy"
    np.save(path, acq.kspace[0, 0].numpy())
    tv = invoke("ipalm", path, tmp_path / "u.npy", "--single-coil", "--reg", "tv")
    assert tv.exit_code == 0 and "1000 iterations" in tv.stderr, tv.stderr
    asked = invoke("ipalm", path, tmp_path / "u.npy", "--single-coil", "--iters", 20)
    assert asked.exit_code == 0 and "20 iterations" in asked.stderr
