"""Whether a Markov chain run was long enough: the effective sample size (ESS) and the
Gelman-Rubin split-R-hat of scalar traces over several chains (Vehtari, Gelman, Simpson,
Carpenter, Buerkner 2021, "Rank-normalization, folding, and localization: an improved R-hat";
Geyer 1992 for the initial positive sequence). No MRI here: traces in, numbers out.

Traces are arrays (chains, draws) of one scalar (an energy, a pixel) per kept draw;
``(chains, draws, K)`` gives one value per column. The ESS is the multi-chain estimate of
Stan: autocorrelations from the within-chain autocovariances and the pooled variance, summed
in pairs while the pairs stay positive (Geyer's initial positive sequence, made monotone).
For an AR(1) chain with lag-1 correlation rho it tends to n (1 - rho) / (1 + rho).
Split-R-hat cuts each chain in halves and compares the variance between halves with that
within: near 1 when the chains mix, above 1.1 when the run was too short (or the chains
sit in different modes).
"""

from __future__ import annotations

import torch


def _as_columns(traces) -> torch.Tensor:
    x = torch.as_tensor(traces, dtype=torch.float64)
    if x.dim() == 1:
        x = x[None]
    if x.dim() == 2:
        x = x[..., None]
    if x.dim() != 3:
        raise ValueError("traces: (chains, draws) or (chains, draws, K)")
    return x


def autocovariance(x: torch.Tensor) -> torch.Tensor:
    """Biased autocovariance (divided by n) along axis 1 of (chains, n, K), by FFT."""
    n = x.shape[1]
    centred = x - x.mean(1, keepdim=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = torch.fft.rfft(centred, n=size, dim=1)
    return torch.fft.irfft(spectrum.abs().square(), n=size, dim=1)[:, :n] / n


def effective_sample_size(traces) -> torch.Tensor:
    """ESS of each column of (chains, draws[, K]) traces over all chains (K values; one value
    for 2-D input is returned as a 1-element tensor). A constant trace gives chains x draws."""
    x = _as_columns(traces)
    m, n = x.shape[:2]
    if n < 4:
        return torch.full((x.shape[2],), float(m * n), dtype=torch.float64)
    acov = autocovariance(x)                                      # (m, n, K)
    within = acov[:, 0].mean(0) * n / (n - 1)                     # W
    chain_means = x.mean(1)
    between = chain_means.var(0, unbiased=True) * n if m > 1 else torch.zeros_like(within)
    var_plus = (n - 1) / n * within + between / n
    safe = torch.where(var_plus > 0, var_plus, torch.ones_like(var_plus))
    rho = 1 - (within - acov.mean(0)) / safe                      # (n, K) (Stan)
    rho[0] = 1.0
    pairs = rho[0:n - 1:2] + rho[1:n:2]                           # Geyer's Gamma_k
    ess = torch.empty(x.shape[2], dtype=torch.float64)
    for k in range(x.shape[2]):
        if var_plus[k] <= 0:
            ess[k] = m * n
            continue
        gamma = pairs[:, k]
        positive = int((gamma > 0).long().cumprod(0).sum())      # initial positive sequence
        gamma = torch.cummin(gamma[:max(positive, 1)], 0).values  # made monotone
        tau = -1 + 2 * float(gamma.sum())
        ess[k] = m * n / max(tau, 1.0 / torch.log10(torch.tensor(float(m * n))).item())
    return ess


def split_rhat(traces) -> torch.Tensor:
    """Split-R-hat of each column of (chains, draws[, K]) traces (each chain cut in two
    halves; an odd draw count drops the middle draw). NaN where no chain moved (a constant
    column: e.g. MALA that accepted nothing); ``report`` says so."""
    x = _as_columns(traces)
    n = x.shape[1] // 2
    if n < 2:
        return torch.full((x.shape[2],), float("nan"), dtype=torch.float64)
    halves = torch.cat([x[:, :n], x[:, -n:]], 0)                  # (2m, n, K)
    within = halves.var(1, unbiased=True).mean(0)
    between = halves.mean(1).var(0, unbiased=True) * n
    var_plus = (n - 1) / n * within + between / n
    ok = within > 0
    stuck = torch.where(between > 0, torch.full_like(within, float("inf")),
                        torch.full_like(within, float("nan")))
    return torch.where(ok, (var_plus / torch.where(ok, within, torch.ones_like(within))).sqrt(),
                       stuck)


RHAT_LIMIT = 1.1


def report(traces, what: str = "") -> str:
    """One line: the smallest ESS and the largest split-R-hat over the traced quantities,
    and whether that is long enough (R-hat < 1.1)."""
    x = _as_columns(traces)
    ess, rhat = effective_sample_size(x), split_rhat(x)
    stuck = int(torch.isnan(rhat).sum())
    if stuck:
        return (f"{x.shape[0]} chain(s) x {x.shape[1]} kept: {stuck} of {rhat.numel()} traced "
                f"values never moved: the chains are stuck (MALA accepting nothing? raise "
                f"--burn-in so its step adapts); no ESS or R-hat")
    worst = float(rhat.max())
    verdict = ("long enough" if worst < RHAT_LIMIT else
               "too short: raise --samples (or --burn-in, --chains)")
    return (f"{x.shape[0]} chain(s) x {x.shape[1]} kept: ESS {float(ess.min()):.0f} "
            f"(smallest{what}), split R-hat {worst:.3f} (largest; {verdict} at < "
            f"{RHAT_LIMIT})")
