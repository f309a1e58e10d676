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
    earlier output folder of the same name is removed only then), and is removed on error."""
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
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        LIVE_TEMPORARIES.discard(tmp)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
