"""What every subcommand shares: global options, error reporting, loading and saving.

``@command`` wraps a subcommand so that it also accepts the global options after its name
(``mrgen zf --device cpu ...`` as well as ``mrgen --device cpu zf ...``), turns MrgenError
into one line on stderr with exit code 2 or 1, and shows a traceback only with ``--debug``.
"""

import functools
import inspect
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Annotated, Optional

import typer

from .checks import ArgumentChecks, check_target, labels


def _flags_take_no_value() -> None:
    """Show flags (--quiet, --magnitude, ...) without a type: typer's rich help labels them
    <bool>, as if they took a value."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "mrgen_flags", False):
        return

    def display_type_rich(self, ctx):
        if self.is_flag and not self.count:
            return None
        return shown(self, ctx)

    display_type_rich.mrgen_flags = True
    TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()


def _one_line_usage_errors() -> None:
    """Parse errors (a missing argument, an extra one, a word for a number) on one line of
    stderr like every other error, instead of typer's boxed panel."""
    from typer import rich_utils

    if getattr(rich_utils.rich_format_error, "mrgen_one_line", False):
        return

    def one_line(error) -> None:
        ctx = getattr(error, "ctx", None)
        path = ctx.command_path if ctx is not None else "mrgen"
        message = " ".join(error.format_message().split()).rstrip(".")
        if "extra argument" in message:
            message += "; flags such as --quiet take no value"
        print(f"{path}: {message} (see {path} -h)", file=sys.stderr)

    one_line.mrgen_one_line = True
    rich_utils.rich_format_error = one_line


_one_line_usage_errors()


@dataclass
class Settings:
    device: Optional[str] = None
    seed: int = 0
    quiet: bool = False
    debug: bool = False
    output_format: Optional[str] = None
    command_name: str = "mrgen"
    # output name -> commands.batch.Part: under torchrun this rank writes a share of the
    # output's slices to a part, which rank 0 joins (commands/batch.py)
    parts: dict = field(default_factory=dict)
    # the --slice of the running body: which slices of the inputs' geometry an output holds
    slices: Optional[str] = None


settings = Settings()

DeviceOption = Annotated[Optional[str], typer.Option(
    "--device", help="auto | cpu | cuda | cuda:N (default: $MRGEN_DEVICE, else auto: CUDA "
    "when available; for --traj data only where cufinufft loads).",
    rich_help_panel="Global options")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="Seed for every random choice (default 0): the same seed gives the same "
    "output on CPU.", rich_help_panel="Global options")]
QuietOption = Annotated[Optional[bool], typer.Option(
    "--quiet", help="No progress bars or reports on stderr.",
    rich_help_panel="Global options", show_default=False)]
DebugOption = Annotated[Optional[bool], typer.Option(
    "--debug", help="Show tracebacks for errors.", rich_help_panel="Global options",
    show_default=False)]
FormatOption = Annotated[Optional[str], typer.Option(
    "--format", metavar="FMT", help="Write the array outputs as npy | h5 | cfl | nifti | dicom "
    "whatever their names (default: by suffix; .nii/.nii.gz NIfTI, .dcm a DICOM folder).",
    rich_help_panel="Global options", show_default=False)]

OutDirOption = Annotated[Optional[str], typer.Option(
    "--out-dir", metavar="DIR", help="A whole data set: the positional arguments are the inputs "
    "(files, globs, folders of array files), each written to DIR under its own name (its "
    "format, or --format's); outputs that exist are skipped; totals at the end. A further "
    "input (a positional one such as sense's MAPS, given last, or an option such as --mask) is "
    "one file for all the inputs, or a folder or glob whose file of each input's name is "
    "that input's (maps/a.npy for kspace/a.npy). Under torchrun the inputs are dealt to the "
    "ranks; with fewer inputs than ranks each input's slices are split among them.",
    rich_help_panel="Data sets", show_default=False)]
FailFastOption = Annotated[bool, typer.Option(
    "--fail-fast", help="With --out-dir: stop at the first input that fails (default: report "
    "it and go on).", rich_help_panel="Data sets")]

# The options of commands that run over data sets (one input, one output; commands/batch.py).
_BATCH_PARAMS = [
    inspect.Parameter("out_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=OutDirOption),
    inspect.Parameter("fail_fast", inspect.Parameter.KEYWORD_ONLY, default=False,
                      annotation=FailFastOption),
    # typer passes its context here: the arguments beyond the two positional ones are in it
    inspect.Parameter("parser_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
]

_GLOBAL_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
    for name, hint in (("device", DeviceOption), ("seed", SeedOption), ("quiet", QuietOption),
                       ("debug", DebugOption), ("output_format", FormatOption))
]


def reset_global_options() -> None:
    """Back to the defaults: each invocation starts clean, also when run in-process."""
    vars(settings).update(vars(Settings()))


def apply_global_options(device=None, seed=None, quiet=None, debug=None,
                         output_format=None) -> None:
    """Record global options; a value given after the subcommand overrides one given before."""
    if device is not None:
        settings.device = device
    if seed is not None:
        settings.seed = seed
    if quiet is not None:
        settings.quiet = quiet
    if debug is not None:
        settings.debug = debug
    if output_format is not None:
        settings.output_format = output_format


app = typer.Typer(
    name="mrgen",
    help="Accelerated MRI reconstruction on PyTorch, in the style of BART: "
    "mrgen CMD \\[options] INPUT... OUTPUT. Arrays are .npy, .h5[:dataset] (fastMRI layout) or "
    "BART .cfl/.hdr names; '-' is a .npy stream on stdin/stdout. See man mrgen for the "
    "conventions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(name: str, summary: str, group: typer.Typer | None = None, inputs=(), outputs=(),
            files_out=(), models=(), ranges=None, choices=None, one_of=(), precheck=None,
            not_images=()):
    """Register ``func`` as subcommand ``name`` (of ``group``, default the top-level app) with
    the global options and error handling.

    The other arguments declare what the parameters are, so that every command's arguments are
    checked the same way before its body runs (and before torch is imported): ``inputs`` name
    array files that must exist, ``outputs`` array files to be written (known suffix, a
    writable folder, not an input; ``not_images`` those of them that hold maps, k-space or
    other arrays than images, refused as NIfTI or DICOM), ``files_out`` other written files
    (model, checkpoint, PNG, text), ``models`` a model file or shipped model name, ``ranges`` the accepted values of
    numeric options (``commands.options.Range``). A name may pick from a list argument:
    ``"files[1:-1]"``, ``"inputs[-1]"``; ``"init|ipalm|noise"`` lists words that are not files.
    ``choices`` the words a text option accepts; ``one_of`` lists groups of options of which
    exactly one must be given; ``precheck(arguments)``
    is a command's own cheap check, run first. Every float option is also checked to be finite.
    """

    prefix = f"{group.info.name} " if group is not None else ""
    checks = ArgumentChecks(inputs, outputs, files_out, models, ranges or {}, one_of, precheck,
                            choices or {}, not_images)

    def register(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            apply_global_options(**{p.name: kwargs.pop(p.name) for p in _GLOBAL_PARAMS})
            settings.command_name = f"mrgen {prefix}{name}"
            if batch is None:
                run_reporting_errors(_checked, checks, func, *args, **kwargs)
                return
            extra = list(kwargs.pop("parser_context").args)
            run_reporting_errors(_dispatch, checks, func, batch, kwargs.pop("out_dir"),
                                 kwargs.pop("fail_fast"), extra, kwargs)

        signature = inspect.signature(func)
        unknown = checks.names() - set(signature.parameters)
        if unknown:
            raise TypeError(f"@command({name!r}): no parameter {', '.join(sorted(unknown))}")
        batch = _batch_arguments(signature, checks)
        params = list(signature.parameters.values())
        if batch is not None:   # the output may be left out: --out-dir names the outputs
            params = [p.replace(default=None) if p.name == batch.target and not batch.listed
                      else p for p in params]
            params += _BATCH_PARAMS
        params += _GLOBAL_PARAMS
        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {**func.__annotations__,
                                   **{p.name: p.annotation for p in params}}
        del wrapper.__wrapped__  # typer must see the extended signature, not the original
        target = group or app
        target.command(name=name, help=_reflow(func.__doc__ or summary), short_help=summary,
                       context_settings={"allow_extra_args": batch is not None})(wrapper)
        checks.labels = labels(signature)
        checks.crop_default = _takes_crop(signature)
        func.checks = checks
        return func

    return register


def _batch_arguments(signature, checks):
    """The command's data-set shape (``commands.batch.Shape``) when its positional arguments
    are declared inputs then one declared output (zf's KSPACE OUT, sense's KSPACE MAPS OUT),
    or one list of inputs then the output (langevin's "inputs[:-1]" and "inputs[-1]"): it can
    run over a data set. None otherwise."""
    from typing import get_args

    from .batch import Shape

    positional = [name for name, p in signature.parameters.items()
                  if any(isinstance(m, typer.models.ArgumentInfo)
                         for m in get_args(p.annotation)[1:])]
    inputs = {p.name for p in checks.inputs if p.index is None}
    outputs = {p.name for p in checks.outputs if p.index is None}
    sliced = "slice_" in signature.parameters
    if len(positional) >= 2 and positional[-1] in outputs and \
            all(name in inputs for name in positional[:-1]):
        return Shape(positional[0], positional[-1], tuple(positional[1:-1]), sliced=sliced)
    listed_in = {p.name for p in checks.inputs if p.index == slice(None, -1)}
    listed_out = {p.name for p in checks.outputs if p.index == -1}
    if len(positional) == 1 and positional[0] in listed_in & listed_out:
        return Shape(positional[0], positional[0], listed=True, sliced=sliced)
    return None


def _dispatch(checks, func, shape, out_dir, fail_fast, extra, kwargs):
    """One input and one output as usual, or with --out-dir the whole data set."""
    from mrgen.errors import UsageError

    if out_dir is None:
        if extra:
            raise UsageError(f"unexpected extra argument {extra[0]} (several inputs need "
                             "--out-dir DIR); flags such as --quiet take no value")
        if not shape.listed and kwargs[shape.target] is None:
            raise UsageError(f"missing argument {checks.label(shape.target)} (or give "
                             "--out-dir DIR)")
        from . import batch as data_set

        if data_set.under_torchrun():
            return _run_single_split(checks, func, shape, kwargs)
        return _checked(checks, func, **kwargs)
    if shape.listed:
        names = list(kwargs[shape.source]) + extra
    else:
        names = [kwargs[shape.source]] + [kwargs[name] for name in shape.companions] + \
            [kwargs[shape.target]] * (kwargs[shape.target] is not None) + extra
    further = len(shape.companions)   # the last positional arguments are the further inputs
    if len(names) <= further:
        raise UsageError(f"--out-dir: give the inputs, then {checks.label(shape.companions[0])}")
    kwargs.update(zip(shape.companions, names[len(names) - further:]))
    _run_data_set(checks, func, shape, out_dir, fail_fast, names[:len(names) - further], kwargs)


def _split_outputs(checks, shape, kwargs):
    """The outputs given besides the data-set output (--var, --maps-out, ...)."""
    return [checks.label(p.name) for p in checks.outputs + checks.files_out
            if p.name != shape.target and p.values(kwargs)]


def _splits(checks, shape, kwargs, world):
    """``job -> its ranks' --slice ranges`` (batch.slice_ranges), None where it is not split:
    the command takes no --slice, or writes further outputs (not joined from parts)."""
    from . import batch as data_set

    if not shape.sliced or _split_outputs(checks, shape, kwargs):
        return lambda job: None
    return lambda job: data_set.slice_ranges(job.slices, kwargs.get("slice_"), world)


def _part_runner(checks, func, shape, kwargs):
    """``run_part(job, slice range)``: the body on the job with --slice set to the range
    (None: the user's --slice), its output going to this rank's part."""
    def run_part(job, slices):
        arguments = shape.arguments(kwargs, job)
        if slices is not None:
            arguments["slice_"] = slices
        _checked(checks, func, **arguments)
    return run_part


def _assembler(kwargs):
    """``assemble(job, array, record)``: the output of the joined parts, saved as the body
    saved its part; it holds the slices of the user's --slice (not of rank 0's part)."""
    def assemble(job, array, record):
        role, inputs, layout = record
        settings.slices = kwargs.get("slice_")
        save(job.target, array, role, inputs=inputs, layout=layout)
    return assemble


def _run_single_split(checks, func, shape, kwargs):
    """One input under torchrun: its slices split among the ranks, rank 0 writing the
    output; an input that is not split is rank 0's alone (the others leave at once)."""
    from mrgen.errors import DataError, RuntimeFailure

    from . import batch as data_set

    values = kwargs[shape.source] if shape.listed else [kwargs[shape.source],
                                                        kwargs[shape.target]]
    job = data_set.Job(str(values[0]), str(values[-1]), 1) if len(values) == 2 else None
    if job is not None:
        job.slices = data_set.slice_count(job.source)
    context = None
    if job is not None and shape.sliced and not _split_outputs(checks, shape, kwargs):
        checks.run(kwargs, settings.seed, settings.output_format)   # before any process starts
        world = int(os.environ["WORLD_SIZE"])
        ranges = data_set.slice_ranges(job.slices, kwargs.get("slice_"), world)
        if ranges is not None:
            context = data_set.distributed_context(device())
    if context is None:
        if data_set.other_rank(info):
            return None   # rank 0 alone writes it
        return _checked(checks, func, **kwargs)
    settings.device = str(context.device)   # this rank's GPU
    if ranges[context.rank] is not None:
        info(f"rank {context.rank}: {job.source} slices {ranges[context.rank]}")
    failure = data_set.split_job(job, ranges, context, _part_runner(checks, func, shape, kwargs),
                                 _assembler(kwargs), settings.parts)
    context.close()
    if failure is None:
        return None
    if not context.is_main:
        raise typer.Exit(1)   # rank 0 reports it
    raise (DataError if failure[1] == 2 else RuntimeFailure)(failure[0])


def _run_data_set(checks, func, shape, out_dir, fail_fast, names, kwargs):
    """Every input of ``names`` through the command body (see commands/batch.py)."""
    from pathlib import Path

    from mrgen.errors import DataError, UsageError

    from . import batch as data_set

    single = _split_outputs(checks, shape, kwargs)
    if single:
        raise UsageError(f"{single[0]}: one file for all inputs; not with --out-dir")
    jobs = data_set.plan(data_set.expand(names), out_dir, settings.output_format)
    further = {p.name: kwargs[p.name] for p in checks.inputs
               if p.index is None and p.name != shape.source and kwargs.get(p.name) not in p.words
               and data_set.per_input(kwargs.get(p.name))}
    data_set.companions(jobs, further, checks.labels)
    data_set.count_slices(jobs)
    set_slices = sum(job.slices for job in jobs)   # (0 for a file not read as k-space)
    folder = Path(out_dir)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:   # the options once, before any work (a bad input is reported with its file)
        checks.run(shape.arguments(kwargs, jobs[0]), settings.seed, settings.output_format)
    except DataError:
        pass
    except BaseException:
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    context = data_set.distributed_context(device())
    settings.device = str(context.device)   # under torchrun: this rank's GPU

    if len(jobs) < context.world_size:   # fewer inputs than ranks: split their slices
        totals = data_set.run_split_jobs(
            jobs, len(jobs), context, _part_runner(checks, func, shape, kwargs),
            _assembler(kwargs), settings.parts,
            _splits(checks, shape, kwargs, context.world_size), fail_fast,
            settings.output_format, info, set_slices)
    else:
        def run_one(job):
            _checked(checks, func, **shape.arguments(kwargs, job))

        share = data_set.my_share(jobs, context.rank, context.world_size)
        label = f"rank {context.rank}: " if context.distributed else ""
        totals = data_set.run_jobs(share, len(jobs), run_one, fail_fast, settings.output_format,
                                   info, label, set_slices)
    every = context.gather(totals)
    if context.is_main:
        for part in every[1:]:
            totals.add(part)
        for line in data_set.summary(totals, len(jobs)):
            info(f"{settings.command_name}: {line}" if not line.startswith(" ") else line)
    failed = context.any(bool(totals.failed))
    context.close()
    if failed:
        raise typer.Exit(1)


def _checked(checks, func, *args, **kwargs):
    checks.run(kwargs, settings.seed, settings.output_format)
    settings.slices = kwargs.get("slice_")
    if checks.crop_default:
        _default_crop(kwargs)
    return func(*args, **kwargs)


def _default_crop(kwargs) -> None:
    """--crop defaults to the recon matrix in the k-space file's ISMRMRD header (fastMRI
    files, ``mrgen mrd`` outputs), as the scanner would crop the image."""
    if kwargs.get("crop") is not None or not kwargs.get("kspace") or kwargs.get("traj"):
        return   # (non-Cartesian samples have no k-space grid to compare the matrix with)
    from mrgen.io.geometry import default_crop

    crop = default_crop(kwargs["kspace"])
    if crop is not None:
        info(f"--crop {crop[0]} {crop[1]}: the recon matrix of {kwargs['kspace']}'s ISMRMRD "
             "header (give --crop H W for another size)")
        kwargs["crop"] = crop


def _takes_crop(signature) -> bool:
    """The command has the shared --crop H W option (options.CropOption) and a k-space."""
    from typing import get_args

    crop = signature.parameters.get("crop")
    return crop is not None and "kspace" in signature.parameters and \
        get_args(crop.annotation)[:1] == (Optional[tuple[int, int]],)


def _reflow(doc: str) -> str:
    """Join the lines of each docstring paragraph: rich help keeps single newlines verbatim.

    Paragraphs whose lines start with '- ' stay lists, one item per line.
    """
    import textwrap

    paragraphs = textwrap.dedent(doc).strip().split("\n\n")
    out = []
    for para in paragraphs:
        lines = [line.strip() for line in para.strip().splitlines()]
        if any(line.startswith("- ") for line in lines):
            items, current = [], []
            for line in lines:
                if line.startswith("- ") and current:
                    items.append(" ".join(current))
                    current = []
                current.append(line)
            items.append(" ".join(current))
            out.append("\n".join(items))
        else:
            out.append(" ".join(lines))
    return "\n\n".join(out)


def run_reporting_errors(func, *args, **kwargs):
    from mrgen.errors import MrgenError

    try:
        func(*args, **kwargs)
    except MrgenError as err:
        fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        from .interrupt import report_interrupt

        report_interrupt(fail)  # one line "interrupted", exit 130 (see commands/interrupt.py)
    except MemoryError:
        fail("out of memory; try fewer slices (--slice) or a smaller problem", 1)
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except PermissionError as err:
        fail(f"{err.filename or 'a file'}: permission denied", 2)
    except OSError as err:
        if err.errno is not None and err.strerror:  # disk full, quota, read-only file system
            where = f"{err.filename}: " if err.filename else ""
            fail(f"{where}{err.strerror.lower()}", 1)
        fail(f"{err.__class__.__name__}: {err}", 1)
    except Exception as err:  # a bug or an unforeseen runtime failure
        if _is_cuda_oom(err):
            fail("out of GPU memory; try --device cpu or fewer slices (--slice)", 1)
        fail(f"{err.__class__.__name__}: {err}", 1)


def _is_cuda_oom(err) -> bool:
    return err.__class__.__name__ == "OutOfMemoryError"


def fail(message: str, code: int):
    if settings.debug and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    print(f"{settings.command_name}: {message}", file=sys.stderr)
    raise typer.Exit(code)


def info(message: str) -> None:
    """A report for the user on stderr (stdout stays clean for pipes); silent with --quiet."""
    if not settings.quiet:
        # One write per line: the ranks of a torchrun data set share stderr.
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()


def progress_bar(total: int, desc: str, unit: str = "it"):
    """Progress on stderr unless --quiet: a bar on a terminal, else a line every ~10 s (for
    logs and make; mrgen.progress). Use as a context manager and pass ``bar.update`` to an
    app as its ``progress``."""
    from mrgen.progress import progress_bar as make_bar

    return make_bar(total, desc, unit, enabled=not settings.quiet)


def device(nufft: bool = False):
    """The torch device of --device; ``nufft``: the job has non-Cartesian data (auto then
    takes the CPU where the NUFFT cannot run on CUDA, and says so)."""
    from mrgen.device import resolve_device

    return resolve_device(settings.device, nufft=nufft, log=info)


def command_line() -> str:
    """The command as typed, recorded in outputs for provenance."""
    return " ".join(shlex.quote(a) for a in ["mrgen", *sys.argv[1:]])


def load(text, role, slices=None):
    """Read an array file for ``role`` (see mrgen.io)."""
    from mrgen import io

    return io.read_array(str(text), role, slices)


def save(text, array, role, inputs=(), layout=None):
    """Write an output atomically, refusing to overwrite an input; records provenance.
    NIfTI and DICOM outputs take their voxel size from the inputs' ISMRMRD header."""
    from mrgen import io

    text, fmt = str(text), settings.output_format
    inputs = [str(i) for i in inputs if i is not None]
    if text in settings.parts:   # this rank's share of the slices (commands/batch.py)
        return settings.parts[text].write(array, role, inputs, layout)
    io.ensure_distinct(text, inputs, fmt)
    geometry = None
    if io.parse_ref(text, fmt).format in io.IMAGE_FORMATS:
        from mrgen.io.images import check_image

        check_image(text, array, role)   # before any warning about the voxel size
        geometry = io.find_geometry(inputs)
        if geometry is not None and settings.slices:
            geometry = geometry.select(io.parse_slices(settings.slices))
        if geometry is None:
            info(f"warning: {text}: the inputs give no voxel size (no ISMRMRD header); written "
                 "with 1 mm voxels (an identity affine)")
        elif io.parse_ref(text, fmt).format == "nifti":
            from mrgen.io.images import uneven_slices

            uneven = uneven_slices(geometry, array.shape[0] if array.ndim == 3 else 1)
            if uneven:
                info(f"warning: {text}: {uneven}")
    io.write_array(text, array, role, layout=layout, command=command_line(), format=fmt,
                   geometry=geometry)


def check_output(text, inputs=()):
    """Check an output argument early, before long work is spent on it (as the checks before
    every command do for the outputs it declares)."""
    from mrgen import io

    check_target(str(text), True, [str(i) for i in inputs if i is not None], [],
                 settings.output_format)
    return io.parse_ref(str(text), settings.output_format)

