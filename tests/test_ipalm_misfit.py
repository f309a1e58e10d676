"""ipalm's data weight from the noise the model sees (mrgen.ipalm.MisfitWeighting)."""

import math

import numpy as np
import pytest
import torch

from mrgen.fft import fft2c
from mrgen.ipalm import IpalmOptions, MisfitWeighting, ipalm
from mrgen.masks import make_mask
from mrgen.phantom import make_phantom
from mrgen.priors.loading import NoiseRule, relative_noise
from mrgen.priors.tv import CharbonnierTV

RULE = NoiseRule(2.0, 2.0, 1.0, 1e7)    # the learned prior's form: 2 / s^2
NOISE = 0.004


def acquisition(phase_jump: float):
    """4-coil 64 x 64 k-space of Shepp-Logan with noise NOISE, its image's phase jumping by
    ``phase_jump`` radians at the edge of the left half's ellipses (0: a phase the smooth maps
    carry, as ipalm's model has it)."""
    ph = make_phantom("shepp-logan", size=(64, 64), coils=4, seed=1)
    image = torch.from_numpy(np.array(ph.rss[0])).to(torch.complex64)
    jump = (image.abs() > 0.25 * float(image.abs().max())) & \
        (torch.arange(64)[None, :] < 32)
    image = image * torch.exp(1j * phase_jump * jump.float())
    maps = torch.from_numpy(np.array(ph.maps[0])).to(torch.complex64)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(2, 4, 64, 64, generator=generator)
    kspace = fft2c(maps * image) + NOISE * torch.complex(noise[0], noise[1]) / math.sqrt(2)
    mask = torch.from_numpy(make_mask("random-exact:3:0.12", (64, 64), seed=3))[None]
    return kspace[None] * mask[:, None], mask


def residual_std(kspace, mask, result):
    """The data's misfit per sampled value at ipalm's result, over iPALM's data scale."""
    model = fft2c(result.maps * result.image[:, None].to(result.maps.dtype)) * mask[:, None]
    power = (model - kspace).abs().square().sum((1, 2, 3))
    return (power / (mask.sum((1, 2)) * kspace.shape[1])).sqrt() / result.scale


def test_the_weight_is_the_rule_at_the_misfit_never_above_lam0():
    weighting = MisfitWeighting(RULE.lambdas_at)
    lam0 = torch.tensor([100.0, 100.0])
    # residual power per value 0.01 -> s_fit 0.1 -> rule 200, above lam0; 0.04 -> 50
    lam = weighting.lam(lam0, torch.tensor([1.0, 4.0]), torch.tensor([100.0, 100.0]))
    assert lam.tolist() == pytest.approx([100.0, 50.0])
    assert RULE.lambdas_at(torch.tensor([0.1, 1e-6])).tolist() == pytest.approx([200.0, 1e7])


def test_a_model_that_fits_keeps_its_lambda_bit_for_bit():
    """Where the misfit is below the noise at every check (here TV's fit of this phantom
    reaches it after ~30 iterations: checks at 40 and 80), the run is the plain one."""
    kspace, mask = acquisition(0.0)
    s = float(relative_noise(kspace, mask))
    options = IpalmOptions(lam=torch.tensor([RULE.lambda_at(s)]), mu=None, iters=80)
    plain = ipalm(kspace, mask, CharbonnierTV(), options)
    weighted = ipalm(kspace, mask, CharbonnierTV(), IpalmOptions(
        lam=options.lam, mu=None, iters=80, misfit=MisfitWeighting(RULE.lambdas_at, every=40)))
    assert float(residual_std(kspace, mask, plain)) < s        # the fit is within the noise
    assert torch.equal(weighted.lam, options.lam)
    assert torch.equal(weighted.image, plain.image)


def test_a_misfit_lowers_lambda_to_the_noise_the_model_sees():
    """A phase that jumps at edges: no real image with smooth maps fits it, the residual
    exceeds the noise, and lambda ends at the rule of the residual's own std."""
    kspace, mask = acquisition(1.5)
    s = float(relative_noise(kspace, mask))
    lam0 = torch.tensor([RULE.lambda_at(s)])
    result = ipalm(kspace, mask, CharbonnierTV(), IpalmOptions(
        lam=lam0, mu=None, iters=60, misfit=MisfitWeighting(RULE.lambdas_at)))
    misfit = float(residual_std(kspace, mask, result))
    assert misfit > 1.5 * s
    assert float(result.lam) < 0.5 * float(lam0)
    # a fixed point: the last weight is the rule at (nearly) the final misfit
    assert float(result.lam) == pytest.approx(RULE.lambda_at(misfit), rel=0.15)


def test_the_app_weighs_by_misfit_only_the_lambda_it_chose_from_the_noise():
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import IpalmSettings, PriorChoice, misfit_weighting

    kspace, mask = acquisition(1.5)
    acq = Acquisition(kspace, mask, None)
    choice = PriorChoice(reg="tv")
    _, prior = choice.build("cpu")
    weighting = misfit_weighting(IpalmSettings(choice), prior, acq)
    assert weighting is not None
    s = torch.tensor([0.01])
    assert torch.equal(weighting.rule(s), prior.noise_rule.lambdas_at(s))
    assert misfit_weighting(IpalmSettings(choice, lam="300"), prior, acq) is None
    noise_free = Acquisition(kspace[:, :, :4, :4] * 0, mask[:, :4, :4], None)  # no estimate
    assert misfit_weighting(IpalmSettings(choice), prior, noise_free) is None
    single = Acquisition(kspace[:, :1], mask, torch.ones_like(kspace[:, :1]), single_coil=True)
    assert misfit_weighting(IpalmSettings(choice), prior, single) is None


@pytest.mark.parametrize("jump, falls", [(0.0, False), (1.5, True)])
def test_langevin_samples_the_posterior_whose_map_ipalm_computes(jump, falls):
    """langevin's default lam is ipalm's: where the misfit lowered it in the iPALM run for
    the maps and the start, the chains take the lowered one."""
    from mrgen.acquisition import Acquisition
    from mrgen.apps.ipalm import PriorChoice
    from mrgen.apps.langevin import ChainSettings, sample_posterior_app

    kspace, mask = acquisition(jump)
    lines = []
    sample_posterior_app(Acquisition(kspace, mask, None), PriorChoice(reg="tv"),
                         ChainSettings(burn_in=2, samples=2, thin=1, chains=1), "ipalm",
                         torch.Generator().manual_seed(0), ipalm_iters=100, log=lines.append)
    fell = [line for line in lines if "lambda fell" in line]
    assert bool(fell) == falls, lines
    if falls:
        chain_line = next(line for line in lines if line.startswith("langevin: Charbonnier"))
        assert fell[0].split("fell: ")[1] in chain_line      # the chains run at that lam
