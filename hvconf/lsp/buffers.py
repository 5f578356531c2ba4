"""Lint an editor's buffer: its text, not the file on disk, as if saved at its path.

Includes resolve against the real folder of that path and stay within its project, as
`hvconf check` does. `check_text` is the only function of the server that calls the compiler:
when `Loader.load_text` (stdin linting, `hvconf check -`) is on main, `_load_buffer` becomes a
call to it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hvconf.compiler import Checked, Result
from hvconf.diagnostics import Report
from hvconf.syntax.loader import MAX_FILE_BYTES, InputError, LoadedFile, Loader, Program, display_path
from hvconf.syntax.parser import parse


def _load_buffer(loader: Loader, path: Path, text: str, report: Report) -> Program:
    """The program of root file `path` whose text is `text`; `path` need not exist yet."""
    absolute = Path(os.path.abspath(path))
    display = display_path(absolute)
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_FILE_BYTES:  # the bound of a saved root file, and the same one line (exit 2 there)
        raise InputError(f"{display}: it is {len(data)} bytes; hvconf reads at most {MAX_FILE_BYTES}")
    tree = parse(text, display, report)
    root = LoadedFile(absolute, display, hashlib.sha256(data).hexdigest(), tree, os.path.realpath(absolute))
    program = Program(root, loader.scope(absolute))
    loader._visit(root, program, report)  # includes, as Loader.load does for a saved root
    return program


def check_text(text: str, path: Path) -> Result:
    """Parse, lower and check `text` as the file `path`, suppressions applied: what
    `hvconf check PATH` would report if the buffer were saved. Raises InputError for a buffer
    larger than a file hvconf reads."""
    from hvconf.check import run_checks
    from hvconf.check.suppress import apply_to_programs
    from hvconf.model.inputs import check_files
    from hvconf.model.lower import lower_program
    from hvconf.model.target import load_target

    result = Result()
    program = _load_buffer(Loader(), path, text, result.report)
    vms = lower_program(program, result.report)
    files_checked: set[tuple[object, ...]] = set()
    for vm in vms:
        check_files(vm, program.scope, result.report, files_checked)
        if vm.target is not None:
            run_checks(vm, load_target(vm.target), result.report, None, program.scope)
    result.checked.append(Checked(program, vms))
    result.report = apply_to_programs(result.report, [program])
    return result
