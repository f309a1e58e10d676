"""Keep freed array memory in the process instead of handing it back to the kernel.

glibc serves large blocks (above M_MMAP_THRESHOLD, 128 KiB at start, raised on the fly up to
32 MiB) with mmap and returns freed heap tops to the kernel above M_TRIM_THRESHOLD. An
iterative reconstruction frees and allocates arrays of the same size every iteration (a
15 x 640 x 368 complex coil stack is 28 MiB, about 40 of them per iPALM iteration), so every
one of them was mapped afresh and faulted in page by page, zeroed by the kernel first.
With a high mmap threshold and no trimming, freed blocks are reused:
``benchmarks/profile_ipalm.py --size knee`` went from 526 to 495 ms per iteration on one
thread, and ``benchmarks/bench_speed.py --rows a --threads 2`` from 33.1 to 26.6 s (the
kernel zeroes fresh pages on one thread while torch computes on two). The cost is a resident size that stays at the run's high-water mark, as with any
caching allocator (torch's own on the GPU).

``keep_freed_memory()`` is called by ``commands.main.main`` only, so that importing the
library never changes the process's allocator. Outside glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap; glibc releases before 2.37 accept any value, later
# ones refuse more than HEAP_MAX_SIZE / 2 (32 MiB on 64-bit), the fallback.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)
NEVER_TRIM = 2**31 - 1                     # an int: mallopt takes a C int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold and switch off trimming; True when glibc took both."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mapped = any(mallopt(M_MMAP_THRESHOLD, value) == 1 for value in MMAP_THRESHOLDS)
    return mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1 and mapped
