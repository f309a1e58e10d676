"""Whole data sets: a reconstruction command over many inputs with ``--out-dir DIR``.

``@command`` gives every command whose positional arguments are one input, then optionally
further inputs, then one output (zf, espirit, ipalm, convdecoder, deepen, djsense, mrd;
sense KSPACE MAPS OUT; langevin's list KSPACE OUT) the options ``--out-dir`` and
``--fail-fast`` (``Shape``). With ``--out-dir`` the positional arguments are the inputs
(files, globs, folders of array files), the last ones the further inputs (sense's MAPS).
A further input, positional or an option (--mask, --init, ...), is one file shared by every
input, or a folder or glob whose files are matched to the inputs by name (maps/a.npy for
set/a.npy; ``companions``). Each input gets one output in DIR with the input's name (the
input's format, or --format's), an existing output is skipped (a killed run restarts where
it stopped), a failing input is reported in one line and the others go on (unless
--fail-fast), and the totals close the run. A line per input counts the files and the slices
of the whole set ([3/40] ... slices 5-6 of 120); the totals count slices too. The command
body runs unchanged, once per input.

Under ``torchrun`` (one GPU per rank) no two ranks write one file. With at least as many
inputs as ranks the inputs are dealt to the ranks in turn. With fewer (one input without
--out-dir included) the inputs are done one after the other, each input's slices split into
one contiguous range per rank (``--slice A:B`` of the body): each rank writes its range to a
temporary part (.OUT.partR-ID.npy beside the output), and rank 0 joins the parts along the
slice axis and writes the output atomically, as one process would have (``split_job``). An
input without a slice axis, or a command asked for a further output (--var, --maps-out, ...),
is not split: one rank does it. Rank 0 reports the totals of the whole set.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

# Input formats a folder contributes, and the output name's suffix for each format.
SUFFIX_OF = {"npy": ".npy", "h5": ".h5", "cfl": "", "nifti": ".nii.gz", "dicom": ".dcm"}
_FOLDER_SUFFIXES = (".npy", ".h5", ".hdf5", ".hdf", ".cfl")


@dataclass
class Shape:
    """What a data-set command's positional arguments are."""
    source: str                 # the parameter of the input
    target: str                 # of the output
    companions: tuple = ()      # positional inputs between them (sense's MAPS)
    listed: bool = False        # one list parameter [INPUT...] OUT (langevin)
    sliced: bool = False        # the command takes --slice (its inputs' slices can be split)

    def arguments(self, kwargs, job) -> dict:
        """The body's arguments for ``job``."""
        if self.listed:
            return {**kwargs, self.source: [job.source, job.target], **job.companions}
        return {**kwargs, self.source: job.source, self.target: job.target, **job.companions}


@dataclass
class Job:
    source: str
    target: str
    number: int = 0    # its place in the whole set (1-based), also under torchrun
    companions: dict = field(default_factory=dict)   # parameter -> its file for this input
    missing: str = ""  # why a further input has no file for this input
    slices: int = 0    # the input's slices (0: not known)
    before: int = 0    # slices of the inputs before it in the set


@dataclass
class Totals:
    done: int = 0
    slices: int = 0       # slices of the inputs done
    skipped: int = 0
    failed: list = field(default_factory=list)   # (input, one-line reason)

    def add(self, other: "Totals") -> None:
        self.done += other.done
        self.slices += other.slices
        self.skipped += other.skipped
        self.failed += other.failed


def expand(names) -> list[str]:
    """The input files of the arguments: a folder's array files (sorted, hidden files and
    BART headers left out), a glob's matches (sorted), or the name itself."""
    from mrgen.errors import UsageError

    files = []
    for name in names:
        if name == "-":
            raise UsageError("-: standard input cannot be part of a data set (--out-dir)")
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file()
                           and not p.name.startswith(".")
                           and p.name.lower().endswith(_FOLDER_SUFFIXES))
            files += [str(p.with_suffix("")) if p.suffix == ".cfl" else str(p) for p in found]
        elif not path.exists() and glob.has_magic(name):
            matches = sorted(glob.glob(name))
            if not matches:
                raise UsageError(f"{name}: matches no file")
            files += matches
        else:
            files.append(name)
    if not files:
        raise UsageError(f"{' '.join(names)}: no input files")
    return list(dict.fromkeys(files))   # once each, in order


def plan(sources, out_dir: str, output_format: str | None) -> list[Job]:
    """One output in ``out_dir`` per input, named after it; refuses two inputs of one name
    and an output that would replace its input."""
    from mrgen.errors import UsageError
    from mrgen.io.refs import parse_ref

    jobs, seen = [], {}
    for source in sources:
        ref = parse_ref(source)
        target = str(Path(out_dir) / (stem(source) + SUFFIX_OF[output_format or ref.format]))
        if target in seen:
            raise UsageError(f"{source} and {seen[target]}: two inputs of one name would "
                             f"write one output {target}")
        seen[target] = source
        if {p.resolve() for p in parse_ref(target, output_format).files} & \
                {p.resolve() for p in ref.files}:
            raise UsageError(f"--out-dir {out_dir}: {target} would overwrite its input (give "
                             "another folder or --format)")
        jobs.append(Job(source, target, len(jobs) + 1))
    return jobs


def stem(source: str) -> str:
    """An input's name without its format's suffix (a.npy, a.h5, a.nii.gz, BART a: a)."""
    from mrgen.io.refs import parse_ref

    ref = parse_ref(source)
    name = ref.path.name if ref.path is not None else "stdin"
    for suffix in (".nii.gz",) + tuple(s for s in SUFFIX_OF.values() if s) + (".hdf5", ".hdf"):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def per_input(value) -> bool:
    """A further input given as a folder or a glob (matched to the inputs by name) rather
    than one file for all."""
    return isinstance(value, str) and value != "-" and (
        Path(value).is_dir() or (not Path(value).exists() and glob.has_magic(value)))


def companions(jobs, values: dict, labels: dict) -> None:
    """Give each job its further inputs: ``values`` maps a parameter to its argument, a
    folder or glob (``per_input``) whose file of the input's name is that input's; a job
    whose file is missing fails with ``missing``."""
    for name, value in values.items():
        files = {}
        for found in expand([value]):
            files.setdefault(stem(found), found)
        for job in jobs:
            match = files.get(stem(job.source))
            if match is None:
                job.missing = job.missing or (f"{labels[name]} {value}: no file named "
                                              f"{stem(job.source)} for {job.source}")
            job.companions[name] = match


def count_slices(jobs) -> None:
    """Each job's slices and the slices before it in the set (for the progress lines)."""
    before = 0
    for job in jobs:
        job.slices, job.before = slice_count(job.source), before
        before += job.slices


def exists(target: str, output_format: str | None) -> bool:
    from mrgen.io.refs import parse_ref

    files = parse_ref(target, output_format).files
    return bool(files) and all(p.exists() for p in files)


def slice_count(source: str) -> int:
    """Slices of a k-space input (1 without a slice axis; 0 when its shape is not that of a
    k-space array, as for MRD raw data)."""
    from mrgen import io
    from mrgen.errors import MrgenError

    try:
        shape = io.read_shape(source, io.roles.KSPACE)
    except MrgenError:
        return 0
    return {4: shape[0], 3: 1}.get(len(shape), 0)


def place(job, set_slices: int) -> str:
    """Where the job's slices lie in the whole set: ' (slices 5-6 of 120)' (nothing for an
    input whose slices are not known before it is read, as MRD raw data)."""
    if not job.slices:
        return ""
    first, last = job.before + 1, job.before + job.slices
    return f" (slice{'s' if last > first else ''} {first}{f'-{last}' if last > first else ''}" \
        f" of {set_slices})"


def run_jobs(jobs, total: int, run_one, fail_fast: bool, output_format, log,
             rank_label="", set_slices: int = 0) -> Totals:
    """Run ``run_one(job)`` for each job not yet done; a failure is one line of Totals.
    ``total``: the jobs of the whole set, ``set_slices`` its slices (0: not known; the lines
    count files and slices of the whole set)."""
    totals = Totals()
    for job in jobs:
        where = f"{rank_label}[{job.number}/{total}] {job.source}"
        if exists(job.target, output_format):
            totals.skipped += 1
            log(f"{where}: skipped ({job.target} exists)")
            continue
        slices = job.slices
        log(f"{where} -> {job.target}{place(job, set_slices)}")
        failure = attempt(run_one, job)
        if failure is None:
            totals.done += 1
            totals.slices += slices
            continue
        totals.failed.append((job.source, failure[0]))
        log(f"{where}: failed: {_naming(job.source, failure[0])}")
        if fail_fast:
            break
    return totals


def attempt(run_one, job):
    """None when ``run_one(job)`` succeeds, else (its one-line reason, exit code)."""
    from mrgen.errors import DataError, MrgenError

    try:
        if job.missing:
            raise DataError(job.missing)
        run_one(job)
    except MrgenError as err:
        reason, code = str(err), err.exit_code
    except MemoryError:
        reason, code = "out of memory", 1
    except Exception as err:   # noqa: BLE001 - one file's failure must not stop the set
        reason, code = f"{err.__class__.__name__}: {err}", 1
    else:
        return None
    return " ".join(reason.split()), code


def slice_ranges(count: int, chosen: str | None, world: int):
    """The --slice A:B of each rank for an input of ``count`` slices: the slices chosen
    (the user's --slice range, default all) cut into ``world`` contiguous ranges, the first
    ranks taking one more when they do not divide (None: nothing for that rank). None when
    the input is not split: fewer than two slices, or one slice chosen (--slice I)."""
    from mrgen.io.refs import parse_slices

    chosen = parse_slices(chosen)
    if count < 2 or isinstance(chosen, int):
        return None
    picked = range(count)[chosen] if chosen is not None else range(count)
    if len(picked) < 2:
        return None
    size, extra = divmod(len(picked), world)
    ranges, start = [], picked.start
    for rank in range(world):
        stop = start + size + (rank < extra)
        ranges.append(f"{start}:{stop}" if stop > start else None)
        start = stop
    return ranges


class Part:
    """Where the body's output goes on a rank that does a share of an input's slices: a
    temporary .npy beside the output; ``record`` keeps how the body saved it."""

    def __init__(self, target: str, rank: int):
        from mrgen.io.refs import parse_ref

        first = parse_ref(target).files[0] if parse_ref(target).files else Path(target)
        run = os.environ.get("TORCHELASTIC_RUN_ID", "") + os.environ.get("MASTER_PORT", "")
        self.path = first.parent / f".{first.name}.part{rank}-{run or os.getpid()}.npy"
        self.record = None

    def write(self, array, role, inputs, layout) -> None:
        from mrgen import io
        from mrgen.io.atomic import LIVE_TEMPORARIES

        LIVE_TEMPORARIES.add(str(self.path))   # removed if interrupted
        io.write_array(str(self.path), array, role, format="npy")
        self.record = (role, list(inputs), layout)


def split_job(job, ranges, context, run_part, assemble, redirect):
    """One input done by the ranks of ``context`` together, no two writing one file.

    Rank r runs ``run_part(job, ranges[r])`` (``ranges`` from ``slice_ranges``; with None,
    the rank that the job's number picks runs ``run_part(job, None)``: all of it); the body's
    save of the output goes to the rank's ``Part`` (``redirect``: the output's name -> its
    part, which ``cli.save`` honours). Rank 0 then joins the parts along the slice axis in
    rank order and ``assemble(job, array, record)`` writes the output; the parts are removed.
    Returns None on every rank when the output was written, else rank 0 gets the first
    failure (reason, exit code) and the other ranks (None, 1)."""
    import numpy as np

    from mrgen.io.atomic import LIVE_TEMPORARIES

    if ranges is None:
        ranges = [None] * context.world_size
        ranges[(job.number - 1) % context.world_size] = ""
    status = (None, None, None)   # failure, part file, record
    if ranges[context.rank] is not None:
        part = Part(job.target, context.rank)
        redirect[job.target] = part
        try:
            failure = attempt(lambda j: run_part(j, ranges[context.rank] or None), job)
        finally:
            del redirect[job.target]
        if failure is None and part.record is None:
            failure = (f"{job.target}: the command wrote no output", 1)
        status = (failure, str(part.path) if part.record else None, part.record)
    every = context.gather(status)
    outcome = None
    if context.is_main:
        failures = [s[0] for s in every if s[0] is not None]
        written = [s for s in every if s[1] is not None]
        try:
            if failures:
                outcome = failures[0]
            else:
                arrays = [np.load(s[1]) for s in written]
                array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
                outcome = attempt(lambda j: assemble(j, array, written[0][2]), job)
        finally:
            for _, path, _ in written:
                Path(path).unlink(missing_ok=True)
    LIVE_TEMPORARIES.discard(str(Part(job.target, context.rank).path))
    if context.any(outcome is not None):
        return outcome or (None, 1)
    return None


def run_split_jobs(jobs, total: int, context, run_part, assemble, redirect, splits,
                   fail_fast: bool, output_format, log, set_slices: int = 0) -> Totals:
    """``run_jobs`` for fewer inputs than ranks: the inputs one after the other, each done by
    all the ranks (``split_job``; ``splits(job)`` its ranges). Rank 0 keeps the totals."""
    totals = Totals()
    for job in jobs:
        where = f"[{job.number}/{total}] {job.source}"
        if exists(job.target, output_format):
            if context.is_main:
                totals.skipped += 1
                log(f"{where}: skipped ({job.target} exists)")
            continue
        ranges = None if job.missing else splits(job)
        if context.is_main:
            log(f"{where} -> {job.target}{place(job, set_slices)}" + (
                f", split across {sum(r is not None for r in ranges)} ranks" if ranges else ""))
        if ranges is not None and ranges[context.rank] is not None:
            log(f"rank {context.rank}: {job.source} slices {ranges[context.rank]}")
        failure = (job.missing, 2) if job.missing else \
            split_job(job, ranges, context, run_part, assemble, redirect)
        if context.is_main and failure is None:
            totals.done += 1
            totals.slices += job.slices
        elif context.is_main:
            totals.failed.append((job.source, failure[0]))
            log(f"{where}: failed: {_naming(job.source, failure[0])}")
        if failure is not None and fail_fast:
            break
    return totals


def summary(totals: Totals, count: int) -> list[str]:
    slices = f" ({totals.slices} slices)" if totals.slices else ""
    lines = [f"{count} input(s): {totals.done} done{slices}, {totals.skipped} skipped (output "
             f"exists), {len(totals.failed)} failed"]
    lines += [f"  failed: {_naming(source, reason)}" for source, reason in totals.failed]
    return lines


def _naming(source: str, reason: str) -> str:
    """The reason with the input's name in front (most messages name their file already)."""
    return reason if reason.startswith(source) else f"{source}: {reason}"


def my_share(jobs, rank: int, world: int):
    """The jobs of ``rank``: every world-th, starting at its rank."""
    return jobs[rank::world]


def under_torchrun() -> bool:
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def other_rank(log) -> bool:
    """A rank other than 0 under torchrun (known without starting a process group): a single
    input is rank 0's alone."""
    if under_torchrun() and os.environ.get("RANK", "0") != "0":
        log(f"rank {os.environ['RANK']}: one input runs on rank 0 (--out-dir shares a data set "
            "among the ranks)")
        return True
    return False


def distributed_context(device):
    """This process's share of a data set: all of it, or under torchrun its rank's (joining
    the process group; on CUDA the GPU of its local rank)."""
    if not under_torchrun():
        from types import SimpleNamespace

        return SimpleNamespace(rank=0, world_size=1, distributed=False, is_main=True,
                               device=device, gather=lambda obj: [obj], any=bool,
                               close=lambda: None)
    from mrgen.training.distributed import init_distributed

    return init_distributed(device)
