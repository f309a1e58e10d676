"""Building the corpus: a plan per split, then one slice at a time into OUT_DIR/<split>.h5.

Each output slice, from its source slice and from seeds that depend only on ``--seed`` and
the slice's key (source/subject/contrast/orientation/slice/copy), so the same seed gives
bit-identical files and a slice keeps its draws when other sources or --max-slices change:

1. the source image (``sources``; a synthesised contrast draws its sequence parameters),
   zero-padded to the target aspect and resampled with antialiasing onto H x W
   (``mrgen.phantom.pad_to_aspect`` / ``resample``), normalised to max |image| = 1;
2. train copies 1..K only: ``augment`` (geometry, intensity curve, bias field), max 1 again;
3. a smooth random phase of peak ``phase`` radians (``mrgen.phantom.smooth_phase``), unless
   the source is complex (its own phase is kept);
4. coil maps of random geometry (``maps``; one coil count per file, drawn from the range);
5. kspace = fft2c(maps * image) (centred, orthonormal), plus complex Gaussian noise of std
   sigma per sample (E|n|^2 = sigma^2) with sigma = mean signal / 10^(SNR/20), the mean
   signal being the mean |image| over the object (|image| >= 5 % of its maximum); with
   sum_c |s_c|^2 = 1 this is the noise std of the coil-combined image;
6. reconstruction_rss = sqrt(sum_c |ifft2c(kspace_c)|^2) of the noisy data, as fastMRI.

The file holds kspace (S, C, H, W), maps (S, C, H, W), image (S, H, W) complex64 and
reconstruction_rss (S, H, W) float32 with the attributes of ``mrgen phantom`` (max, norm,
acquisition, the settings, provenance); ``<split>-manifest.json`` describes every slice.
Both are written under temporary names, one slice at a time, and renamed at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from . import augment
from .sources import SOURCES, SPLITS, Entry, Source, split_sources

DEFAULT_SIZE = (256, 256)
OBJECT_LEVEL = 0.05
SPLIT_CHOICES = SPLITS + ("all",)


@dataclass
class CorpusOptions:
    size: tuple[int, int] = DEFAULT_SIZE
    coils: tuple[int, int] = (1, 1)          # a range A..B (inclusive); one count per file
    snr_db: float | None = 30.0              # None: no noise
    augment: int = 2                         # augmented copies per train slice
    phase: float = 1.0                       # peak of the smooth random phase (radians)
    sources: tuple[str, ...] | None = None   # None: every source of the split
    seed: int = 0
    max_slices: int | None = None            # per split, spread evenly over its slices


@dataclass(frozen=True)
class Item:
    """One output slice: a source slice and its copy (0: as it is; k >= 1: augmented)."""

    entry: Entry
    copy: int

    def key(self) -> str:
        return f"{self.entry.key()}/copy{self.copy}"


@dataclass
class SplitPlan:
    split: str
    sources: dict            # name -> Source
    items: list              # the Items to write, in order
    coils: int
    h5: Path
    manifest: Path
    available: int           # slices before --max-slices

    @property
    def count(self) -> int:
        return len(self.items)


@dataclass
class SplitSummary:
    split: str
    path: Path
    slices: int
    size: tuple[int, int]
    coils: int
    snr_db: float | None
    by_source: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.by_source.items())
        snr = "no noise" if self.snr_db is None else f"SNR {self.snr_db:g} dB"
        return (f"dataset {self.split}: {self.slices} slices of {self.size[0]} x "
                f"{self.size[1]}, {self.coils} coil{'s' if self.coils > 1 else ''}, {snr} "
                f"({counts}) -> {self.path} in {self.seconds:.1f} s")


# ---------------------------------------------------------------------------------------------
# Options


def parse_coils(text) -> tuple[int, int]:
    """``--coils`` C or A:B (1 <= A <= B)."""
    try:
        parts = [int(p) for p in str(text).split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise UsageError(f"--coils {text}: expected a count C or a range A:B with "
                         f"1 <= A <= B")
    return parts[0], parts[1]


def parse_sources(text: str | None) -> tuple[str, ...] | None:
    """``--sources`` a,b,c: names of ``SOURCES``."""
    if text is None or not text.strip():
        return None
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise UsageError(f"--sources {text}: unknown source {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(SOURCES)}")
    return names


def parse_snr(text) -> float | None:
    """``--snr`` DB, or inf for no noise."""
    if text is None or str(text).strip().lower() in ("inf", "+inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--snr {text}: expected a number of dB or inf") from None
    if not math.isfinite(value):
        raise UsageError(f"--snr {text}: expected a finite number of dB or inf")
    return value


def check_options(options: CorpusOptions) -> None:
    h, w = options.size
    if h < 2 or w < 2:
        raise UsageError(f"--size {h} {w}: needs at least 2 x 2 pixels")
    if options.augment < 0:
        raise UsageError(f"--augment {options.augment}: must be at least 0")
    if not (math.isfinite(options.phase) and options.phase >= 0):
        raise UsageError(f"--phase {options.phase}: must be a finite value >= 0")
    if options.max_slices is not None and options.max_slices < 1:
        raise UsageError(f"--max-slices {options.max_slices}: must be at least 1")
    parse_coils(f"{options.coils[0]}:{options.coils[1]}")


# ---------------------------------------------------------------------------------------------
# Planning


def _check_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")
    folder = out_dir if out_dir.exists() else out_dir.parent
    if not folder.is_dir():
        raise UsageError(f"{out_dir}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{out_dir}: cannot write in folder {folder} (permission denied)")


def _spread(items: list, count: int | None) -> list:
    """``count`` items spread evenly over the list (ends included), or all of them."""
    if count is None or count >= len(items):
        return items
    picks = np.unique(np.floor(np.linspace(0, len(items) - 1, count) + 0.5).astype(int))
    return [items[i] for i in picks]


def draw_coil_count(options: CorpusOptions, split: str) -> int:
    lo, hi = options.coils
    rng = np.random.default_rng([options.seed, zlib.crc32(f"coils/{split}".encode())])
    return int(rng.integers(lo, hi + 1))


def plan_corpus(out_dir, split: str, options: CorpusOptions) -> list[SplitPlan]:
    """What to write for ``split`` (or all three): sources checked (a missing package is a
    DataError naming it), entries listed, slices chosen; nothing is written yet."""
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split {split}: expected one of {' | '.join(SPLIT_CHOICES)}")
    check_options(options)
    out_dir = Path(out_dir)
    _check_folder(out_dir)
    splits = SPLITS if split == "all" else (split,)
    wanted = options.sources
    for name in wanted or ():
        if SOURCES[name].split not in splits:
            raise UsageError(f"--sources {name}: a source of the {SOURCES[name].split} "
                             f"split, not of --split {split}")
    chosen = {s: [n for n in split_sources(s) if wanted is None or n in wanted]
              for s in splits}
    sources = {n: SOURCES[n]() for names in chosen.values() for n in names}
    for source in sources.values():
        source.check()
    plans = []
    for s, names in chosen.items():
        if not names:
            continue
        copies = 1 + (options.augment if s == "train" else 0)
        items = [Item(entry, copy) for n in names for entry in sources[n].entries()
                 for copy in range(copies)]
        plans.append(SplitPlan(s, {n: sources[n] for n in names},
                               _spread(items, options.max_slices),
                               draw_coil_count(options, s), out_dir / f"{s}.h5",
                               out_dir / f"{s}-manifest.json", len(items)))
    inputs = {p.resolve() for source in sources.values() for p in source.files()}
    for plan in plans:
        for target in (plan.h5, plan.manifest):
            if target.resolve() in inputs:
                raise UsageError(f"{target}: output would overwrite an input")
    return plans


# ---------------------------------------------------------------------------------------------
# One slice


def place(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Zero-pad to the aspect of ``size``, resample onto it with antialiasing, max |.| = 1."""
    from ..phantom import pad_to_aspect, resample

    dtype = np.complex128 if np.iscomplexobj(image) else np.float64
    placed = resample(pad_to_aspect(np.asarray(image, dtype=dtype), size), size)
    peak = np.abs(placed).max()
    if not peak > 0:
        raise DataError("a source slice is zero everywhere")
    return placed / peak


def noise_sigma(image: np.ndarray, snr_db: float | None) -> float:
    """sigma = mean |image| over the object / 10^(SNR/20); 0 without noise."""
    if snr_db is None:
        return 0.0
    magnitude = np.abs(image)
    signal = float(magnitude[magnitude >= OBJECT_LEVEL * magnitude.max()].mean())
    return signal / 10.0 ** (snr_db / 20.0)


def make_slice(source: Source, item: Item, options: CorpusOptions, coils: int):
    """The arrays of one output slice and its manifest record (without its index)."""
    import torch

    from ..fft import fft2c, ifft2c
    from ..phantom import smooth_phase
    from .maps import random_coil_maps

    size = tuple(int(n) for n in options.size)
    slice_seed = zlib.crc32(item.key().encode())
    rngs = [np.random.default_rng(s) for s in
            np.random.SeedSequence([options.seed, slice_seed]).spawn(5)]
    raw, sequence = source.load(item.entry, rngs[0])
    own_phase = np.iscomplexobj(raw)
    image = place(raw, size)
    drawn = None
    if item.copy > 0:
        drawn = augment.draw(rngs[1], size)
        image = augment.apply(image, drawn)
    if not own_phase and options.phase > 0:
        image = image * np.exp(1j * smooth_phase(size, options.phase, rngs[2]))
    image = np.asarray(image, dtype=np.complex128)
    maps, geometry = random_coil_maps(coils, size, rngs[3])
    kspace = fft2c(torch.from_numpy(maps * image)).numpy().astype(np.complex64)
    sigma = noise_sigma(image, options.snr_db)
    if sigma > 0:
        draws = rngs[4].standard_normal((2, coils, *size))
        kspace += ((draws[0] + 1j * draws[1]) * (sigma / math.sqrt(2))).astype(np.complex64)
    rss = torch.sqrt(torch.sum(ifft2c(torch.from_numpy(kspace)).abs() ** 2, dim=0))
    entry = item.entry
    record = {"source": entry.source, "subject": entry.subject, "contrast": entry.contrast,
              "orientation": entry.orientation, "slice": entry.slice, "path": entry.path,
              "anatomy": entry.anatomy, "copy": item.copy, "sequence": sequence or None,
              "augmentation": drawn,
              "phase": "own" if own_phase else float(options.phase),
              "coils": coils, "coil_geometry": geometry or None, "noise_sigma": sigma,
              "seed": int(options.seed), "slice_seed": int(slice_seed)}
    arrays = {"kspace": kspace, "image": image.astype(np.complex64),
              "maps": maps.astype(np.complex64), "reconstruction_rss": rss.numpy()}
    return arrays, record


# ---------------------------------------------------------------------------------------------
# One split file


@contextlib.contextmanager
def single_threaded():
    """One thread for torch and for the BLAS under numpy while slices are made, then the
    settings as they were. The work per slice is small (2D FFTs, small matrix products):
    threads only add overhead, which on a busy 2-core machine was 11 times the work
    (84 ms a slice at 128 x 128 against 7.7 ms). threadpoolctl (which scikit-learn, and so
    nilearn, brings) limits the BLAS when it is installed."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limits = contextlib.nullcontext()
        else:
            limits = threadpool_limits(1)
        with limits:
            yield
    finally:
        torch.set_num_threads(threads)


def write_split(plan: SplitPlan, options: CorpusOptions, command: str | None = None,
                progress=None) -> SplitSummary:
    """Write ``plan.h5`` and ``plan.manifest`` one slice at a time (``progress(1)`` after
    each), under temporary names renamed at the end."""
    import h5py

    from .. import __version__
    from ..io.atomic import atomic_path

    started = time.monotonic()
    h, w = (int(n) for n in options.size)
    count, coils = plan.count, plan.coils
    shapes = {"kspace": ((count, coils, h, w), np.complex64),
              "maps": ((count, coils, h, w), np.complex64),
              "image": ((count, h, w), np.complex64),
              "reconstruction_rss": ((count, h, w), np.float32)}
    plan.h5.parent.mkdir(exist_ok=True)
    records, peak, squares = [], 0.0, 0.0
    by_source = {name: 0 for name in plan.sources}
    with atomic_path(plan.h5) as tmp_h5, atomic_path(plan.manifest) as tmp_manifest, \
            single_threaded():
        with h5py.File(tmp_h5, "w") as handle:
            sets = {name: handle.create_dataset(name, shape, dtype, chunks=(1, *shape[1:]))
                    for name, (shape, dtype) in shapes.items()}
            for index, item in enumerate(plan.items):
                arrays, record = make_slice(plan.sources[item.entry.source], item, options,
                                            coils)
                for name, dataset in sets.items():
                    dataset[index] = arrays[name]
                rss = arrays["reconstruction_rss"].astype(np.float64)
                peak, squares = max(peak, float(rss.max())), squares + float(np.sum(rss ** 2))
                records.append({"index": index, "split": plan.split, **record})
                by_source[item.entry.source] += 1
                if progress is not None:
                    progress(1)
            settings = file_settings(plan, options)
            handle.attrs.update({
                "max": peak, "norm": math.sqrt(squares),
                "acquisition": f"mrgen dataset {plan.split}", "mrgen_version": __version__,
                **({"mrgen_command": command} if command else {}),
                **{k: json.dumps(v) if isinstance(v, (dict, list)) else v
                   for k, v in settings.items() if v is not None}})
        manifest = {**settings, "mrgen_version": __version__, "command": command,
                    "entries": records}
        tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    return SplitSummary(plan.split, plan.h5, count, (h, w), coils, options.snr_db, by_source,
                        time.monotonic() - started)


def file_settings(plan: SplitPlan, options: CorpusOptions) -> dict:
    """What a split file was made with (its .h5 attributes and the manifest's header)."""
    return {"split": plan.split, "file": plan.h5.name, "manifest": plan.manifest.name,
            "slices": plan.count, "slices_available": plan.available,
            "size": [int(n) for n in options.size], "coils": plan.coils,
            "coil_range": [int(n) for n in options.coils], "snr_db": options.snr_db,
            "augment": int(options.augment) if plan.split == "train" else 0,
            "phase_amplitude": float(options.phase), "seed": int(options.seed),
            "sources": {name: {"split": source.split,
                               "files": [str(p) for p in source.files()]}
                        for name, source in plan.sources.items()}}
