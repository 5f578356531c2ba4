"""Lint an editor's buffer: its text, not the file on disk, as if saved at its path.

One way for the editor and the command line: `hvconf.lint.driver.check_buffer`, the Result
behind `check_text` (`hvconf check - --stdin-filename PATH`). Includes resolve against the real
folder of the path and stay within its project, and the project configuration found for the
path (hvconf.toml or pyproject.toml's [tool.hvconf]: select, ignore, per-file-ignores)
applies, read again at each lint so an edit to it shows at the next change.
"""

from __future__ import annotations

import os
from pathlib import Path

from hvconf.compiler import Result
from hvconf.lint.settings import DEFAULT, ConfigError
from hvconf.syntax.loader import MAX_FILE_BYTES, InputError, display_path


class Linted:
    """A buffer's lint: the result, and the configuration error that made it use the defaults."""

    __slots__ = ("result", "config_error")

    def __init__(self, result: Result, config_error: ConfigError | None = None) -> None:
        self.result = result
        self.config_error = config_error


def check_buffer(text: str, path: Path) -> Linted:
    """What `hvconf check PATH` would report if the buffer were saved, with the program and VMs
    it checked. With a configuration that cannot be read (where `hvconf check` stops with exit
    status 2) the buffer is linted with the default settings, and the error comes along for
    the editor to show. Raises InputError for a buffer larger than a file hvconf reads."""
    from hvconf.lint.driver import check_buffer as lint

    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_FILE_BYTES:  # the bound of a saved root file, and the same one line (exit 2 there)
        raise InputError(f"{display_path(Path(os.path.abspath(path)))}: it is {len(data)} bytes; hvconf reads at most {MAX_FILE_BYTES}")
    try:
        return Linted(lint(data, path))
    except ConfigError as err:
        return Linted(lint(data, path, DEFAULT), err)
