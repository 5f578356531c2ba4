"""The `hvconf` command: thin shells over hvconf.compiler and hvconf.kvm.

Exit status: 0 clean, 1 findings (errors, or warnings with --werror), 2 usage
or I/O errors; `run` passes the launcher's status through. Heavy imports
happen inside the commands that need them, so `hvconf check` starts fast.
Tested by tests/test_cli.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

if TYPE_CHECKING:
    from hvconf.compiler import Built, Result
    from hvconf.diagnostics import Diagnostic, Report

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  hvconf check vms/*.hv                 lint, needs no /dev/kvm
  hvconf build vms/pseries.hv -o out/   out/pseries/{pseries.dts,pseries.dtb,plan.json,launch.py,manifest.json}
  hvconf plan vms/pseries.hv            the ioctl sequence, readable (--format json for plan.json)
  hvconf run samples/x86-hello.hv       build into a temporary folder and run the guest on /dev/kvm
"""


def _fail(message: str) -> int:
    print(f"hvconf: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and stream.isatty()


def _print_report(report: "Report", stream: TextIO, *, quiet: bool = False) -> None:
    from hvconf.render import render, summary

    colour = _colour(stream)
    for diag in report:
        if not quiet or diag.severity.value == "error":
            print(render(diag, report.sources, colour=colour), file=stream)
    if report.diagnostics and not quiet:
        print(summary(report), file=stream)


def _status(report: "Report", werror: bool = False) -> int:
    return EXIT_FINDINGS if report.has_errors or (werror and report.warnings) else EXIT_OK


def _diag_json(d: "Diagnostic") -> dict[str, Any]:
    span = d.span
    return {"code": d.code, "severity": d.severity.value, "message": d.message,
            "file": span.file if span else None, "line": span.line if span else None,
            "column": span.col if span else None, "end_line": span.end_line if span else None,
            "end_column": span.end_col if span else None,
            "notes": [n.message for n in d.notes], "help": d.help}


def _compile(job: Callable[..., "Result"], paths: Sequence[str], **kwargs: Any) -> "Result | None":
    """Run a compiler job; None (after one error line) when an input cannot be read."""
    from hvconf.syntax.loader import InputError

    try:
        return job([Path(p) for p in paths], **kwargs)
    except InputError as err:
        _fail(str(err))
        return None


def _build(args: argparse.Namespace, paths: Sequence[str]) -> "Result | None":
    from hvconf import compiler

    overrides = Path(args.abi_overrides) if args.abi_overrides else None
    result = _compile(compiler.build, paths, proposed_overrides=overrides)
    if result is not None:
        _print_report(result.report, sys.stderr)
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


def cmd_check(args: argparse.Namespace) -> int:
    from hvconf import compiler

    result = _compile(compiler.check, args.files)
    if result is None:
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps([_diag_json(d) for d in result.report], indent=2))
    else:
        _print_report(result.report, sys.stdout, quiet=args.quiet)
    return _status(result.report, args.werror)


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


def cmd_run(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    from hvconf.emit.output import write_tree

    built = _build_one(args)
    if isinstance(built, int):
        return built
    with tempfile.TemporaryDirectory(prefix="hvconf-run-") as tmp:
        folder = write_tree(Path(tmp), {built.vm.name: built.files})[0]
        command = [sys.executable, str(folder / "launch.py"), "--timeout", str(args.timeout)]
        command += ["--trace"] if args.trace else []
        command += ["--dry-run"] if args.dry_run else []
        command += ["--kernel", str(Path(args.kernel).resolve())] if args.kernel else []
        sys.stdout.flush()
        return subprocess.call(command)


def parser() -> argparse.ArgumentParser:
    from hvconf import __version__

    top = argparse.ArgumentParser(prog="hvconf", description="Compile .hv VM definitions for KVM.",
                                  epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"hvconf {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="lint definitions (no /dev/kvm needed)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--werror", action="store_true", help="treat warnings as errors")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("build", help="write DTS/DTB, plan.json, launch.py and manifest.json per VM")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--werror", action="store_true")
    p.add_argument("--abi-overrides", metavar="FILE", help="numbers for the unmerged ePAPR proposal (TOML)")
    p.set_defaults(func=cmd_build)

    for name, func, what in (("plan", cmd_plan, "print the ioctl plan"), ("dts", cmd_dts, "print the device tree"),
                             ("run", cmd_run, "build into a temporary folder and run the launcher")):
        p = sub.add_parser(name, help=what)
        p.add_argument("file", metavar="FILE")
        p.add_argument("--vm", metavar="NAME", help="which VM, when the file defines several")
        p.add_argument("--abi-overrides", metavar="FILE", help="numbers for the unmerged ePAPR proposal (TOML)")
        if name == "plan":
            p.add_argument("--format", choices=["text", "json"], default="text")
        if name == "run":
            p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="watchdog (default 5)")
            p.add_argument("--trace", action="store_true", help="print each ioctl as it is issued")
            p.add_argument("--dry-run", action="store_true", help="print the ioctls without opening /dev/kvm")
            p.add_argument("--kernel", metavar="FILE", help="kernel image for a VM whose kernel was not built in")
        p.set_defaults(func=func)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
