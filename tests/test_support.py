"""The object's support (mrgen.support, ipalm/langevin --support): its estimate, the
acquisition held to it, and what it gives on single-coil data without the k-space centre."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mrgen.acquisition import Acquisition
from mrgen.apps.ipalm import IpalmSettings, PriorChoice, ipalm_app
from mrgen.errors import DataError, UsageError
from mrgen.fft import fft2c
from mrgen.metrics import psnr_slices
from mrgen.phantom import shepp_logan
from mrgen.support import (MARGIN, ROUNDS, estimate_support, restrict_to_support,
                           shrink_wrap)

from .conftest import invoke

pytestmark = pytest.mark.usefixtures("one_thread")


def _disc_with_hole_and_island(size=96):
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    r = ((y - size / 2) ** 2 + (x - size / 2) ** 2).sqrt()
    image = (r < 20).float()
    image[(r < 6)] = 0.0                     # a dark ventricle: inside the object all the same
    image[2:4, 2:4] = 1.0                    # 4 bright pixels: below MIN_COMPONENT, not object
    image[size // 2, size // 2 + 21] = 0.05  # the dim rim, below the threshold: the margin keeps it
    return image[None], r


def test_the_support_is_the_object_filled_and_grown_by_the_margin():
    image, r = _disc_with_hole_and_island()
    support = estimate_support(image)[0]
    assert support.shape == (96, 96) and support.dtype == torch.float32
    assert bool((support[r < 20 + MARGIN - 1] == 1).all())       # the disc, grown, hole filled
    assert bool((support[r > 20 + MARGIN + 2] == 0).all())       # nothing beyond the margin
    assert float(support[2:4, 2:4].max()) == 0.0                 # the island is dropped
    assert estimate_support(2 * image).equal(support[None])      # relative to the maximum


def test_the_acquisition_is_held_to_the_support_and_bad_supports_are_refused():
    kspace = torch.ones(2, 1, 8, 8, dtype=torch.complex64)
    acq = Acquisition(kspace, torch.ones(2, 8, 8), torch.ones_like(kspace), single_coil=True)
    support = torch.zeros(8, 8)
    support[2:6, 2:6] = 3.0                                        # non-zero is inside
    held = restrict_to_support(acq, support)
    assert held.maps.shape == acq.maps.shape
    assert float(held.maps.abs().sum()) == 2 * 16
    assert float(held.maps[:, :, 2:6, 2:6].abs().min()) == 1
    assert restrict_to_support(acq, support.to(torch.complex64)).maps.equal(held.maps)
    with pytest.raises(DataError, match="mask.npy: shape"):
        restrict_to_support(acq, torch.ones(3, 8, 8), "mask.npy")
    with pytest.raises(DataError, match="empty"):
        restrict_to_support(acq, torch.stack([support, 0 * support]))
    with pytest.raises(UsageError, match="joint maps"):
        restrict_to_support(Acquisition(kspace, torch.ones(2, 8, 8)), support)


def _padded_phantom(size=64, pad=16, seed=3):
    """A Shepp-Logan head with background around it, one coil, 3x uniform random without
    the DC and (0, +-1): the lowest frequencies are left to the prior."""
    inner = torch.from_numpy(np.abs(shepp_logan((size - 2 * pad,) * 2))).float()
    truth = torch.nn.functional.pad(inner, (pad,) * 4)[None]
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(truth.shape, generator=generator) < 1 / 3).float()
    for dx in (-1, 0, 1):
        mask[0, size // 2, size // 2 + dx] = 0
    kspace = (fft2c(truth.to(torch.complex64)) * mask)[:, None]
    return truth, Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)


def test_the_default_support_settles_what_tv_alone_leaves_open():
    truth, acq = _padded_phantom()
    lines = []
    # lam as TV's noise rule gives noise-free data (1000): the phantom's sharp edges put
    # content at the k-space edge that the rule would read as noise
    tv = IpalmSettings(PriorChoice(reg="tv"), lam="1000")
    held = ipalm_app(acq, tv, log=lines.append)
    free = ipalm_app(acq, replace(tv, support="off"))
    gain = float(psnr_slices(truth, held.image) - psnr_slices(truth, free.image))
    assert gain > 20, gain                                  # 64.9 against 27.0 dB
    assert lines[0].startswith("ipalm: support from ipalm-TV's image") and "% of the image" \
        in lines[0], lines
    from mrgen.apps.ipalm import tv_start

    inside = estimate_support(tv_start(acq, None))[0] > 0    # what the support comes from
    assert float(held.image[0][~inside].abs().max()) == 0.0          # held at zero
    assert bool((inside | (truth[0] == 0)).all())                   # no object pixel cut


def test_shrink_wrap_tightens_a_generous_first_support_and_never_grows_it():
    # a reconstruction whose background blotch fades as the support tightens: the first
    # estimate takes the blotch in, the second drops it, the third holds still
    truth, _ = _disc_with_hole_and_island()
    acq = Acquisition(fft2c(truth.to(torch.complex64))[:, None], torch.ones_like(truth),
                      torch.ones(1, 1, *truth.shape[-2:], dtype=torch.complex64),
                      single_coil=True)
    calls = []

    def reconstruct(held):
        calls.append(held.maps[0, 0].real.clone())
        image = truth.clone()
        if len(calls) == 1:
            image[0, 70:90, 70:90] = 0.5          # a blotch in the background
        if len(calls) == 3:
            image[0, 5:10, 80:90] = 0.5           # would grow the support: intersected away
        return image

    support, runs = shrink_wrap(acq, reconstruct)
    assert runs == 3 == len(calls) <= 1 + ROUNDS
    assert torch.equal(support, estimate_support(truth))      # the blotch is gone again
    assert bool((calls[2] == support[0]).all())                # each run within the last
    assert float(calls[1].sum()) > float(support.sum())


def test_shrink_wrap_gives_tv_the_object_where_it_fills_the_image():
    # the head fills the image: the first TV image's background blotches pass the threshold
    size, pad = 64, 6
    inner = torch.from_numpy(np.abs(shepp_logan((size - 2 * pad,) * 2))).float()
    truth = torch.nn.functional.pad(inner, (pad,) * 4)[None]
    mask = (torch.rand(truth.shape, generator=torch.Generator().manual_seed(1)) < 1 / 3)
    mask = mask.float()
    mask[0, size // 2, size // 2 - 1:size // 2 + 2] = 0         # no DC, no (0, +-1)
    kspace = (fft2c(truth.to(torch.complex64)) * mask)[:, None]
    acq = Acquisition(kspace, mask, torch.ones_like(kspace), single_coil=True)
    from mrgen.apps.ipalm import tv_start

    first = estimate_support(tv_start(acq, None))
    wrapped, runs = shrink_wrap(acq, lambda held: tv_start(held, None))
    assert 2 <= runs <= 1 + ROUNDS
    assert float(first.mean()) > 0.9 and float(wrapped.mean()) < 0.75, \
        (float(first.mean()), float(wrapped.mean()))              # 0.95 -> 0.73
    assert bool(((truth > 0) <= (wrapped > 0)).all())               # no object pixel cut
    tv = IpalmSettings(PriorChoice(reg="tv"), lam="1000", support="off")
    before = psnr_slices(truth, ipalm_app(restrict_to_support(acq, first), tv).image)
    after = psnr_slices(truth, ipalm_app(restrict_to_support(acq, wrapped), tv).image)
    assert float(after - before) > 1.0, (float(before), float(after))  # 58.4 -> 60.5 dB


def test_support_on_multi_coil_data_needs_fixed_maps():
    _, acq = _padded_phantom()
    joint = Acquisition(acq.kspace, acq.mask)                          # multi-coil, joint maps
    assert ipalm_app(joint, IpalmSettings(PriorChoice(reg="tv"), iters=2)).image.shape == \
        (1, 64, 64)                                                    # default: off there
    with pytest.raises(UsageError, match="--support auto: needs fixed coil maps"):
        ipalm_app(joint, IpalmSettings(PriorChoice(reg="tv"), iters=2, support="auto"))
    with pytest.raises(UsageError, match="--support sometimes"):
        ipalm_app(acq, IpalmSettings(PriorChoice(reg="tv"), support="sometimes"))


def _files_with_a_support(tmp_path):
    """(the acquisition, its k-space file, a support mask file (a centred 32 x 32 square),
    an output path, the mask) of a 48 x 48 padded phantom."""
    _, acq = _padded_phantom(size=48, pad=12)
    kspace, support, out = tmp_path / "k.npy", tmp_path / "s.npy", tmp_path / "u.npy"
    np.save(kspace, acq.kspace[0, 0].numpy())
    inside = np.zeros((48, 48), np.float32)
    inside[8:40, 8:40] = 1
    np.save(support, inside)
    return acq, kspace, support, out, inside


def test_the_cli_takes_a_support_file_and_says_what_is_wrong(tmp_path):
    acq, kspace, support, out, inside = _files_with_a_support(tmp_path)
    run = invoke("ipalm", kspace, out, "--single-coil", "--support", support, "--iters", 50)
    assert run.exit_code == 0 and "support from" not in run.stderr, run.stderr
    image = np.load(out)
    assert image.shape == (48, 48) and np.abs(image[inside == 0]).max() == 0
    held = restrict_to_support(acq, torch.from_numpy(inside))       # what the file means
    same = ipalm_app(held, IpalmSettings(PriorChoice(), iters=50, support="off")).image[0]
    assert np.allclose(image, same.numpy(), atol=1e-6 * float(same.max()))
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.ones((40, 48), np.float32))
    bad = invoke("ipalm", kspace, out, "--single-coil", "--support", wrong)
    assert bad.exit_code == 2 and "w.npy" in bad.stderr and \
        len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = invoke("ipalm", kspace, out, "--single-coil", "--support", tmp_path / "no.npy")
    assert missing.exit_code == 2 and "no.npy" in missing.stderr, missing.stderr
    coils = tmp_path / "coils.npy"
    np.save(coils, acq.kspace[0].numpy())                              # (1, H, W): joint maps
    joint = invoke("ipalm", coils, out, "--support", "auto", "--iters", 2)
    assert joint.exit_code == 2 and "--support auto: needs fixed coil maps" in joint.stderr
    overwrite = invoke("ipalm", kspace, support, "--single-coil", "--support", support)
    assert overwrite.exit_code == 2, overwrite.stderr


def test_langevin_chains_stay_at_zero_off_the_support():
    from mrgen.apps.langevin import ChainSettings, sample_posterior_app

    truth, acq = _padded_phantom()
    chains = ChainSettings(burn_in=3, samples=2, thin=1, chains=2, precondition=True)
    lines = []
    result = sample_posterior_app(acq, PriorChoice(model="prior-brain-small"), chains, "ipalm",
                                  torch.Generator().manual_seed(0), ipalm_iters=5,
                                  log=lines.append)
    assert lines[0].startswith("langevin: support from ipalm-TV's image"), lines
    inside = result.mean[0] != 0
    assert 0.2 < float(inside.float().mean()) < 0.9
    assert float(result.variance[0][~inside].abs().max()) == 0.0
    assert float(psnr_slices(truth, result.mean)) > 20


def test_langevin_takes_a_support_file_and_refuses_it_without_data(tmp_path):
    _, kspace, support, out, inside = _files_with_a_support(tmp_path)
    run = invoke("langevin", kspace, out, "--single-coil", "--model", "prior-brain-small",
                 "--support", support, "--ipalm-iters", 2, "--burn-in", 2, "--samples", 2,
                 "--thin", 1, "--chains", 1)
    assert run.exit_code == 0, run.stderr
    mean = np.load(out)
    assert np.abs(mean[inside == 0]).max() == 0 and np.abs(mean[inside == 1]).max() > 0
    alone = invoke("langevin", "--prior-only", out, "--support", "auto")
    assert alone.exit_code == 2 and "--support auto: not with --prior-only" in alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1
