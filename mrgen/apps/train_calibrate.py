"""Calibration of a learned prior for iPALM (Zach, Knoll, Pock 2023, Section 2.6): the lambda
regression and the intensity equaliser, fitted on validation scans (``mrgen train
calibrate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass
class CalibrationOptions:
    mask_spec: str = "random-exact:4:0.08"   # sampling drawn per slice (mrgen mask syntax)
    lambdas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20])
    mu: float | None = None                  # map smoothness; None: what ipalm uses by
                                             # default with this prior (at each sigma)
    iters: int = 50                          # iPALM iterations per solve
    central_slices: int | None = None        # of each validation file; None: all
    equaliser: bool = True                   # also fit the intensity equaliser
    seed: int = 0                            # of the masks
    sigmas: list[float] | None = None        # local priors: noise levels searched (None: the
                                             # model's own); lambdas then scale by 1/sigma^2
    fit_noise: bool = False                  # local priors: also fit c of lambda = c / s^2


def calibrate_app(model: str, validation: list[str], options: CalibrationOptions, device,
                  log=None, progress: bool = False) -> dict:
    """The entries to store under ``fitted`` of the prior ``model`` (a file or a shipped
    name): for each validation slice, undersample (seeded per slice), reconstruct with iPALM
    for every lambda, keep the lambda closest to the reference and the initial data residual
    r0, fit lambda = max(slope r0 + intercept, 0.01); optionally the equaliser that maps
    reconstructed to reference intensities at the best lambdas."""

    import numpy as np
    import torch

    from ..ipalm import IpalmOptions, initial_residual, initialise
    from ..masks import make_mask, parse_mask_spec
    from ..priors.loading import build_regulariser
    from ..priors.loading import relative_noise
    from ..tuning import fit_equaliser, fit_lambda, fit_noise_coefficient, refine_best

    log = log or (lambda message: None)
    spec = parse_mask_spec(options.mask_spec)
    regulariser, prior = build_regulariser(model, "learned", 1e-3, device)
    ipalm = IpalmOptions(mu=options.mu, mu_per_lambda=prior.mu_per_lambda,
                         iters=options.iters, scale_crop=prior.crop, slack=prior.slack)
    kspace, reference = validation_slices(validation, options.central_slices)
    generator = np.random.default_rng(options.seed)
    masks = np.stack([make_mask(spec, kspace.shape[-2:], seed=generator, tolerance=None)
                      for _ in range(kspace.shape[0])])
    k_t, m_t = torch.from_numpy(kspace).to(device), torch.from_numpy(masks).to(device)
    ref_t = torch.from_numpy(reference).to(device)
    log(f"calibrate: {kspace.shape[0]} validation slice(s), {len(options.lambdas)} lambdas, "
        f"{options.iters} iterations each, mask {options.mask_spec}")
    found = _search(regulariser, options, k_t, m_t, ref_t, ipalm, log, progress)
    best = found.best
    r0 = initial_residual(k_t, m_t, prior.crop).cpu().numpy()
    scale = initialise(k_t, m_t, prior.crop)[2]
    energy = ((k_t * m_t[:, None]).abs() ** 2).flatten(1).sum(1) / scale ** 2
    entries = {"lambda_fit": fit_lambda(r0, best, energy.cpu().numpy()),
               "calibration": {"files": list(validation), "mask_spec": options.mask_spec,
                               "grid": found.grid, "mu": found.mu,
                               "mu_per_lambda": None if found.mu else prior.mu_per_lambda,
                               "iters": options.iters, "best_lambdas": best.tolist(),
                               "seed": options.seed}}
    log(f"calibrate: best lambdas {np.round(best, 4).tolist()} -> fit "
        f"{entries['lambda_fit']['slope']:.4g} r0 + {entries['lambda_fit']['intercept']:.4g}")
    if found.sigma is not None:
        entries["sigma"] = found.sigma
        entries["calibration"]["sigmas"] = options.sigmas
        entries["noise_lambda"] = None       # a fit for another sigma would be stale
    if found.sigma is not None and options.fit_noise:
        # ipalm's default for this prior: lambda = c / s^2 from the data's noise s
        relative = relative_noise(k_t, m_t, prior.crop).cpu().numpy()
        refined = refine_best(found.grid, found.errors)
        entries["noise_lambda"] = fit_noise_coefficient(refined, relative)
        log(f"calibrate: noise std over the data scale {np.round(relative, 4).tolist()}, "
            f"refined best lambdas {np.round(refined, 1).tolist()} -> default lambda "
            f"{entries['noise_lambda'].get('coefficient', float('nan')):.3g} / s^2")
    if options.equaliser:
        # The same normalisation ipalm applies: the max of the zero-filled RSS (prior's crop).
        view = scale.view(-1, 1, 1)
        entries["equaliser"] = fit_equaliser((found.chosen / view).cpu().numpy(),
                                             (ref_t / view).cpu().numpy())
    return entries


class LevelSearch(NamedTuple):
    sigma: float | None          # the kept noise level (None: a prior without one)
    grid: list                   # its lambdas
    best: object                 # (B,) best lambda per slice on the grid
    chosen: object               # (B, H, W) reconstructions at them
    mu: float | None             # the map smoothness asked for (None: ipalm's ratio to lam)
    errors: object               # (len(grid), B) squared errors


def _search(regulariser, options: CalibrationOptions, kspace, mask, reference, ipalm, log,
            progress) -> LevelSearch:
    """The lambda grid searched at each noise level, the best level kept. For a
    prior with a noise level (the local head) every sigma of ``options.sigmas`` (None: the
    model's own) is tried with the grid lambda / sigma^2 (R scales as 1 / sigma^2), and the
    sigma whose best single lambda (one for all slices, as a constant fit ships) gives the
    smallest total error is kept. Unless --mu fixes it, the map smoothness is ipalm's default,
    a ratio to each lambda of the grid (``mrgen.ipalm.map_smoothness``): at every level it is
    what ipalm will use with the lambda found (a level calibrated under another mu than
    ipalm then uses picks the wrong lambda)."""
    import numpy as np

    from ..progress import progress_bar
    from ..tuning import grid_search_lambda

    levels = [None]
    if hasattr(regulariser, "set_sigma"):
        levels = options.sigmas or [float(regulariser.sigma)]
    found = None
    with progress_bar(len(levels) * len(options.lambdas), "lambda grid",
                      enabled=progress) as bar:
        for sigma in levels:
            grid = list(options.lambdas)
            if sigma is not None:
                regulariser.set_sigma(sigma)
                grid = [lam / sigma ** 2 for lam in options.lambdas]
            best, errors, chosen = grid_search_lambda(kspace, mask, reference, regulariser,
                                                      grid, ipalm, progress=bar.update)
            total = float(errors.sum(1).min())
            total = total if np.isfinite(total) else float("inf")
            if sigma is not None:
                log(f"calibrate: sigma {sigma:g}: best lambdas {np.round(best, 1).tolist()}, "
                    f"squared error {total:.4g}")
            if found is None or total < found[0]:
                found = (total, LevelSearch(sigma, grid, best, chosen, ipalm.mu, errors))
    kept = found[1]
    if kept.sigma is not None:
        regulariser.set_sigma(kept.sigma)
    return kept


def validation_slices(paths, central):
    """Fully sampled k-space (S, C, H, W) and references (S, h, w) from validation files: the
    ``central`` middle slices (None: all), the reference ``reconstruction_rss`` of an .h5 file,
    else the RSS of the k-space."""
    import numpy as np

    from .. import io
    from ..errors import DataError
    from ..training.data import central_range

    kspaces, references = [], []
    for path in paths:
        count = io.read_shape(path, io.roles.KSPACE)
        slices = None
        if len(count) == 4:
            start, stop = central_range(count[0], central)
            slices = slice(start, stop)
        k = io.read_array(path, io.roles.KSPACE, slices)
        k = k if k.ndim == 4 else k[None]
        ref = _reference(path, slices)
        if ref is None:
            ref = _rss(k)
        kspaces.append(k)
        references.append(ref if ref.ndim == 3 else ref[None])
    try:
        return np.concatenate(kspaces), np.concatenate(references)
    except ValueError:
        raise DataError("validation files differ in shape; calibrate on files of one size") \
            from None


def _reference(path, slices):
    from .. import io
    from ..errors import DataError

    try:
        return io.read_array(f"{path}:reconstruction_rss" if path.endswith(".h5") else path,
                             io.roles.REFERENCE, slices)
    except DataError:
        return None


def _rss(kspace):
    import torch

    from ..coils import rss
    from ..fft import ifft2c

    return rss(ifft2c(torch.from_numpy(kspace))).numpy()
