"""Turning ``--model`` / ``--reg`` into an energy, with what the energy's owner knows of it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError
from .tv import CharbonnierTV


# ipalm's default map smoothness is mu = ratio x lambda (mrgen.ipalm.map_smoothness): the
# maps' sub-problem depends on mu / lambda alone. The authors' code has mu 10 at their
# lambda 0.55 (18); the others were measured on validation slices (8 coils, 4x 1D with 8%
# ACS, joint maps, 18 to 36 dB SNR): see benchmarks/bench_map_smoothness.py. For the learned
# prior 30 beat 5 and 10 there (and its fixed 25 / sigma^2 before, by 2-3 dB), yet on the 6
# test slices of bench_priors it lowered the prior's default from 29.64 to 28.38 dB (TV's
# rose from 29.21 to 29.72): the validation head does not predict that anatomy for this prior.
AUTHORS_MU_PER_LAMBDA = 10.0 / 0.5477
TV_MU_PER_LAMBDA = 30.0
LEARNED_MU_PER_LAMBDA = 30.0


@dataclass(frozen=True)
class NoiseRule:
    """ipalm's default lambda from the data's noise: coefficient / s^power in [low, high], s
    the noise std (mrgen.noise) relative to iPALM's data scale."""
    coefficient: float
    power: float
    low: float
    high: float

    def lambda_at(self, relative: float) -> float:
        return min(max(self.coefficient / relative ** self.power, self.low), self.high)

    def lambdas_at(self, relative: torch.Tensor) -> torch.Tensor:
        """``lambda_at`` of each value of a tensor."""
        return (self.coefficient / relative.pow(self.power)).clamp(self.low, self.high)


@dataclass
class PriorInfo:
    description: str
    default_lambda: float
    mu_per_lambda: float               # ipalm's default map smoothness mu, over its lambda
    crop: int | None = None            # the region the prior sees (and the data scale uses)
    sampling_step: float = 1.0         # ULA defaults for this energy's temperature
    sampling_noise: float = 7.5e-3
    lambda_fit: dict | None = None     # {"slope", "intercept", "minimum"} (Zach, Knoll, Pock 2023, preprint, 2.6)
    equaliser: dict | None = None      # cubic spline of Zach, Knoll, Pock 2023, 2.6 (mrgen.tuning)
    slack: float = 1.01                # iPALM's sufficient-decrease slack (mrgen.ipalm)
    noise_rule: NoiseRule | None = None  # the default lambda from the data's noise
    anneal_from: float | None = None   # a noise-conditional prior's top trained level: ipalm
                                       # anneals from it by default (mrgen.ipalm.Annealing)

    def lambda_for_noise(self, kspace: torch.Tensor, mask: torch.Tensor) -> float | None:
        """The noise rule at s, the median over slices of the noise std (mrgen.noise) over
        iPALM's data scale; None without a rule or an estimate."""
        if self.noise_rule is None:
            return None
        relative = float(relative_noise(kspace, mask, self.crop).nanmedian())
        if not relative > 0:                   # NaN: no estimate
            return None
        return self.noise_rule.lambda_at(relative)

    def slice_lambdas_for_noise(self, kspace: torch.Tensor,
                                mask: torch.Tensor) -> torch.Tensor | None:
        """The noise rule at each slice's own s (S,) (a slice without an estimate takes the
        median's); None without a rule or any estimate."""
        if self.noise_rule is None:
            return None
        relative = relative_noise(kspace, mask, self.crop)
        median = relative.nanmedian()
        if not float(median) > 0:
            return None
        relative = torch.where(relative > 0, relative, median)
        return torch.tensor([self.noise_rule.lambda_at(float(r)) for r in relative])

    def lambda_for(self, kspace: torch.Tensor, mask: torch.Tensor) -> float:
        """lambda = max(slope * r0 + intercept, minimum) from the initial residual r0, averaged
        over the slices of the batch (one lambda per call)."""
        from ..ipalm import initial_residual

        r0 = float(initial_residual(kspace, mask, self.crop).mean())
        fit = self.lambda_fit
        return max(fit["slope"] * r0 + fit["intercept"], fit.get("minimum", 0.01))


def relative_noise(kspace: torch.Tensor, mask: torch.Tensor,
                   crop: int | None = None) -> torch.Tensor:
    """Per slice (S,), the noise std (mrgen.noise) over iPALM's data scale (NaN without an
    estimate)."""
    from ..ipalm import initialise
    from ..noise import noise_std

    _, _, scale = initialise(kspace, mask, crop)
    return noise_std(kspace, mask) / scale


def build_regulariser(model: str | None, reg: str, tv_eps: float, device):
    """The energy R for ipalm/langevin and its PriorInfo: a learned prior or Charbonnier TV."""
    reg = reg or ("learned" if model else "tv")
    if reg == "tv":
        if model:
            raise UsageError("--reg tv: --model is not used with TV; drop one of them")
        # TV's gradient has Lipschitz constant ~8/eps: ULA needs a step below eps/8. Noise
        # sqrt(2 step T) samples exp(-H/T); at T = 1 the TV posterior is mostly noise, so the
        # default is the low temperature T = 1e-3 (a learned prior carries its own).
        step = tv_eps / 10
        return CharbonnierTV(tv_eps).to(device), PriorInfo(
            f"Charbonnier TV (eps {tv_eps:g})", default_lambda=1000.0,
            mu_per_lambda=TV_MU_PER_LAMBDA,
            sampling_step=step, sampling_noise=(2 * step * 1e-3) ** 0.5,
            # ipalm's default lambda from the noise (fixed 1000 was 1.4 dB below the best
            # on 8-coil 30 dB test slices); 1000 when the data show no noise. The power was
            # measured: TV's best lambda on validation slices (8 coils, 4x, 8% ACS) was about
            # 120 at s = 0.025 (24 dB), 225 at 0.013 (30 dB), 700 at 0.0069 (36 dB): between
            # ROF denoising's 1 / s and the Gaussian likelihood's 1 / s^2.
            noise_rule=NoiseRule(0.4, 1.5, 1.0, 1000.0))
    if reg != "learned":
        raise UsageError(f"--reg {reg}: expected learned or tv")
    if not model:
        raise UsageError("--reg learned: needs --model FILE.pt (or a shipped model name)")
    from ..model_files import load_model, resolve_model
    from .energy import KIND, RESIDUAL_HEADS

    path = resolve_model(model)
    network, metadata = load_model(path, device, kind=KIND)
    for p in network.parameters():
        p.requires_grad_(False)
    fitted = metadata.get("fitted", {}) or {}
    architecture = metadata["architecture"]
    if architecture.get("head") in RESIDUAL_HEADS:   # sees every pixel: no crop
        if "sigma" in fitted:            # the level calibration chose (train calibrate)
            network.set_sigma(fitted["sigma"])
        # R = -log p_sigma, its gradient Lipschitz ~ 1 / sigma^2: ULA at temperature 1 with
        # a step well inside that. Its energies are large sums (every pixel adds a term), so
        # iPALM's 1% slack would accept steps that raise the energy: float32 slack only.
        sigma = float(network.sigma)
        # a multiscale energy's coarse part adds up to its weight times that along block-
        # constant directions (curvature w / sigma^2 through the block mean)
        step = 0.25 * sigma ** 2 / (1.0 + getattr(network, "coarse_weight", 0.0))
        rule = fitted.get("noise_lambda") or {}
        return network, PriorInfo(
            f"learned prior {path.name} (whole image, sigma {sigma:g})",
            default_lambda=1.0 / sigma ** 2, mu_per_lambda=LEARNED_MU_PER_LAMBDA,
            lambda_fit=fitted.get("lambda_fit"), equaliser=fitted.get("equaliser"),
            sampling_step=step, sampling_noise=(2 * step) ** 0.5, slack=1.0 + 1e-5,
            noise_rule=posterior_rule(sigma, rule.get("coefficient", BAYES_COEFFICIENT)),
            anneal_from=_top_level(metadata))
    crop = int(architecture["crop"])
    return network, PriorInfo(f"learned prior {path.name} (crop {crop})",
                              default_lambda=1.0, mu_per_lambda=AUTHORS_MU_PER_LAMBDA,
                              crop=crop,
                              lambda_fit=fitted.get("lambda_fit"),
                              equaliser=fitted.get("equaliser"))


def _top_level(metadata: dict) -> float | None:
    """The largest noise level a score-matching prior was trained at (None if unrecorded);
    a multiscale prior's is its fine energy's (its coarse one's levels are lower)."""
    training = metadata.get("training") or {}
    fine = (training.get("data") or {}).get("fine")
    if fine:
        return _top_level(fine)
    level = (training.get("hyperparameters") or {}).get("sigma_max")
    return float(level) if level else None


# R = -log p (denoising score matching learns the score at temperature 1) and complex noise
# of std s per k-space sample (E|n|^2 = s^2) has -log likelihood ||A u - z||^2 / s^2: the
# posterior's MAP is ipalm's energy at lambda = 2 / s^2.
BAYES_COEFFICIENT = 2.0


def posterior_rule(sigma: float, coefficient: float) -> NoiseRule:
    """A local energy's default lambda, coefficient / s^2 (the posterior's weight; train
    calibrate fits the coefficient), kept within [0.1, 100] / sigma^2: noise-free data would
    otherwise leave the prior no weight at all."""
    return NoiseRule(coefficient, 2.0, 0.1 / sigma ** 2, 100.0 / sigma ** 2)


def model_kind(model: str | None) -> str | None:
    """The kind recorded in a model file ("energy-prior", "deepen-energy", ...), or None
    without --model; a shipped model may be named without its path."""
    if not model:
        return None
    from ..model_files import read_kind, resolve_model

    return read_kind(resolve_model(model))
