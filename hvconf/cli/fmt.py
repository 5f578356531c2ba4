"""The `hvconf fmt` command: rewrite .hv files in the canonical layout.

Files are replaced atomically (temporary file + rename, mode kept); `--check`
and `--diff` write nothing. A file that does not parse is reported and left
alone. Exit 0 done/clean, 1 a file would change (--check/--diff) or does not
parse, 2 a path cannot be read or written. Tested by tests/test_fmt.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hvconf.lint.driver import UsageError, discover

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  hvconf fmt vms/                  rewrite every .hv file under vms/ in place
  hvconf fmt --check .             exit 1 and list the files that are not formatted (CI)
  hvconf fmt --diff vms/web1.hv    show what would change, write nothing
  hvconf fmt - < in.hv > out.hv    format standard input (for editors)

The layout is described in docs/fmt.md.
"""


def register(subparsers: "SubParsers") -> None:
    """Add `fmt` to the `hvconf` command's subparsers."""
    p = subparsers.add_parser("fmt", help="rewrite .hv files in the canonical layout, comments kept",
                              description="Rewrite .hv files in the canonical layout, keeping comments.",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, or folders searched for *.hv; '-' is stdin")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 listing files that would change")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour syntax errors (default: auto: on a terminal, or with FORCE_COLOR or CLICOLOR_FORCE "
                        "set; never with NO_COLOR set)")
    p.set_defaults(func=cmd_fmt)


def write_atomically(path: Path, text: str) -> None:
    """Replace the file `path` (a symlink's target) by `text`, keeping its mode."""
    real = Path(os.path.realpath(path))
    mode = real.stat().st_mode & 0o7777
    import tempfile  # here, not at the top: every command registers fmt, and `check` needs neither

    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        os.unlink(tmp)
        raise


class _Run:
    """One `hvconf fmt` invocation: formats paths one by one, keeping the worst status."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.status = EXIT_OK

    def fail(self, status: int, message: str) -> None:
        print(f"hvconf: error: {message}", file=sys.stderr)
        self.status = max(self.status, status)

    def formatted(self, data: bytes, display: str) -> str | None:
        """The formatted text, or None after reporting why the input has none."""
        from hvconf.diagnostics import Report
        from hvconf.formatter import format_source
        from hvconf.lint.render import render
        from hvconf.syntax.parser import decode, parse

        report = Report()
        text = decode(data, display, report)
        tree = parse(text, display, report) if text is not None else None
        if text is None or tree is None:
            from hvconf.lint.render import use_colour

            colour = use_colour(sys.stderr, getattr(self.args, "color", "auto"))
            for diag in report.errors:
                print(render(diag, report.sources, colour=colour), file=sys.stderr)
            self.status = max(self.status, EXIT_FINDINGS)
            return None
        return format_source(text, tree)

    def stdin(self) -> None:
        data = sys.stdin.buffer.read()
        new = self.formatted(data, "<stdin>")
        if new is None:
            return
        changed = new.encode() != data
        if self.args.check or self.args.diff:
            if changed:
                self.status = max(self.status, EXIT_FINDINGS)
                if self.args.diff:
                    self.diff(data.decode(), new, "<stdin>")
        else:
            sys.stdout.write(new)

    def file(self, path: Path) -> None:
        from hvconf.syntax.loader import MAX_FILE_BYTES, SUFFIX, display_path, root_problem
        from hvconf.syntax.paths import NOT_A_FILE, TOO_LARGE, PathRefused, read_checked, scope_for

        display = display_path(path)
        try:  # as `check` reads a root file (hvconf/syntax/loader.py): a symlink only to a .hv file of the project
            real, data = read_checked(path, scope_for(path), MAX_FILE_BYTES)
            if os.path.islink(path) and not real.endswith(SUFFIX):
                raise PathRefused(NOT_A_FILE, f"it is a symbolic link to a file not named *{SUFFIX}")
            if len(data) > MAX_FILE_BYTES:
                raise PathRefused(TOO_LARGE, f"it is larger than {MAX_FILE_BYTES} bytes")
        except PathRefused as err:
            self.fail(EXIT_USAGE, root_problem(display, err))
            return
        new = self.formatted(data, display)
        if new is None or new.encode() == data:
            return
        if self.args.check or self.args.diff:
            self.status = max(self.status, EXIT_FINDINGS)
            if self.args.diff:
                self.diff(data.decode(), new, display)
            if self.args.check:
                print(f"would reformat {display}")
            return
        try:
            write_atomically(path, new)
        except OSError as err:
            self.fail(EXIT_USAGE, f"cannot write {display}: {err.strerror or err}")
            return
        print(f"reformatted {display}")

    @staticmethod
    def diff(old: str, new: str, display: str) -> None:
        import difflib

        for line in difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{display}", f"b/{display}"):
            sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")


def cmd_fmt(args: argparse.Namespace) -> int:
    run = _Run(args)
    for raw in args.paths:
        if raw == "-":
            run.stdin()
            continue
        try:
            files = discover([raw])
        except UsageError as err:
            run.fail(EXIT_USAGE, str(err))
            continue
        for file in files:
            run.file(Path(file))
    return run.status
