"""Axis layouts: how mrgen's (slices, sets, coils, H, W) map onto BART's 16 dimensions.

mrgen keeps arrays C-ordered with the image axes last, (coils, H, W) for k-space. BART keeps
16 column-major dimensions: READ=0, PHS1=1, PHS2=2, COIL=3, MAPS=4, ..., SLICE=13. H is
BART's READ and W (the undersampled, phase-encoding axis) is PHS1, so (coils, H, W) is BART
(H, W, 1, coils). A layout below lists, for each mrgen axis, the BART dimension it maps to.
"""

from __future__ import annotations

BART_DIMS = 16
READ, PHS1, PHS2, COIL, MAPS, SLICE = 0, 1, 2, 3, 4, 13
BART_DIM_NAMES = ["READ", "PHS1", "PHS2", "COIL", "MAPS", "TE", "COEFF", "COEFF2", "ITER",
                  "CSHIFT", "TIME", "TIME2", "LEVEL", "SLICE", "AVG", "BATCH"]

# The order in which mrgen axes appear, outermost first.
MRGEN_ORDER = (SLICE, MAPS, COIL, READ, PHS1)


def layout_for_shape(ndim: int, base: tuple[int, ...]) -> tuple[int, ...]:
    """Layout of an array of rank ``ndim`` whose trailing axes follow ``base``.

    Missing outer axes are filled from the outside in with the dims of MRGEN_ORDER that are
    not in ``base`` (slices first), so an extra leading axis is the slice axis.
    """
    extra = ndim - len(base)
    outer = [d for d in MRGEN_ORDER if d not in base]
    if extra < 0 or extra > len(outer):
        raise ValueError(f"rank {ndim} does not fit layout {base}")
    # A single extra axis is always slices; two extra are (slices, maps) for a coil layout.
    return tuple(outer[:extra]) + tuple(base)


def layout_from_bart_dims(dims, keep: tuple[int, ...]) -> tuple[int, ...]:
    """mrgen layout for a BART array: the ``keep`` dims plus any outer dim that is not 1."""
    used = [d for d in MRGEN_ORDER if d in keep or dims[d] > 1]
    return tuple(used)
