"""BART .cfl/.hdr pairs: raw complex64 in column-major order with a text header."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .atomic import atomic_path
from .layout import BART_DIM_NAMES, BART_DIMS


def read_header(ref) -> list[int]:
    hdr = ref.path.with_suffix(".hdr")
    if not hdr.exists():
        raise DataError(f"{ref}: no such BART file ({hdr} is missing)")
    lines = hdr.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("# Dimensions") and i + 1 < len(lines):
            try:
                dims = [int(v) for v in lines[i + 1].split()]
            except ValueError:
                break
            if not dims or any(d < 1 for d in dims):
                break
            return (dims + [1] * BART_DIMS)[:max(BART_DIMS, len(dims))]
    raise DataError(f"{hdr}: not a BART header (no valid '# Dimensions' line)")


def read_values(ref, dims) -> np.ndarray:
    """The prod(dims) complex64 values of the .cfl file, flat, in the file's (column-major)
    order; DataError when the file is missing or shorter."""
    count = int(np.prod(dims))
    cfl = ref.path.with_suffix(".cfl")
    if not cfl.exists():
        raise DataError(f"{ref}: no such BART file ({cfl} is missing)")
    data = np.fromfile(cfl, dtype=np.complex64, count=count)
    if data.size != count:
        raise DataError(f"{cfl}: truncated: header says {count} values, file holds {data.size}")
    return data


def read_cfl(ref, keep_layout) -> tuple[np.ndarray, tuple[int, ...]]:
    """Read a BART array; return it in mrgen axis order and the layout it has.

    ``keep_layout`` names the BART dims the caller's role always has (e.g. COIL, READ, PHS1);
    other dims are kept when larger than 1, and a large dim no mrgen layout uses is an error.
    """
    from .layout import MRGEN_ORDER, layout_from_bart_dims

    dims = read_header(ref)
    for d, size in enumerate(dims):
        if size > 1 and d not in MRGEN_ORDER:
            name = BART_DIM_NAMES[d] if d < BART_DIMS else str(d)
            raise DataError(f"{ref}: BART dimension {d} ({name}) has size {size}; mrgen reads "
                            "only READ, PHS1, COIL, MAPS and SLICE")
    data = read_values(ref, dims).reshape(dims, order="F")
    layout = layout_from_bart_dims(dims, keep_layout)
    dropped = tuple(d for d in range(len(dims)) if d not in layout)
    array = np.squeeze(data, axis=dropped) if dropped else data
    # The remaining axes are in increasing BART order; reorder them to mrgen's order.
    present = sorted(layout)
    array = np.transpose(array, [present.index(d) for d in layout])
    return np.ascontiguousarray(array), layout


def write_cfl(ref, array: np.ndarray, layout, command: str | None, creator: str) -> None:
    dims = [1] * BART_DIMS
    for axis, d in enumerate(layout):
        dims[d] = array.shape[axis]
    order = np.argsort(layout)
    # Axes sorted by BART dim, first one fastest: exactly BART's column-major layout.
    data = np.transpose(array.astype(np.complex64), order).ravel(order="F")
    header = "# Dimensions\n" + " ".join(map(str, dims)) + "\n"
    if command:
        header += f"# Command\n{command}\n"
    header += f"# Creator\n{creator}\n"
    cfl, hdr = ref.path.with_suffix(".cfl"), ref.path.with_suffix(".hdr")
    # Data first, header last: a reader never finds a header describing missing data.
    with atomic_path(cfl) as tmp:
        data.tofile(tmp)
    with atomic_path(hdr) as tmp:
        tmp.write_text(header)
