"""Entry point: the ``mrgen`` app with its global options and every subcommand.

Command modules import only typer and the standard library at import time, so that
``mrgen --help`` does not pay for importing torch, h5py or sigpy.
"""

import os
from typing import Annotated, Optional

# OpenMP threads that wait passively (sleep at the end of a parallel region instead of
# spinning): on a shared machine spinning threads fight other processes for the cores.
# ipalm-TV at 256 x 256 x 8 with 2 threads on 2 cores at load 4: 60 s wall and 56 CPU-s
# spinning, 9.4 s passive (8.0 CPU-s; 1 thread: 14.9 s). Must be set before torch loads
# libgomp; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from .cli import (DebugOption, DeviceOption, FormatOption, QuietOption, SeedOption, app,
                  apply_global_options, reset_global_options, settings)

# Importing a command module registers its subcommand; the order is the order in --help.
from . import phantom, mask, traj, zf, espirit, sense, ipalm, langevin, convdecoder  # noqa: E402,F401
from . import mrd  # noqa: E402,F401
from . import dataset  # noqa: E402,F401
from . import djsense, deepen  # noqa: E402,F401
from . import metrics, show  # noqa: E402,F401
from . import train, train_prior, train_calibrate, train_djsense, train_deepen  # noqa: E402,F401,E501


def _version(value: bool):
    if value:
        from mrgen import __version__

        typer.echo(f"mrgen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    device: DeviceOption = None,
    seed: SeedOption = None,
    quiet: QuietOption = None,
    debug: DebugOption = None,
    output_format: FormatOption = None,
):
    reset_global_options()
    apply_global_options(device=device, seed=seed, quiet=quiet, debug=debug,
                         output_format=output_format)


def main():
    from .allocator import keep_freed_memory
    from .interrupt import install

    keep_freed_memory()  # reuse freed arrays across iterations (commands/allocator.py)

    install(lambda: settings.command_name)  # Ctrl-C within a second, also in a long torch call
    app(prog_name="mrgen")
