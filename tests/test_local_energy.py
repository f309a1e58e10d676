"""The fully convolutional energy prior and its score-matching training (issue #13, part 2)."""

import numpy as np
import pytest
import torch

from mrgen.model_files import load_model
from mrgen.priors.energy import build_model, energy_and_grad
from mrgen.priors.local_energy import LocalEnergyConfig, LocalEnergyNet
from mrgen.training.distributed import DistContext
from mrgen.training.engine import EngineOptions
from mrgen.training.score import ScoreConfig, ScoreTraining, dsm_loss, random_patches

from .conftest import invoke

SMALL = LocalEnergyConfig(width=6, dilations=(1, 2, 1))   # radius 1 + 4 + 1 = 6


pytestmark = pytest.mark.usefixtures("one_thread")   # tiny convolutions: one is fastest


def _brain_like(size, margin, seed=0):
    """A smooth random object with a zero margin (so shifts within it are exact)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(size, size)
    inner = torch.rand(1, 1, 8, 8, generator=g)
    inner = torch.nn.functional.interpolate(inner, size=(size - 2 * margin,) * 2,
                                            mode="bilinear", align_corners=False)[0, 0]
    image[margin:size - margin, margin:size - margin] = inner
    return image


def _trained_on_64(steps=3, config=SMALL):
    """A model of ``config`` after a few score-matching steps on 64 x 64 images."""
    images = torch.stack([_brain_like(64, 8, s) for s in range(4)])
    method = ScoreTraining(images, config, ScoreConfig(batch=4, patch=64), DistContext())
    method.bind(DistContext())
    for step in range(steps):
        method.train_step(step, torch.Generator().manual_seed(step))
    return method.model.eval()


def test_a_64_trained_prior_regularises_every_region_of_a_256_image():
    model = _trained_on_64()
    image = torch.rand(1, 256, 256, generator=torch.Generator().manual_seed(1))
    _, grad = energy_and_grad(model, image)
    blocks = grad[0].abs().reshape(8, 32, 8, 32).amax(dim=(1, 3))
    assert blocks.min() > 0          # every 32 x 32 block gets a gradient
    # the global head sees only its crop: most of the image would get none
    from mrgen.priors.energy import EnergyConfig, EnergyNet

    crop_only = EnergyNet(EnergyConfig(base_width=4, stages=3, crop=64))
    _, g = energy_and_grad(crop_only, image)
    assert (g[0].abs().reshape(8, 32, 8, 32).amax(dim=(1, 3)) == 0).float().mean() > 0.9


def test_shifting_the_image_shifts_energy_map_and_gradient():
    model = _trained_on_64()
    image = _brain_like(96, 30)[None]
    shifted = torch.roll(image, (7, -5), dims=(1, 2))   # the object stays off the border
    e, g = energy_and_grad(model, image)
    e_s, g_s = energy_and_grad(model, shifted)
    r = SMALL.radius
    with torch.no_grad():
        m, m_s = model.energy_map(image), model.energy_map(shifted)
    # the map depends on pixels within r, the gradient on map values within r more: exact
    # away from the border by r and 2r (the margin of 30 keeps the object in there)
    for field, moved, halo in ((m, m_s, r), (g, g_s, 2 * r)):
        inner = (slice(None), slice(halo + 7, 96 - halo - 7), slice(halo + 7, 96 - halo - 7))
        # to float32 rounding of the largest value (oneDNN's channels-last convolutions
        # round differently at different positions)
        assert torch.allclose(torch.roll(field, (7, -5), dims=(1, 2))[inner], moved[inner],
                              rtol=1e-4, atol=1e-6 * float(field.abs().max()))
    assert float(e) == pytest.approx(float(e_s), rel=1e-3)


def test_energy_is_the_sum_of_the_energy_maps_of_tiles_with_a_halo():
    model = _trained_on_64()
    image = torch.rand(1, 80, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        total = model(image)
        full = model.energy_map(image)
        assert torch.allclose(total, full.sum((1, 2)), rtol=1e-5)
        r = SMALL.radius
        tiled = torch.zeros_like(full)
        for top in range(0, 80, 20):
            for left in range(0, 80, 20):
                lo_y, lo_x = max(top - r, 0), max(left - r, 0)
                tile = image[:, lo_y:min(top + 20 + r, 80), lo_x:min(left + 20 + r, 80)]
                part = model.energy_map(tile)
                y, x = top - lo_y, left - lo_x
                tiled[:, top:top + 20, left:left + 20] = part[:, y:y + 20, x:x + 20]
    # away from the image border the tiles' maps are exact; at it, zero padding is the same
    assert (tiled - full).abs().max() <= 1e-5 * full.abs().max()   # float32 rounding
    assert torch.allclose(tiled.sum((1, 2)), total, rtol=1e-4)


def test_the_untrained_denoiser_is_a_smoothing_and_training_improves_it():
    from mrgen.priors.local_energy import high_pass

    g = torch.Generator().manual_seed(0)
    clean = torch.stack([_brain_like(32, 4, s) for s in range(8)])
    sigma = torch.full((8,), 0.05)
    noise = torch.randn(clean.shape, generator=g)
    model = LocalEnergyNet(SMALL)
    # the last layer starts at zero: r = x - G x, a Gaussian high pass (symmetric), so the
    # denoiser is y - H^T H y = y - H H y, and the loss its error over sigma^2
    loss, denoised = dsm_loss(model, clean, sigma, noise)
    noisy = clean + 0.05 * noise
    expected = noisy - high_pass(high_pass(noisy[:, None]))[:, 0]
    assert torch.allclose(denoised, expected, atol=1e-6)
    assert float(loss) == pytest.approx(float((expected - clean).square().mean() / 0.05 ** 2),
                                        rel=1e-4)
    method = ScoreTraining(clean, SMALL, ScoreConfig(batch=8, patch=32, lr=3e-3,
                                                     sigma_min=0.05, sigma_max=0.05),
                           DistContext())
    method.bind(DistContext())
    first = method.train_step(0, torch.Generator().manual_seed(0))["loss"]
    for step in range(1, 60):
        last = method.train_step(step, torch.Generator().manual_seed(step))["loss"]
    assert last < 0.7 * first


def test_the_energy_the_solvers_see_is_the_one_score_matching_trains():
    # x - sigma^2 grad R(x), with R = forward() at the model's sigma, is dsm_loss's denoiser
    model = _trained_on_64(2)
    clean = torch.stack([_brain_like(32, 4, s) for s in range(2)])
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    model.set_sigma(0.04)
    _, denoised = dsm_loss(model, clean, torch.full((2,), 0.04), noise)
    _, grad = energy_and_grad(model, clean + 0.04 * noise)
    assert torch.allclose(clean + 0.04 * noise - 0.04 ** 2 * grad, denoised, atol=1e-5)


def test_patches_cover_the_border_and_keep_the_values():
    images = torch.arange(2 * 10 * 10, dtype=torch.float32).reshape(2, 10, 10)
    patches = random_patches(images, 200, 4, torch.Generator().manual_seed(0))
    assert patches.shape == (200, 4, 4)
    values = set(patches.flatten().tolist())
    assert values <= set(images.flatten().tolist())
    assert {0.0, 9.0, 90.0, 99.0} <= values          # corners are drawn too


def _round_trip(model, config, sigma, path):
    """(loaded model, metadata) of ``model`` at ``sigma`` saved as an energy prior."""
    from mrgen.model_files import model_description, save_model

    model.set_sigma(sigma)
    save_model(path, model, model_description("energy-prior", config.to_dict(), "max", {}))
    return load_model(path, "cpu", kind="energy-prior")


def _same_weights(first, second) -> dict:
    """Assert two prior files hold the same weights bit for bit; the first one's metadata."""
    a, meta = load_model(first, "cpu", kind="energy-prior")
    b, _ = load_model(second, "cpu", kind="energy-prior")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    return meta


def test_model_file_round_trip_keeps_sigma(tmp_path):
    model = LocalEnergyNet(SMALL)
    loaded, metadata = _round_trip(model, SMALL, 0.031, tmp_path / "m.pt")
    assert isinstance(loaded, LocalEnergyNet) and float(loaded.sigma) == pytest.approx(0.031)
    x = torch.rand(2, 20, 20)
    assert torch.equal(loaded(x), model(x))
    assert isinstance(build_model(SMALL.to_dict()), LocalEnergyNet)


def test_cli_dsm_training_resumes_bit_identically(tmp_path):
    data = tmp_path / "d.npy"
    np.save(data, torch.stack([_brain_like(32, 4, s) for s in range(4)]).numpy())
    args = ["train", "prior", data, tmp_path / "a.pt", "--preset", "cpu", "--width", "4",
            "--dilations", "1,2,1", "--patch", "24", "--batch", "4", "--crop", "32"]
    whole = invoke(*args, "--steps", "6")
    assert whole.exit_code == 0, whole.stderr
    assert "denoising score matching" in whole.stderr
    args[3] = tmp_path / "b.pt"
    part = invoke(*args, "--steps", "3", "--checkpoint-every", "3")
    assert part.exit_code == 0, part.stderr
    rest = invoke(*args, "--steps", "6", "--resume")
    assert rest.exit_code == 0, rest.stderr
    meta = _same_weights(tmp_path / "a.pt", tmp_path / "b.pt")
    assert meta["architecture"]["head"] == "local"
    assert meta["training"]["objective"].startswith("denoising score matching")
    bad = invoke("train", "prior", data, tmp_path / "c.pt", "--objective", "dsm",
                 "--head", "global")
    assert bad.exit_code == 2 and "--objective dsm: needs --head local" in bad.stderr


def test_calibration_picks_and_stores_sigma_and_ipalm_uses_it(tmp_path):
    from mrgen.priors.loading import build_regulariser

    data, prior, calibrated = tmp_path / "d.h5", tmp_path / "p.pt", tmp_path / "c.pt"
    assert invoke("phantom", data, "--size", 32, 32, "--slices", 2, "--coils", 2).exit_code == 0
    trained = invoke("train", "prior", data, prior, "--preset", "cpu", "--width", "4",
                     "--dilations", "1,2,1", "--patch", "24", "--batch", "4", "--crop", "32",
                     "--central-slices", "0", "--steps", "2")
    assert trained.exit_code == 0, trained.stderr
    result = invoke("train", "calibrate", prior, data, calibrated, "--grid", "1,10",
                    "--sigmas", "0.02,0.1", "--iters", 3, "--mask-spec", "random-exact:2:0.2",
                    "--fit-noise-lambda")
    assert result.exit_code == 0, result.stderr
    assert "sigma 0.02" in result.stderr and "sigma 0.1" in result.stderr
    fitted = torch.load(calibrated, weights_only=True)["fitted"]
    assert fitted["sigma"] in (0.02, 0.1)
    assert _sigma_choice_is_the_lowest_error()
    # the lambdas searched are the grid over sigma^2 of the chosen level
    assert fitted["calibration"]["grid"] == pytest.approx([1 / fitted["sigma"] ** 2,
                                                           10 / fitted["sigma"] ** 2])
    network, info = build_regulariser(str(calibrated), "learned", 1e-3, "cpu")
    assert float(network.sigma) == pytest.approx(fitted["sigma"])
    assert info.crop is None and info.sampling_step == pytest.approx(0.25 * fitted["sigma"] ** 2)
    # the default lambda's coefficient c / s^2, fitted on the same slices, reaches ipalm
    assert fitted["noise_lambda"]["samples"] == 2 and fitted["noise_lambda"]["power"] == 2.0
    assert info.noise_rule.coefficient == pytest.approx(fitted["noise_lambda"]["coefficient"])
    bad = invoke("train", "calibrate", prior, data, tmp_path / "x.pt", "--sigmas", "0,1")
    assert bad.exit_code == 2 and "--sigmas 0,1: needs finite positive values" in bad.stderr


def _sigma_choice_is_the_lowest_error():
    """_search keeps the sigma whose best single lambda has the least error, and leaves the
    model at it (grid_search_lambda replaced by set errors per sigma); the map smoothness
    is ipalm's default at each level, its ratio to each lambda of the grid (mu None)."""
    import mrgen.tuning as tuning
    from mrgen.apps.train_calibrate import CalibrationOptions, _search
    from mrgen.ipalm import IpalmOptions

    model = LocalEnergyNet(SMALL)                       # its own sigma: 0.02
    mus = {}
    table = {0.02: [[1.0, 9.0], [9.0, 1.0]], 0.05: [[3.0, 3.0], [9.0, 9.0]]}

    def fake(kspace, mask, reference, regulariser, grid, options, progress=None):
        errors = torch.tensor(table[round(float(regulariser.sigma), 4)])
        mus[round(float(regulariser.sigma), 4)] = (options.mu, options.mu_per_lambda)
        return np.asarray(grid)[errors.argmin(0).numpy()], errors, reference

    original, tuning.grid_search_lambda = tuning.grid_search_lambda, fake
    try:
        # 0.02: each slice's own best lambda gives 1 + 1, but one lambda for both at best
        # 10; 0.05: 6 either way. A constant lambda ships, so 0.05 must win.
        kept = _search(model, CalibrationOptions(lambdas=[1, 2], sigmas=[0.02, 0.05]),
                       None, None, torch.zeros(2), IpalmOptions(mu=None, mu_per_lambda=7.0),
                       lambda m: None,
                       False)
    finally:
        tuning.grid_search_lambda = original
    return kept.sigma == 0.05 and float(model.sigma) == pytest.approx(0.05) and \
        kept.grid == pytest.approx([1 / 0.05 ** 2, 2 / 0.05 ** 2]) and \
        mus == {0.02: (None, 7.0), 0.05: (None, 7.0)} and \
        kept.mu is None and kept.errors.tolist() == table[0.05]


def test_clip_norm_bounds_the_update_gradient():
    clean = torch.stack([_brain_like(32, 4, s) for s in range(4)])
    norms = {}
    for clip in (0.0, 1e-3):
        method = ScoreTraining(clean, SMALL, ScoreConfig(batch=4, patch=32, clip_norm=clip),
                               DistContext())
        method.bind(DistContext())
        method.optimizer.step = lambda: None      # keep the gradient the update would see
        method.train_step(0, torch.Generator().manual_seed(0))
        norms[clip] = float(torch.sqrt(sum(p.grad.square().sum()
                                           for p in method.model.parameters())))
    assert norms[0.0] > 1e-2                      # unclipped: the raw gradient
    assert norms[1e-3] == pytest.approx(1e-3, rel=1e-3)
