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

``load_model(path, device)`` rebuilds the model from ``kind`` and ``architecture`` alone (the
builder of each kind is named in ``BUILDERS``), loads the weights and returns (model,
metadata), where metadata is the dict without ``state_dict``. It also accepts a training
checkpoint (``OUT.ckpt`` of a run in progress, see ``mrgen.training.engine``), which carries
the same description. Models shipped in ``mrgen/data`` are found by name (``resolve_model``).

This module sits below the training engine and the methods: it names each method's builder
as a "module:function" string, imported only when a model of that kind is loaded, so that a
fresh process loads any model file without importing every method, and the methods import
this module, never the reverse. torch is imported inside the functions, so that the command
line's argument checks can read ``SHIPPED`` without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from . import __version__
from .errors import DataError, UsageError
from .io.atomic import atomic_path

MODEL_FORMAT = "mrgen-model"
MODEL_VERSION = 1
TRAINING_CHECKPOINT_FORMAT = "mrgen-training-checkpoint"

# kind -> "module:function" that builds an untrained model from its architecture dict.
BUILDERS = {
    "energy-prior": "mrgen.priors.energy:build_model",
    "djsense": "mrgen.djsense.model:build_model",
    "deepen-energy": "mrgen.deepen.model:build_model",
}

DATA = Path(__file__).resolve().parent / "data"

# name -> file in mrgen/data, with what it is, for error messages and --help.
SHIPPED = {
    "prior-brain-small": "energy prior trained on MNI152 brain phantom slices (train prior)",
    "djsense-brain-small": "Deep J-Sense trained at 4x on MNI152 brain phantom slices",
    "deepen-brain-small": "DEEPEN energy trained at 2D 4x on MNI152 brain phantom slices",
}


def resolve_model(name_or_path: str) -> Path:
    """A path as given, or the file of a shipped model named without its .pt suffix."""
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = DATA / f"{name_or_path}.pt"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(SHIPPED)) or "none"
    raise UsageError(f"--model {name_or_path}: no such file, and not a shipped model "
                     f"(shipped: {known})")


def model_description(kind: str, architecture: dict, normalisation: str,
                      training: dict | None = None) -> dict:
    """Everything of a model file but its weights (also stored in training checkpoints)."""
    return {"kind": kind, "architecture": dict(architecture), "normalisation": normalisation,
            "training": dict(training or {})}


def save_model(path, model, description: dict, fitted: dict | None = None) -> None:
    """Write a model file atomically: ``description`` (model_description) plus the weights of
    ``model`` (unwrapped from DistributedDataParallel)."""
    import torch

    weights = getattr(model, "module", model).state_dict()
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_VERSION,
        **description,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in weights.items()},
        "fitted": dict(fitted or {}),
        "mrgen_version": __version__,
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def torch_load(path: Path, what: str, mmap: bool = False):
    """torch.load that unpickles no code (weights_only) onto the CPU; DataError naming the
    file, as ``what``, if it is missing or unreadable."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise DataError(f"{path}: no such {what}") from None
    except Exception as err:  # truncated zip, pickle errors, unsafe globals, ...
        reason = str(err).splitlines()[0][:120] if str(err) else err.__class__.__name__
        raise DataError(f"{path}: not a readable {what} ({reason})") from None


def read_model(path, allow_training: bool = True, mmap: bool = False) -> dict:
    """The raw dict of a model file (or of a training checkpoint, converted, when
    ``allow_training``); DataError if it is missing, unreadable or not an mrgen model.
    ``mmap`` maps the tensors instead of reading them: cheap for a look at the metadata of
    a large file (a training checkpoint carries its replay buffer)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such model file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a model file")
    raw = torch_load(path, "mrgen model file", mmap)
    if isinstance(raw, dict) and raw.get("format") == TRAINING_CHECKPOINT_FORMAT:
        if not allow_training:
            raise DataError(f"{path}: a training checkpoint, not a model file")
        raw = _model_of_training_checkpoint(path, raw)
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not an mrgen model file (no 'format: {MODEL_FORMAT}')")
    if int(raw.get("format_version", 0)) > MODEL_VERSION:
        raise DataError(f"{path}: model file format {raw.get('format_version')} is newer than "
                        f"this mrgen reads ({MODEL_VERSION}); update mrgen")
    for key in ("kind", "architecture", "state_dict"):
        if not isinstance(raw.get(key), dict if key != "kind" else str):
            raise DataError(f"{path}: damaged model file (no valid '{key}')")
    return raw


def _model_of_training_checkpoint(path: Path, checkpoint: dict) -> dict:
    """A training checkpoint's model as a model file: its description (``model_info``) and
    weights, with the steps done as ``training["checkpoint_step"]``."""
    info = checkpoint.get("model_info")
    if not isinstance(info, dict):
        raise DataError(f"{path}: this training checkpoint does not describe its model")
    return {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, **info,
            "state_dict": checkpoint.get("model"), "fitted": {},
            "mrgen_version": checkpoint.get("mrgen_version"),
            "training": {**info.get("training", {}), "checkpoint_step": checkpoint.get("step")}}


def read_kind(path) -> str:
    """The kind recorded in a model file (or training checkpoint), its tensors mapped rather
    than read; a file that cannot be mapped (not a zip-format torch file) is read plainly, for
    the usual error."""
    try:
        return read_model(path, mmap=True)["kind"]
    except DataError:
        return read_model(path)["kind"]


def build_model(kind: str, architecture: dict):
    """An untrained model of ``kind`` from its architecture; KeyError for an unknown kind."""
    module, function = BUILDERS[kind].split(":")
    return getattr(importlib.import_module(module), function)(architecture)


def load_model(path, device="cpu", kind: str | None = None):
    """(model on ``device`` in eval mode, metadata) from a model file; ``kind`` checks what it
    is. DataError naming the file for anything unusable."""
    raw = read_model(path)
    if kind is not None and raw["kind"] != kind:
        raise DataError(f"{path}: holds a '{raw['kind']}' model, not '{kind}'")
    if raw["kind"] not in BUILDERS:
        raise DataError(f"{path}: unknown model kind '{raw['kind']}' "
                        f"(known: {', '.join(sorted(BUILDERS))})")
    try:
        model = build_model(raw["kind"], raw["architecture"])
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
    import torch

    raw = read_model(path, allow_training=False)
    raw["fitted"] = {**(raw.get("fitted") or {}), **entries}
    with atomic_path(Path(target if target is not None else path)) as tmp:
        torch.save(raw, tmp)
