"""Whole data sets: a reconstruction command over many inputs with ``--out-dir DIR``.

``@command`` gives every command whose positional arguments are one input and one output
(zf, espirit, ipalm, convdecoder, deepen, djsense) the options ``--out-dir`` and
``--fail-fast``; with ``--out-dir`` every positional argument is an input: a file, a glob or
a folder (its array files). Each input gets one output in DIR with the input's name (the
input's format, or --format's), an existing output is skipped (a killed run restarts where
it stopped), a failing input is reported in one line and the others go on (unless
--fail-fast), and the totals close the run. Under ``torchrun`` the inputs are dealt to the
ranks in turn (one GPU each), so no two ranks write one file; rank 0 reports the totals of
the whole set. A line per input counts the files of the whole set ([3/40]) and the input's
slices; the totals count slices too. The command body runs unchanged, once per input.
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
class Job:
    source: str
    target: str
    number: int = 0    # its place in the whole set (1-based), also under torchrun


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
        name = ref.path.name if ref.path is not None else "stdin"
        for suffix in (".nii.gz",) + tuple(s for s in SUFFIX_OF.values() if s) + (".hdf5",
                                                                                  ".hdf"):
            if name.lower().endswith(suffix):
                name = name[:-len(suffix)]
                break
        target = str(Path(out_dir) / (name + SUFFIX_OF[output_format or ref.format]))
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
    return shape[0] if len(shape) == 4 else 1


def run_jobs(jobs, total: int, run_one, fail_fast: bool, output_format, log,
             rank_label="") -> Totals:
    """Run ``run_one(job)`` for each job not yet done; a failure is one line of Totals.
    ``total``: the jobs of the whole set (the lines count files of the whole set)."""
    from mrgen.errors import MrgenError

    totals = Totals()
    for job in jobs:
        where = f"{rank_label}[{job.number}/{total}] {job.source}"
        if exists(job.target, output_format):
            totals.skipped += 1
            log(f"{where}: skipped ({job.target} exists)")
            continue
        slices = slice_count(job.source)
        log(f"{where} -> {job.target}" + (f" ({slices} slices)" if slices > 1 else ""))
        try:
            run_one(job)
        except MrgenError as err:
            reason = str(err)
        except MemoryError:
            reason = "out of memory"
        except Exception as err:   # noqa: BLE001 - one file's failure must not stop the set
            reason = f"{err.__class__.__name__}: {err}"
        else:
            totals.done += 1
            totals.slices += slices
            continue
        reason = " ".join(reason.split())
        totals.failed.append((job.source, reason))
        log(f"{where}: failed: {_naming(job.source, reason)}")
        if fail_fast:
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
