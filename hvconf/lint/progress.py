"""A one-line progress bar for long builds, drawn on a terminal and nowhere else.

`bar_for(stream)` gives a compiler.Progress callback when `stream` is a
terminal (and TERM is not `dumb`), else None, so piped and CI output never
holds carriage returns. Redraws are throttled; `close()` erases the line.
Tested by tests/test_lint_scale.py (through a pty).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import TextIO

from hvconf.lint.render import printable

WIDTH = 24  # cells of the bar itself
INTERVAL = 0.05  # seconds between redraws: drawing every step would slow a fast build


class ProgressBar:
    """Draws `[#####.....] done/total what` over itself on `stream`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.drawn = 0  # characters on the line now, to erase
        self.last = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < INTERVAL and done not in (1, total):
            return
        self.last = now
        filled = WIDTH * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} {printable(what)}"
        columns = shutil.get_terminal_size((80, 24)).columns - 1  # never wrap: \r returns to this line only
        line = line[:columns]
        self.stream.write("\r" + line.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(line)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn = 0


def bar_for(stream: TextIO) -> ProgressBar | None:
    """A bar on `stream` if a person is watching it, else None."""
    if not stream.isatty() or os.environ.get("TERM") == "dumb":
        return None
    return ProgressBar(stream)
