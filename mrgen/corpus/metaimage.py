"""A small reader (and writer) of ITK MetaImage files (.mha, or .mhd + raw data).

A MetaImage file starts with text header lines ``Key = Value``; ``ElementDataFile`` is the
last of them. Its value is ``LOCAL`` (the binary data follow the header in the same file,
the .mha form) or the name of a data file beside the header (the .mhd + .raw form). What
this reader uses:

- ``NDims``, ``DimSize`` (x first: the array is (..., y, x), the reverse order),
- ``ElementType`` (MET_UCHAR, MET_SHORT, MET_FLOAT, ...; see ``ELEMENT_TYPES``),
- ``ElementNumberOfChannels`` (a last axis of that length when above 1; a complex image is
  two channels, real and imaginary),
- ``BinaryDataByteOrderMSB`` / ``ElementByteOrderMSB`` (True: big-endian),
- ``CompressedData`` (True: the data are a zlib stream, as ITK writes .zraw files).

Anything else (lists of slice files, ASCII data, header offsets) is refused with a DataError:
the corpus needs only the few ITK example files.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.atomic import atomic_path

ELEMENT_TYPES = {
    "MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
    "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG": "i8", "MET_ULONG": "u8",
    "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}
_TRUE = {"true", "1", "yes"}


def _header(data: bytes, path: Path) -> tuple[dict, int]:
    """The header keys and the offset of the first byte after the ElementDataFile line."""
    header, offset = {}, 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end
        line = data[offset:end].decode("latin-1").strip()
        offset = end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DataError(f"{path}: not a MetaImage header line: {line[:40]!r}")
        header[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            return header, offset
    raise DataError(f"{path}: MetaImage header without ElementDataFile")


def read_metaimage(path) -> tuple[np.ndarray, dict]:
    """The array of a MetaImage file and its header (a dict of strings).

    Shape: DimSize reversed ((z, y, x) for 3D), with a last channel axis when
    ElementNumberOfChannels > 1. The element type is kept (uint8 stays uint8).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    header, offset = _header(data, path)
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        kind = ELEMENT_TYPES[header["ElementType"]]
    except KeyError as missing:
        raise DataError(f"{path}: MetaImage header lacks or has an unknown "
                        f"{missing.args[0]}") from None
    channels = int(header.get("ElementNumberOfChannels", "1"))
    big = any(header.get(k, "False").lower() in _TRUE
              for k in ("BinaryDataByteOrderMSB", "ElementByteOrderMSB"))
    if header.get("BinaryData", "True").lower() not in _TRUE:
        raise DataError(f"{path}: ASCII MetaImage data are not supported")
    source = header["ElementDataFile"]
    if source == "LOCAL":
        payload = data[offset:]
    elif source.upper().startswith("LIST") or "%" in source:
        raise DataError(f"{path}: MetaImage slice lists ({source}) are not supported")
    else:
        try:
            payload = (path.parent / source).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: its data file {path.parent / source} is missing") from None
    if header.get("CompressedData", "False").lower() in _TRUE:
        try:
            payload = zlib.decompress(payload, zlib.MAX_WBITS | 32)   # zlib or gzip stream
        except zlib.error as err:
            raise DataError(f"{path}: compressed data do not inflate ({err})") from None
    dtype = np.dtype(kind).newbyteorder(">" if big else "<")
    shape = tuple(reversed(dims)) + ((channels,) if channels > 1 else ())
    count = int(np.prod(shape))
    if len(payload) < count * dtype.itemsize:
        raise DataError(f"{path}: {len(payload)} bytes of data, expected "
                        f"{count * dtype.itemsize} for {header['DimSize']} x {channels} "
                        f"{header['ElementType']}")
    array = np.frombuffer(payload, dtype=dtype, count=count).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True), header


def write_metaimage(path, array, channels: bool = False, compressed: bool = False,
                    data_file: str | None = None) -> Path:
    """Write ``array`` as a MetaImage (little-endian), atomically.

    ``channels``: the last axis holds the channels. ``data_file``: the name of a separate data
    file beside ``path`` (the .mhd form), else the data follow the header (LOCAL, .mha).
    ``compressed``: zlib-compress the data (CompressedData = True).
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    kinds = {v: k for k, v in ELEMENT_TYPES.items() if k not in ("MET_LONG_LONG",
                                                                   "MET_ULONG_LONG")}
    code = array.dtype.newbyteorder("=").str[1:]
    if code not in kinds:
        raise DataError(f"{path}: no MetaImage element type for {array.dtype}")
    dims = array.shape[:-1] if channels else array.shape
    payload = array.astype(array.dtype.newbyteorder("<")).tobytes()
    if compressed:
        payload = zlib.compress(payload)
    lines = ["ObjectType = Image", f"NDims = {len(dims)}", "BinaryData = True",
             "BinaryDataByteOrderMSB = False", f"CompressedData = {compressed}"]
    if compressed:
        lines.append(f"CompressedDataSize = {len(payload)}")
    lines += [f"DimSize = {' '.join(str(n) for n in reversed(dims))}",
              f"ElementType = {kinds[code]}"]
    if channels:
        lines.append(f"ElementNumberOfChannels = {array.shape[-1]}")
    lines.append(f"ElementDataFile = {data_file or 'LOCAL'}")
    text = ("\n".join(lines) + "\n").encode("latin-1")
    if data_file:
        with atomic_path(path.parent / data_file) as tmp:
            tmp.write_bytes(payload)
        with atomic_path(path) as tmp:
            tmp.write_bytes(text)
    else:
        with atomic_path(path) as tmp:
            tmp.write_bytes(text + payload)
    return path
