"""Atomic output: write beside the target under a temporary name, then rename over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Temporary files (and folders) being written now: an interrupted command that cannot unwind in time
# (commands/interrupt.py) removes them before it exits.
LIVE_TEMPORARIES: set[str] = set()


@contextlib.contextmanager
def atomic_path(target: Path):
    """Yield a temporary path in the target's folder; rename it to ``target`` on success.

    On any error the temporary file is removed, so a failed or interrupted command never
    leaves a half-written output (or a damaged earlier one) behind.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    LIVE_TEMPORARIES.add(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        LIVE_TEMPORARIES.discard(tmp)


@contextlib.contextmanager
def atomic_folder(target: Path):
    """Yield a temporary folder beside ``target``; it replaces ``target`` on success (an
    earlier output folder of the same name is removed only then: moved aside first, and moved
    back if the new folder cannot take its place), and is removed on error."""
    import shutil

    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    LIVE_TEMPORARIES.add(tmp)
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield Path(tmp)
        if target.exists():
            old = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent)
            os.replace(target, Path(old) / target.name)
        try:
            os.replace(tmp, target)
        except BaseException:
            old = _restore(old, target)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        LIVE_TEMPORARIES.discard(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _restore(old, target: Path):
    """Move the earlier folder set aside in ``old`` back to ``target``; returns the folder
    that may now be removed (None when the earlier folder could not be moved back: it stays
    in ``old``, the only copy)."""
    if old is None:
        return None
    aside = Path(old) / target.name
    if not aside.exists():
        return old
    try:
        os.replace(aside, target)
    except OSError:
        return None
    return old


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
