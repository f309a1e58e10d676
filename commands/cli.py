"""What every subcommand shares: global options, error reporting, loading and saving.

``@command`` wraps a subcommand so that it also accepts the global options after its name
(``mrgen zf --device cpu ...`` as well as ``mrgen --device cpu zf ...``), turns MrgenError
into one line on stderr with exit code 2 or 1, and shows a traceback only with ``--debug``.
"""

import functools
import inspect
import math
import shlex
import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer


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
    command_name: str = "mrgen"


settings = Settings()

DeviceOption = Annotated[Optional[str], typer.Option(
    "--device", help="auto | cpu | cuda | cuda:N (default: $MRGEN_DEVICE, else auto: CUDA "
    "when available).", rich_help_panel="Global options")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="Seed for every random choice (default 0): the same seed gives the same "
    "output on CPU.", rich_help_panel="Global options")]
QuietOption = Annotated[Optional[bool], typer.Option(
    "--quiet", help="No progress bars or reports on stderr.",
    rich_help_panel="Global options", show_default=False)]
DebugOption = Annotated[Optional[bool], typer.Option(
    "--debug", help="Show tracebacks for errors.", rich_help_panel="Global options",
    show_default=False)]

_GLOBAL_PARAMS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
    for name, hint in (("device", DeviceOption), ("seed", SeedOption), ("quiet", QuietOption),
                       ("debug", DebugOption))
]


def reset_global_options() -> None:
    """Back to the defaults: each invocation starts clean, also when run in-process."""
    vars(settings).update(vars(Settings()))


def apply_global_options(device=None, seed=None, quiet=None, debug=None) -> None:
    """Record global options; a value given after the subcommand overrides one given before."""
    if device is not None:
        settings.device = device
    if seed is not None:
        settings.seed = seed
    if quiet is not None:
        settings.quiet = quiet
    if debug is not None:
        settings.debug = debug


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
            files_out=(), models=(), ranges=None, choices=None, one_of=(), precheck=None):
    """Register ``func`` as subcommand ``name`` (of ``group``, default the top-level app) with
    the global options and error handling.

    The other arguments declare what the parameters are, so that every command's arguments are
    checked the same way before its body runs (and before torch is imported): ``inputs`` name
    array files that must exist, ``outputs`` array files to be written (known suffix, a
    writable folder, not an input), ``files_out`` other written files (model, checkpoint, PNG,
    text), ``models`` a model file or shipped model name, ``ranges`` the accepted values of
    numeric options (``commands.options.Range``). A name may pick from a list argument:
    ``"files[1:-1]"``, ``"inputs[-1]"``; ``"init|ipalm|noise"`` lists words that are not files.
    ``choices`` the words a text option accepts; ``one_of`` lists groups of options of which
    exactly one must be given; ``precheck(arguments)``
    is a command's own cheap check, run first. Every float option is also checked to be finite.
    """

    prefix = f"{group.info.name} " if group is not None else ""
    checks = ArgumentChecks(inputs, outputs, files_out, models, ranges or {}, one_of, precheck,
                            choices or {})

    def register(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            apply_global_options(**{p.name: kwargs.pop(p.name) for p in _GLOBAL_PARAMS})
            settings.command_name = f"mrgen {prefix}{name}"
            run_reporting_errors(_checked, checks, func, *args, **kwargs)

        signature = inspect.signature(func)
        unknown = checks.names() - set(signature.parameters)
        if unknown:
            raise TypeError(f"@command({name!r}): no parameter {', '.join(sorted(unknown))}")
        params = list(signature.parameters.values()) + _GLOBAL_PARAMS
        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {**func.__annotations__,
                                   **{p.name: p.annotation for p in _GLOBAL_PARAMS}}
        del wrapper.__wrapped__  # typer must see the extended signature, not the original
        target = group or app
        target.command(name=name, help=_reflow(func.__doc__ or summary),
                       short_help=summary)(wrapper)
        checks.labels = _labels(signature)
        func.checks = checks
        return func

    return register


def _checked(checks, func, *args, **kwargs):
    checks.run(kwargs)
    return func(*args, **kwargs)


_FLAG_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


class ArgumentChecks:
    """The checks ``@command`` runs on a command's arguments before its body: cheap (no torch,
    no data read), so that a wrong argument is answered at once and nothing is written."""

    def __init__(self, inputs, outputs, files_out, models, ranges, one_of=(), precheck=None,
                 choices=None):
        self.inputs = [_Pick(spec) for spec in inputs]
        self.outputs = [_Pick(spec) for spec in outputs]
        self.files_out = [_Pick(spec) for spec in files_out]
        self.models = [_Pick(spec) for spec in models]
        self.ranges = dict(ranges)
        self.one_of = [tuple(group) for group in one_of]
        self.precheck = precheck
        self.choices = dict(choices or {})
        self.labels = {}

    def label(self, name: str) -> str:
        return self.labels.get(name) or "--" + name.strip("_").replace("_", "-")

    def names(self) -> set:
        picks = self.inputs + self.outputs + self.files_out + self.models
        return {p.name for p in picks} | set(self.ranges) | set(self.choices) | \
            {name for group in self.one_of for name in group}

    def run(self, kwargs) -> None:
        from mrgen.errors import UsageError

        if not 0 <= settings.seed < 2 ** 64:
            raise UsageError(f"--seed {settings.seed}: must be in [0, 2^64)")
        for name, words in self.choices.items():
            value = kwargs.get(name)
            if value is not None and str(getattr(value, "value", value)) not in words:
                raise UsageError(f"{self.label(name)} {value}: expected "
                                 f"{' | '.join(w for w in words if w)}")
        if self.precheck is not None:
            self.precheck(kwargs)
        for group in self.one_of:
            if sum(kwargs.get(name) is not None for name in group) != 1:
                raise UsageError("give exactly one of " + " and ".join(
                    self.label(name) for name in group))
        self.check_numbers(kwargs)
        if "slice_" in kwargs:
            from mrgen.io.refs import parse_slices

            parse_slices(kwargs["slice_"])
        inputs = [(p.name, v) for p in self.inputs for v in p.values(kwargs)]
        for _, value in inputs:
            _check_input(value)
        models = [(p.name, v) for p in self.models for v in p.values(kwargs)]
        for name, value in models:
            label = self.label(name)
            _check_model(f"{label} " if label.startswith("--") else "", value)
        input_texts = [v for _, v in inputs]
        model_files = [v for _, v in models if _is_path(v)]
        written, piped = [], []
        for picks, is_array in ((self.outputs, True), (self.files_out, False)):
            for pick in picks:
                for value in pick.values(kwargs):
                    written += _check_target(value, is_array, input_texts, model_files)
                    piped += [self.label(pick.name)] if value == "-" else []
        if len(piped) > 1:
            raise UsageError(f"{' and '.join(piped)}: only one output can go to standard output "
                             "(-)")
        if input_texts.count("-") > 1:
            raise UsageError("only one input can come from standard input (-)")
        if len(set(written)) < len(written):
            from mrgen.errors import UsageError

            twice = next(p for p in written if written.count(p) > 1)
            raise UsageError(f"{twice}: given for two outputs; each output needs its own file")

    def check_numbers(self, kwargs) -> None:
        from mrgen.errors import UsageError

        for name, value in kwargs.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            rule = self.ranges.get(name)
            for item in values:
                if isinstance(item, str) and rule is not None and rule.words:
                    if item in rule.words:
                        continue
                    try:
                        item = float(item)
                    except ValueError:
                        words = " or ".join(w for w in rule.words if w)
                        raise UsageError(f"{self.label(name)} {value}: expected a number"
                                         + (f" or {words}" if words else "")) from None
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    continue
                if isinstance(item, float) and not math.isfinite(item):
                    raise UsageError(f"{self.label(name)} {_show(value)}: must be a finite "
                                     "number")
                problem = rule.problem(item) if rule is not None else None
                if problem:
                    raise UsageError(f"{self.label(name)} {_show(value)}: {problem}")


class _Pick:
    """A parameter name, optionally with a list index or slice (``files[1:-1]``) and words
    that are not file names (``init|ipalm|noise``)."""

    def __init__(self, spec: str):
        spec, *self.words = spec.split("|")
        self.name, _, index = spec.partition("[")
        self.index = None
        if index:
            parts = [int(p) if p.strip() else None for p in index.rstrip("]").split(":")]
            self.index = slice(*parts) if len(parts) > 1 else parts[0]

    def values(self, kwargs) -> list[str]:
        value = kwargs.get(self.name)
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            if self.index is None:
                picked = list(value)
            elif isinstance(self.index, slice):
                picked = list(value[self.index])
            else:
                picked = [value[self.index]] if -len(value) <= self.index < len(value) else []
        else:
            picked = [value]
        return [str(v) for v in picked if v is not None and str(v) not in self.words]


def _labels(signature) -> dict:
    """How the user writes each parameter: its long option (--lam) or its argument's metavar."""
    from typing import get_args

    labels = {}
    for name, param in signature.parameters.items():
        info = next((m for m in get_args(param.annotation)[1:]
                     if isinstance(m, (typer.models.OptionInfo, typer.models.ArgumentInfo))),
                    None)
        if isinstance(info, typer.models.OptionInfo):
            # In Annotated[...] the first argument of typer.Option, kept as its default, is the
            # first declaration ("--eigen-crop").
            given = ([info.default] if isinstance(info.default, str) else []) + \
                list(info.param_decls or ())
            decls = [d.split("/")[0] for d in given if d.startswith("--")]
            labels[name] = decls[0] if decls else "--" + name.strip("_").replace("_", "-")
        elif isinstance(info, typer.models.ArgumentInfo):
            labels[name] = (info.metavar or name.strip("_")).upper().strip(".")
    return labels


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_path(text: str) -> bool:
    from pathlib import Path

    return Path(text).exists()


def _check_input(text) -> None:
    """An input array file must exist (both files of a BART pair) and be a file."""
    from mrgen.errors import DataError
    from mrgen.io.refs import parse_ref

    ref = parse_ref(text)
    for path in ref.files:
        if path.is_dir():
            raise DataError(f"{text}: is a folder, not an array file")
        if not path.exists():
            hint = ""
            if text.lower() in _FLAG_WORDS:
                hint = " (flags such as --quiet take no value)"
            elif ref.format == "cfl":
                hint = f" ({path} is missing)" if len(ref.files) > 1 and \
                    any(p.exists() for p in ref.files) else \
                    " (a name without a suffix is a BART .cfl/.hdr pair)"
            raise DataError(f"{text}: no such file{hint}")


def _check_model(label, text) -> None:
    """A model: an existing file, or the name of a shipped one."""
    from pathlib import Path

    from mrgen.errors import UsageError
    from mrgen.priors.registry import DATA, SHIPPED

    path = Path(text)
    if path.is_dir():
        raise UsageError(f"{label}{text}: is a folder, not a model file")
    if path.exists() or (DATA / f"{text}.pt").exists():
        return
    raise UsageError(f"{label}{text}: no such file, and not a shipped model "
                     f"(shipped: {', '.join(sorted(SHIPPED)) or 'none'})")


def _check_target(text, is_array, inputs, models) -> list:
    """An output: a known array suffix (``is_array``), a folder that exists and can be written,
    not a folder itself, and not one of the inputs or models. Returns its resolved files."""
    import os
    from pathlib import Path

    from mrgen.errors import UsageError
    from mrgen.io.refs import ensure_distinct, parse_ref

    if text == "-":
        return []
    if is_array:
        files = parse_ref(text).files
        ensure_distinct(text, inputs)
        others = [Path(m) for m in models]
    else:
        files = (Path(text),)
        others = [p for item in inputs for p in parse_ref(item).files] + [Path(m) for m in models]
    for other in others:
        if other.exists() and any(f.exists() and f.resolve() == other.resolve() for f in files):
            raise UsageError(f"{text}: output would overwrite the input {other}")
    for path in files:
        if path.is_dir():
            raise UsageError(f"{text}: is a folder; give a file name")
        folder = path.parent
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise UsageError(f"{text}: folder {folder} {what}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{text}: cannot write in folder {folder} (permission denied)")
    return [p.resolve() for p in files]


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
        print(message, file=sys.stderr)


def show_progress() -> bool:
    """Progress bars only on a terminal and without --quiet."""
    return not settings.quiet and sys.stderr.isatty()


def device():
    from mrgen.device import resolve_device

    return resolve_device(settings.device)


def command_line() -> str:
    """The command as typed, recorded in outputs for provenance."""
    return " ".join(shlex.quote(a) for a in ["mrgen", *sys.argv[1:]])


def load(text, role, slices=None):
    """Read an array file for ``role`` (see mrgen.io)."""
    from mrgen import io

    return io.read_array(str(text), role, slices)


def load_tensor(text, role, slices=None):
    import torch

    return torch.from_numpy(load(text, role, slices)).to(device())


def save(text, array, role, inputs=(), layout=None):
    """Write an output atomically, refusing to overwrite an input; records provenance."""
    from mrgen import io

    io.ensure_distinct(str(text), [str(i) for i in inputs if i is not None])
    io.write_array(str(text), array, role, layout=layout, command=command_line())


def check_output(text, inputs=()):
    """Check an output argument early, before long work is spent on it (as the checks before
    every command do for the outputs it declares)."""
    from mrgen import io

    _check_target(str(text), True, [str(i) for i in inputs if i is not None], [])
    return io.parse_ref(str(text))


def engine_options(name: str, steps: int, checkpoint, checkpoint_every: int, resume: bool,
                   nan_guard: bool, is_main: bool):
    """EngineOptions from the options every training command shares; progress and log lines
    on rank 0 only."""
    from mrgen.training.engine import EngineOptions

    return EngineOptions(
        steps=steps, seed=settings.seed, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, resume=resume, progress=show_progress(),
        nan_guard=nan_guard, log=info if is_main else None, log_every=checkpoint_every or 100,
        description=name)
