"""Models that ship inside the package, found by name (``--model prior-brain-small``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

DATA = Path(__file__).resolve().parent.parent / "data"

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
