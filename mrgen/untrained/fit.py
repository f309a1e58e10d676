"""Fitting an un-trained generator to under-sampled multi-coil k-space (Darestani, Heckel 2021, Section 3.2).

Two forward models:

- without maps (Step 1-A): the network outputs 2 * coils channels, the real and imaginary
  parts of every coil image (channel 2c = Re, 2c + 1 = Im of coil c), and the loss is
  ||M F G(w) - y||^2;
- with maps (Step 1-B): the network outputs 2 channels, the complex image x, and the loss is
  ||M F (S x) - y||^2 (the SENSE model).

Both go through ``mrgen.linops`` (``FourierOp``, ``SenseOp``; ``forward_model``).

The loss is the mean squared error over the measured samples (sum over sampled entries of
all coils / their number); Adam is insensitive to that constant. Before fitting, k-space is
scaled as in the authors' code so that the initial network image and the zero-filled image
have the same norm; the result is scaled back. The output with the lowest loss seen during
fitting is kept. Step 2, data consistency, replaces the sampled k-space locations of the
network's coil images by the measurements before the coil combination. ``runs`` independently
initialised networks are fitted and their images averaged (Section 6).

Early stopping (not in the paper, which fixes the iteration count; ``mrgen convdecoder``'s cpu
preset): a random fraction of the sampled locations is held out of the loss; the output kept is
the one with the lowest loss on them, and the fit ends ``patience`` iterations after that
minimum, before the network fits the noise of the fitted samples. Data consistency puts the
held-out samples back.

Speed: the fit loop never copies to the host; the best loss and best output are tracked on
the device with ``torch.where``, and only a progress bar (when shown) reads the loss, every
``PROGRESS_EVERY`` iterations. On CUDA cuDNN autotuning is on during the fit, Adam is fused,
and ``amp`` runs the network under bfloat16 autocast in channels_last memory layout (the FFTs,
loss and optimiser state stay float32).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from ..acquisition import default_mask
from ..coils import combine, rss
from ..errors import RuntimeFailure, UsageError
from ..fft import fft2c, ifft2c
from ..heldout import holdout_split
from ..linops import FourierOp, SenseOp
from ..resize import center_crop
from .architectures import DEFAULT_INPUT_SIZE, build_generator, resolve_config

DEFAULT_ITERS = 2500     # the authors' demo notebook (their study ran 20,000-25,000)
DEFAULT_LR = 0.008       # the authors' code (the paper's appendix B quotes 0.01)
SCHEDULES = ("constant", "cosine")   # the learning rate over the iterations
PROGRESS_EVERY = 25      # iterations between progress-bar updates (one host sync each)


def sampling_pattern(kspace: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean (..., H, W) of sampled locations: ``mask != 0``, else where any coil is non-zero.

    ``kspace`` is (..., C, H, W); ``mask`` broadcasts to (..., H, W). Non-binary masks count
    as patterns (every non-zero weight is a sampled location).
    """
    lead_hw = kspace.shape[:-3] + kspace.shape[-2:]
    if mask is None:
        return default_mask(kspace) != 0   # the one default rule (mrgen.acquisition)
    return torch.broadcast_to(torch.as_tensor(mask, device=kspace.device) != 0, lead_hw)


def data_consistency(coil_images: torch.Tensor, kspace: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """Step 2: coil images whose k-space equals the measurements at the sampled locations.

    ``coil_images`` and ``kspace`` are (..., C, H, W); ``mask`` (..., H, W) marks the sampled
    locations (non-zero). Unsampled locations keep the network's k-space.
    """
    sampled = (torch.as_tensor(mask, device=kspace.device) != 0).unsqueeze(-3)
    return ifft2c(torch.where(sampled, kspace, fft2c(coil_images)))


def model_input(out: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
    """Network output (1, K, H, W) -> what the forward model takes: coil images (C, H, W)
    without maps (K = 2 C), the complex image x (H, W) with maps (K = 2)."""
    out = out[0].float()
    if maps is None:
        pairs = out.reshape(out.shape[0] // 2, 2, *out.shape[-2:])
        return torch.complex(pairs[:, 0], pairs[:, 1])
    return torch.complex(out[0], out[1])


def forward_model(sampled: torch.Tensor, maps: torch.Tensor | None = None):
    """M F on the network's coil images, or M F S x with maps (``mrgen.linops``)."""
    return FourierOp(sampled) if maps is None else SenseOp(maps, sampled)


def coil_images_from_output(out: torch.Tensor, maps: torch.Tensor | None = None):
    """Network output (1, K, H, W) -> (coil images (C, H, W), image x (H, W) or None)."""
    signal = model_input(out, maps)
    return (signal, None) if maps is None else (maps * signal, signal)


def derive_seed(seed: int, run: int) -> int:
    """The seed of run ``run``: independent streams from (seed, run), the same for every slice
    (so that ``--slice`` reproduces a slice of a full reconstruction)."""
    state = np.random.SeedSequence([int(seed) % 2 ** 64, int(run)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) % 2 ** 63


class EarlyStopping:
    """Stop when the held-out loss has not improved on its best for ``patience`` iterations.

    ``update(i, loss)`` (host floats, called every few iterations) returns True to stop; a
    loss that rises from its minimum (the fit has begun to fit the noise of the fitted samples)
    stops the fit ``patience`` iterations after the minimum. ``best_iteration`` is that minimum.
    """

    def __init__(self, patience: int, min_iters: int = 0):
        self.patience, self.min_iters = int(patience), int(min_iters)
        self.best, self.best_iteration = float("inf"), -1

    def update(self, iteration: int, loss: float) -> bool:
        if loss < self.best:
            self.best, self.best_iteration = loss, iteration
        return iteration + 1 >= self.min_iters and \
            iteration - self.best_iteration >= self.patience


def fit_network(net: torch.nn.Module, kspace: torch.Tensor, sampled: torch.Tensor,
                maps: torch.Tensor | None = None, iters: int = DEFAULT_ITERS,
                lr: float = DEFAULT_LR, amp: bool = False, callback=None,
                held_out: torch.Tensor | None = None, patience: int = 0,
                check_every: int = PROGRESS_EVERY, schedule: str = "constant") -> dict:
    """Fit ``net`` (already on kspace's device) to one slice's k-space (C, H, W) with Adam.

    ``sampled`` (H, W) bool marks the measured locations the loss is fitted to. Returns
    ``output`` (the network output with the lowest loss, float32), ``loss`` (that loss, a 0-d
    tensor), ``residual`` (||M F G(w) - y|| / ||y|| there), ``losses`` (the loss at every
    iteration run) and ``iterations`` (how many ran), all on the device. ``callback(i, loss)``
    is called every PROGRESS_EVERY iterations (and after the last) with the loss as a device
    tensor; nothing else leaves the device inside the loop.

    Early stopping: with ``held_out`` (H, W) bool, measured locations left out of the fitted
    loss, their mean squared error is tracked too (``heldout``: its history); the output kept
    is the one with the lowest held-out loss, and with ``patience`` > 0 the fit stops when
    that loss has not improved for ``patience`` iterations (checked every ``check_every``
    iterations, one host read each; ``stopped``: the iteration count at the stop, else None).
    ``schedule`` "cosine" lowers the learning rate from ``lr`` to 0 over ``iters`` along a
    half cosine (the authors keep it constant).
    """
    if schedule not in SCHEDULES:
        raise UsageError(f"--lr-schedule {schedule}: choose {' or '.join(SCHEDULES)}")
    device = kspace.device
    weight = sampled.to(device=device, dtype=torch.float32)
    holding = held_out is not None and bool(held_out.any())
    hold = held_out.to(device=device, dtype=torch.float32) if holding else None
    every = weight if hold is None else weight + hold
    measured = kspace * every
    count = (weight.sum() * kspace.shape[-3]).clamp_min(1)
    hold_count = None if hold is None else (hold.sum() * kspace.shape[-3]).clamp_min(1)
    cuda = device.type == "cuda"
    options = {"fused": True} if cuda else {}
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, **options)
    rates = None
    if schedule == "cosine":
        rates = [0.5 * lr * (1 + math.cos(math.pi * i / iters)) for i in range(iters)]
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp
                else contextlib.nullcontext())
    best_loss = torch.full((), float("inf"), device=device)
    best_out = None
    losses = torch.empty(iters, device=device)
    heldout = torch.empty(iters, device=device) if holding else None
    operator = forward_model(every, maps)
    stopper = EarlyStopping(patience) if holding and patience > 0 else None
    net.train()
    ran, stopped = iters, None
    for i in range(iters):
        optimizer.zero_grad(set_to_none=True)
        if rates is not None:
            for group in optimizer.param_groups:
                group["lr"] = rates[i]
        with autocast:
            out = net()
        out = out.float()
        residual = torch.view_as_real(operator.forward(model_input(out, maps)) - measured)
        if holding:
            squared = residual.square().sum(-1)
            loss = (squared * weight).sum() / count
        else:   # the authors' loss, as before held-out samples existed
            loss = residual.square().sum() / count
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            current = loss.detach()
            losses[i] = current
            score = current
            if holding:
                score = (squared.detach() * hold).sum() / hold_count
                heldout[i] = score
            better = score < best_loss
            best_loss = torch.where(better, score, best_loss)
            best_out = out.detach().clone() if best_out is None else \
                torch.where(better, out.detach(), best_out)
        if callback is not None and ((i + 1) % PROGRESS_EVERY == 0 or i + 1 == iters):
            callback(i, current)
        if stopper is not None and (i + 1) % check_every == 0:
            history = heldout[i + 1 - check_every:i + 1].tolist()
            if any(stopper.update(i + 1 - check_every + j, value)
                   for j, value in enumerate(history)):
                ran = stopped = i + 1
                if callback is not None and (i + 1) % PROGRESS_EVERY:
                    callback(i, current)
                break
    norm = torch.linalg.vector_norm(kspace * weight).clamp_min(1e-30)
    if holding:   # the fitted residual of the kept output
        with torch.no_grad():
            kept = operator.forward(model_input(best_out, maps)) - measured
            fitted = (torch.view_as_real(kept).square().sum(-1) * weight).sum()
        residual = torch.sqrt(fitted) / norm
    else:
        residual = torch.sqrt(best_loss * count) / norm
    return {"output": best_out, "loss": best_loss, "losses": losses[:ran], "residual": residual,
            "heldout": None if heldout is None else heldout[:ran], "iterations": ran,
            "stopped": stopped}


def reconstruct_slice(net, kspace, sampled, maps=None, iters=DEFAULT_ITERS, lr=DEFAULT_LR,
                      dc=True, magnitude=True, amp=False, callback=None, held_out=None,
                      patience=0, schedule="constant") -> dict:
    """Scale, fit, scale back, data consistency and coil combination for one slice.

    ``held_out`` (H, W) bool: sampled locations left out of the fit for early stopping
    (``fit_network``); data consistency puts them back with the rest. Returns ``image``
    (H, W) (magnitude, or complex with maps and ``magnitude=False``), ``loss`` (best data
    loss, in the scaled units; the held-out loss with ``held_out``), ``residual`` (relative
    data residual of the network before data consistency), ``losses``, ``heldout``,
    ``iterations`` and ``scale``.
    """
    if held_out is not None:
        sampled = sampled | held_out
    measured = kspace * sampled.to(kspace.real.dtype)
    zero_filled = ifft2c(measured)
    zf_image = rss(zero_filled) if maps is None else combine(zero_filled, maps).abs()
    with torch.no_grad():
        coils0, x0 = coil_images_from_output(net(), maps)
        init_image = rss(coils0) if maps is None else x0.abs()
    zf_norm = torch.linalg.vector_norm(zf_image)
    scale = torch.where(zf_norm > 0, torch.linalg.vector_norm(init_image) / zf_norm,
                        torch.ones_like(zf_norm))
    fitted = sampled if held_out is None else sampled & ~held_out
    fit = fit_network(net, kspace * scale, fitted, maps, iters, lr, amp, callback,
                      held_out=held_out, patience=patience, schedule=schedule)
    coils, x = coil_images_from_output(fit["output"], maps)
    coils, x = coils / scale, (None if x is None else x / scale)
    if dc:
        coils = data_consistency(coils, measured, sampled)
        image = rss(coils) if maps is None else combine(coils, maps)
    else:
        image = rss(coils) if maps is None else x
    if magnitude:
        image = image.abs()
    return {"image": image, "loss": fit["loss"], "losses": fit["losses"], "scale": scale,
            "residual": fit["residual"], "heldout": fit["heldout"],
            "iterations": fit["iterations"]}


def fit_untrained(kspace, mask=None, maps=None, *, arch: str = "convdecoder",
                  layers: int | None = None, channels: int | None = None,
                  input_size=DEFAULT_INPUT_SIZE, iters: int = DEFAULT_ITERS,
                  lr: float = DEFAULT_LR, runs: int = 1, seed: int = 0, dc: bool = True,
                  crop=None, magnitude: bool = True, amp: bool = False, progress: bool = False,
                  device=None, holdout: float = 0.0, patience: int = 0,
                  channels_last: bool | None = None, schedule: str = "constant") -> dict:
    """Un-trained network reconstruction of k-space (C, H, W) or (S, C, H, W).

    ``mask`` (H, W) or (S, H, W) marks the sampled locations (default: where k-space is
    non-zero); ``maps`` (C, H, W) or (S, C, H, W) selects the SENSE variant (2 output
    channels) instead of coil images (2 * C channels) combined by RSS. Each slice is fitted
    separately; run k of every slice starts from the network drawn with
    ``derive_seed(seed, k)``. ``holdout`` > 0 leaves that fraction of the sampled locations
    (drawn after the network, from the same seed) out of the fit: the output kept is the one
    with the lowest loss on them, and ``patience`` > 0 stops the fit when that loss has not
    improved for ``patience`` iterations (``fit_network``); data consistency uses every
    sample. ``channels_last`` (None: with ``amp`` on CUDA) runs the network in that memory
    layout. ``schedule``: the learning rate over the iterations (``fit_network``). Returns a
    dict:

    - ``image``: the average over runs, (H, W) or (S, H, W) (cropped with ``crop``),
      magnitude unless ``magnitude=False`` (complex needs maps);
    - ``runs``: every run's image, (runs, H, W) or (runs, S, H, W);
    - ``loss``: the best data loss of each run, (runs,) or (runs, S);
    - ``losses``: the loss history, (runs, iters) or (runs, S, iters), NaN after a stop;
    - ``heldout``: the held-out loss history, the same shape (NaN without ``holdout``);
    - ``iterations``: iterations run, (runs,) or (runs, S);
    - ``residual``: ||M F G(w) - y|| / ||y|| of each run's best output, shaped like ``loss``;
    - ``scale``: the k-space scale factor of each run, shaped like ``loss``.

    Everything is returned on the CPU.
    """
    kspace = torch.as_tensor(kspace)
    if not kspace.is_complex() or kspace.ndim not in (3, 4):
        raise UsageError(f"k-space must be complex (coils, H, W) or (slices, coils, H, W), got "
                         f"{kspace.dtype} {tuple(kspace.shape)}")
    device = torch.device(device) if device is not None else kspace.device
    single = kspace.ndim == 3
    kspace = (kspace[None] if single else kspace).to(device=device, dtype=torch.complex64)
    slices, coils, height, width = kspace.shape
    sampled = sampling_pattern(kspace, None if mask is None else
                               torch.as_tensor(mask).to(device))
    if maps is not None:
        maps = torch.as_tensor(maps).to(device=device, dtype=torch.complex64)
        maps = torch.broadcast_to(maps, kspace.shape)
    if not magnitude and maps is None:
        raise UsageError("--complex: needs --maps (an RSS image has no phase)")
    for name, value, low in (("--iters", iters, 1), ("--runs", runs, 1),
                             ("--patience", patience, 0)):
        if int(value) < low:
            raise UsageError(f"{name} {value}: must be at least {low}")
    if schedule not in SCHEDULES:
        raise UsageError(f"--lr-schedule {schedule}: choose {' or '.join(SCHEDULES)}")
    if not 0 <= holdout < 1:
        raise UsageError(f"--holdout {holdout:g}: must be in [0, 1)")
    if not lr > 0:
        raise UsageError(f"--lr {lr}: must be positive")
    if crop is not None and (crop[0] > height or crop[1] > width or min(crop) < 1):
        raise UsageError(f"--crop {crop[0]} {crop[1]}: does not fit the image {height}x{width}")
    layers, channels = resolve_config(arch, layers, channels)
    out_channels = 2 if maps is not None else 2 * coils
    cuda = device.type == "cuda"

    from ..progress import progress_bar

    bar = progress_bar(slices * runs * iters, arch, enabled=progress, leave=False)
    state = {"done": 0}

    def report(slice_index, run):
        def callback(i, loss):
            bar.update(i + 1 - state["done"])
            state["done"] = i + 1
            bar.set_postfix_str(f"slice {slice_index + 1}/{slices} run {run + 1}/{runs} "
                                f"loss {float(loss):.4g}", refresh=False)
        return callback

    images = torch.empty((runs, slices, height, width), device=device,
                         dtype=torch.float32 if magnitude else torch.complex64)
    best = torch.empty((runs, slices), device=device)
    scales = torch.empty((runs, slices), device=device)
    residuals = torch.empty((runs, slices), device=device)
    history = torch.full((runs, slices, int(iters)), float("nan"), device=device)
    held_history = torch.full((runs, slices, int(iters)), float("nan"), device=device)
    ran = torch.zeros((runs, slices), dtype=torch.long)
    if channels_last is None:
        channels_last = cuda and amp
    saved_benchmark = torch.backends.cudnn.benchmark
    try:
        if cuda:
            torch.backends.cudnn.benchmark = True
        for s in range(slices):
            for k in range(runs):
                generator = torch.Generator().manual_seed(derive_seed(seed, k))
                net = build_generator(arch, (height, width), out_channels, layers, channels,
                                      input_size, generator=generator).to(device)
                held_out = None
                if holdout > 0:
                    held_out = holdout_split(sampled[s].cpu(), holdout, generator)[1].to(device)
                if channels_last:
                    net = net.to(memory_format=torch.channels_last)
                    net.input = net.input.contiguous(memory_format=torch.channels_last)
                state["done"] = 0
                result = reconstruct_slice(
                    net, kspace[s], sampled[s], None if maps is None else maps[s],
                    int(iters), float(lr), dc, magnitude, amp,
                    report(s, k) if not bar.disable else None, held_out, int(patience),
                    schedule)
                images[k, s] = result["image"]
                best[k, s] = result["loss"]
                scales[k, s] = result["scale"]
                residuals[k, s] = result["residual"]
                count = result["iterations"]
                ran[k, s] = count
                history[k, s, :count] = result["losses"]
                if result["heldout"] is not None:
                    held_history[k, s, :count] = result["heldout"]
                if count < iters:
                    bar.update(int(iters) - state["done"])
                del net
    finally:
        torch.backends.cudnn.benchmark = saved_benchmark
        bar.close()
    if not torch.isfinite(best).all():
        raise RuntimeFailure("the fit diverged (non-finite loss); try a smaller --lr")
    if crop is not None:
        images = center_crop(images, tuple(crop))
    runs_out = images[:, 0] if single else images
    pick = (lambda t: t[:, 0]) if single else (lambda t: t)
    return {"image": runs_out.mean(dim=0).cpu(), "runs": runs_out.cpu(),
            "loss": pick(best).cpu(), "losses": pick(history).cpu(),
            "heldout": pick(held_history).cpu(), "iterations": pick(ran),
            "residual": pick(residuals).cpu(), "scale": pick(scales).cpu()}
