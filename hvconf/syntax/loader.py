"""Load a .hv file and everything it includes, each real file parsed once.

Includes resolve relative to the including file (for a symlinked file, its target's
folder) and go through hvconf/syntax/paths.py: a path outside the project, on /proc, /sys
or /dev, not a regular file, or failing stat(2) is refused at its `include` before anything
of it is read, and so is a file not named `*.hv` (diagnostics quote only .hv files of the
project). Files are keyed by their real path, so a file reached through several spellings
(symlinks to `.`, `a/../a.hv`) is read, parsed and visited once: the work is bounded by the
bytes of the distinct files. Cycles, unsupported `format` versions and duplicate VM names
are diagnostics, never tracebacks. Tested by tests/test_loader.py, tests/test_paths.py and
tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from hvconf.diagnostics import Diagnostic, Note, Report, Severity
from hvconf.syntax import ast
from hvconf.syntax.parser import decode, parse
from hvconf.syntax.paths import (MISSING, NOT_A_FILE, OUTSIDE, TOO_LARGE, UNREADABLE, PathRefused, Scope, folder_of,
                                 project_root, read_regular, read_resolved, resolve, scope_for)

FORMAT_VERSION = 1
# A VM definition is a few KiB. lark parses ~50k tokens/s and keeps ~450 bytes per token,
# so this bounds one file's parse to seconds and ~100 MiB even when every byte is a token.
MAX_FILE_BYTES = 256 << 10
CYCLE_NOTES = 16  # at most this many notes on an include-cycle: the first and the last files
SUFFIX = ".hv"

__all__ = ["FORMAT_VERSION", "MAX_FILE_BYTES", "InputError", "LoadedFile", "Loader", "Program", "display_path",
           "read_regular", "repo_root"]

_E = Severity.ERROR
_OUTSIDE_HELP = ("a definition under review reads only files of its project; copy the file into it, "
                 "or allow its folder with --allow-path DIR")
# What each kind of refused include is reported as (kinds: hvconf/syntax/paths.py).
INCLUDE_REFUSALS: dict[str, Diagnostic] = {
    MISSING: Diagnostic("include-not-found", _E, "", None),
    OUTSIDE: Diagnostic("path-outside-project", _E, "", None, help=_OUTSIDE_HELP),
    NOT_A_FILE: Diagnostic("include-not-a-file", _E, "", None),
    UNREADABLE: Diagnostic("include-unreadable", _E, "", None),
    TOO_LARGE: Diagnostic("include-too-large", _E, "", None),
}
_NOT_HV = Diagnostic("include-not-hv", _E, "", None,
                     help=f"only {SUFFIX} definition files are included; diagnostics would otherwise quote "
                          "lines of other files")


class InputError(Exception):
    """The file named on the command line cannot be read (exit status 2)."""


class LoadedFile:
    __slots__ = ("path", "display", "sha256", "tree", "real", "folder", "findings")

    def __init__(self, path: Path, display: str, sha256: str, tree: ast.SourceFile | None,
                 real: str | None = None) -> None:
        self.path = path  # absolute, as first reached (for a root, as named)
        self.display = display  # as shown in diagnostics
        self.sha256 = sha256
        self.tree = tree
        self.real = real if real is not None else os.path.realpath(path)  # what identifies the file
        self.folder = folder_of(path)  # what its relative paths resolve against
        # What reading it found (invalid UTF-8, a syntax error): reported once per Loader, kept
        # so a caller that keeps each root's findings apart (the lint cache) can add them back.
        self.findings: list[Diagnostic] = []


class Program:
    """A root file with its includes: every VM declaration visible from the root, and
    the scope every path of theirs is checked against."""

    __slots__ = ("root", "scope", "files", "vms", "__weakref__")  # emit/artifacts.py caches per Program

    def __init__(self, root: LoadedFile, scope: Scope | None = None) -> None:
        self.root = root
        self.scope = scope if scope is not None else scope_for(root.path)
        self.files: list[LoadedFile] = []
        self.vms: dict[str, ast.VmDecl] = {}

    @property
    def own_vms(self) -> list[ast.VmDecl]:
        """The VMs declared in the root file itself (the ones `build` builds)."""
        tree = self.root.tree
        return [item for item in tree.items if isinstance(item, ast.VmDecl)] if tree else []


def repo_root(path: Path) -> Path:
    """The project of root file `path` when no --root is given (hvconf/syntax/paths.py)."""
    return Path(project_root(path))


def root_problem(display: str, err: PathRefused) -> str:
    """The one line for a root file hvconf will not read: `x.hv: is a FIFO`."""
    return f"{display}: {err.reason.removeprefix('it ')}"


def display_path(path: Path) -> str:
    """Paths under the working directory are shown relative to it, others absolutely.
    The loader's paths are normalised, so a prefix test on strings decides (no Path parsing)."""
    cwd, text = os.getcwd(), os.fspath(path)
    if text == cwd or text.startswith(cwd.rstrip("/") + "/"):
        return os.path.relpath(text, cwd)
    return text


class Loader:
    """Loads programs; one Loader shares parsed files between several roots. `root` (--root)
    replaces every root file's project; `allow` (--allow-path) adds folders outside it."""

    def __init__(self, root: str | Path | None = None, allow: Sequence[str | Path] = ()) -> None:
        self._root = root
        self._allow = tuple(allow)
        self._files: dict[str, LoadedFile] = {}  # by real path
        self._included: set[str] = set()  # real paths some program reached through `include`
        # Per folder of a root file: every root of a repo asks again for the same project.
        self._scopes: dict[str, Scope] = {}
        self._real: dict[Path, str] = {}

    def scope(self, path: str | Path) -> Scope:
        """The scope of root file `path`."""
        folder = os.path.dirname(os.path.abspath(path))
        if folder not in self._scopes:
            self._scopes[folder] = scope_for(path, self._root, self._allow)
        return self._scopes[folder]

    def _realpath(self, path: Path) -> str:
        if path not in self._real:
            self._real[path] = os.path.realpath(path)
        return self._real[path]

    def release(self, path: Path) -> bool:
        """Forget root file `path` once its program is done, unless an include read it: checking
        a whole repo then holds the shared bases, not every file. True when it was forgotten.
        If a later file includes it, it is read again (its findings are the same again)."""
        real = os.path.realpath(path)
        if real in self._included:
            return False
        return self._files.pop(real, None) is not None

    def load(self, path: Path, report: Report) -> Program:
        """Load `path` and its includes; raises InputError only for `path` itself."""
        absolute = Path(os.path.abspath(path))
        scope = self.scope(absolute)
        root = self._load_root(absolute, scope, report)
        program = Program(root, scope)
        self._visit(root, program, report)
        return program

    def load_text(self, path: Path, data: bytes, report: Report) -> Program:
        """Load a root file whose text is `data` (an editor's unsaved buffer, stdin), as if it
        were saved at `path`, which need not exist: its includes resolve against `path`'s real
        folder and are confined to `path`'s project. Nothing is read for the root itself, and
        it is not kept: an include of `path` reads the saved file."""
        absolute = Path(os.path.abspath(path))
        scope = self.scope(absolute)
        display = display_path(absolute)
        text = decode(data, display, report)
        tree = parse(text, display, report) if text is not None else None
        root = LoadedFile(absolute, display, hashlib.sha256(data).hexdigest(), tree, os.path.realpath(absolute))
        program = Program(root, scope)
        self._visit(root, program, report)
        return program

    def _load_root(self, absolute: Path, scope: Scope, report: Report) -> LoadedFile:
        """A root file: named on the command line or found in a folder. Named as itself it is
        the user's choice; a symlink is followed only to a .hv file of the project, as an include."""
        display = display_path(absolute)
        try:
            real, st = resolve(absolute, scope)
        except PathRefused as err:
            raise InputError(root_problem(display, err)) from None
        if os.path.islink(absolute) and not real.endswith(SUFFIX):
            raise InputError(f"{display}: is a symbolic link to a file not named *{SUFFIX}")
        loaded = self._parse(absolute, real, st.st_size, display, scope, report)
        if isinstance(loaded, PathRefused):
            raise InputError(root_problem(display, loaded))
        return loaded

    def _parse(self, path: Path, real: str, size: int, display: str, scope: Scope,
               report: Report) -> LoadedFile | PathRefused:
        """The file at `real` (resolved and checked), read once per Loader, or why not."""
        if real in self._files:
            return self._files[real]
        if size > MAX_FILE_BYTES:
            return PathRefused(TOO_LARGE, f"it is {size} bytes; hvconf reads at most {MAX_FILE_BYTES}")
        try:
            data = read_resolved(real, scope, MAX_FILE_BYTES)
        except PathRefused as err:
            return err
        if len(data) > MAX_FILE_BYTES:  # a file whose size lied, or grew since the stat
            return PathRefused(TOO_LARGE, f"it is more than {MAX_FILE_BYTES} bytes; hvconf reads at most "
                                          f"{MAX_FILE_BYTES}")
        before = len(report.diagnostics)
        text = decode(data, display, report)
        tree = parse(text, display, report) if text is not None else None
        loaded = LoadedFile(path, display, hashlib.sha256(data).hexdigest(), tree, real)
        loaded.findings = report.diagnostics[before:]
        self._files[real] = loaded
        return loaded

    def _visit(self, root: LoadedFile, program: Program, report: Report) -> None:
        """Depth-first through includes, in source order, with an explicit stack: a chain
        of thousands of includes must not exhaust Python's recursion limit. Each real file
        is entered once, however many names reach it."""
        seen: set[str] = set()
        frames: list[tuple[LoadedFile, Iterator[ast.FormatDecl | ast.Include | ast.VmDecl]]] = []
        # The files on the stack, by real path, with their place in it: the cycle test of an include
        # is one lookup, not a scan of the stack (which made a chain of N includes cost N^2).
        stack: dict[str, int] = {}

        def enter(file: LoadedFile) -> None:
            if file.real in seen:
                return
            seen.add(file.real)
            program.files.append(file)
            if file.tree is not None:
                stack[file.real] = len(frames)
                frames.append((file, iter(file.tree.items)))

        enter(root)
        while frames:
            file, items = frames[-1]
            item = next(items, None)
            if item is None:
                frames.pop()
                del stack[file.real]
            elif isinstance(item, ast.FormatDecl):
                if item.version.value != FORMAT_VERSION:
                    report.error("unsupported-format", f"format {item.version.value} is not supported",
                                 item.version.span, help=f"this hvconf reads format {FORMAT_VERSION}")
            elif isinstance(item, ast.Include):
                included = self._include(item, file, report, frames, stack, program.scope)
                if included is not None:
                    enter(included)
            else:
                self._declare(item, program, report)

    def _include(self, item: ast.Include, file: LoadedFile, report: Report, frames: list[tuple[LoadedFile, Any]],
                 stack: dict[str, int], scope: Scope) -> LoadedFile | None:
        value = item.path.value
        if not value or "\0" in value:
            self._refuse(PathRefused(MISSING, "the path is empty or contains a NUL byte"), value, item, report)
            return None
        target = Path(os.path.normpath(file.folder / value))
        shown = display_path(target)
        real = self._realpath(target)
        cached = self._files.get(real)
        size = 0
        if cached is None or not scope.contains(real):  # a file read before passed the rest for some root
            try:
                real, st = resolve(target, scope)
            except PathRefused as err:
                self._refuse(err, shown, item, report)
                return None
            size = st.st_size
        if not real.endswith(SUFFIX):
            report.add(_NOT_HV._replace(message=f"cannot include '{shown}': it is not a {SUFFIX} file",
                                        span=item.path.span))
            return None
        if real in stack:
            self._cycle(item, frames, stack[real], report)
            return None
        loaded = cached or self._parse(target, real, size, shown, scope, report)
        if isinstance(loaded, PathRefused):
            self._refuse(loaded, shown, item, report)
            return None
        self._included.add(real)
        return loaded

    @staticmethod
    def _refuse(err: PathRefused, shown: str, item: ast.Include, report: Report) -> None:
        report.add(INCLUDE_REFUSALS[err.kind]._replace(message=f"cannot include '{shown}': {err.reason}",
                                                       span=item.path.span))

    @staticmethod
    def _cycle(item: ast.Include, frames: list[tuple[LoadedFile, Any]], start: int, report: Report) -> None:
        report.error("include-cycle", f"including '{frames[start][0].display}' here closes a cycle", item.span,
                     notes=_cycle_notes(frames, start),
                     help="move the shared definitions into a file that neither includes")

    @staticmethod
    def _declare(vm: ast.VmDecl, program: Program, report: Report) -> None:
        previous = program.vms.get(vm.name.value)
        if previous is not None:
            if previous is not vm:
                report.error("duplicate-vm", f"VM '{vm.name.value}' is defined twice", vm.name.span,
                             notes=[Note("first defined here", previous.name.span)])
            return
        program.vms[vm.name.value] = vm


def _cycle_notes(frames: list[tuple[LoadedFile, Any]], start: int) -> list[Note]:
    """Who includes whom around the cycle of the stack's files from `start` up; of a long cycle,
    its two ends. Every include of a file up a chain of N files closes a cycle of up to N: all
    of them as notes (or a copy of the stack each) would make the run quadratic in the input."""
    def note(i: int) -> Note:
        f = frames[i][0]
        return Note(f"'{f.display}' is included by '{frames[i - 1][0].display}'" if i
                    else f"'{f.display}' starts the cycle")

    half, end = CYCLE_NOTES // 2, len(frames)
    if end - start <= CYCLE_NOTES:
        return [note(i) for i in range(start, end)]
    return ([note(i) for i in range(start, start + half)] + [Note(f"... {end - start - 2 * half} more files ...")]
            + [note(i) for i in range(end - half, end)])
