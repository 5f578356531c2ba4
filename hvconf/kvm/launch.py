"""The entry point of a generated launch.py: options, then a dry run or a real run.

`main(plan, argv, base_dir) -> int` parses --dry-run/--trace/--timeout/
--quiet, runs the plan (run.py) or prints its steps (dryrun.py), and maps
every expected failure to one `launch: error: ...` line on stderr and a
status from status.py (SIGINT 130 and SIGTERM 143 included), never a traceback. cffi is imported only for a real
run, so --dry-run and --help start fast; argparse only for a command line beyond the plain flags
(--help, --kernel, abbreviations, errors). Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from hvconf.kvm.status import MEANING, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any, BinaryIO, NoReturn, TextIO

PROG = "launch"
DEFAULT_TIMEOUT = 5.0
FLAGS = {"--dry-run": "dry_run", "--trace": "trace", "--quiet": "quiet"}


class Options:
    """The parsed command line: what argparse's Namespace holds, with the same defaults."""

    def __init__(self) -> None:
        self.dry_run = self.trace = self.quiet = False
        self.timeout = DEFAULT_TIMEOUT
        self.kernel: Path | None = None
        self.guest: Path | None = None


def plain_options(argv: list[str]) -> Options | None:
    """The options of a command line made only of the flags and `--timeout SECONDS`, as argparse would
    parse it; None for anything else (help, --kernel, abbreviations, a bad value), which argparse parses.

    argparse and its imports (re, gettext) cost more than a guest's whole run."""
    options, i = Options(), 0
    while i < len(argv):
        arg = argv[i]
        if arg in FLAGS:
            setattr(options, FLAGS[arg], True)
            i += 1
            continue
        if arg == "--timeout" and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith("--timeout="):
            value, i = arg.removeprefix("--timeout="), i + 1
        else:
            return None
        if value.startswith("-"):  # argparse's rules for values that look like options: its business
            return None
        try:
            options.timeout = float(value)
        except ValueError:
            return None
    return options


def _parser(vm: str) -> argparse.ArgumentParser:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog=PROG, description=f"Run the {vm} guest on this host's KVM.")
    parser.add_argument("--dry-run", action="store_true", help="print the ioctl steps, one per line; open nothing")
    parser.add_argument("--trace", action="store_true", help="print each ioctl to stderr as it is issued")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help="end the guest after SECONDS (default 5)"
    )
    parser.add_argument("--quiet", action="store_true", help="no summary line on success")
    parser.add_argument("--kernel", type=Path, metavar="FILE",
                        help="load FILE as the kernel image (an ELF file: its segments at their physical addresses)")
    parser.add_argument("--guest", type=Path, metavar="FILE",
                        help="load FILE as the guest image (an ELF file: its segments at their physical addresses)")
    return parser


def main(
    plan: Mapping[str, Any],
    argv: list[str],
    base_dir: str | os.PathLike[str],  # a str or a Path
    *,
    out: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run or dry-run `plan`; returns the process status (hvconf.kvm.status.Status)."""
    out = out if out is not None else sys.stdout.buffer
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    vm = str(plan.get("vm", "guest")) if isinstance(plan, Mapping) else "guest"

    def error(message: str, status: int) -> int:
        print(f"{PROG}: error: {message}", file=stderr, flush=True)
        return int(status)

    options: Options | argparse.Namespace | None = plain_options(argv)
    if options is None:
        import contextlib

        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                options = _parser(vm).parse_args(argv)
        except SystemExit as done:  # argparse printed help, or usage and `launch: error: ...`
            return int(done.code or 0)
    if not options.timeout > 0:
        return error(f"--timeout must be a positive number of seconds, not {options.timeout:g}", Status.USAGE)

    from hvconf.kvm.plan import PlanError

    if options.dry_run:
        from hvconf.kvm import dryrun

        try:
            print("\n".join(dryrun.lines(plan)), file=stdout, flush=True)
        except PlanError as err:
            return error(str(err), Status.USAGE)
        return int(Status.HALTED)

    from hvconf.kvm.errors import KvmError
    from hvconf.kvm.run import HostMismatch, execute

    failures: dict[type[Exception], tuple[int, str]] = {
        PlanError: (Status.USAGE, "bad plan: "),
        HostMismatch: (Status.HOST, "host cannot run the target: "),
        KvmError: (Status.KVM_ERROR, ""),
    }
    try:
        supplied = {name: path for name, path in (("kernel", options.kernel), ("guest", options.guest)) if path}
        result = execute(
            plan, base_dir, timeout=options.timeout, trace=stderr if options.trace else None, out=out,
            supplied=supplied,
        )
    except tuple(failures) as err:
        status, prefix = next(v for k, v in failures.items() if isinstance(err, k))
        return error(f"{prefix}{err}", status)
    except KeyboardInterrupt:  # fds and mmaps were released on the way out
        return error(f"{vm}: interrupted", Status.INTERRUPTED)
    if result.status != Status.HALTED:
        return error(f"{vm}: {result.reason} (status {int(result.status)}: {MEANING[result.status]})", result.status)
    if not options.quiet:
        print(f"{PROG}: {vm}: {result.reason} after {result.seconds:.3f} s, {result.exits} exits", file=stderr)
    return int(result.status)


def run_as_process(plan: Mapping[str, Any], argv: list[str], base_dir: str) -> NoReturn:
    """`main`, then the end of the process: what a generated launch.py calls.

    The process ends with os._exit once the standard streams are flushed: every
    fd and mapping of the run was released by then, no thread is left, and the
    interpreter's own teardown only frees what the OS frees anyway (about 3 ms of
    a 25 ms launch). An exception from main (a bug) is left to Python as usual."""
    status = main(plan, argv, base_dir)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away; a stream someone closed
            pass
    os._exit(status)
