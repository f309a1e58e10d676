"""Writing a stack of arrays one at a time (samples of a long chain) without holding them all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .atomic import LIVE_TEMPORARIES
from .refs import parse_ref


class NpyStackWriter:
    """A .npy file of shape (count, *shape) filled item by item through a memory map.

    The data go to a temporary file that is renamed over the target by ``close()``; ``abort()``
    (or an exception inside a ``with`` block) removes it, so no partial output remains.
    """

    def __init__(self, target: str, count: int, shape, dtype=np.float32):
        ref = parse_ref(target)
        if ref.format != "npy" or ref.path is None:
            raise UsageError(f"{target}: streamed samples are written as a .npy file")
        self.target = ref.path
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp",
                                   dir=self.target.parent if str(self.target.parent) else ".")
        os.close(fd)
        self.tmp = Path(tmp)
        LIVE_TEMPORARIES.add(str(self.tmp))
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype,
                                               shape=(count, *tuple(shape)))

    def write(self, index: int, values) -> None:
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        self.array[index] = values

    def close(self) -> None:
        self.array.flush()
        del self.array
        os.replace(self.tmp, self.target)
        LIVE_TEMPORARIES.discard(str(self.tmp))

    def abort(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.array
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
        LIVE_TEMPORARIES.discard(str(self.tmp))

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.abort() if kind is not None else self.close()


class SampleStream:
    """``--samples-out``: every kept sample of a chain, streamed to a .npy (count, [parts,]
    *shape) whose shape and dtype come from the first sample; a no-op without a path.
    ``parts``: samples arrive part by part (one slice at a time) into (count, parts, ...).
    A context manager: the file is completed on success and removed on failure."""

    def __init__(self, target: str | None, count: int, parts: int | None = None):
        self.target, self.count, self.parts, self.writer = target, count, parts, None
        if target is not None and parse_ref(target).format != "npy":
            raise UsageError(f"{target}: streamed samples are written as a .npy file")

    def write(self, index: int, values, part: int | None = None) -> None:
        """Sample ``index`` (or its ``part``, with ``parts``)."""
        if self.target is None:
            return
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        if self.writer is None:
            lead = () if self.parts is None else (self.parts,)
            self.writer = NpyStackWriter(self.target, self.count, lead + values.shape,
                                         values.dtype)
        self.writer.write(index if self.parts is None else (index, part), values)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if self.writer is not None:
            self.writer.__exit__(kind, value, traceback)
