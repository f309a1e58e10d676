"""ipalm's default iteration count: 1000 for TV on single-coil data, else 100
(mrgen.apps.ipalm.default_iters; measured by benchmarks/bench_tv_iters.py)."""

from dataclasses import replace

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


def _uniform_random(size: int, seed: int, pad: int = 0):
    """A Shepp-Logan slice (``pad`` pixels of background around it) sampled with one coil at
    3x uniform random, without the k-space centre (the case the default is for)."""
    inner = size - 2 * pad
    truth = torch.from_numpy(np.abs(shepp_logan((inner, inner)))).float()[None]
    truth = torch.nn.functional.pad(truth, (pad,) * 4)
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(truth.shape, generator=generator) < 1 / 3).float()
    for centre in ((size // 2, size // 2), (size // 2, size // 2 + 1), (size // 2, size // 2 - 1)):
        mask[0][centre] = 0          # no DC, no (0, +-1): the mean returns only slowly
    kspace = (fft2c(truth.to(torch.complex64)) * mask)[:, None]
    return truth, Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)


def test_the_single_coil_tv_default_converges_where_100_iterations_do_not():
    truth, acq = _uniform_random(128, 3)
    tv = PriorChoice(reg="tv")     # one lambda for both (the default's held-out choice
    default = ipalm_app(acq, IpalmSettings(tv, lam="noise"))        # depends on the iters)
    hundred = ipalm_app(acq, IpalmSettings(tv, lam="noise", iters=100))
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


def test_a_learned_prior_starts_from_tv_on_one_coil_by_default():
    from mrgen.errors import UsageError
    from mrgen.apps.ipalm import starting_image

    learned, tv = PriorChoice(model="prior-brain-small"), PriorChoice(reg="tv")
    assert starting_image(IpalmSettings(learned), single_coil=True) == "tv"
    assert starting_image(IpalmSettings(learned), single_coil=False) == "zero-filled"
    assert starting_image(IpalmSettings(tv), single_coil=True) == "zero-filled"
    assert starting_image(IpalmSettings(learned, start="Zero-Filled"), True) == "zero-filled"
    with pytest.raises(UsageError, match="--start bad"):
        starting_image(IpalmSettings(learned, start="bad"), True)


def test_ipalm_starts_from_the_given_image():
    from mrgen.ipalm import IpalmOptions, ipalm
    from mrgen.priors.tv import CharbonnierTV

    truth, acq = _uniform_random(64, 3)
    options = IpalmOptions(lam=1000.0, iters=1, estimate_maps=False)
    zero_filled = ipalm(acq.kspace, acq.mask, CharbonnierTV(), options, maps=acq.maps)
    started = ipalm(acq.kspace, acq.mask, CharbonnierTV(), options, maps=acq.maps,
                    start=truth)
    assert float(psnr_slices(truth, started.image)) > \
        float(psnr_slices(truth, zero_filled.image)) + 5     # 22.2 against 14.9


def test_the_cli_starts_a_learned_prior_from_tv_without_annealing(tmp_path):
    _, acq = _uniform_random(64, 4, pad=16)
    path, out = tmp_path / "k.npy", tmp_path / "u.npy"
    np.save(path, acq.kspace[0, 0].numpy())
    args = ["ipalm", path, out, "--single-coil", "--model", "prior-brain-small", "--iters", 5]
    default = invoke(*args)
    assert default.exit_code == 0, default.stderr
    assert "start: Charbonnier TV" in default.stderr and "from ipalm-TV's image" in \
        default.stderr and "annealed" not in default.stderr, default.stderr
    assert "support from ipalm-TV's image" in default.stderr and "warning: " not in \
        default.stderr, default.stderr       # the support settles the frequencies left out
    unheld = invoke(*args, "--support", "off")
    assert "warning: " in unheld.stderr and "use --reg tv" in unheld.stderr   # no centre
    zero_filled = invoke(*args, "--start", "zero-filled")
    assert "annealed" in zero_filled.stderr and "from ipalm-TV's image, " not in \
        zero_filled.stderr and "start: " not in zero_filled.stderr, zero_filled.stderr
    bad = invoke(*args, "--start", "sense")
    assert bad.exit_code == 2 and "--start sense" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_lowest_frequencies_left_out_are_counted_per_slice():
    from mrgen.apps.ipalm import unsampled_lowest_frequencies

    mask = torch.ones(2, 16, 15)
    assert unsampled_lowest_frequencies(mask) == (0, 13)       # |k| <= 2 samples: 13 values
    mask[1, 8, 7] = 0                                           # slice 1 misses the DC
    mask[0, 8, 9] = mask[0, 10, 7] = mask[0, 8, 10] = 0         # slice 0: two in, one out
    assert unsampled_lowest_frequencies(mask) == (2, 13)
    assert unsampled_lowest_frequencies(mask, radius=0) == (1, 1)


def test_a_learned_prior_warns_on_one_coil_without_the_lowest_frequencies():
    from mrgen.apps.ipalm import lowest_frequency_warning

    _, acq = _uniform_random(32, 4)              # no DC, no (0, +-1)
    learned = PriorChoice(model="prior-brain-small")
    line = lowest_frequency_warning(acq, learned, "ipalm")
    missing = int(line.split("warning: ")[1].split()[0])
    assert line.startswith("ipalm: warning: ") and 3 <= missing <= 13, line
    assert lowest_frequency_warning(acq, PriorChoice(reg="tv"), "ipalm") is None
    assert lowest_frequency_warning(replace(acq, single_coil=False), learned, "ipalm") is None
    full = replace(acq, mask=torch.ones_like(acq.mask))
    assert lowest_frequency_warning(full, learned, "langevin") is None
    held = acq.with_maps(acq.maps * (torch.arange(32) < 24).to(acq.maps.dtype))
    assert lowest_frequency_warning(held, learned, "ipalm") is None    # a support holds them


def test_the_progress_counts_the_tv_start_before_the_learned_run():
    from mrgen.apps.ipalm import total_iterations
    from mrgen.support import ROUNDS

    _, acq = _uniform_random(32, 4)
    learned = IpalmSettings(PriorChoice(model="prior-brain-small"), iters=5)
    # the TV runs the support is estimated from (the first and up to ROUNDS within it), TV's
    # start within it, TV's start of the held-out samples' runs, the three held-out runs
    # that choose lambda, the prior's run
    support = (1 + ROUNDS) * 1000
    assert total_iterations(learned, acq) == support + 1000 + 1000 + 3 * 5 + 5
    assert total_iterations(replace(learned, support="off"), acq) == 2000 + 4 * 5
    assert total_iterations(replace(learned, lam="noise"), acq) == support + 1000 + 5
    multi_coil = replace(acq, single_coil=False, maps=None)   # two held-out runs first
    assert total_iterations(learned, multi_coil) == 3 * 5
    assert total_iterations(replace(learned, lam="noise"), multi_coil) == 5
    # TV: the support's runs, three held-out runs that choose lambda, its own run
    assert total_iterations(IpalmSettings(PriorChoice(reg="tv")), acq) == support + 4000
    assert total_iterations(IpalmSettings(PriorChoice(reg="tv"), lam="noise"), acq) == \
        support + 1000
    steps = []
    ipalm_app(acq, learned, progress=lambda k, u, c, energies: steps.append(k))
    assert len(steps) == total_iterations(learned, acq)   # the support's skipped runs too
    for first in (0, 1000, support, support + 1000, support + 2000, support + 2005):
        assert steps[first:first + 2] == [0, 1], first


def test_langevin_starts_its_single_coil_chains_from_ipalms_default_map():
    from mrgen.apps.langevin import ChainSettings, sample_posterior_app

    _, acq = _uniform_random(48, 4, pad=12)
    learned = PriorChoice(model="prior-brain-small")
    mapped = ipalm_app(acq, IpalmSettings(learned, iters=5)).image    # from TV's image
    lines = []
    chains = ChainSettings(burn_in=0, samples=1, thin=1, step=1e-12, noise_std=0.0,
                           chains=1, precondition=False)
    result = sample_posterior_app(acq, learned, chains, "ipalm", torch.Generator(),
                                  ipalm_iters=5, log=lines.append)
    assert any("from ipalm-TV's image" in line for line in lines), lines
    assert any(line.startswith("langevin: support from ipalm-TV's image") for line in lines)
    assert any(line.startswith("langevin: choosing lambda on held-out k-space: 3 iPALM runs "
                               "of 5 iterations") for line in lines), lines
    assert any(line.startswith("langevin: held-out k-space chose") for line in lines), lines
    warnings = [line for line in lines if line.startswith("langevin: warning: ")]
    # the support holds the lowest frequencies (no warning of them); the one warning left
    # is that a learned prior's chains fall below its MAP on single-coil data
    assert [("posterior mean lies below" in line) for line in warnings] == [True], warnings
    # one step of size 1e-12 without noise: the chain's sample is its start
    assert torch.allclose(result.mean, mapped, atol=1e-5 * float(mapped.max()))


def test_langevin_starts_single_coil_tv_chains_from_ipalms_1000_iterations(tmp_path):
    _, acq = _uniform_random(32, 4)
    path = tmp_path / "k.npy"
    np.save(path, acq.kspace[0, 0].numpy())
    args = ["langevin", path, tmp_path / "m.npy", "--single-coil", "--reg", "tv", "--burn-in",
            2, "--samples", 2, "--thin", 1, "--chains", 1]
    default = invoke(*args)
    assert default.exit_code == 0, default.stderr
    assert "1000 iPALM iterations for the start" in default.stderr, default.stderr
    assert "posterior mean lies below" not in default.stderr    # TV's MMSE is not warned of
    asked = invoke(*args, "--ipalm-iters", 7)
    assert "7 iPALM iterations for the start" in asked.stderr, asked.stderr
