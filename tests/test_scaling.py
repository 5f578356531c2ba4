"""Work grows linearly with the input: long include chains, files of thousands of VMs, many
findings, suppressions and caps, many diagnostics on one long line, rebuilding many VMs.

No clock: each test counts work that is the same on every run and machine. `calls` counts
the Python and builtin calls a job makes (cProfile; a generator's resumptions count too),
`lines` the source lines it runs; a job that is linear does at most 4x the work at 4x the
size, where the quadratic costs these tests were written against did 5x to 16x (each is
named at its test, and each test fails on the code before its fix).
How fast is bench/'s question (bench/suites/scaling.py: chains and files of 10,000).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path
from types import FrameType
from typing import Callable

from hvconf import compiler

LINEAR = 4.4  # the most calls at 4n over calls at n that still counts as linear (4, plus noise)
BASE = "format 1\nabstract vm b {\n    arch x86_64\n    memory 16M\n    console serial\n    vcpus 1\n}\n"


def calls(job: Callable[[], object]) -> int:
    """The function calls `job` makes: a count of work, unlike a time, the same on any machine."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        job()
    finally:
        profile.disable()
    return pstats.Stats(profile).total_calls  # type: ignore[attr-defined,no-any-return]


def lines(job: Callable[[], object]) -> int:
    """The source lines `job` runs (sys.settrace; a loop's every turn counts): finer than
    calls, which miss a comprehension's turns, and slower."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        count += event == "line"
        return trace

    sys.settrace(trace)
    try:
        job()
    finally:
        sys.settrace(None)
    return count


def growth(job: Callable[[int], object], n: int, measure: Callable[[Callable[[], object]], int] = calls) -> float:
    """measure(job(4n)) / measure(job(n)), after one unmeasured run (imports, parser tables, targets)."""
    job(max(n // 8, 1))
    small = measure(lambda: job(n))
    big = measure(lambda: job(4 * n))
    return big / small


def chain(root: Path, n: int, back: int = 0) -> Path:
    """top.hv including c0.hv including c1.hv ... c{n-1}.hv, each with an abstract VM; the last
    file includes c0.hv `back` times more (each one closes a cycle of n files)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        nxt = f'include "c{i + 1}.hv"\n' if i + 1 < n else 'include "c0.hv"\n' * back
        (root / f"c{i}.hv").write_text(f"format 1\n{nxt}abstract vm a{i} {{ arch x86_64 }}\n")
    (root / "top.hv").write_text('format 1\ninclude "c0.hv"\nvm top extends a0 {\n    memory 16M\n}\n')
    return root / "top.hv"


def vm_file(root: Path, n: int, body: str = "", comment: str = "", base: str = "b") -> Path:
    """BASE and n concrete VMs `vm vI extends <base> { <body> }  <comment>`; {i} is replaced."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"vms-{n}.hv"
    vms = "".join(f"vm v{i} extends {base.format(i=i)} {{ {body} }}  {comment}\n" for i in range(n))
    path.write_text(BASE + vms)
    return path


# ---- loading ---------------------------------------------------------------------------


def test_a_chain_of_includes_is_loaded_in_linear_work(tmp_path: Path) -> None:
    # Each include scanned the whole stack of including files for a cycle: 10,000 took 22 s.
    def job(n: int) -> None:
        result = compiler.check([chain(tmp_path / f"chain{n}", n)])
        assert not result.report.diagnostics and len(result.checked[0].program.files) == n + 1

    assert growth(job, 200) < LINEAR


def test_includes_closing_a_long_cycle_cost_linear_work_and_bounded_notes(tmp_path: Path) -> None:
    # Every include of c0.hv from the end of the chain closes a cycle through the whole chain:
    # its notes named every file, so n such includes made n^2 notes.
    def job(n: int) -> None:
        report = compiler.check([chain(tmp_path / f"cycle{n}", n, back=n)]).report
        cycles = [d for d in report if d.code == "include-cycle"]
        assert len(cycles) == n
        for d in cycles:  # a long cycle's first 8 and last 8 files, and how many are left out
            assert len(d.notes) == min(n, 17) and (n <= 16 or d.notes[8].message == f"... {n - 16} more files ...")
            assert d.notes[0].message.endswith("c0.hv' starts the cycle")
            assert d.notes[-1].message.endswith(f"c{n - 1}.hv' is included by '{d.notes[-2].message[1:].split(chr(39))[0]}'")

    assert growth(job, 100) < LINEAR
