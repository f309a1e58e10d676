"""Errors that carry an exit code and a one-line message for the user.

Library code raises these with a message that names the file or option at fault; the CLI
prints the message on one line of stderr and exits with ``exit_code`` (no traceback unless
``--debug``). Anything else that escapes is a bug or a runtime failure (exit 1).
"""


class MrgenError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1


class UsageError(MrgenError):
    """Bad options or arguments (exit 2)."""

    exit_code = 2


class DataError(MrgenError):
    """An input file that is missing, unreadable or holds the wrong kind of array (exit 2)."""

    exit_code = 2


class RuntimeFailure(MrgenError):
    """The work itself failed (out of memory, diverged, ...) (exit 1)."""

    exit_code = 1
