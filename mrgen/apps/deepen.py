"""DEEPEN on an acquisition: its MAP estimate or posterior samples (``mrgen deepen``; also the
model and maps that ``mrgen langevin --model deepen.pt`` samples with)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..acquisition import Acquisition


@dataclass
class DeepenModel:
    """A DEEPEN energy (frozen, on its device) and its model file's metadata."""
    energy: torch.nn.Module
    metadata: dict

    @property
    def description(self) -> str:
        arch = self.metadata["architecture"]
        return f"DEEPEN energy (width {arch.get('width')}, depth {arch.get('depth')})"

    @property
    def init_std(self) -> float:
        """The std of the Gaussian start of the chains the model was trained with."""
        hyper = (self.metadata.get("training") or {}).get("hyperparameters") or {}
        return float(hyper.get("init_std", 1.0))

    @property
    def eps(self) -> float:
        """The Langevin noise of Eq. 16 the model was trained with."""
        from ..deepen.training import sampler_eps

        return sampler_eps(self.metadata)


@dataclass
class MapSettings:
    iters: int = 500
    tol: float = 1e-6
    lipschitz: float | None = None     # None: a secant estimate at the SENSE image
    cg_iters: int = 10
    cg_tol: float = 1e-3


@dataclass
class SampleSettings:
    samples: int = 100
    steps: int = 100
    eps: float | None = None           # None: the model's
    init_std: float | None = None      # None: the model's
    chunk: int = 25
    keep: int = 1                      # last states kept per chain (1: the paper)
    precondition: bool = False         # k-space preconditioned chains (not the paper's)
    step: float | None = None          # None: 1 (Eq. 16), 0.2 preconditioned
    start: str = "noise"               # noise (the paper) or sense
    precision: str = "auto"            # the chains' energy: auto, float32, bfloat16


def load_deepen_model(model: str, device) -> DeepenModel:
    from ..deepen.training import load_deepen

    return DeepenModel(*load_deepen(model, device))


def with_deepen_maps(acq: Acquisition, log=None, who: str = "deepen") -> Acquisition:
    """The acquisition with its maps, or ESPIRiT's of the calibration region (as the paper)."""
    if acq.maps is not None:
        return acq
    from ..deepen.training import espirit_full

    if log is not None:
        log(f"{who}: ESPIRiT maps from the calibration region")
    return acq.with_maps(espirit_full(acq.kspace * acq.mask.unsqueeze(1)))


def deepen_map_app(acq: Acquisition, model: DeepenModel, settings: MapSettings, generator,
                   progress=None, log=None) -> torch.Tensor:
    """The MAP estimate (S, H, W) by majorise-minimise (Eq. 14-15), one report per slice."""
    from ..deepen.recon import deepen_map

    result = deepen_map(model.energy, acq.kspace, acq.maps, acq.mask, iters=settings.iters,
                        tol=settings.tol, lipschitz=settings.lipschitz,
                        cg_iters=settings.cg_iters, cg_tol=settings.cg_tol,
                        generator=generator, progress=progress)
    for s, (costs, n, lipschitz) in enumerate(zip(result.costs, result.iterations,
                                                  result.lipschitz)):
        if log is not None:
            log(f"deepen map: slice {s}: {n} MM iterations, cost {costs[0]:.6g} -> "
                f"{costs[-1]:.6g}, L {lipschitz:.4g}, {result.backtracks[s]} backtracks")
    return result.image


def deepen_sample_app(acq: Acquisition, model: DeepenModel, settings: SampleSettings,
                      generator, on_sample=None, progress=None, log=None):
    """Independent Langevin chains of Eq. 16 from Gaussian noise: SampleResult (mean, variance
    (S, H, W)). ``on_sample(index, slice, x)`` sees every sample."""
    from ..deepen.recon import deepen_sample
    from ..precision import in_precision, resolve_precision

    eps = model.eps if settings.eps is None else settings.eps
    dtype, precision = resolve_precision(settings.precision, acq.device)
    init_std = model.init_std if settings.init_std is None else settings.init_std
    if log is not None:
        kind = "k-space preconditioned ULA" if settings.precondition else "ULA (Eq. 16)"
        step = settings.step or (0.2 if settings.precondition else 1.0)
        log(f"deepen sample: {model.description}, {kind}, step {step:.3g}, "
            f"{settings.samples} chains x {settings.steps} steps (the last {settings.keep} "
            f"kept), eps {eps:.3g}, start "
            f"{'SENSE' if settings.start == 'sense' else f'N(0, {init_std:.3g}^2)'}, "
            f"{acq.device}, {precision}")
    result = deepen_sample(model.energy, acq.kspace, acq.maps, acq.mask, eps,
                           settings.samples, settings.steps, init_std, settings.chunk,
                           generator, on_sample, progress, settings.keep,
                           settings.precondition, settings.step, settings.start, log,
                           chain_energy=in_precision(model.energy, dtype))
    if log is not None and result.traces is not None and result.traces.shape[1] >= 4:
        from ..convergence import report

        log("deepen sample: " + report(result.traces, ": energy and 8 pixels per slice"))
    return result
