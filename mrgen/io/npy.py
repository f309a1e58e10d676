"""NumPy .npy files, and .npy streams on stdin/stdout for pipes."""

from __future__ import annotations

import io
import sys

import numpy as np

from ..errors import DataError
from .atomic import atomic_path


def read_npy(ref, index=None) -> np.ndarray:
    try:
        if ref.path is None:
            data = sys.stdin.buffer.read()
            if not data:
                raise DataError("-: nothing on standard input (expected a .npy stream)")
            array = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            # Memory-mapped, so that picking one slice of a big stack reads only that slice.
            array = np.load(ref.path, mmap_mode="r", allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{ref}: not a readable .npy file ({err})") from None
    if index is not None:
        array = array[index]
    return np.array(array)


def write_npy(ref, array: np.ndarray) -> None:
    if ref.path is None:
        np.save(sys.stdout.buffer, array, allow_pickle=False)
        sys.stdout.buffer.flush()
        return
    with atomic_path(ref.path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
