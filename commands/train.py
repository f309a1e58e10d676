"""mrgen train: the group that holds the training commands of the learned methods.

Each method's training command lives in its own module (train_prior.py, ...) and registers
itself into ``train_app`` with ``@command(NAME, SUMMARY, group=train_app)``.
"""

import typer

from .cli import app

SUMMARY = "Train the learned models: the energy prior (and its calibration), Deep J-Sense, DEEPEN."

train_app = typer.Typer(name="train", help=SUMMARY, no_args_is_help=True,
                        context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(train_app, name="train", help=SUMMARY, short_help=SUMMARY)
