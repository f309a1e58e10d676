"""Ctrl-C within a second, also in the middle of a long torch call.

Python acts on SIGINT only between bytecodes of the main thread: a KeyboardInterrupt waits
for the running torch operation to return. One ConvDecoder iteration at 256 x 256 on a 2-core
CPU is about 12 s, most of it inside ``loss.backward()`` (the autograd engine runs in C++), so
Ctrl-C used to take 8-20 s there. ``install()`` (called by ``commands.main.main``, so only by
the real command line, never by an in-process test runner) adds a watchdog thread woken by
``signal.set_wakeup_fd``, which the interpreter's C-level handler writes to at once, whatever
the main thread is doing. The normal path stays first: the main thread gets its
KeyboardInterrupt, files being written are removed by their context managers, and
``commands.cli`` prints "CMD: interrupted" and exits 130 (``report_interrupt``). When
the main thread has not claimed the interrupt ``GRACE`` seconds after the signal, the watchdog
prints that line itself, removes the temporary files still open (``mrgen.io.atomic`` keeps
their list) and ends the process with ``os._exit(130)``. A second Ctrl-C ends it at once.

Nothing of an output is ever renamed into place by this path, so an interrupted command
leaves neither its output nor a temporary file; a training checkpoint written earlier stays
intact (checkpoints are written atomically), and ``--resume`` continues from it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

GRACE = 0.5          # seconds the main thread has to act on Ctrl-C before the watchdog does
EXIT_WAIT = 3.0      # seconds the main thread has to exit after it claimed the interrupt
EXIT_CODE = 130

_lock = threading.Lock()
_state = {"installed": False, "claimed_by": None, "command_name": lambda: "mrgen"}


def install(command_name: Callable[[], str] | None = None) -> bool:
    """Start the watchdog (main thread only; once). False where it cannot be installed (not
    the main thread, a SIGINT handler other than Python's default, a wakeup fd in use).
    ``command_name()`` names the running command in the watchdog's line (passed in by
    ``commands.main``: this module is below ``commands.cli``, which imports it)."""
    if command_name is not None:
        _state["command_name"] = command_name
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        return _state["installed"]
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        os.close(read_fd)
        os.close(write_fd)
        return False
    if previous != -1:  # someone else listens (an event loop): leave theirs in place
        signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return False
    threading.Thread(target=_watch, args=(read_fd,), name="mrgen-interrupt",
                     daemon=True).start()
    _state["installed"] = True
    return True


def claim(who: str = "main") -> bool:
    """True for the first caller after Ctrl-C: it prints the one "interrupted" line."""
    with _lock:
        if _state["claimed_by"] is None:
            _state["claimed_by"] = who
            return True
        return False


def report_interrupt(fail) -> None:
    """The main thread's answer to KeyboardInterrupt (``commands.cli``): the one
    "interrupted" line through ``fail`` and exit 130. Under the watchdog (the real command
    line) the process ends at once with ``os._exit``: the outputs' temporary files are gone
    by now (their context managers have unwound), and the interpreter's own shutdown after a
    torch run can take over a second on a busy CPU (its thread pools), which an interrupted
    command need not wait for."""
    if not claim("main"):  # the watchdog reported it and is ending the process
        time.sleep(EXIT_WAIT)
        os._exit(EXIT_CODE)
    if not _state["installed"]:
        fail("interrupted", EXIT_CODE)  # raises typer.Exit
    try:
        fail("interrupted", EXIT_CODE)
    except BaseException:  # noqa: BLE001 - typer.Exit: the line is printed
        pass
    try:
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass
    _remove_temporaries()
    os._exit(EXIT_CODE)


def _watch(read_fd: int) -> None:
    signals = 0
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        count = data.count(bytes([signal.SIGINT]))
        if not count:
            continue
        signals += count
        if signals > 1:
            _hard_exit()
        threading.Thread(target=_deadline, name="mrgen-interrupt-deadline",
                         daemon=True).start()


def _deadline() -> None:
    time.sleep(GRACE)
    if _state["claimed_by"] == "main":
        time.sleep(EXIT_WAIT)  # the main thread reported it and is exiting; make sure it does
    _hard_exit()


def _hard_exit() -> None:
    if claim("watchdog"):
        try:
            name = _state["command_name"]()
        except Exception:  # noqa: BLE001 - the message matters more than the name
            name = "mrgen"
        try:
            sys.stderr.write(f"{name}: interrupted\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    _remove_temporaries()
    os._exit(EXIT_CODE)


def _remove_temporaries() -> None:
    module = sys.modules.get("mrgen.io.atomic")
    if module is None:
        return
    for path in list(getattr(module, "LIVE_TEMPORARIES", ())):
        try:
            if os.path.isdir(path):   # a DICOM series being written (atomic_folder)
                import shutil

                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            pass
