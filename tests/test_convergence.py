"""ESS and split-R-hat (mrgen.convergence) on Gaussian AR(1) chains with a known answer."""

import torch

from mrgen.convergence import effective_sample_size, report, split_rhat


def ar1(chains, n, rho, seed=0, offsets=None):
    """Stationary AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t (unit variance)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(chains, n, generator=gen, dtype=torch.float64)
    x = torch.empty_like(noise)
    x[:, 0] = noise[:, 0]
    scale = (1 - rho ** 2) ** 0.5
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + scale * noise[:, t]
    return x if offsets is None else x + torch.as_tensor(offsets, dtype=x.dtype)[:, None]


def test_ess_of_ar1_chains():
    """ESS -> chains n (1 - rho) / (1 + rho) (the estimate's own spread at rho 0.9 and
    40000 draws is about 8%)."""
    for rho in (0.0, 0.5, 0.9):
        x = ar1(8, 5000, rho, seed=1)
        expected = 8 * 5000 * (1 - rho) / (1 + rho)
        ess = float(effective_sample_size(x)[0])
        assert abs(ess / expected - 1) < 0.2, (rho, ess, expected)


def test_ess_of_several_columns_and_a_constant():
    x = torch.stack([ar1(2, 2000, 0.0, seed=2), ar1(2, 2000, 0.8, seed=3),
                     torch.ones(2, 2000, dtype=torch.float64)], -1)
    ess = effective_sample_size(x)
    assert ess.shape == (3,)
    assert ess[0] > 3 * ess[1]
    assert ess[2] == 4000


def test_rhat_near_one_for_well_mixed_chains():
    x = ar1(4, 1000, 0.5, seed=4)
    assert float(split_rhat(x)[0]) < 1.02


def test_rhat_above_limit_for_chains_started_apart():
    """Chains in different places (not mixed: each still near its own start)."""
    x = ar1(4, 200, 0.5, seed=5, offsets=[0.0, 3.0, -3.0, 6.0])
    assert float(split_rhat(x)[0]) > 1.1
    # ... and a single chain still drifting from its start (split halves disagree)
    drift = ar1(1, 400, 0.5, seed=6) + torch.linspace(0, 5, 400, dtype=torch.float64)
    assert float(split_rhat(drift)[0]) > 1.1


def test_stuck_chains_are_not_long_enough():
    """Chains that never move (MALA accepting nothing) have no R-hat, and the report says so."""
    still = torch.ones(4, 50, dtype=torch.float64)
    assert torch.isnan(split_rhat(still)).all()
    assert "stuck" in report(still) and "long enough" not in report(still)


def test_report_line():
    line = report(ar1(4, 500, 0.3, seed=7))
    assert "4 chain(s) x 500 kept" in line and "long enough" in line
    assert "too short" in report(ar1(4, 200, 0.5, seed=5, offsets=[0.0, 3.0, -3.0, 6.0]))
