"""Progress of long work on stderr: a tqdm bar on a terminal, timed lines everywhere else.

A bar redrawn with carriage returns is noise in a log file and invisible to ``make``; there
``progress_bar`` returns a ``LineProgress`` instead, which prints one line every
``interval`` seconds (``$MRGEN_PROGRESS_SECONDS``, default 10): where the work is, its rate
and the time left, e.g. ``ipalm: 40/100 it (40%), 2.1 it/s, ETA 0:29, energy 12.3``. Both
take ``update(n)``, ``set_postfix(...)``, ``set_postfix_str(...)`` and work as context managers.
"""

from __future__ import annotations

import os
import sys
import time

DEFAULT_INTERVAL = 10.0


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 initial: int = 0, stream=None, leave: bool = True):
    """A tqdm bar when ``stream`` (default stderr) is a terminal, else a LineProgress; a
    silent bar when not ``enabled`` (--quiet)."""
    stream = stream or sys.stderr
    if enabled and not _is_terminal(stream):
        return LineProgress(total, desc, unit, initial, stream)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream,
                disable=not enabled, leave=leave, dynamic_ncols=True)


def interval_seconds() -> float:
    """Seconds between progress lines: $MRGEN_PROGRESS_SECONDS, else 10."""
    try:
        return max(0.0, float(os.environ.get("MRGEN_PROGRESS_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class LineProgress:
    """One line of progress every ``interval`` seconds, and a last one when the work ends
    (when any line was printed before)."""

    disable = False

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0,
                 stream=None, interval: float | None = None, clock=time.monotonic):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.first = initial
        self.stream = stream or sys.stderr
        self.interval = interval_seconds() if interval is None else interval
        self.clock = clock
        self.started = self.last = clock()
        self.postfix, self.printed = "", False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval:
            self._print(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        items = {**dict(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key} {value}" for key, value in items.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        if self.printed:
            self._print(self.clock(), final=True)
            self.printed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            self.close()
        return False

    def _print(self, now: float, final: bool = False) -> None:
        elapsed = now - self.started
        rate = (self.n - self.first) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{self.desc}: {done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if final:
            parts.append(f"done in {_clock_text(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {_clock_text((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=self.stream, flush=True)
        self.last, self.printed = now, True


def _clock_text(seconds: float) -> str:
    """H:MM:SS or M:SS."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
