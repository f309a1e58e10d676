"""Self-describing model files: what a trained model is, how it was trained, and its weights.

A model file (``mrgen train ... OUT.pt``) is one dict saved with torch.save, holding only
tensors, numbers, strings, lists and dicts (``torch.load(weights_only=True)`` reads it; no
code is unpickled):

    format          "mrgen-model"
    format_version  1
    kind            what the model is, e.g. "energy-prior" (the learned energy R_theta)
    architecture    the constructor arguments, e.g. EnergyConfig.to_dict()
    state_dict      the weights (CPU tensors)
    normalisation   how inputs must be scaled, in words (e.g. "each slice divided by its
                    maximum"); the model is only meaningful on inputs scaled the same way
    training        how it was made: command line, data (files, slices, crop), hyper-parameters,
                    steps, seed, processes, time
    fitted          entries fitted after training, e.g. "lambda_fit" (see store_fitted_entries)
    mrgen_version   the version that wrote it

``load_model_checkpoint(path, device)`` rebuilds the model from ``kind`` and ``architecture``
alone (a builder per kind: ``register_model_kind``), loads the weights and returns (model,
metadata), where metadata is the dict without ``state_dict``. It also accepts a training
checkpoint (``OUT.ckpt`` of a run in progress), which carries the same description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .. import __version__
from ..errors import DataError
from ..io.atomic import atomic_path

MODEL_FORMAT = "mrgen-model"
MODEL_VERSION = 1
RESERVED = ("format", "format_version", "kind", "architecture", "state_dict", "normalisation",
            "training", "fitted", "mrgen_version")

_BUILDERS: dict[str, Callable[[dict], torch.nn.Module]] = {}


def register_model_kind(kind: str, builder: Callable[[dict], torch.nn.Module]) -> None:
    """Teach ``load_model_checkpoint`` to build models of ``kind`` from their architecture."""
    _BUILDERS[kind] = builder


def _build_energy_prior(architecture: dict) -> torch.nn.Module:
    from ..priors.energy import EnergyConfig, EnergyNet

    return EnergyNet(EnergyConfig(**architecture))


def _build_djsense(architecture: dict) -> torch.nn.Module:
    from ..djsense.model import build_model

    return build_model(architecture)


def _build_deepen(architecture: dict) -> torch.nn.Module:
    from ..deepen.model import build_model

    return build_model(architecture)


# Built lazily, so that a fresh process loads any model file without importing every method.
register_model_kind("energy-prior", _build_energy_prior)
register_model_kind("djsense", _build_djsense)
register_model_kind("deepen-energy", _build_deepen)


def model_description(kind: str, architecture: dict, normalisation: str,
                      training: dict | None = None) -> dict:
    """Everything of a model file but its weights (also stored in training checkpoints)."""
    return {"kind": kind, "architecture": dict(architecture), "normalisation": normalisation,
            "training": dict(training or {})}


def save_model_checkpoint(path, model: torch.nn.Module, description: dict,
                          fitted: dict | None = None) -> None:
    """Write a model file atomically: ``description`` (model_description) plus the weights."""
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_VERSION,
        **description,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in
                       _unwrap(model).state_dict().items()},
        "fitted": dict(fitted or {}),
        "mrgen_version": __version__,
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def read_model_checkpoint(path, allow_training: bool = True, mmap: bool = False) -> dict:
    """The raw dict of a model file (or of a training checkpoint, converted, when
    ``allow_training``); DataError if it is missing, unreadable or not an mrgen model.
    ``mmap`` maps the tensors instead of reading them: cheap for a look at the metadata of
    a large file (a training checkpoint carries its replay buffer)."""
    from .engine import CHECKPOINT_FORMAT, _torch_load

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such model file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a model file")
    raw = _torch_load(path, "mrgen model file", mmap)
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        if not allow_training:
            raise DataError(f"{path}: a training checkpoint, not a model file")
        info = raw.get("model_info")
        if not isinstance(info, dict):
            raise DataError(f"{path}: this training checkpoint does not describe its model")
        raw = {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, **info,
               "state_dict": raw.get("model"), "fitted": {},
               "mrgen_version": raw.get("mrgen_version"),
               "training": {**info.get("training", {}), "checkpoint_step": raw.get("step")}}
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not an mrgen model file (no 'format: {MODEL_FORMAT}')")
    if int(raw.get("format_version", 0)) > MODEL_VERSION:
        raise DataError(f"{path}: model file format {raw.get('format_version')} is newer than "
                        f"this mrgen reads ({MODEL_VERSION}); update mrgen")
    for key in ("kind", "architecture", "state_dict"):
        if not isinstance(raw.get(key), dict if key != "kind" else str):
            raise DataError(f"{path}: damaged model file (no valid '{key}')")
    return raw


def load_model_checkpoint(path, device="cpu", kind: str | None = None):
    """(model on ``device`` in eval mode, metadata) from a model file; ``kind`` checks what it
    is. DataError naming the file for anything unusable."""
    raw = read_model_checkpoint(path)
    if kind is not None and raw["kind"] != kind:
        raise DataError(f"{path}: holds a '{raw['kind']}' model, not '{kind}'")
    builder = _BUILDERS.get(raw["kind"])
    if builder is None:
        raise DataError(f"{path}: unknown model kind '{raw['kind']}' "
                        f"(known: {', '.join(sorted(_BUILDERS))})")
    try:
        model = builder(raw["architecture"])
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: bad architecture {raw['architecture']} ({err})") from None
    try:
        model.load_state_dict(raw["state_dict"])
    except RuntimeError as err:
        reason = str(err).splitlines()[0][:160]
        raise DataError(f"{path}: the weights do not fit the architecture ({reason})") from None
    model = model.to(device).eval()
    metadata = {k: v for k, v in raw.items() if k != "state_dict"}
    return model, metadata


def store_fitted_entries(path, entries: dict, target=None) -> None:
    """Add (or replace) entries under ``fitted`` of a model file, written atomically to
    ``target`` (default: in place); e.g. ``{"lambda_fit": {"slope": ..., "intercept": ...}}``
    from a calibration."""
    raw = read_model_checkpoint(path, allow_training=False)
    raw["fitted"] = {**(raw.get("fitted") or {}), **entries}
    with atomic_path(Path(target if target is not None else path)) as tmp:
        torch.save(raw, tmp)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)
