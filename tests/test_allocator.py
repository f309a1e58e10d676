"""commands.allocator: after keep_freed_memory a freed 100 MB array stays in the process
(glibc's heap keeps it for the next one); by default glibc unmaps it at once."""

import platform
import subprocess
import sys

import pytest

CHILD = """
import ctypes, sys
import numpy as np
from commands.allocator import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
accepted = keep_freed_memory() if sys.argv[1] == "keep" else None
block = np.ones(100 << 20, dtype=np.uint8)
del block
print(accepted, libc.mallinfo2().fordblks)   # free bytes held in the heap
"""


def child(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc"
                    or platform.libc_ver()[1] < "2.33", reason="glibc's mallinfo2")
def test_freed_blocks_stay_in_the_heap():
    accepted, kept = child("keep")
    assert accepted == "True"
    assert kept >= 100 << 20
    _, default = child("default")
    assert default < 100 << 20
