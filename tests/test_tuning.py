"""Lambda regression and intensity equaliser (Zach, Knoll, Pock 2023, Section 2.6)."""

import numpy as np
import pytest
import torch

from mrgen.tuning import (apply_equaliser, fit_equaliser, fit_lambda, fit_noise_coefficient,
                          refine_best)
from mrgen.training.prior import load_prior

from .conftest import invoke

SMALL = ["--preset", "cpu-ml", "--crop", "32", "--width", "4", "--stages", "3", "--buffer", "16", "--batch", "4",
         "--chain-max", "3", "--chain-tau", "3", "--steps", "2"]


def test_fit_lambda_is_a_line_or_a_constant():
    fit = fit_lambda([1.0, 2.0, 3.0], [0.5, 0.3, 0.1])
    assert fit["slope"] == pytest.approx(-0.2) and fit["intercept"] == pytest.approx(0.7)
    constant = fit_lambda([1e-13, 1e-13, 1e-13], [0.5, 1.0, 1.5])
    assert constant["slope"] == 0 and constant["intercept"] == pytest.approx(1.0)
    rounding = fit_lambda([1e-11, 3e-11, 2e-11], [0.5, 1.0, 1.5], data_energy=[100.0] * 3)
    assert rounding["slope"] == 0 and rounding["intercept"] == pytest.approx(1.0)


def test_refine_best_finds_the_minimum_between_grid_points():
    """Errors quadratic in log lambda with minima at 6 and 40 (between the grid's 3, 10, 30,
    100) are found exactly; a minimum beyond the grid stays at its edge."""
    grid = np.array([3.0, 10.0, 30.0, 100.0])
    logs = np.log(grid)[:, None]
    errors = (logs - np.log([6.0, 40.0, 1000.0])) ** 2 + 1.0
    assert refine_best(grid, torch.tensor(errors)) == pytest.approx([6.0, 40.0, 100.0])


def test_noise_coefficient_is_the_geometric_mean_of_best_times_s2():
    fit = fit_noise_coefficient([100.0, 400.0, np.nan], [0.1, 0.1, 0.2])
    assert fit == {"coefficient": pytest.approx(2.0), "power": 2.0, "samples": 2}
    assert fit_noise_coefficient([np.nan], [0.1]) == {}


def test_equaliser_recovers_a_monotone_mapping():
    x = np.random.default_rng(0).uniform(0, 1, 5000)
    fit = fit_equaliser(x, np.sqrt(x))
    image = torch.tensor([[0.04, 0.25, 0.81]])
    out = apply_equaliser(image, torch.ones(1), fit)
    assert torch.allclose(out, torch.tensor([[0.2, 0.5, 0.9]]), atol=0.03)
    assert len(fit["knots"]) == 5 + 6  # 5 equally spaced knots, cubic end multiplicity


def test_calibrate_then_ipalm_auto_lambda_and_equalise(tmp_path):
    data, prior, calibrated = tmp_path / "d.h5", tmp_path / "p.pt", tmp_path / "c.pt"
    assert invoke("phantom", data, "--size", 32, 32, "--slices", 2, "--coils", 2).exit_code == 0
    trained = invoke("train", "prior", data, prior, *SMALL)
    assert trained.exit_code == 0, trained.stderr
    result = invoke("train", "calibrate", prior, data, calibrated, "--grid", "0.5,2",
                    "--iters", 3, "--mask-spec", "random-exact:2:0.2")
    assert result.exit_code == 0, result.stderr
    _, metadata = load_prior(calibrated, "cpu")
    fit = metadata["fitted"]["lambda_fit"]
    assert min(abs(fit["intercept"] - v) for v in (0.5, 1.25, 2.0)) < 1e-9
    assert fit["samples"] == 2
    assert "equaliser" in metadata["fitted"]
    assert "fitted" not in load_prior(prior, "cpu")[1] or not load_prior(prior, "cpu")[1]["fitted"]
    run = invoke("ipalm", "--model", calibrated, "--lam", "auto", "--equalise", "--iters", 2,
                 "--slice", 0, data, tmp_path / "u.npy")
    assert run.exit_code == 0, run.stderr
    assert np.isfinite(np.load(tmp_path / "u.npy")).all()
    missing = invoke("ipalm", "--model", prior, "--equalise", data, tmp_path / "v.npy")
    assert missing.exit_code == 2 and "--equalise" in missing.stderr
