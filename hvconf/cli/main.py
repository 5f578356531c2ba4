"""The `hvconf` command: thin shells over hvconf.compiler, hvconf.lint.driver and hvconf.kvm.

Exit status: 0 clean, 1 findings (errors, or warnings with --werror), 2 usage
or I/O errors (one line: argparse's errors too); `run` passes the launcher's
status through (128 + N for a launcher ended by signal N). Heavy imports
happen inside the commands that need them, so `hvconf check` starts fast.
Other modules add commands through `register(subparsers)` (COMMAND_MODULES).
Tested by tests/test_cli.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence, TextIO

if TYPE_CHECKING:
    from hvconf.compiler import Result
    from hvconf.emit.artifacts import Built
    from hvconf.diagnostics import Report
    from hvconf.lint.driver import LintResult
    from hvconf.diagnostics import Diagnostic
    from hvconf.lint.settings import ConfigError, Finder, Settings

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

# Modules that add commands: each has `register(subparsers)`, called in this order
# in parser(). Imported only when the parser is built, so they stay cheap to list.
COMMAND_MODULES: tuple[str, ...] = ("hvconf.cli.host", "hvconf.cli.fmt", "hvconf.cli.docs", "hvconf.cli.cache",
                                   "hvconf.cli.lsp", "hvconf.cli.targets", "hvconf.cli.diff")

EXAMPLES = """examples:
  hvconf check vms/                     lint every .hv under vms/; needs no /dev/kvm
  hvconf build vms/pseries.hv -o out/   out/pseries/{pseries.dts,pseries.dtb,plan.json,launch.py,manifest.json}
  hvconf plan vms/pseries.hv            the ioctl sequence, readable (--format json for plan.json)
  hvconf run samples/x86-hello.hv       build into a temporary folder and run the guest on /dev/kvm
  hvconf COMMAND --help                 options and examples of one command
"""

CHECK_EXAMPLES = """examples:
  hvconf check vms/                          every .hv below vms/ (hidden folders skipped)
  hvconf check --jobs 0 .                    one worker process per CPU
  hvconf check --format sarif . > hvconf.sarif   for GitHub code scanning
  hvconf check --format github .             annotations in a GitHub Actions log
  hvconf check --select unknown-cap,cap-bad-args vms/
  hvconf check --ignore rma-obsolete --werror vms/
  hvconf check --diff vms/                   the edits --fix would make; --fix makes them
  hvconf check - --stdin-filename vms/a.hv   an editor's unsaved buffer, as if saved at vms/a.hv
  hvconf check --show-settings vms/a.hv      what hvconf.toml / [tool.hvconf] says for that file
  hvconf check --format gitlab . > gl-code-quality.json   also junit; FORCE_COLOR=1 colours CI logs

exit status: 0 clean, 1 findings (errors; warnings too with --werror),
2 usage error or a file that cannot be read. See docs/ci.md.
"""

BUILD_EXAMPLES = """examples:
  hvconf build samples/pseries.hv -o out/    out/pseries/{pseries.dts,pseries.dtb,plan.json,launch.py,manifest.json}
  hvconf build vms/*.hv -o out/              all or nothing: one error anywhere and nothing is written

A progress bar is drawn on stderr when it is a terminal.
"""

VM_EXAMPLES = {
    "plan": "examples:\n  hvconf plan samples/pseries.hv\n  hvconf plan --format json samples/pseries.hv > plan.json\n",
    "dts": "examples:\n  hvconf dts samples/pseries.hv\n  hvconf dts samples/pseries.hv | dtc -I dts -O dtb -o pseries.dtb\n",
    # Every line runs as written from the repository root (tests/test_cli.py runs them).
    "run": ("examples:\n"
            "  hvconf run samples/x86-hello.hv                         build, run on /dev/kvm, exit with the launcher's status\n"
            "  hvconf run --timeout 10 samples/x86-pvspinlock.hv       the watchdog ends a KVM_RUN after 10 s\n"
            "  hvconf run --dry-run --trace samples/x86-pvspinlock.hv  the ioctl steps, without opening /dev/kvm\n"),
}

COMPLETION_EXAMPLES = """examples:
  source <(hvconf completion bash)                          in ~/.bashrc
  hvconf completion zsh > "${fpath[1]}/_hvconf"             then restart zsh
  hvconf completion fish > ~/.config/fish/completions/hvconf.fish
"""


def _fail(message: str) -> int:
    print(f"hvconf: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _colour(stream: TextIO, choice: str = "auto") -> bool:
    """--color, NO_COLOR, FORCE_COLOR, CLICOLOR_FORCE, a terminal (hvconf.lint.render.use_colour)."""
    from hvconf.lint.render import use_colour

    return use_colour(stream, choice)


def _print_report(report: "Report", stream: TextIO, choice: str = "auto") -> None:
    from hvconf.lint.render import render, summary

    colour = _colour(stream, choice)
    for diag in report:
        print(render(diag, report.sources, colour=colour), file=stream)
    if report.diagnostics:
        print(summary(report, colour=colour), file=stream)


def _status(report: "Report", werror: bool = False) -> int:
    return EXIT_FINDINGS if report.has_errors or (werror and report.warnings) else EXIT_OK


def _compile(job: Callable[..., "Result"], paths: Sequence[str], args: argparse.Namespace,
             **kwargs: Any) -> "Result | None":
    """Run a compiler job, reading within --root and --allow-path; None (after one error
    line) when an input cannot be read."""
    from hvconf.syntax.loader import InputError, Loader

    try:
        return job([Path(p) for p in paths], loader=Loader(args.root, args.allow_path or ()), **kwargs)
    except InputError as err:
        _fail(str(err))
        return None


def _build(args: argparse.Namespace, paths: Sequence[str]) -> "Result | None":
    from hvconf import compiler
    from hvconf.lint.progress import bar_for

    overrides = Path(args.abi_overrides) if args.abi_overrides else None
    bar = bar_for(sys.stderr) if len(paths) > 1 else None  # `build` of several files, on a terminal
    try:
        result = _compile(compiler.build, paths, args, proposed_overrides=overrides, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if result is not None:
        _print_report(result.report, sys.stderr, getattr(args, "color", "auto"))
    return result


def _build_one(args: argparse.Namespace) -> "Built | int":
    """The one VM `plan`, `dts` and `run` work on, or the exit status explaining why not."""
    result = _build(args, [args.file])
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:
        return EXIT_FINDINGS
    built = [b for b in result.built if args.vm in (None, b.vm.name)]
    if not built:
        return _fail(f"no VM named {args.vm!r} in {args.file}" if args.vm else f"{args.file} defines no concrete VM")
    if len(built) > 1:
        return _fail(f"{args.file} defines several VMs ({', '.join(b.vm.name for b in built)}); choose one with --vm")
    return built[0]


def _host_facts_error() -> type[Exception]:
    """HostFactsError, imported when needed: hvconf.model.host loads pydantic models lint does not need."""
    from hvconf.model.host import HostFactsError

    return HostFactsError


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords for compiler.check from options other modules add to `check`;
    picklable, for --jobs workers. Raises HostFactsError for bad host facts."""
    from hvconf.cli.host import host_facts_from_args

    return {"host": host_facts_from_args(args)}


def _config_error(err: "ConfigError", args_colour: str = "auto") -> int:
    """A bad configuration: its located diagnostic on stderr (caret and all), status 2."""
    from hvconf.lint.render import render

    sources = {err.diagnostic.span.file: err.source} if err.diagnostic.span is not None and err.source else {}
    print(render(err.diagnostic, sources, colour=_colour(sys.stderr, args_colour)), file=sys.stderr)
    return EXIT_USAGE


def _read_stdin() -> bytes:
    """The definition on stdin, at most what the loader reads from a file (UsageError beyond)."""
    from hvconf.lint.driver import UsageError
    from hvconf.syntax.loader import MAX_FILE_BYTES

    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"stdin: more than {MAX_FILE_BYTES} bytes; hvconf reads at most {MAX_FILE_BYTES}")
    return data


def _check_stdin(args: argparse.Namespace, options: dict[str, Any]) -> "LintResult":
    """`hvconf check - --stdin-filename PATH`: stdin checked as if saved at PATH."""
    from hvconf import compiler
    from hvconf.lint.driver import LintResult
    from hvconf.syntax.loader import Loader

    path = Path(args.stdin_filename or "-")
    result = compiler.check_text(_read_stdin(), path, loader=Loader(args.root, args.allow_path or ()), as_needed=True,
                                 **options)
    return LintResult(result.report, 1)


def _stdin_usage(args: argparse.Namespace) -> bool:
    """Whether `check` reads stdin (`-`); UsageError for `-` among other paths, or a
    --stdin-filename without it."""
    from hvconf.lint.driver import UsageError

    stdin = "-" in args.paths
    if stdin and len(args.paths) > 1:
        raise UsageError("'-' (stdin) cannot be checked with other paths")
    if args.stdin_filename is not None and not stdin:
        raise UsageError("--stdin-filename names the file stdin stands for: give '-' as the path")
    return stdin


def cmd_check(args: argparse.Namespace) -> int:
    from hvconf.diagnostics import Severity
    from hvconf.lint.driver import UsageError, discover, lint, parse_codes, with_settings
    from hvconf.lint.fixes import attach
    from hvconf.lint.formats import render
    from hvconf.lint.formats.text import render as text_render
    from hvconf.lint.settings import ConfigError, Finder, Settings, describe

    finder = Finder(args.root)
    try:
        cli = Settings().with_cli(_selection(parse_codes(args.select)), _sorted(parse_codes(args.extend_select)),
                                  _sorted(parse_codes(args.ignore)))
        if args.show_settings is not None:
            sys.stdout.write(describe(finder.for_file(args.show_settings).with_cli(
                cli.cli_select, cli.cli_extend_select, cli.cli_ignore), args.show_settings))
            return EXIT_OK
        if not args.paths:
            raise UsageError("give a PATH to check (a file, a folder, or - for stdin)")
        stdin = _stdin_usage(args)
        paths = [] if stdin else discover(args.paths, finder)
        options = _check_options(args)
        defaults = _run_settings(finder, args)
        if args.fix or args.diff:
            changed = _fix(args, paths, finder, cli)
            if args.diff or stdin:  # the diff, or the fixed text, is the output
                return EXIT_FINDINGS if changed and args.diff else EXIT_OK
        if stdin:
            result = _check_stdin(args, options)
        else:
            cache = import_module("hvconf.cli.cache").cache_from_args(args, options, args.root, args.allow_path or ())
            result = lint(paths, jobs=args.jobs, root=args.root, allow=args.allow_path or (), cache=cache, **options)
        result.report = attach(with_settings(result.report, finder, cli))
    except UsageError as err:
        return _fail(str(err))
    except ConfigError as err:
        return _config_error(err, args.color)
    except _host_facts_error() as err:  # evaluated only once something was raised
        return _fail(str(err))
    def fails(d: "Diagnostic") -> bool:  # an error, or a warning with --werror or its file's `werror = true`
        if d.severity is not Severity.WARNING:
            return d.severity is Severity.ERROR
        return args.werror or (finder.for_file(d.span.file) if d.span is not None else defaults).werror

    status = EXIT_FINDINGS if any(fails(d) for d in result.report.diagnostics) else EXIT_OK
    if args.quiet:  # only what fails the run
        result.report.diagnostics = [d for d in result.report.diagnostics if fails(d)]
    output_format = args.format or defaults.output_format or "text"
    if output_format == "text":  # -q keeps only findings: no summary line
        sys.stdout.write(text_render(result, colour=_colour(sys.stdout, args.color), with_summary=not args.quiet))
    else:
        sys.stdout.write(render(output_format, result))
    for problem in result.unreadable:
        _fail(problem)
    return EXIT_USAGE if result.unreadable else status


def _fix(args: argparse.Namespace, paths: list[str], finder: "Finder", cli: "Settings") -> bool:
    """--fix: rewrite each file with its fixes applied (stdin: print the fixed text); --diff:
    print what --fix would change. True when something changes. Each file is replaced whole
    (a temporary file renamed over it), so an interrupted fix leaves the old or the new text."""
    from hvconf.lint.fixes import fix_text, unified_diff

    changed = False
    allow = tuple(args.allow_path or ())
    if paths == []:
        sources: list[tuple[str, str | None, bytes | None]] = [(args.stdin_filename or "-", None, _read_stdin())]
    else:
        sources = [(p, _real_root(p, args.root, allow), None) for p in paths]
    for path, real, data in sources:
        before = data.decode("utf-8", "surrogateescape") if data is not None else _read_text(real, args.root, allow)
        if before is None:
            continue  # not fixed; the check that follows reports why it cannot be read
        settings = finder.for_file(path).with_cli(cli.cli_select, cli.cli_extend_select, cli.cli_ignore)
        after = fix_text(before, path, settings, root=args.root, allow=allow)
        changed |= after != before
        if args.diff:
            sys.stdout.write(unified_diff(before, after, os.path.normpath(path)))
        elif data is not None:
            sys.stdout.write(after)
        elif after != before and real is not None:
            _replace_file(real, after)
    return changed


def _real_root(path: str, root: str | None, allow: tuple[str, ...]) -> str | None:
    """The real path --fix may read and rewrite for root file `path`: what the loader would
    read (hvconf/syntax/paths.py): inside the project, a regular file, and for a symbolic link
    a .hv file. None otherwise: a link to a host file is neither read nor written."""
    from hvconf.syntax.loader import SUFFIX, Loader
    from hvconf.syntax.paths import PathRefused, resolve

    absolute = os.path.abspath(path)
    try:
        real, _ = resolve(absolute, Loader(root, allow).scope(absolute))
    except PathRefused:
        return None
    return None if os.path.islink(absolute) and not real.endswith(SUFFIX) else real


def _read_text(real: str | None, root: str | None, allow: tuple[str, ...]) -> str | None:
    """A root file's text for --fix (None when it may not or cannot be read as UTF-8)."""
    from hvconf.syntax.loader import MAX_FILE_BYTES, Loader
    from hvconf.syntax.paths import PathRefused, read_resolved

    if real is None:
        return None
    try:
        data = read_resolved(real, Loader(root, allow).scope(real), MAX_FILE_BYTES)
        return data.decode("utf-8") if len(data) <= MAX_FILE_BYTES else None
    except (PathRefused, UnicodeDecodeError):
        return None


def _replace_file(real: str, text: str) -> None:
    """Write `text` over the file at `real` (keeping its mode): a temporary file beside it,
    fsynced and renamed into place."""
    import tempfile

    mode = os.stat(real).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".hvconf-fix-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        os.unlink(tmp)
        raise


def _run_settings(finder: "Finder", args: argparse.Namespace) -> "Settings":
    """What applies to the run as a whole (output-format; werror for findings about no file):
    the configuration of the working directory, else of the first path checked."""
    here = finder.for_folder(os.getcwd())
    if here.source is None and args.paths and args.paths != ["-"]:
        first = args.paths[0]
        return finder.for_folder(first) if os.path.isdir(first) else finder.for_file(first)
    if here.source is None and args.stdin_filename:
        return finder.for_file(args.stdin_filename)
    return here


def _selection(codes: frozenset[str]) -> tuple[str, ...] | None:
    """--select's codes, or None when it was not given (the configuration's select applies)."""
    return _sorted(codes) if codes else None


def _sorted(codes: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(codes))


def cmd_completion(args: argparse.Namespace) -> int:
    from hvconf.cli.completion import script

    sys.stdout.write(script(args.shell, parser()))
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from hvconf.emit.output import write_tree

    result = _build(args, args.files)
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:
        return EXIT_FINDINGS
    try:
        written = write_tree(Path(args.output), {b.vm.name: b.files for b in result.built})
    except OSError as err:
        return _fail(f"cannot write {args.output}: {err.strerror or err}")
    for folder in written:
        print(f"wrote {folder}/")
    return _status(result.report, args.werror)


def cmd_plan(args: argparse.Namespace) -> int:
    from hvconf.emit.plan import dumps, to_text

    built = _build_one(args)
    if isinstance(built, int):
        return built
    sys.stdout.write(dumps(built.plan) if args.format == "json" else to_text(built.plan))
    return EXIT_OK


def cmd_dts(args: argparse.Namespace) -> int:
    built = _build_one(args)
    if isinstance(built, int):
        return built
    dts = built.files.get(f"{built.vm.name}.dts")
    if dts is None:
        from hvconf.model.target import load_target

        target = load_target(built.vm.target or "")
        print(f"hvconf: error: target {target.name} boots without a device tree"
              f" ({target.no_device_tree or 'no dts output'})", file=sys.stderr)
        return EXIT_FINDINGS
    sys.stdout.write(dts.decode())
    return EXIT_OK


def _launcher_command(launcher: Path, args: argparse.Namespace) -> list[str]:
    """The launch.py command line for `hvconf run`'s options (checked already, as the launcher checks them)."""
    command = [sys.executable, str(launcher), "--timeout", repr(args.timeout), "--console", args.console,
               "--on-reboot", args.on_reboot]
    command += ["--trace"] if args.trace else []
    command += ["--trace-file", args.trace_file] if args.trace_file else []  # the launcher runs in this cwd
    command += ["--dry-run"] if args.dry_run else []
    command += ["--kernel", str(Path(args.kernel).resolve())] if args.kernel else []
    command += ["--initrd", str(Path(args.initrd).resolve())] if args.initrd else []
    return command


def _wait_for(command: list[str]) -> int:
    """Run the launcher and pass its status through. Ctrl-C reaches the launcher too (one process
    group), which stops its guest and exits 130: wait for that instead of killing it mid-run
    (subprocess.call would). A SIGTERM sent to hvconf alone is passed on. A launcher ended by a
    signal gives 128 + its number, as shells say."""
    import signal
    import subprocess

    child = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                status = child.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - status if status < 0 else status


def cmd_run(args: argparse.Namespace) -> int:
    import tempfile

    from hvconf.emit.output import write_tree

    built = _build_one(args)
    if isinstance(built, int):
        return built
    with tempfile.TemporaryDirectory(prefix="hvconf-run-") as tmp:
        folder = write_tree(Path(tmp), {built.vm.name: built.files})[0]
        sys.stdout.flush()
        return _wait_for(_launcher_command(folder / "launch.py", args))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `hvconf run: error: argument --timeout: ...`, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Once(argparse.Action):
    """A value option that may be given once: `--timeout 1 --timeout 2` is a usage error."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        given = namespace.__dict__.setdefault("_given_once", set())
        if self.dest in given:
            parser.error(f"argument {'/'.join(self.option_strings)}: given twice")
        given.add(self.dest)
        setattr(namespace, self.dest, values)


def _checked(check: str) -> Callable[[str], Any]:
    """An argparse type from the hvconf.kvm.options check named `check`: the launcher's own words, not
    "invalid value". The module loads when a value is checked: `hvconf check` never loads it."""

    def convert(text: str) -> Any:
        from hvconf.kvm import options

        try:
            return getattr(options, check)(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = check
    return convert


def _regular_file(text: str) -> str:
    """A file option read whole later (--abi-overrides): a FIFO, device or folder is a usage error
    here, and the reader itself refuses one swapped in after this stat (hvconf/abi/proposal.py)."""
    import stat

    try:
        mode = os.stat(text).st_mode if text and "\0" not in text else None
    except OSError as err:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {err.strerror}") from None
    if mode is None or not stat.S_ISREG(mode):
        raise argparse.ArgumentTypeError(f"expected a regular file, not {text!r}")
    return text


def _command(sub: Any, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _folder(text: str) -> str:
    """A folder named by --root or --allow-path: it must exist, so a typo is not a silent
    narrowing (or, for --root, a project nothing is inside)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a folder")
    return text


def _color_option(p: argparse.ArgumentParser, what: str = "diagnostics") -> None:
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help=f"colour {what} (default: auto: on a terminal, or with FORCE_COLOR or CLICOLOR_FORCE set; "
                        "never with NO_COLOR set)")


def _path_options(p: argparse.ArgumentParser) -> None:
    """--root and --allow-path: where a definition may make hvconf read (docs/robustness.md)."""
    p.add_argument("--root", type=_folder, metavar="DIR",
                   help="the project folder definitions may read from (default: the repository holding each "
                        "file, or its folder)")
    p.add_argument("--allow-path", type=_folder, action="append", metavar="DIR",
                   help="also let definitions read files below DIR (repeatable)")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of processes (0 means one per CPU)")
    return value


def parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `hvconf` command line. `only="check"` (a command line that starts with `check`) builds
    no other command: the same `check` parser, without importing the modules that add the others
    (COMMAND_MODULES: json, subprocess, tempfile...), a tenth of a cold one-file check."""
    from hvconf import __version__
    from hvconf.lint.formats import FORMATS

    top = _Parser(prog="hvconf", description="Compile .hv VM definitions for KVM.",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"hvconf {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "check", "lint definitions (no /dev/kvm needed)", CHECK_EXAMPLES)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="a .hv file, a folder to search for .hv files, or - for stdin")
    p.add_argument("--format", choices=list(FORMATS), default=None,
                   help="output format (default: the configuration's output-format, else text)")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors (exit status 1)")
    p.add_argument("--select", action="append", metavar="CODES",
                   help="report only these codes or code prefixes, ALL for every code (comma-separated; "
                        "repeatable; replaces the configuration's select)")
    p.add_argument("--extend-select", action="append", metavar="CODES",
                   help="also report these codes or prefixes (comma-separated; repeatable)")
    p.add_argument("--ignore", action="append", metavar="CODES",
                   help="do not report these codes or prefixes (comma-separated; repeatable)")
    p.add_argument("--stdin-filename", metavar="PATH",
                   help="with - as the path: the file stdin stands for (includes, project, configuration and "
                        "the name in diagnostics are PATH's)")
    p.add_argument("--fix", action="store_true",
                   help="apply the fixes findings state exactly (docs/diagnostics.md says which codes have one), "
                        "then report what is left; with -: print the fixed text")
    p.add_argument("--diff", action="store_true",
                   help="print what --fix would change as a unified diff, change nothing (exit 1 if it would)")
    p.add_argument("--show-settings", metavar="FILE",
                   help="print the settings that apply to FILE (from its project configuration) and exit")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what fails the run (errors; warnings too with --werror), no summary")
    p.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N",
                   help="check in N worker processes; 0: one per CPU (default: 1)")
    _color_option(p, "the text format")
    import_module("hvconf.cli.host").add_host_options(p)  # --host / --host-facts, via _check_options()
    import_module("hvconf.cli.cache").add_cache_options(p)  # --no-cache / --cache-dir
    _path_options(p)
    p.set_defaults(func=cmd_check)
    if only == "check":
        return top

    p = _command(sub, "build", "write DTS/DTB, plan.json, launch.py and manifest.json per VM", BUILD_EXAMPLES)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors (exit status 1)")
    p.add_argument("--abi-overrides", metavar="FILE", type=_regular_file, action=_Once,
                   help="numbers for the unmerged ePAPR proposal (TOML)")
    _path_options(p)
    _color_option(p)
    p.set_defaults(func=cmd_build)

    for name, func, what in (("plan", cmd_plan, "print the ioctl plan"), ("dts", cmd_dts, "print the device tree"),
                             ("run", cmd_run, "build into a temporary folder and run the launcher")):
        p = _command(sub, name, what, VM_EXAMPLES[name])
        a_file, a_name = _checked("file_name"), _checked("name")
        p.add_argument("file", metavar="FILE", type=a_file)
        p.add_argument("--vm", metavar="NAME", type=a_name, action=_Once,
                       help="which VM, when the file defines several")
        p.add_argument("--abi-overrides", metavar="FILE", type=_regular_file, action=_Once,
                       help="numbers for the unmerged ePAPR proposal (TOML)")
        _path_options(p)
        _color_option(p)
        if name == "plan":
            p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")
        if name == "run":  # the launcher's options, checked here as launch.py checks them (hvconf.kvm.options)
            p.add_argument("--timeout", type=_checked("seconds"), default="5", action=_Once, metavar="SECONDS",
                           help="watchdog: above 0 and at most a year (default 5)")  # a str default goes through type
            p.add_argument("--trace", action="store_true", help="print each ioctl to stderr as it is issued")
            p.add_argument("--trace-file", type=a_file, action=_Once, metavar="FILE",
                           help="write the trace to FILE instead of stderr (implies --trace)")
            p.add_argument("--console", type=_checked("console_mode"), default="auto", action=_Once,
                           metavar="MODE", help="the guest console: raw, safe (control characters and CI log "
                                                "commands rendered harmless) or auto (default: raw on a terminal)")
            p.add_argument("--on-reboot", type=_checked("on_reboot"), default="exit", action=_Once, metavar="ACTION",
                           help="the guest's reboot: exit (default: status 9) or restart (at most 16 times, "
                                "within --timeout)")
            p.add_argument("--dry-run", action="store_true", help="print the ioctls without opening /dev/kvm")
            p.add_argument("--kernel", metavar="FILE", type=a_file, action=_Once,
                           help="kernel image for a VM whose `kernel` file was missing at build time (kernel-missing)")
            p.add_argument("--initrd", metavar="FILE", type=a_file, action=_Once,
                           help="initrd for a VM with `initrd`, instead of the file named there (initrd-missing: "
                                "missing at build time)")
        p.set_defaults(func=func)

    # --- Commands of other modules (hvconf/cli/host.py, fmt.py, docs.py): listed in
    # --- COMMAND_MODULES, each module's register(sub) adds its sub-parsers here.
    for module in COMMAND_MODULES:
        import_module(module).register(sub)

    p = _command(sub, "completion", "print a shell completion script", COMPLETION_EXAMPLES)
    p.add_argument("shell", choices=["bash", "zsh", "fish"], help="the shell to complete for")
    p.set_defaults(func=cmd_completion)
    return top


def _pause_collector() -> None:
    """No cyclic garbage collection for `hvconf check` and `hvconf build` run as a process of
    their own. Start-up builds tens of thousands of objects that live until exit (pydantic's
    schemas, lark's tables, the knowledge base), which the collector walks again and again while
    they are made (about 15 ms of a one-file check), and a build of 10,000 VMs keeps every VM's
    outputs until they are written (a tenth of its time went to collections); checking leaves no
    garbage cycles per file and building none per VM, only a fixed few hundred of argparse's
    objects (tests/test_startup.py holds both to that)."""
    gc.disable()


def _leave(status: int) -> NoReturn:
    """End the process at once, without the interpreter's teardown. Freeing pydantic's schemas,
    lark's tables and the knowledge base object by object, and collecting them, took ~30 ms of
    a 210 ms one-file `hvconf check`; the OS frees them anyway (mypy exits the same way). Every
    file hvconf writes is closed by now (emit/output.py); only the standard streams are left."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # a reader that went away early, as in `hvconf check ... | head`
        pass
    except ValueError:  # a stream the command closed itself: `hvconf lsp`'s stdout, at the client's exit
        pass
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """The `hvconf` command. With `argv` None (the console script, `python -m hvconf`) it owns the
    process and ends it with the command's status (`_leave`); given `argv`, it returns the status
    and leaves the caller's process as it was."""
    given = sys.argv[1:] if argv is None else argv
    args = parser("check" if given[:1] == ["check"] else None).parse_args(argv)
    own_process = argv is None  # a caller that passes argv (tests, scripts) keeps its process
    if own_process and args.func in (cmd_check, cmd_build):
        _pause_collector()
    try:
        status = int(args.func(args))
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        status = EXIT_OK
    if own_process:
        _leave(status)
    return status
