"""The training loop every learned method shares: steps, progress, checkpoints, resume, DDP.

A *method* (see ``TrainingMethod``) owns what is specific to it: the model, its optimizer and
learning-rate scheduler, and ``train_step(step, generator) -> {metric: value}``, which does its
own forward pass, backward pass and ``optimizer.step()`` (and ``scheduler.step()``). Methods
with state beyond the model and optimizer (a replay buffer, a curriculum) expose it through
``state_dict()`` / ``load_state_dict()``.

``run_training(method, options, context)`` owns the rest:

- the loop from the first step not yet done to ``options.steps``;
- randomness: step ``h`` on rank ``r`` gets a fresh ``torch.Generator`` on the training device
  seeded by (seed, r, h) (``distributed.step_generator``). A method that draws only from it is
  reproducible by construction, also after a resume; the global RNG states (torch CPU/CUDA,
  numpy, python ``random``) are saved and restored as well, for code that uses them;
- progress on stderr (rank 0, when ``options.progress``; ``mrgen.progress``: a bar on a
  terminal, else a line every ~10 s with rate and ETA) with the loss and the method's
  metrics averaged over the processes; without it, a report line every
  ``options.log_every`` steps through ``options.log``;
- checkpoints every ``options.checkpoint_every`` steps and at the end, written atomically
  (a kill never leaves a partial or damaged file) by rank 0; ``options.resume`` continues from
  one exactly: on CPU, bit-identical to a run that was never interrupted;
- an optional NaN guard: a step whose loss (or any parameter afterwards) is not finite is
  undone (model and optimizer state of the last good step are restored; the learning-rate
  schedule keeps counting), counted in ``nan_skipped``, and training goes on;
- hooks (``Hook(every, fn)``), run by rank 0 after every ``every``-th step and at the end,
  e.g. ``png_hook`` for a picture of the current samples;
- DistributedDataParallel under torchrun: the context (``distributed.init_distributed``)
  wraps the model (``method.ddp_model``), per-rank generators, metrics all-reduced for display,
  per-rank method and RNG state gathered into rank 0's checkpoint, a barrier at the end.

Training-checkpoint schema (a dict saved with torch.save; only tensors, numbers, strings,
lists and dicts, so ``torch.load(weights_only=True)`` reads it):

    format "mrgen-training-checkpoint", format_version 1, mrgen_version,
    step (steps done), steps (the target then), seed, world_size, nan_skipped,
    model (state_dict of the unwrapped model, CPU), optimizer, scheduler (state_dicts or None),
    ranks: [{"method": method.state_dict(), "rng": global RNG states}] one entry per rank,
    fingerprint: the hyper-parameters that must match to resume (``options.fingerprint``),
    model_info: the self-description of the model (kind, architecture, ...), so that
    ``mrgen.model_files.load_model`` can rebuild the model from a training checkpoint too.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import __version__
from ..errors import DataError, UsageError
from ..io.atomic import atomic_path
from ..model_files import TRAINING_CHECKPOINT_FORMAT, save_model, torch_load
from .distributed import DistContext, step_generator

CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_FORMAT  # model_files reads these as models too
CHECKPOINT_VERSION = 1


class TrainingMethod:
    """Base class of a training method; subclasses set ``model``, ``optimizer``, ``scheduler``
    and implement ``train_step``.

    ``ddp_model`` is set by the engine (``bind``) before the first step: the model wrapped in
    DistributedDataParallel under torchrun, else the model itself. Use it for the forward
    pass whose loss is back-propagated (so gradients are averaged over processes); use
    ``model`` for everything else (sampling, evaluation, input gradients).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None = None
    ddp_model: torch.nn.Module | None = None

    def bind(self, context: DistContext) -> None:
        self.ddp_model = context.wrap(self.model)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, float]:
        """One parameter update; returns scalar metrics, at least ``loss``. ``step`` counts
        from 0; ``generator`` (on the training device) is the step's only source of
        randomness."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Extra state to checkpoint (tensors, numbers, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class Hook:
    """``fn(step_done, method)`` on rank 0 after every ``every``-th step and after the last."""

    every: int
    fn: Callable[[int, TrainingMethod], None]


@dataclass
class EngineOptions:
    steps: int
    seed: int = 0
    checkpoint: str | Path | None = None   # the training checkpoint file
    checkpoint_every: int = 0              # 0: only at the end
    resume: bool = False                   # continue from ``checkpoint``
    progress: bool = False                 # tqdm bar on stderr (rank 0)
    nan_guard: bool = False
    log: Callable[[str], None] | None = None
    log_every: int = 0                     # report lines when there is no bar (0: none)
    description: str = "train"
    fingerprint: dict = field(default_factory=dict)  # must match on resume
    model_info: dict | None = None         # self-description stored in checkpoints


@dataclass
class TrainResult:
    step: int                              # steps done
    start_step: int                        # where this invocation began (0 unless resumed)
    metrics: dict                          # last metrics (averaged over processes)
    nan_skipped: int
    seconds: float


def run_training(method: TrainingMethod, options: EngineOptions,
                 context: DistContext | None = None, hooks=()) -> TrainResult:
    """Train ``method`` to ``options.steps`` steps (see the module doc)."""
    context = context or DistContext(device=_model_device(method.model))
    if options.steps < 0:
        raise UsageError(f"--steps {options.steps}: must be at least 0")
    path = Path(options.checkpoint) if options.checkpoint is not None else None
    start, nan_skipped = 0, 0
    if options.resume:
        if path is None:
            raise UsageError("--resume: no checkpoint file to resume from")
        if not path.exists():
            raise UsageError(f"--resume: {path} does not exist (nothing to resume)")
        state = load_training_checkpoint(path)
        _check_resumable(path, state, options, context)
        _restore(method, state, context)
        start, nan_skipped = int(state["step"]), int(state.get("nan_skipped", 0))
        del state
        if options.log and context.is_main:
            options.log(f"resuming from {path} at step {start}" if start < options.steps else
                        f"{path} is already at step {start}: nothing left to train")
    elif path is not None and path.exists():
        raise UsageError(f"{path}: a checkpoint of an earlier run exists; continue it with "
                         f"--resume or remove it")
    if path is not None and not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    method.bind(context)

    from ..progress import progress_bar

    # a bar on a terminal, a line every ~10 s with rate and ETA in a log or under make
    bar = progress_bar(options.steps, options.description, unit="step",
                       enabled=options.progress and context.is_main,
                       initial=min(start, options.steps))
    metrics: dict = {}
    began = time.monotonic()
    last_saved = start if options.resume else None
    good = _snapshot(method) if options.nan_guard else None
    try:
        for step in range(start, options.steps):
            generator = step_generator(options.seed, context.rank, step, context.device)
            raw = dict(method.train_step(step, generator))
            if "loss" not in raw:
                raise RuntimeError("train_step must return a 'loss' metric")
            if options.nan_guard:
                bad = context.any(not _finite(raw) or not _parameters_finite(method.model))
                if bad:
                    _restore_snapshot(method, good)
                    nan_skipped += 1
                else:
                    good = _snapshot(method)
            metrics = context.mean({k: float(v) for k, v in raw.items()})
            done = step + 1
            if options.nan_guard:
                metrics["skipped"] = nan_skipped
            bar.set_postfix(_format_metrics(metrics), refresh=False)
            bar.update(1)
            if (options.log and bar.disable and options.log_every
                    and done % options.log_every == 0 and context.is_main):
                options.log(f"{options.description}: step {done}/{options.steps} "
                            + " ".join(f"{k} {v}" for k, v in _format_metrics(metrics).items()))
            if path is not None and options.checkpoint_every and \
                    done % options.checkpoint_every == 0:
                _save(path, method, options, context, done, nan_skipped)
                last_saved = done
            if context.is_main:
                for hook in hooks:
                    if hook.every and done % hook.every == 0:
                        hook.fn(done, method)
        done = max(start, options.steps)
        if path is not None and last_saved != done:
            _save(path, method, options, context, done, nan_skipped)
        if context.is_main and done > start:
            for hook in hooks:
                if not hook.every or done % hook.every != 0:
                    hook.fn(done, method)
    finally:
        bar.close()
    context.barrier()
    return TrainResult(done, start, metrics, nan_skipped, time.monotonic() - began)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def train_and_save(method: TrainingMethod, options: EngineOptions, context: DistContext,
                   output, description: dict, hooks=()) -> TrainResult:
    """run_training, then (rank 0) the model file at ``output``, its ``description`` completed
    with the steps, undone updates and final metrics; every rank waits for the file."""
    result = run_training(method, options, context, hooks)
    if context.is_main:
        description["training"]["steps"] = result.step
        description["training"]["nan_skipped"] = result.nan_skipped
        description["training"]["final_metrics"] = result.metrics
        save_model(output, method.model, description)
    context.barrier()
    return result


def save_training_checkpoint(path, payload: dict) -> None:
    """torch.save ``payload`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_training_checkpoint(path) -> dict:
    """Read a training checkpoint; DataError naming the file if it is missing or unusable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such checkpoint")
    state = torch_load(path, "training checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path}: not an mrgen training checkpoint")
    for key in ("step", "model", "optimizer", "ranks"):
        if key not in state:
            raise DataError(f"{path}: damaged training checkpoint (no '{key}')")
    return state


def _save(path: Path, method: TrainingMethod, options: EngineOptions, context: DistContext,
          done: int, nan_skipped: int) -> None:
    per_rank = {"method": to_cpu(method.state_dict()), "rng": _rng_state()}
    ranks = context.gather(per_rank)
    if context.is_main:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "mrgen_version": __version__,
            "step": int(done),
            "steps": int(options.steps),
            "seed": int(options.seed),
            "world_size": int(context.world_size),
            "nan_skipped": int(nan_skipped),
            "model": to_cpu(method.model.state_dict()),
            "optimizer": to_cpu(method.optimizer.state_dict()),
            "scheduler": (to_cpu(method.scheduler.state_dict())
                          if method.scheduler is not None else None),
            "ranks": ranks,
            "fingerprint": dict(options.fingerprint),
            "model_info": options.model_info,
        }
        save_training_checkpoint(path, payload)


def _check_resumable(path, state, options: EngineOptions, context: DistContext) -> None:
    world = int(state.get("world_size", 1))
    if world != context.world_size:
        raise UsageError(f"--resume: {path} was written by {world} process(es), this run has "
                         f"{context.world_size}; resume with the same number")
    if int(state.get("seed", options.seed)) != int(options.seed):
        raise UsageError(f"--resume: {path} was trained with --seed {state.get('seed')}, "
                         f"not {options.seed}")
    saved = state.get("fingerprint") or {}
    differ = [k for k in sorted(set(saved) | set(options.fingerprint))
              if _plain(saved.get(k)) != _plain(options.fingerprint.get(k))]
    if differ:
        detail = ", ".join(f"{k} {saved.get(k)!r} -> {options.fingerprint.get(k)!r}"
                           for k in differ[:4])
        raise UsageError(f"--resume: {path} was trained with other settings ({detail}); use "
                         f"the original ones")


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _restore(method: TrainingMethod, state: dict, context: DistContext) -> None:
    try:
        method.model.load_state_dict(state["model"])
        method.optimizer.load_state_dict(state["optimizer"])
        if method.scheduler is not None and state.get("scheduler") is not None:
            method.scheduler.load_state_dict(state["scheduler"])
        mine = state["ranks"][context.rank]
        method.load_state_dict(mine.get("method", {}))
    except (RuntimeError, KeyError, ValueError, IndexError) as err:
        reason = str(err).splitlines()[0][:160]
        raise DataError(f"the checkpoint does not fit this model ({reason})") from None
    _set_rng_state(mine.get("rng"))


def to_cpu(obj):
    """A copy of nested dicts/lists/tuples with every tensor detached and on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_cpu(v) for v in obj)
    return obj


# ---------------------------------------------------------------------------------------------
# RNG states (plain tensors and numbers: readable with weights_only=True)


def _rng_state() -> dict:
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    version, words, gauss = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return {
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(words, dtype=torch.int64),
                   "gauss": gauss},
    }


def _set_rng_state(state) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))


# ---------------------------------------------------------------------------------------------
# NaN guard


def _snapshot(method: TrainingMethod) -> dict:
    return {"model": copy.deepcopy(method.model.state_dict()),
            "optimizer": copy.deepcopy(method.optimizer.state_dict())}


def _restore_snapshot(method: TrainingMethod, good: dict) -> None:
    # Keep the learning rates the scheduler has set since: the schedule counts steps.
    rates = [group["lr"] for group in method.optimizer.param_groups]
    method.model.load_state_dict(good["model"])
    method.optimizer.load_state_dict(copy.deepcopy(good["optimizer"]))
    for group, lr in zip(method.optimizer.param_groups, rates):
        group["lr"] = lr


def _finite(metrics: dict) -> bool:
    return math.isfinite(float(metrics["loss"]))


def _parameters_finite(model: torch.nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all().item()) if flags else True


# ---------------------------------------------------------------------------------------------
# Display and hooks


def _format_metrics(metrics: dict) -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not float(value).is_integer():
            out[key] = f"{value:.4g}"
        else:
            out[key] = f"{int(value)}" if math.isfinite(value) else str(value)
    return out


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def png_hook(target, every: int, images: Callable[[], torch.Tensor | None],
             window: tuple[float, float] | None = (0.0, 1.0), columns: int | None = None,
             limit: int = 16) -> Hook:
    """A hook writing a montage of ``images()`` (B, H, W) (at most ``limit``) as a grayscale
    PNG (atomically, replaced each time), windowed to ``window`` (None: the default
    percentile window of mrgen.show)."""
    def write(step: int, method) -> None:
        batch = images()
        if batch is None:
            return
        write_montage_png(target, batch[:limit], window, columns,
                          {"Software": f"mrgen {__version__}", "Comment": f"step {step}"})

    return Hook(every, write)


def write_montage_png(target, images, window=(0.0, 1.0), columns=None, text=None) -> None:
    from ..png import write_png
    from ..show import render

    array = images.detach().float().cpu().numpy() if hasattr(images, "detach") else images
    array = np.nan_to_num(np.asarray(array, dtype=np.float64))
    write_png(target, render(array, window=window, columns=columns).pixels, text)
