"""What a command expects of an array: default dataset names, axes and dtype."""

from __future__ import annotations

from dataclasses import dataclass

from .layout import COIL, PHS1, READ


@dataclass(frozen=True)
class Role:
    name: str                     # how messages call it: "k-space", "mask", ...
    datasets: tuple[str, ...]     # default h5 dataset names, in order of preference
    base: tuple[int, ...]         # BART dims of the trailing axes, e.g. (COIL, READ, PHS1)
    complex_only: bool = False    # k-space and maps must be complex
    real_only: bool = False       # masks are real
    max_extra: int = 1            # leading axes allowed beyond base (slices; sets for maps)
    min_rank: int | None = None   # lowest rank accepted (masks may be 1D)

    @property
    def output_dataset(self) -> str:
        return self.datasets[0]


KSPACE = Role("k-space", ("kspace",), (COIL, READ, PHS1), complex_only=True)
# --single-coil: (H, W), (slices, H, W) or (slices, 1, H, W)
SINGLE_COIL_KSPACE = Role("single-coil k-space", ("kspace",), (COIL, READ, PHS1),
                          complex_only=True, min_rank=2)
MAPS = Role("sensitivity maps", ("maps",), (COIL, READ, PHS1), complex_only=True, max_extra=2)
COIL_IMAGES = Role("coil images", ("coil_images", "kspace"), (COIL, READ, PHS1))
IMAGE = Role("image", ("reconstruction", "image", "reconstruction_rss"), (READ, PHS1))
REFERENCE = Role("reference image", ("reconstruction_rss", "image", "reconstruction"),
                 (READ, PHS1))
EIGENVALUES = Role("eigenvalue map", ("eigenvalues",), (READ, PHS1), max_extra=2)
MASK = Role("mask", ("mask",), (READ, PHS1), real_only=True, min_rank=1)
ANY = Role("array", ("reconstruction", "image", "reconstruction_rss", "maps", "mask", "kspace"),
           (READ, PHS1),
           max_extra=3)
