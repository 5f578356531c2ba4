"""The compiler as one pure function per job: paths in, IR, artifacts and a
report out. It reads the definition files (and guest sources it assembles)
but never opens a device; writing outputs is the caller's job
(hvconf/emit/output.py). Tested by tests/test_build.py and the golden tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hvconf.diagnostics import Report
from hvconf.model import ir
from hvconf.model.lower import lower_program
from hvconf.syntax.loader import Loader, Program

if TYPE_CHECKING:
    from hvconf.model.host import HostFacts


# Plain classes, not dataclasses: every @dataclass compiles its methods at import, which a
# one-file `hvconf check` paid for in full (see hvconf/record.py).
class Checked:
    """One root file after parsing, lowering and checking."""

    def __init__(self, program: Program, vms: list[ir.Vm]) -> None:
        self.program = program
        self.vms = vms


class Built:
    """One VM's artifacts, by output file name."""

    def __init__(self, vm: ir.Vm, plan: dict[str, Any], files: dict[str, bytes]) -> None:
        self.vm = vm
        self.plan = plan
        self.files = files


class Result:
    def __init__(self) -> None:
        self.report = Report()
        self.checked: list[Checked] = []
        self.built: list[Built] = []

    @property
    def vms(self) -> list[ir.Vm]:
        return [vm for c in self.checked for vm in c.vms]


# Called as progress(what, done, total) as each step of a long job starts (hvconf/progress.py draws it).
Progress = Callable[[str, int, int], None]


def check(paths: Sequence[Path], *, loader: Loader | None = None, progress: Progress | None = None,
          host: "HostFacts | None" = None, suppress: bool = True) -> Result:
    """Parse, lower and check every file (against `host`'s facts too, when given);
    raises InputError for unreadable roots. `# hvconf: ignore[...]` comments then
    apply (hvconf/suppress.py), unless `suppress` is False (a caller merging several
    runs applies them once, to the merged report)."""
    from hvconf.check import run_checks
    from hvconf.model.inputs import check_files
    from hvconf.model.target import load_target

    loader = loader or Loader()
    result = Result()
    files_checked: set[tuple[object, ...]] = set()
    for done, path in enumerate(paths, 1):
        if progress is not None:
            progress(f"checking {path}", done, len(paths))
        program = loader.load(path, result.report)
        vms = lower_program(program, result.report)
        for vm in vms:
            check_files(vm, program.scope, result.report, files_checked)
            if vm.target is not None:
                run_checks(vm, load_target(vm.target), result.report, host, program.scope)
        result.checked.append(Checked(program, vms))
    if suppress:
        from hvconf.suppress import apply_to_programs

        result.report = apply_to_programs(result.report, [c.program for c in result.checked])
    return result


def build(paths: Sequence[Path], *, proposed_overrides: Path | None = None, loader: Loader | None = None,
          progress: Progress | None = None) -> Result:
    """`check`, then artifacts for every concrete VM of every file, all or nothing:
    if any file has an error, no VM gets artifacts."""
    from hvconf.emit.artifacts import artifacts

    result = check(paths, loader=loader, progress=progress)
    if result.report.has_errors:
        return result
    todo = [(checked, vm) for checked in result.checked for vm in checked.vms if not vm.abstract]
    for done, (checked, vm) in enumerate(todo, 1):
        if progress is not None:
            progress(f"building {vm.name}", done, len(todo))
        built = artifacts(vm, checked.program, result.report, proposed_overrides)
        if built is not None:
            result.built.append(built)
    if result.report.has_errors:
        result.built.clear()
    return result
