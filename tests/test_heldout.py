"""Held-out k-space (mrgen.heldout) and ipalm's default lambda chosen on it
(mrgen.apps.ipalm.held_out_lambdas)."""

import torch

from mrgen.acquisition import Acquisition
from mrgen.apps.ipalm import (HELD_OUT_FACTORS, HELD_OUT_FRACTION, IpalmSettings, PriorChoice,
                              held_out_lambdas, ipalm_app, slice_lambdas)
from mrgen.fft import fft2c
from mrgen.heldout import held_out_samples, prediction_error
from mrgen.masks import make_mask


def _line_mask(size=64, seed=3):
    return torch.from_numpy(make_mask("random-exact:4:0.08", (size, size), seed=seed))


def test_lines_are_held_out_whole_from_the_sampled_ones_outside_the_centre():
    mask = torch.stack([_line_mask(seed=3), _line_mask(seed=4)])
    hold = held_out_samples(mask, 0.25, seed=0)
    assert bool((hold <= mask).all())                     # a subset of what was measured
    assert bool((hold == hold[:, :1]).all())              # whole columns
    for sampled, held in zip(mask, hold):
        columns = sampled[0] > 0
        centre = slice(30, 35)                            # the 8% calibration block
        assert bool(columns[centre].all()) and not bool(held[0, centre].any())
        outer = int(columns.sum()) - _centre_width(columns)
        assert int(held[0].sum()) == int(0.25 * outer)


def _centre_width(columns):
    start = stop = len(columns) // 2
    while columns[start - 1]:
        start -= 1
    while columns[stop]:
        stop += 1
    return stop - start


def test_the_draw_follows_the_seed_and_is_each_slice_s_own():
    mask = _line_mask()
    one = held_out_samples(mask[None], 0.15, seed=0)
    assert torch.equal(one, held_out_samples(mask[None], 0.15, seed=0))
    assert not torch.equal(one, held_out_samples(mask[None], 0.15, seed=1))
    two = held_out_samples(torch.stack([_line_mask(seed=9), mask]), 0.15, seed=0)
    assert torch.equal(two[1], one[0])                    # whatever shares the batch


def test_points_of_2d_sampling_are_held_out_singly_and_never_the_centre():
    generator = torch.Generator().manual_seed(5)
    mask = (torch.rand(1, 48, 48, generator=generator) < 0.3).float()
    mask[0, 19:29, 19:29] = 0
    mask[0, 20:28, 20:28] = 1                             # the calibration block, alone
    hold = held_out_samples(mask, 0.2, seed=0)
    assert bool((hold <= mask).all()) and not bool(hold[0, 20:28, 20:28].any())
    assert int(hold.sum()) == int(0.2 * (int(mask.sum()) - 64))
    assert not bool((hold == hold[:, :1]).all())          # single samples, not columns


def test_the_prediction_error_is_the_held_out_residual_and_nothing_else():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 16, 16, generator=generator)
    maps = torch.randn(1, 3, 16, 16, dtype=torch.complex64, generator=generator)
    kspace = fft2c(maps * image[:, None])
    hold = torch.zeros(1, 16, 16)
    hold[0, :, 3] = 1
    assert float(prediction_error(image, maps, kspace, hold)[0]) < 1e-8
    moved = kspace.clone()
    moved[0, 1, 5, 3] += 0.5 - 0.5j                       # held out: counts
    moved[0, 2, 5, 4] += 10                               # fitted: does not
    assert abs(float(prediction_error(image, maps, moved, hold)[0]) - 0.5) < 1e-5


def _brainlike(size=48, coils=4, seed=0):
    """A smooth blob image with coil maps and 4x 1D sampling, noise at about 30 dB."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                          indexing="ij")
    image = ((x ** 2 / 0.6 + y ** 2 / 0.8) < 1).float() * (0.6 + 0.4 * (x > 0.1).float())
    angles = torch.arange(coils) * 2 * torch.pi / coils
    maps = torch.stack([torch.exp(-((x - 1.2 * a.cos()) ** 2 + (y - 1.2 * a.sin()) ** 2))
                        * torch.exp(1j * a * x) for a in angles]).to(torch.complex64)
    generator = torch.Generator().manual_seed(seed)
    kspace = fft2c(maps * image)[None]
    noise = torch.randn(kspace.shape, dtype=torch.complex64, generator=generator)
    kspace = kspace + 0.03 * kspace.abs().max() / size * noise
    mask = _line_mask(size, seed)[None]
    return Acquisition(kspace * mask[:, None], mask, None)


def test_the_default_lambda_is_the_factor_that_predicts_the_held_out_lines_best():
    acq = _brainlike()
    choice = PriorChoice(model="prior-brain-small")
    settings = IpalmSettings(choice, iters=8)
    regulariser, prior = choice.build(acq.device)
    lam0 = float(torch.as_tensor(slice_lambdas("", prior, acq)).flatten()[0])
    chosen = held_out_lambdas(acq, settings, (regulariser, prior), lam0)
    hold = held_out_samples(acq.mask, HELD_OUT_FRACTION, settings.seed)
    kept = Acquisition(acq.kspace * (1 - hold)[:, None], acq.mask * (1 - hold), None)
    errors = []
    for factor in HELD_OUT_FACTORS:
        run = ipalm_app(kept, IpalmSettings(choice, iters=8, lam=f"{lam0 * factor!r}"))
        errors.append(float(prediction_error(run.image, run.maps, acq.kspace, hold)[0]))
    best = HELD_OUT_FACTORS[errors.index(min(errors))]
    assert abs(float(chosen[0]) / (lam0 * best) - 1) < 1e-6
    lines = []
    ipalm_app(acq, settings, log=lines.append)
    assert any("held-out k-space chose" in line for line in lines)
    assert any("chosen on held-out k-space" in line for line in lines)
    lines.clear()
    ipalm_app(acq, IpalmSettings(choice, iters=2, lam="noise"), log=lines.append)
    assert not any("held-out" in line for line in lines)


def test_one_coil_s_default_lambda_is_the_factor_whose_run_from_tv_predicts_best():
    from dataclasses import replace

    from mrgen.apps.ipalm import held_out_errors, held_out_factors, with_estimated_support

    generator = torch.Generator().manual_seed(2)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 40), torch.linspace(-1, 1, 40), indexing="ij")
    texture = 0.1 * torch.rand(40, 40, generator=generator)
    truth = (((x ** 2 + y ** 2) < 0.5).float() * (0.6 + 0.4 * (x > 0.2).float() + texture))
    mask = (torch.rand(1, 40, 40, generator=generator) < 1 / 3).float()
    kspace = (fft2c(truth[None].to(torch.complex64)) * mask)[:, None]
    acq = Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)
    choice = PriorChoice(model="prior-brain-small")
    regulariser, prior = choice.build(acq.device)
    held = with_estimated_support(acq, "", "ipalm")           # as the default run does
    lam0 = float(torch.as_tensor(slice_lambdas("", prior, held)).flatten()[0])
    hold = held_out_samples(held.mask, HELD_OUT_FRACTION, 0)
    kept = replace(held, kspace=held.kspace * (1 - hold)[:, None], mask=held.mask * (1 - hold))
    assert held_out_factors(held) == (1.0, 10.0, 100.0)
    best = {}
    for start in ("tv", "zero-filled"):      # each run starts (or anneals) as the real one
        errors = []
        for factor in held_out_factors(held):
            run = ipalm_app(kept, IpalmSettings(choice, iters=5, lam=f"{lam0 * factor!r}",
                                                support="off", start=start))
            errors.append(float(prediction_error(run.image, run.maps, held.kspace, hold)[0]))
        best[start] = lam0 * held_out_factors(held)[errors.index(min(errors))]
        settings = IpalmSettings(choice, iters=5, start=start)
        energy = (regulariser, prior)
        rule = held_out_errors(held, settings, energy, torch.tensor([lam0]))[:, 0]
        assert torch.allclose(rule, torch.tensor(errors), rtol=1e-4), (start, rule, errors)
        chosen = held_out_lambdas(held, settings, energy, lam0)
        assert abs(float(chosen[0]) / best[start] - 1) < 1e-6, start
    lines = []
    result = ipalm_app(acq, IpalmSettings(choice, iters=5), log=lines.append)
    assert any("held-out k-space chose" in line for line in lines), lines
    assert abs(float(torch.as_tensor(result.lam).flatten()[0]) / best["tv"] - 1) < 1e-6
    tv = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), iters=5), log=lines.append)
    assert "chosen on held-out k-space" in tv.description     # TV's too, on one coil
    tv_noise = ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), iters=5, lam="noise"))
    assert "held-out" not in tv_noise.description
