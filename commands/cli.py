"""What every subcommand shares: global options, error reporting, loading and saving.

``@command`` wraps a subcommand so that it also accepts the global options after its name
(``mrgen zf --device cpu ...`` as well as ``mrgen --device cpu zf ...``), turns MrgenError
into one line on stderr with exit code 2 or 1, and shows a traceback only with ``--debug``.
"""

import functools
import inspect
import shlex
import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer


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
    "--quiet/--no-quiet", help="No progress bars or reports on stderr.",
    rich_help_panel="Global options", show_default=False)]
DebugOption = Annotated[Optional[bool], typer.Option(
    "--debug/--no-debug", help="Show tracebacks for errors.", rich_help_panel="Global options",
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


def command(name: str, summary: str, group: typer.Typer | None = None):
    """Register ``func`` as subcommand ``name`` (of ``group``, default the top-level app) with
    the global options and error handling."""

    prefix = f"{group.info.name} " if group is not None else ""

    def register(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            apply_global_options(**{p.name: kwargs.pop(p.name) for p in _GLOBAL_PARAMS})
            settings.command_name = f"mrgen {prefix}{name}"
            run_reporting_errors(func, *args, **kwargs)

        signature = inspect.signature(func)
        params = list(signature.parameters.values()) + _GLOBAL_PARAMS
        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {**func.__annotations__,
                                   **{p.name: p.annotation for p in _GLOBAL_PARAMS}}
        del wrapper.__wrapped__  # typer must see the extended signature, not the original
        target = group or app
        target.command(name=name, help=_reflow(func.__doc__ or summary),
                       short_help=summary)(wrapper)
        return func

    return register


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
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory; try fewer slices (--slice) or a smaller problem", 1)
    except (typer.Exit, typer.Abort, SystemExit):
        raise
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
    """Check an output argument early, before long work is spent on it."""
    from mrgen import io

    io.ensure_distinct(str(text), [str(i) for i in inputs if i is not None])
    ref = io.parse_ref(str(text))
    folder = ref.path.parent if ref.path is not None else None
    if folder is not None and str(folder) and not folder.is_dir():
        from mrgen.errors import UsageError

        raise UsageError(f"{text}: folder {folder} does not exist")
    return ref


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
