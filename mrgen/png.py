"""A minimal PNG writer: 8-bit grayscale, zlib-compressed, no dependency beyond the stdlib.

PNG layout (ISO/IEC 15948): the 8-byte signature, then chunks of ``length (4 bytes, big
endian) | type (4 ASCII bytes) | data | CRC-32 of type + data``. We write IHDR (width,
height, bit depth 8, colour type 0 = grayscale, compression 0, filter 0, interlace 0),
optional tEXt chunks (keyword, NUL, Latin-1 text), one IDAT holding the zlib stream of the
rows, each prefixed with its filter-type byte (0 = none), and an empty IEND.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _text_chunk(keyword: str, text: str) -> bytes:
    # tEXt: keyword of 1-79 Latin-1 characters, a NUL separator, Latin-1 text (no NUL).
    key = keyword.encode("latin-1", "replace")[:79]
    value = text.replace("\0", " ").encode("latin-1", "replace")
    return _chunk(b"tEXt", key + b"\0" + value)


def encode_png(pixels, text: dict[str, str] | None = None, level: int = 6) -> bytes:
    """The PNG file bytes of an (H, W) uint8 array (row 0 at the top), grayscale 8-bit.

    ``text`` adds tEXt chunks (e.g. {"Software": "mrgen 0.1"}).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"a grayscale PNG needs a 2D array, got shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"a grayscale 8-bit PNG needs uint8 pixels, got {pixels.dtype}")
    height, width = pixels.shape
    if height < 1 or width < 1 or height > 2**31 - 1 or width > 2**31 - 1:
        raise ValueError(f"PNG size out of range: {height}x{width}")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type "none" for every scanline
    rows[:, 1:] = pixels
    parts = [SIGNATURE, _chunk(b"IHDR", header)]
    for key, value in (text or {}).items():
        parts.append(_text_chunk(key, value))
    parts.append(_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def write_png(target, pixels, text: dict[str, str] | None = None) -> None:
    """Write an (H, W) uint8 array as a grayscale PNG, atomically; ``-`` is stdout."""
    data = encode_png(pixels, text)
    if str(target) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from .io.atomic import atomic_path

    with atomic_path(Path(target)) as tmp:
        Path(tmp).write_bytes(data)
