"""Annealed iPALM for score-matching priors (mrgen.ipalm.Annealing; issue #13)."""

import math

import numpy as np
import pytest
import torch

from mrgen.fft import fft2c
from mrgen.ipalm import Annealing, IpalmOptions, annealed_lam, ipalm
from mrgen.priors.local_energy import LocalEnergyConfig, LocalEnergyNet

from .conftest import invoke

pytestmark = pytest.mark.usefixtures("one_thread")


def test_levels_fall_geometrically_to_the_priors_own_and_lam_follows_the_noise():
    schedule = Annealing(0.2, 10)
    levels = [schedule.level(k, 0.02) for k in range(14)]
    assert levels[0] == pytest.approx(0.2) and levels[10:] == [0.02] * 4
    ratios = [b / a for a, b in zip(levels[:10], levels[1:11])]
    assert ratios == pytest.approx([0.1 ** 0.1] * 10)          # 0.2 -> 0.02 in 10 steps
    assert Annealing(0.01, 10).level(0, 0.02) == 0.02           # never below the prior's own
    # lam = 2 / s^2: at a level the noise variance is s^2 + level^2 - final^2
    s, final = 0.015, 0.03
    lam = 2 / s ** 2
    assert annealed_lam(lam, final, final) == pytest.approx(lam)
    for level in (0.05, 0.1, 0.2):
        assert annealed_lam(lam, level, final) == pytest.approx(
            2 / (s ** 2 + level ** 2 - final ** 2))
    per_slice = annealed_lam(torch.tensor([lam, 4 * lam]), 0.1, final)
    assert per_slice[0] > annealed_lam(lam, 0.2, final) and per_slice[1] > per_slice[0]


class _Recording(LocalEnergyNet):
    """A small local energy that records the level of every evaluation."""

    def __init__(self):
        super().__init__(LocalEnergyConfig(width=4, dilations=(1, 2, 1), sigma=0.03))
        self.seen = []

    def forward(self, images):
        self.seen.append(round(float(self.sigma), 6))
        return super().forward(images)


def _single_coil(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.nn.functional.interpolate(torch.rand(1, 1, 6, 6, generator=g), size=(size,) * 2,
                                            mode="bilinear", align_corners=False)[0]
    mask = (torch.rand(1, size, size, generator=g) < 0.4).float()
    return (fft2c(truth.to(torch.complex64)) * mask)[:, None], mask


def test_ipalm_runs_the_schedule_and_leaves_the_prior_at_its_level():
    kspace, mask = _single_coil()
    prior = _Recording()
    options = IpalmOptions(lam=1e4, mu=1.0, iters=8, estimate_maps=False,
                           align_map_phase=False, anneal=Annealing(0.2, 5))
    annealed = ipalm(kspace, mask, prior, options, maps=torch.ones_like(kspace))
    expected = [round(Annealing(0.2, 5).level(k, 0.03), 6) for k in range(8)]
    seen = list(dict.fromkeys(prior.seen))                # the levels in order of first use
    assert seen == list(dict.fromkeys(expected))
    assert float(prior.sigma) == pytest.approx(0.03)
    # no annealing iterations is plain iPALM, bit for bit
    plain = ipalm(kspace, mask, prior, IpalmOptions(lam=1e4, mu=1.0, iters=8,
                                                    estimate_maps=False, align_map_phase=False),
                  maps=torch.ones_like(kspace))
    zero = ipalm(kspace, mask, prior, IpalmOptions(lam=1e4, mu=1.0, iters=8,
                                                   estimate_maps=False, align_map_phase=False,
                                                   anneal=Annealing(0.2, 0)),
                 maps=torch.ones_like(kspace))
    assert torch.equal(plain.image, zero.image)
    assert not torch.allclose(plain.image, annealed.image)
    # the prior is restored even when a run stops half-way
    prior.seen.clear()

    def stop(k, u, c, e):
        if k == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ipalm(kspace, mask, prior, options, maps=torch.ones_like(kspace), callback=stop)
    assert float(prior.sigma) == pytest.approx(0.03) and max(prior.seen) == pytest.approx(0.2)


def test_cli_anneals_a_score_matching_prior_by_default_and_refuses_it_for_tv(tmp_path):
    kspace, mask = _single_coil(32, 1)
    path, out = tmp_path / "k.npy", tmp_path / "u.npy"
    np.save(path, kspace[0, 0].numpy())
    args = ["ipalm", path, out, "--single-coil", "--iters", 10, "--start", "zero-filled"]
    learned = invoke(*args, "--model", "prior-brain-small")
    assert learned.exit_code == 0, learned.stderr
    assert "annealed from sigma 0.2 over 7 iterations" in learned.stderr
    off = invoke(*args, "--model", "prior-brain-small", "--anneal", "off")
    assert off.exit_code == 0 and "annealed" not in off.stderr
    custom = invoke(*args, "--model", "prior-brain-small", "--anneal", "0.1",
                    "--anneal-iters", 4)
    assert "annealed from sigma 0.1 over 4 iterations" in custom.stderr
    assert math.isfinite(float(np.load(out).sum()))
    for extra, words in ((["--reg", "tv", "--anneal", "0.1"], "needs a score-matching prior"),
                         (["--model", "prior-brain-small", "--anneal-iters", 11],
                          "--anneal-iters 11"),
                         (["--model", "prior-brain-small", "--anneal", "abc"], "--anneal")):
        bad = invoke(*args, *extra)
        assert bad.exit_code == 2 and words in bad.stderr, (extra, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1
    tv = invoke(*args, "--reg", "tv")
    assert tv.exit_code == 0 and "annealed" not in tv.stderr
    # several coils: off unless asked for
    coils = tmp_path / "c.npy"
    np.save(coils, np.concatenate([kspace[0].numpy()] * 2))
    multi = invoke("ipalm", coils, out, "--iters", 4, "--model", "prior-brain-small")
    assert multi.exit_code == 0 and "annealed" not in multi.stderr
    asked = invoke("ipalm", coils, out, "--iters", 4, "--model", "prior-brain-small",
                   "--anneal", "0.2")
    assert "annealed from sigma 0.2 over 3 iterations" in asked.stderr


def test_langevin_starts_single_coil_chains_from_ipalms_default_map(tmp_path):
    kspace, _ = _single_coil(32, 2)
    path = tmp_path / "k.npy"
    np.save(path, kspace[0, 0].numpy())
    result = invoke("langevin", path, tmp_path / "m.npy", "--single-coil", "--model",
                    "prior-brain-small", "--ipalm-iters", 4, "--burn-in", 2, "--samples", 2,
                    "--thin", 1, "--chains", 1)
    assert result.exit_code == 0, result.stderr
    # ipalm's single-coil default: from ipalm-TV's image, not annealed (test_ipalm_iters)
    assert "4 iPALM iterations for the start (from ipalm-TV's image)" in result.stderr
    assert "start: Charbonnier TV" in result.stderr and "annealed" not in result.stderr
    # the chains' mean falls below that MAP on such data: the user is told so
    assert "posterior mean lies below ipalm's image" in result.stderr
