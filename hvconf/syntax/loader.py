"""Load a .hv file and everything it includes, each file parsed once.

Includes resolve relative to the including file. Missing files, things that
are not regular files (directories, FIFOs, devices), cycles, unsupported
`format` versions and duplicate VM names are diagnostics, never tracebacks;
reads are bounded and never block; an include outside the repository warns.
Tested by tests/test_loader.py and tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Iterator

from hvconf.diagnostics import Note, Report, Span
from hvconf.syntax import ast
from hvconf.syntax.parser import decode, parse

FORMAT_VERSION = 1
# A VM definition is a few KiB. lark parses ~50k tokens/s and keeps ~450 bytes per token,
# so this bounds one file's parse to seconds and ~100 MiB even when every byte is a token.
MAX_FILE_BYTES = 256 << 10
CYCLE_NOTES = 16  # at most this many notes on an include-cycle: the first and the last files


class InputError(Exception):
    """The file named on the command line cannot be read (exit status 2)."""


class LoadedFile:
    def __init__(self, path: Path, display: str, sha256: str, tree: ast.SourceFile | None) -> None:
        self.path = path  # absolute
        self.display = display  # as shown in diagnostics
        self.sha256 = sha256
        self.tree = tree


class Program:
    """A root file with its includes: every VM declaration visible from the root."""

    def __init__(self, root: LoadedFile) -> None:
        self.root = root
        self.files: list[LoadedFile] = []
        self.vms: dict[str, ast.VmDecl] = {}

    @property
    def own_vms(self) -> list[ast.VmDecl]:
        """The VMs declared in the root file itself (the ones `build` builds)."""
        tree = self.root.tree
        return [item for item in tree.items if isinstance(item, ast.VmDecl)] if tree else []


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, or more than `limit` of them (callers refuse those).
    O_NONBLOCK and the fstat make a FIFO or device swapped in after a stat fail instead
    of blocking; the bounded read stops /proc files that report size 0 but never end."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 16)  # whole chunks: /proc/self/pagemap refuses reads of odd sizes
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def repo_root(path: Path) -> Path:
    """What `include` may read without a warning: the nearest folder above `path` with a
    `.git` (a folder, or a file in worktrees), else `path`'s own folder. Symlinks resolved."""
    start = Path(os.path.realpath(path)).parent
    for folder in (start, *start.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return start


def display_path(path: Path) -> str:
    """Paths under the working directory are shown relative to it, others absolutely.
    The loader's paths are normalised, so a prefix test on strings decides (no Path parsing)."""
    cwd, text = os.getcwd(), os.fspath(path)
    if text == cwd or text.startswith(cwd.rstrip("/") + "/"):
        return os.path.relpath(text, cwd)
    return text


class Loader:
    """Loads programs; one Loader shares parsed files between several roots."""

    def __init__(self) -> None:
        self._files: dict[Path, LoadedFile] = {}
        self._included: set[Path] = set()  # files some program reached through `include`
        # Per folder and per included file: every root of a repo asks again for the same few.
        self._repos: dict[Path, Path] = {}
        self._real: dict[Path, Path] = {}

    def _repo_root(self, path: Path) -> Path:
        # repo_root starts at the resolved file's folder; for a file that is no symlink, that is
        # its folder resolved, shared by its neighbours (one lstat per file, not one per level).
        folder = path.parent if not os.path.islink(path) else Path(os.path.realpath(path)).parent
        if folder not in self._repos:
            self._repos[folder] = repo_root(path)
        return self._repos[folder]

    def _realpath(self, path: Path) -> Path:
        if path not in self._real:
            self._real[path] = Path(os.path.realpath(path))
        return self._real[path]

    def release(self, path: Path) -> bool:
        """Forget root file `path` once its program is done, unless an include read it: checking
        a whole repo then holds the shared bases, not every file. True when it was forgotten.
        If a later file includes it, it is read again (its findings are the same again)."""
        absolute = Path(os.path.abspath(path))
        if absolute in self._included:
            return False
        return self._files.pop(absolute, None) is not None

    def _read(self, path: Path, report: Report, span: Span | None) -> LoadedFile | None:
        if path in self._files:
            return self._files[path]
        display = display_path(path)
        try:
            st = os.stat(path)
        except OSError as err:
            if span is None:
                raise InputError(f"{display}: {err.strerror}") from None
            report.error("include-not-found", f"cannot include '{display}': {err.strerror}", span)
            return None
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            if span is None:
                raise InputError(f"{display}: is {kind}")
            report.error("include-not-a-file", f"cannot include '{display}': it is {kind}", span)
            return None
        if st.st_size > MAX_FILE_BYTES:
            message = f"'{display}' is {st.st_size} bytes; hvconf reads at most {MAX_FILE_BYTES}"
            if span is None:
                raise InputError(message)
            report.error("include-too-large", message, span)
            return None
        try:
            data = read_regular(path, MAX_FILE_BYTES)
        except OSError as err:
            if span is None:
                raise InputError(f"{display}: {err.strerror}") from None
            report.error("include-unreadable", f"cannot read '{display}': {err.strerror}", span)
            return None
        if len(data) > MAX_FILE_BYTES:  # a file whose size lied (/proc, or grown since the stat)
            message = f"'{display}' is more than {MAX_FILE_BYTES} bytes; hvconf reads at most {MAX_FILE_BYTES}"
            if span is None:
                raise InputError(message)
            report.error("include-too-large", message, span)
            return None
        text = decode(data, display, report)
        tree = parse(text, display, report) if text is not None else None
        loaded = LoadedFile(path, display, hashlib.sha256(data).hexdigest(), tree)
        self._files[path] = loaded
        return loaded

    def load(self, path: Path, report: Report) -> Program:
        """Load `path` and its includes; raises InputError only for `path` itself."""
        root = self._read(Path(os.path.abspath(path)), report, None)
        assert root is not None
        program = Program(root)
        self._visit(root, program, report)
        return program

    def _visit(self, root: LoadedFile, program: Program, report: Report) -> None:
        """Depth-first through includes, in source order, with an explicit stack: a chain
        of thousands of includes must not exhaust Python's recursion limit."""
        repo = self._repo_root(root.path)
        seen: set[Path] = set()
        frames: list[tuple[LoadedFile, Iterator[ast.FormatDecl | ast.Include | ast.VmDecl]]] = []
        # The files on the stack, by path, with their place in it: the cycle test of an include is
        # one lookup, not a scan of the stack (which made a chain of N includes cost N^2).
        stack: dict[Path, int] = {}

        def enter(file: LoadedFile) -> None:
            if file.path in seen:
                return
            seen.add(file.path)
            program.files.append(file)
            if file.tree is not None:
                stack[file.path] = len(frames)
                frames.append((file, iter(file.tree.items)))

        enter(root)
        while frames:
            file, items = frames[-1]
            item = next(items, None)
            if item is None:
                frames.pop()
                del stack[file.path]
            elif isinstance(item, ast.FormatDecl):
                if item.version.value != FORMAT_VERSION:
                    report.error("unsupported-format", f"format {item.version.value} is not supported",
                                 item.version.span, help=f"this hvconf reads format {FORMAT_VERSION}")
            elif isinstance(item, ast.Include):
                included = self._include(item, file, report, frames, stack, repo)
                if included is not None:
                    enter(included)
            else:
                self._declare(item, program, report)

    def _include(self, item: ast.Include, file: LoadedFile, report: Report, frames: list[tuple[LoadedFile, Any]],
                 stack: dict[Path, int], repo: Path) -> LoadedFile | None:
        if "\0" in item.path.value or not item.path.value:
            report.error("include-not-found", "include path is empty or contains a NUL byte", item.path.span)
            return None
        target = Path(os.path.normpath(file.path.parent / item.path.value))
        if target in stack:
            notes = _cycle_notes(frames, stack[target])
            report.error("include-cycle", f"including '{display_path(target)}' here closes a cycle", item.span,
                         notes=notes, help="move the shared definitions into a file that neither includes")
            return None
        if not self._realpath(target).is_relative_to(repo):
            report.warning("include-outside-repo", f"'{item.path.value}' is outside {repo}, the repository of "
                           "the file being built", item.path.span,
                           help="a definition under review should read only files reviewed with it; "
                                "copy the file into the repository")
        loaded = self._read(target, report, item.path.span)
        if loaded is not None:
            self._included.add(target)
        return loaded

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
