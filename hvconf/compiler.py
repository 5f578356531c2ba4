"""The compiler as one pure function per job: paths in, IR, artifacts and a
report out. It reads the definition files (and guest sources it assembles)
but never opens a device; writing outputs is the caller's job
(hvconf/emit/output.py). Tested by tests/test_build.py and the golden tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from hvconf.diagnostics import Note, Report
from hvconf.model import ir
from hvconf.model.lower import lower_program
from hvconf.syntax import ast
from hvconf.syntax.loader import Loader, Program

if TYPE_CHECKING:
    from hvconf.emit.artifacts import Built
    from hvconf.model.host import HostFacts


# Plain classes with __slots__, filled in as the run goes (docs/architecture.md#value-types).
class Checked:
    """One root file after parsing, lowering and checking."""

    __slots__ = ("program", "vms")

    def __init__(self, program: Program, vms: list[ir.Vm]) -> None:
        self.program = program
        self.vms = vms


class Result:
    __slots__ = ("report", "checked", "built")

    def __init__(self) -> None:
        self.report = Report()
        self.checked: list[Checked] = []
        self.built: list[Built] = []

    @property
    def vms(self) -> list[ir.Vm]:
        return [vm for c in self.checked for vm in c.vms]


# Called as progress(what, done, total) as each step of a long job starts (hvconf/lint/progress.py draws it).
Progress = Callable[[str, int, int], None]


def check(paths: Sequence[Path], *, loader: Loader | None = None, progress: Progress | None = None,
          host: "HostFacts | None" = None, suppress: bool = True, as_needed: bool = False) -> Result:
    """Parse, lower and check every file (against `host`'s facts too, when given);
    raises InputError for unreadable roots. `# hvconf: ignore[...]` comments then
    apply (hvconf/check/suppress.py), unless `suppress` is False (a caller merging several
    runs applies them once, to the merged report). `as_needed`: pydantic validates only IR
    data that is not plainly valid (hvconf/model/validate.py; the same findings, the same IR);
    `build` validates all."""
    loader = loader or Loader()
    result = Result()
    files_checked: set[tuple[object, ...]] = set()
    paths = distinct_files(paths)
    for done, path in enumerate(paths, 1):
        if progress is not None:
            progress(f"checking {path}", done, len(paths))
        _check_program(loader.load(path, result.report), result, host, files_checked, as_needed)
    if suppress:
        _suppress(result)
    return result


def check_text(text: str | bytes, path: Path, *, loader: Loader | None = None, host: "HostFacts | None" = None,
               suppress: bool = True, as_needed: bool = False) -> Result:
    """`check` of one file whose text is `text` (an unsaved buffer, stdin) as if it were saved at
    `path`, which need not exist: includes resolve against `path`'s real folder, paths are
    confined to `path`'s project, and diagnostics name `path`. Never raises InputError."""
    loader = loader or Loader()
    result = Result()
    data = text.encode("utf-8") if isinstance(text, str) else text
    _check_program(loader.load_text(path, data, result.report), result, host, set(), as_needed)
    if suppress:
        _suppress(result)
    return result


def _check_program(program: Program, result: Result, host: "HostFacts | None",
                   files_checked: set[tuple[object, ...]], as_needed: bool = False) -> None:
    """Lower and check one loaded program into `result`."""
    from hvconf.check import run_checks
    from hvconf.model.inputs import check_files
    from hvconf.model.target import load_target

    vms = lower_program(program, result.report, as_needed)
    for vm in vms:
        check_files(vm, program.scope, result.report, files_checked)
        if vm.target is not None:
            run_checks(vm, load_target(vm.target), result.report, host, program.scope)
    result.checked.append(Checked(program, vms))


def _suppress(result: Result) -> None:
    from hvconf.check.suppress import apply_to_programs

    result.report = apply_to_programs(result.report, [c.program for c in result.checked])


def build(paths: Sequence[Path], *, proposed_overrides: Path | None = None, loader: Loader | None = None,
          progress: Progress | None = None, jobs: int | None = None) -> Result:
    """`check`, then artifacts for every concrete VM of every file, all or nothing:
    if any file has an error, no VM gets artifacts. They are compiled in `jobs` processes
    (default: hvconf/emit/jobs.py decides by the number of VMs); the result is the same."""
    from hvconf.emit import jobs as workers

    result = check(paths, loader=loader, progress=progress)
    one_vm_per_name(result)
    if result.report.has_errors:
        return result
    todo = [(checked.program, vm) for checked in result.checked for vm in checked.vms if not vm.abstract]
    result.built = workers.build_all(todo, result.report, proposed_overrides, progress,
                                     workers.processes(len(todo), jobs))
    if result.report.has_errors:
        result.built.clear()
    return result


def distinct_files(paths: Sequence[Path]) -> list[Path]:
    """`paths` without repeats of one file (`a.hv a.hv`, `a.hv ./a.hv`, a link to it): a file
    is one set of VMs, checked and built once. Same file: same device and inode, or, for a
    path that cannot be stat'ed (the loader reports it), the same absolute path."""
    seen: set[object] = set()
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            key: object = (st.st_dev, st.st_ino)
        except (OSError, ValueError):  # missing, a NUL in the name, ...
            key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def one_vm_per_name(result: Result) -> None:
    """Every concrete VM of a build writes `out/NAME/`: two root files that define the same
    name would silently overwrite one with the other. `duplicate-vm` at the later file's VM
    (in command-line order), with a note at the first. Not part of `check`, which takes each
    file alone: files of one repository may share a name when they are built apart."""
    first: dict[str, ast.VmDecl] = {}
    for checked in result.checked:
        for decl in checked.program.own_vms:
            name = decl.name.value
            if decl.abstract or checked.program.vms.get(name) is not decl:
                continue  # a name this file's program defines twice is the loader's duplicate-vm
            other = first.setdefault(name, decl)
            if other is not decl:
                result.report.error("duplicate-vm", f"VM '{name}' is also defined in '{other.name.span.file}', built "
                                    f"in the same run: both would write {name}/ in the output folder", decl.name.span,
                                    notes=[Note("first defined here", other.name.span)],
                                    help="rename one of them, or build the two files into different folders")
