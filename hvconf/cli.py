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
from typing import Callable, Sequence

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

EXAMPLES = """examples:
  hvconf check vms/*.hv                 lint, needs no /dev/kvm
  hvconf build vms/pseries.hv -o out/   out/pseries/{pseries.dts,pseries.dtb,plan.json,launch.py,manifest.json}
  hvconf plan vms/pseries.hv            the ioctl sequence, readable (--format json for plan.json)
  hvconf run samples/x86-hello.hv       build into a temporary folder and run the guest on /dev/kvm
"""


def _colour(stream: object) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()  # type: ignore[union-attr]


def _print_report(report: object, stream: object, *, quiet: bool = False) -> None:
    from hvconf.render import render, summary

    colour = _colour(stream)
    for diag in report:  # type: ignore[attr-defined]
        if quiet and diag.severity.value != "error":
            continue
        print(render(diag, report.sources, colour=colour), file=stream)  # type: ignore[attr-defined]
    if report.diagnostics and not quiet:  # type: ignore[attr-defined]
        print(summary(report), file=stream)


def _status(report: object, werror: bool = False) -> int:
    if report.has_errors or (werror and report.warnings):  # type: ignore[attr-defined]
        return EXIT_FINDINGS
    return EXIT_OK


def _compile(job: Callable[..., object], paths: Sequence[str], **kwargs: object) -> object | None:
    from hvconf.syntax.loader import InputError

    try:
        return job([Path(p) for p in paths], **kwargs)
    except InputError as err:
        print(f"hvconf: error: {err}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    from hvconf import compiler

    result = _compile(compiler.check, args.files)
    if result is None:
        return EXIT_USAGE
    report = result.report  # type: ignore[attr-defined]
    if args.format == "json":
        print(json.dumps([_diag_json(d) for d in report], indent=2))
    else:
        _print_report(report, sys.stdout, quiet=args.quiet)
    return _status(report, args.werror)


def _diag_json(d: object) -> dict[str, object]:
    span = d.span  # type: ignore[attr-defined]
    return {"code": d.code, "severity": d.severity.value, "message": d.message,  # type: ignore[attr-defined]
            "file": span.file if span else None, "line": span.line if span else None,
            "column": span.col if span else None, "end_line": span.end_line if span else None,
            "end_column": span.end_col if span else None,
            "notes": [n.message for n in d.notes], "help": d.help}  # type: ignore[attr-defined]


def _build(args: argparse.Namespace) -> object | None:
    from hvconf import compiler

    overrides = Path(args.abi_overrides) if getattr(args, "abi_overrides", None) else None
    result = _compile(compiler.build, args.files if hasattr(args, "files") else [args.file],
                      proposed_overrides=overrides)
    if result is not None:
        _print_report(result.report, sys.stderr)  # type: ignore[attr-defined]
    return result


def _pick(result: object, name: str | None) -> object | None:
    built = result.built  # type: ignore[attr-defined]
    if name is not None:
        built = [b for b in built if b.vm.name == name]
        if not built:
            print(f"hvconf: error: no VM named {name!r} in this file", file=sys.stderr)
            return None
    if not built:
        print("hvconf: error: the file defines no concrete VM", file=sys.stderr)
        return None
    if len(built) > 1:
        names = ", ".join(b.vm.name for b in built)
        print(f"hvconf: error: the file defines several VMs ({names}); choose one with --vm", file=sys.stderr)
        return None
    return built[0]


def cmd_build(args: argparse.Namespace) -> int:
    from hvconf.emit.output import write_tree

    result = _build(args)
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:  # type: ignore[attr-defined]
        return EXIT_FINDINGS
    try:
        written = write_tree(Path(args.output), {b.vm.name: b.files for b in result.built})  # type: ignore[attr-defined]
    except OSError as err:
        print(f"hvconf: error: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return EXIT_USAGE
    for folder in written:
        print(f"wrote {folder}/")
    return _status(result.report, args.werror)  # type: ignore[attr-defined]


def cmd_plan(args: argparse.Namespace) -> int:
    from hvconf.emit.plan import dumps, to_text

    result = _build(args)
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:  # type: ignore[attr-defined]
        return EXIT_FINDINGS
    built = _pick(result, args.vm)
    if built is None:
        return EXIT_USAGE
    sys.stdout.write(dumps(built.plan) if args.format == "json" else to_text(built.plan))  # type: ignore[attr-defined]
    return EXIT_OK


def cmd_dts(args: argparse.Namespace) -> int:
    result = _build(args)
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:  # type: ignore[attr-defined]
        return EXIT_FINDINGS
    built = _pick(result, args.vm)
    if built is None:
        return EXIT_USAGE
    name = f"{built.vm.name}.dts"  # type: ignore[attr-defined]
    if name not in built.files:  # type: ignore[attr-defined]
        from hvconf.model.target import load_target

        target = load_target(built.vm.target)  # type: ignore[attr-defined]
        print(f"hvconf: error: target {target.name} boots without a device tree"
              f" ({target.no_device_tree or 'no dts output'})", file=sys.stderr)
        return EXIT_FINDINGS
    sys.stdout.write(built.files[name].decode())  # type: ignore[attr-defined]
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    from hvconf.emit.output import write_tree

    result = _build(args)
    if result is None:
        return EXIT_USAGE
    if result.report.has_errors:  # type: ignore[attr-defined]
        return EXIT_FINDINGS
    built = _pick(result, args.vm)
    if built is None:
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="hvconf-run-") as tmp:
        folder = write_tree(Path(tmp), {built.vm.name: built.files})[0]  # type: ignore[attr-defined]
        command = [sys.executable, str(folder / "launch.py"), "--timeout", str(args.timeout)]
        command += ["--trace"] if args.trace else []
        command += ["--dry-run"] if args.dry_run else []
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

    for name, func, what in (("plan", cmd_plan, "print the ioctl plan"), ("dts", cmd_dts, "print the device tree")):
        p = sub.add_parser(name, help=what)
        p.add_argument("file", metavar="FILE")
        p.add_argument("--vm", metavar="NAME", help="which VM, when the file defines several")
        p.add_argument("--abi-overrides", metavar="FILE")
        if name == "plan":
            p.add_argument("--format", choices=["text", "json"], default="text")
        p.set_defaults(func=func)

    p = sub.add_parser("run", help="build into a temporary folder and run the launcher")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--vm", metavar="NAME")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="watchdog (default 5)")
    p.add_argument("--trace", action="store_true", help="print each ioctl as it is issued")
    p.add_argument("--dry-run", action="store_true", help="print the ioctls without opening /dev/kvm")
    p.add_argument("--abi-overrides", metavar="FILE")
    p.set_defaults(func=cmd_run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
