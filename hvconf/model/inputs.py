"""The files a VM names besides includes, `guest` and `kernel`, checked by `hvconf check`
as `build` will read them: resolved against the project's scope (hvconf/syntax/paths.py)
and refused where they are outside it, not regular files, or fail stat(2); a `.S` guest's
`.include`/`.incbin` too (hvconf/syntax/gas.py). Nothing else is opened here; the build
reads them through the same rules (hvconf/platforms/common.py, hvconf/emit/guest.py).

A missing `kernel` is no finding here: a build machine rarely has it (`build` warns with
`kernel-missing`). Tested by tests/test_paths.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from hvconf.diagnostics import Diagnostic, Report, Severity, Span
from hvconf.model import ir
from hvconf.syntax.gas import MAX_SOURCE_BYTES, scan
from hvconf.syntax.paths import (MISSING, NOT_A_FILE, OUTSIDE, UNREADABLE, PathRefused, Scope, folder_of,
                                 probe, read_resolved, resolve)

GUEST_FORMATS = {".S": "assembled with GNU as", ".bin": "a flat binary loaded as is"}

_E = Severity.ERROR
_OUTSIDE_HELP = ("a definition under review reads only files of its project; copy the file into it, "
                 "or allow its folder with --allow-path DIR")
# What a refused path is reported as, whatever names it (kinds: hvconf/syntax/paths.py).
PATH_REFUSALS: dict[str, Diagnostic] = {
    OUTSIDE: Diagnostic("path-outside-project", _E, "", None, help=_OUTSIDE_HELP),
    NOT_A_FILE: Diagnostic("path-not-a-file", _E, "", None, help="name a regular file"),
    UNREADABLE: Diagnostic("path-unreadable", _E, "", None,
                           help="paths are relative to the file that names them; fix the path or the file's "
                                "permissions"),
}
# ...and a missing file, per construct: a missing guest cannot be built; a missing kernel is
# the launcher's --kernel FILE (build warns).
MISSING_FILE: dict[str, Diagnostic | None] = {
    "guest": Diagnostic("guest-not-found", _E, "", None,
                        help="guest paths are relative to the file that names them; a guest source's "
                             "`.include`/`.incbin`, to the guest source's folder"),
    "kernel": None,
    "initrd": None,
}


def refusal(construct: str, path: str, err: PathRefused, span: Span | None) -> Diagnostic | None:
    """The diagnostic of `construct` ("guest", "kernel") refused for `err`, if it is one."""
    template = MISSING_FILE[construct] if err.kind == MISSING else PATH_REFUSALS.get(err.kind)
    if template is None:
        return None
    return template._replace(message=f"cannot use {construct} '{path}': {err.reason}", span=span)


def directive_refusal(kind: str | None, message: str, span: Span | None) -> Diagnostic | None:
    """The diagnostic of a guest source's `.include`/`.incbin` refused for a path reason
    `kind` (None for a name that is no plain string: build's `guest-build-failed`)."""
    template = MISSING_FILE["guest"] if kind == MISSING else PATH_REFUSALS.get(kind or "")
    return template._replace(message=message, span=span) if template is not None else None


def source_path(path: str, span: Span | None, fallback: Path) -> Path:
    """A file named in a definition: relative to the .hv file that names it (`fallback`,
    the root file's folder, when the statement has no place)."""
    return (folder_of(span.file) if span is not None else fallback) / path


def named_files(vm: ir.Vm) -> Iterator[tuple[str, str, Span | None]]:
    """(construct, path, span) of every file `vm` names. A guest of an unknown format is
    left to `guest-format`."""
    if vm.guest is not None and Path(vm.guest.path).suffix in GUEST_FORMATS:
        yield "guest", vm.guest.path, vm.guest.span
    if vm.kernel is not None:
        yield "kernel", vm.kernel, vm.span_of("kernel")
    if vm.initrd is not None:
        yield "initrd", vm.initrd, vm.span_of("initrd")


def check_files(vm: ir.Vm, scope: Scope, report: Report, done: set[tuple[object, ...]]) -> None:
    """Report every file `vm` names that `build` would refuse. `done` holds what was
    checked already: a base's `guest` shared by many VMs is looked at once. Abstract VMs
    are skipped, as by the rules: a derived VM may still name other files."""
    if vm.abstract:
        return
    for construct, path, span in named_files(vm):
        key = (construct, path, span, scope)
        if key in done:
            continue
        done.add(key)
        source = source_path(path, span, Path.cwd())
        try:
            real, _ = resolve(source, scope)
            probe(real)
        except PathRefused as err:
            found = refusal(construct, path, err, span)
            if found is not None:
                report.add(found)
            continue
        if source.suffix == ".S":
            _check_directives(source, real, scope, report)


def _check_directives(source: Path, real: str, scope: Scope, report: Report) -> None:
    """What a guest source's `.include`/`.incbin` name, refused as `build` will, at the
    directive. A source that cannot be read or decoded, or a name that is no plain string,
    is left to `build` (`guest-build-failed`)."""
    try:
        text = read_resolved(real, scope, MAX_SOURCE_BYTES).decode("utf-8")
    except (PathRefused, UnicodeDecodeError):
        return
    for err in scan(source, text, scope)[1]:
        found = directive_refusal(err.kind, err.message, err.span)
        if found is not None:
            report.add(found)
