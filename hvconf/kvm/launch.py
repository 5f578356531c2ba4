"""The entry point of a generated launch.py: options, then a dry run or a real run.

`main(plan, argv, base_dir) -> int` parses --dry-run/--trace/--trace-file/
--timeout/--console/--on-reboot/--quiet/--kernel/--initrd/--guest, checks every value (options.py;
a bad one, a value option given twice, or an image the plan does not have is
a usage error: one line, status 2), runs the plan (run.py) or prints its steps
(dryrun.py), and maps every expected failure to one `launch: error: ...` line
on stderr and a status from status.py (SIGINT 130 and SIGTERM 143 included,
8 when the console or trace cannot be written), never a traceback. cffi is
imported only for a real run, so --dry-run and --help start fast; argparse
only for a command line beyond the plain options (--help, abbreviations,
errors). Tests: tests/kvm/test_runtime.py, tests/kvm/test_options.py.
"""

from __future__ import annotations

import errno
import os
import sys
from _collections_abc import Mapping  # collections.abc's source: importing collections costs ~2 ms

from hvconf.kvm import options as values
from hvconf.kvm.status import MAX_RESTARTS, MEANING, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from typing import Any, BinaryIO, NoReturn, TextIO

PROG = "launch"
DEFAULT_TIMEOUT = values.DEFAULT_TIMEOUT
FLAGS = {"--dry-run": "dry_run", "--trace": "trace", "--quiet": "quiet"}
VALUE_OPTIONS = {"--timeout": "timeout", "--console": "console", "--kernel": "kernel", "--initrd": "initrd",
                 "--guest": "guest", "--trace-file": "trace_file", "--on-reboot": "on_reboot"}  # fmt: skip
CHECKS = {"timeout": values.seconds, "console": values.console_mode, "kernel": values.file_name,
          "initrd": values.file_name, "guest": values.file_name, "trace_file": values.file_name,
          "on_reboot": values.on_reboot}  # fmt: skip
IMAGE_OPTIONS = ("kernel", "initrd", "guest")  # options that name a plan image to replace or supply


class UsageError(Exception):
    """A bad command line; the message is one line."""


class HelpNotWritten(Exception):
    """--help could not be written (a closed pipe, a full disk); the message is one line."""


class Options:
    """The checked command line: what argparse's Namespace holds, with the same defaults."""

    def __init__(self) -> None:
        self.dry_run = self.trace = self.quiet = False
        self.timeout = DEFAULT_TIMEOUT
        self.console = "auto"
        self.on_reboot = "exit"
        self.kernel: str | None = None
        self.initrd: str | None = None
        self.guest: str | None = None
        self.trace_file: str | None = None


def checked(option: str, text: str) -> Any:
    """The value of `option` (e.g. "--timeout") given as `text`, or UsageError."""
    try:
        return CHECKS[VALUE_OPTIONS[option]](text)
    except ValueError as err:
        raise UsageError(f"argument {option}: {err}") from None


def plain_options(argv: list[str]) -> Options | None:
    """The options of a command line made only of the flags and `--OPTION VALUE` / `--OPTION=VALUE`,
    as argparse would parse them; None for anything else (help, abbreviations, a missing value, a value
    that is an option), which argparse parses. UsageError for a bad value or one given twice.

    argparse and its imports (re, gettext) cost more than a guest's whole run."""
    options, given, i = Options(), set(), 0
    while i < len(argv):
        arg = argv[i]
        if arg in FLAGS:  # a flag given twice is the same request
            setattr(options, FLAGS[arg], True)
            i += 1
            continue
        option, eq, value = arg.partition("=")
        if option not in VALUE_OPTIONS:
            return None
        if not eq:
            if i + 1 == len(argv) or argv[i + 1].startswith("--") or argv[i + 1] == "-h":  # argparse's business
                return None  # (`--timeout -1` is a value here: argparse would call it a missing one)
            value = argv[i + 1]
        i += 1 if eq else 2
        if option in given:
            raise UsageError(f"argument {option}: given twice")
        given.add(option)
        setattr(options, VALUE_OPTIONS[option], checked(option, value))
    return options


def _parse(vm: str, argv: list[str], stdout: TextIO | None) -> Options | None:
    """argparse's reading of `argv`: Options, or None once it printed the help. UsageError otherwise."""
    import argparse
    import contextlib

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line, no usage block
            raise UsageError(message)

    class Once(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                     option: str | None = None) -> None:  # fmt: skip
            if getattr(namespace, self.dest) is not None:
                raise UsageError(f"argument {self.option_strings[0]}: given twice")
            setattr(namespace, self.dest, checked(self.option_strings[0], value))

    parser = Parser(prog=PROG, description=f"Run the {vm} guest on this host's KVM.")
    parser.add_argument("--dry-run", action="store_true", help="print the ioctl steps, one per line; open nothing")
    parser.add_argument("--trace", action="store_true", help="print each ioctl to stderr as it is issued")
    parser.add_argument("--trace-file", action=Once, metavar="FILE",
                        help="write the trace to FILE (created or truncated) instead of stderr; implies --trace")
    parser.add_argument("--timeout", action=Once, metavar="SECONDS",
                        help=f"end the guest after SECONDS, more than 0 and at most {values.MAX_TIMEOUT:.0f} "
                             f"(default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--console", action=Once, metavar="MODE",
                        help="how the guest's console output is written: raw (its bytes), safe (control "
                             "characters, escape sequences and CI log commands rendered harmless), or auto "
                             "(default: raw on a terminal, safe otherwise)")
    parser.add_argument("--on-reboot", action=Once, metavar="ACTION",
                        help="what the guest's reboot does: exit (default: the run ends, status 9) or restart (the "
                             f"guest boots again on the same memory, images reloaded; at most "
                             f"{MAX_RESTARTS} times, within --timeout)")
    parser.add_argument("--quiet", action="store_true", help="no summary line on success")
    parser.add_argument("--kernel", action=Once, metavar="FILE",
                        help="load FILE as the kernel image (an ELF file: its segments at their physical addresses)")
    parser.add_argument("--initrd", action=Once, metavar="FILE",
                        help="give FILE to the kernel as its initial ramdisk, where the plan puts it (sPAPR: the "
                             "device tree's linux,initrd-end follows its size; x86: at the top of RAM)")
    parser.add_argument("--guest", action=Once, metavar="FILE",
                        help="load FILE as the guest image (an ELF file: its segments at their physical addresses)")
    printed = _Watched(stdout)
    try:
        with contextlib.redirect_stdout(printed):
            namespace = parser.parse_args(argv)
    except SystemExit:  # --help was printed
        printed.flush()
        if printed.error is not None:  # argparse drops the help's write errors (_print_message)
            from hvconf.kvm.output import OutputError

            raise HelpNotWritten(str(OutputError.of("help", printed.error))) from None
        return None
    options = Options()
    for dest, value in vars(namespace).items():
        if value is not None:
            setattr(options, dest, value)
    return options


class _Watched:
    """A text stream that keeps its first write error: argparse's help swallows them."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream  # None: stdout was closed
        self.error: OSError | ValueError | None = None

    def write(self, text: str) -> int:
        try:
            if self.stream is None:
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return self.stream.write(text)
        except (OSError, ValueError) as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        try:
            if self.stream is not None:
                self.stream.flush()
        except (OSError, ValueError) as err:
            self.error = self.error or err

    def send(self, text: str) -> None:
        """Write and flush `text`; a failure is left in `error`."""
        try:
            self.write(text)
        except (OSError, ValueError):
            return
        self.flush()


def _say(stream: TextIO | None, text: str) -> None:
    """One line on stderr; a stderr that cannot take it is not a second error."""
    if stream is not None:
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):
            pass


def _supplied(plan: Mapping[str, Any], vm: str, options: Options) -> dict[str, str]:
    """The image files given on the command line; UsageError for one the plan has no image for."""
    images = plan.get("images") if isinstance(plan, Mapping) else None
    names = {i.get("name") for i in images if isinstance(i, Mapping)} if isinstance(images, list) else set()
    supplied = {name: path for name in IMAGE_OPTIONS if (path := getattr(options, name))}
    for name in supplied:
        if name not in names:
            have = ", ".join(sorted(str(n) for n in names)) or "none"
            raise UsageError(f"argument --{name}: {vm} has no {name} image (its images: {have})")
    return supplied


def _open_trace(path: str) -> BinaryIO:
    """The --trace-file, created or truncated. O_NONBLOCK only for the open: a FIFO nobody reads is
    refused (ENXIO) instead of blocking the launcher before it has started."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        raise UsageError(f"argument --trace-file: cannot open {path}: {err.strerror}") from None
    os.set_blocking(fd, True)
    return open(fd, "wb", buffering=0)  # noqa: SIM115 - closed by main()


def main(
    plan: Mapping[str, Any],
    argv: list[str],
    base_dir: str | os.PathLike[str],  # a str or a Path
    *,
    out: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run or dry-run `plan`; returns the process status (hvconf.kvm.status.Status).

    A closed stdout or stderr (None in sys) is a stream that fails: the console then ends the
    run with status 8 at the guest's first byte, and messages are dropped."""
    out = out if out is not None else getattr(sys.stdout, "buffer", None)
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    vm = str(plan.get("vm", "guest")) if isinstance(plan, Mapping) else "guest"

    def error(message: str, status: int) -> int:
        _say(stderr, f"{PROG}: error: {message}")
        return int(status)

    try:
        options = plain_options(argv) or _parse(vm, argv, stdout)
        if options is None:
            return int(Status.HALTED)  # the help
        supplied = _supplied(plan, vm, options)
    except UsageError as err:
        return error(str(err), Status.USAGE)
    except HelpNotWritten as err:
        return error(f"{vm}: {err}", Status.OUTPUT)

    from hvconf.contract import PlanError

    if options.dry_run:
        from hvconf.kvm import dryrun

        try:
            text = "\n".join(dryrun.lines(plan))
        except PlanError as err:
            return error(str(err), Status.USAGE)
        printed = _Watched(stdout)
        printed.send(text + "\n")
        if printed.error is not None:  # a closed pipe, a full disk, no stdout
            from hvconf.kvm.output import OutputError

            return error(f"{vm}: {OutputError.of('dry run', printed.error)}", Status.OUTPUT)
        return int(Status.HALTED)

    from hvconf.kvm.ioctls.errors import KvmError
    from hvconf.kvm.images import ImageOptionError
    from hvconf.kvm.output import OutputError
    from hvconf.kvm.run import HostMismatch, execute

    failures: dict[type[Exception], tuple[int, str]] = {  # the first that matches
        ImageOptionError: (Status.USAGE, ""),
        PlanError: (Status.USAGE, "bad plan: "),
        HostMismatch: (Status.HOST, "host cannot run the target: "),
        KvmError: (Status.KVM_ERROR, ""),
    }
    try:
        trace: BinaryIO | TextIO | None = _open_trace(options.trace_file) if options.trace_file else None
    except UsageError as err:
        return error(str(err), Status.USAGE)
    try:
        result = execute(
            plan, base_dir, timeout=options.timeout, trace=trace or (stderr if options.trace else None), out=out,
            supplied=supplied, console=options.console, on_reboot=options.on_reboot,
        )
    except OutputError as err:
        return error(f"{vm}: {err} (status {int(Status.OUTPUT)}: {MEANING[Status.OUTPUT]})", Status.OUTPUT)
    except tuple(failures) as err:
        status, prefix = next(v for k, v in failures.items() if isinstance(err, k))
        return error(f"{prefix}{err}", status)
    except KeyboardInterrupt:  # fds and mmaps were released on the way out
        return error(f"{vm}: interrupted", Status.INTERRUPTED)
    finally:
        if trace is not None:
            trace.close()
    if result.status != Status.HALTED:
        return error(f"{vm}: {result.reason} (status {int(result.status)}: {MEANING[result.status]})", result.status)
    if not options.quiet:
        restarted = f", {result.restarts} restarts" if result.restarts else ""
        _say(stderr, f"{PROG}: {vm}: {result.reason} after {result.seconds:.3f} s, {result.exits} exits{restarted}")
    return int(result.status)


def run_as_process(plan: Mapping[str, Any], argv: list[str], base_dir: str) -> NoReturn:
    """`main`, then the end of the process: what a generated launch.py calls.

    The process ends with os._exit once the standard streams are flushed: every
    fd and mapping of the run was released by then, no thread is left, and the
    interpreter's own teardown only frees what the OS frees anyway (about 3 ms of
    a 25 ms launch). Standard output still buffered that cannot be written (the help
    into a closed pipe or onto a full disk) turns a success into status 8; stderr's
    failures change nothing (they could not be reported anyway). An exception from
    main (a bug) is left to Python as usual; a SIGINT outside the run (a second
    Ctrl-C while the launcher says how the first one ended) is status 130."""
    try:
        status = main(plan, argv, base_dir)
    except KeyboardInterrupt:
        _say(sys.stderr, f"{PROG}: error: interrupted")
        status = Status.INTERRUPTED
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError) as err:  # a reader that went away, a full disk; a stream someone closed
        if status == Status.HALTED:
            from hvconf.kvm.output import OutputError

            _say(sys.stderr, f"{PROG}: error: {OutputError.of('standard', err)}")
            status = Status.OUTPUT
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)
