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
import os
import pstats
import random
import sys
from pathlib import Path
from types import FrameType
from typing import Callable

import pytest

from hvconf import compiler
from hvconf.diagnostics import Diagnostic, Report, Severity, Span
from hvconf.emit import output
from hvconf.lint.driver import LintResult
from hvconf.check.suppress import Suppression, _hidden

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
            assert d.notes[0].message.endswith("c0.hv' is included by '" + str(tmp_path / f"cycle{n}" / "top.hv") + "'")
            assert d.notes[-1].message.endswith(f"c{n - 1}.hv' is included by '{d.notes[-2].message[1:].split(chr(39))[0]}'")

    assert growth(job, 100) < LINEAR


# ---- lowering and checking -------------------------------------------------------------


def test_vms_that_each_draw_a_finding_are_checked_in_linear_work(tmp_path: Path) -> None:
    # run_checks rebuilt the set of every finding so far for each VM, to report a base's
    # finding once: N VMs with a warning each made N^2 set insertions.
    def job(n: int) -> None:
        report = compiler.check([vm_file(tmp_path / "warn", n, "hcalls { enable KVM_HC_KICK_CPU }")]).report
        assert [d.code for d in report].count("kick-cpu-single-vcpu") == n

    assert growth(job, 100) < LINEAR


def test_a_base_finding_is_still_reported_once_for_all_its_vms(tmp_path: Path) -> None:
    path = tmp_path / "base.hv"
    path.write_text(BASE.replace("vcpus 1", "vcpus 1\n    hcalls { enable KVM_HC_KICK_CPU }")
                    + "".join(f"vm v{i} extends b {{ }}\n" for i in range(50)))
    report = compiler.check([path]).report
    assert [(d.code, d.span.line if d.span else 0) for d in report if d.code == "kick-cpu-single-vcpu"] == \
           [("kick-cpu-single-vcpu", 7)]


def test_vms_extending_unknown_names_are_lowered_in_linear_work(tmp_path: Path) -> None:
    # Each unknown base was compared with every VM name for a did-you-mean (difflib): N VMs
    # that each extend a different unknown name took N^2 comparisons (4,000 took 26 s).
    def job(n: int) -> None:
        report = compiler.check([vm_file(tmp_path / "unknown", n, base="nope{i}")]).report
        assert [d.code for d in report].count("unknown-base") == n

    assert growth(job, 300) < LINEAR


def test_unknown_bases_still_get_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.hv"
    path.write_text(BASE + "vm x extends bb { }\nvm y extends bb { }\n")
    report = compiler.check([path]).report
    assert [(d.code, d.help) for d in report] == [("unknown-base", "did you mean 'b'?")] * 2


def test_one_misspelling_in_many_vms_is_looked_up_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fuzzer's 501 VMs with the same wrong cap name: each compared it with every cap name
    # (difflib), 2.6 s of a 3.4 s check and over 20 s on a loaded machine. The did-you-mean is
    # remembered (hvconf.diagnostics.close_matches): the comparisons do not grow with the VMs.
    import difflib

    searches: list[str] = []
    real = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches", lambda word, *a, **k: searches.append(word) or real(word, *a, **k))
    n = 60
    report = compiler.check([vm_file(tmp_path / "typo", n, "cap KVM_CAP_HALT_POLX { max_ns 1 }")]).report
    unknown = [d for d in report if d.code == "unknown-cap"]
    assert len(unknown) == n and all("KVM_CAP_HALT_POLL" in (d.help or "") for d in unknown)
    assert len(searches) <= 4, searches  # per distinct search, not per VM


def test_a_vm_with_many_caps_is_lowered_in_linear_work(tmp_path: Path) -> None:
    # A derived VM's cap replaces its bases' uses of the same cap: the list of caps so far was
    # rebuilt for every cap, so one VM with N caps cost N^2.
    def job(n: int) -> None:
        path = tmp_path / f"caps-{n}.hv"
        caps = "".join(f"    cap KVM_CAP_HALT_POLL {{ max_ns {i} }}\n" for i in range(n))
        path.write_text(BASE + f"vm x extends b {{\n{caps}}}\n")
        assert compiler.check([path]).report.codes() == ["cap-duplicate"] * (n - 1)

    assert growth(job, 400, lines) < LINEAR


def test_a_derived_cap_still_replaces_the_base_use_of_its_slot(tmp_path: Path) -> None:
    path = tmp_path / "caps.hv"
    path.write_text(BASE.replace("vcpus 1", "vcpus 2\n    cap KVM_CAP_HALT_POLL { max_ns 1 }\n"
                                 "    cap KVM_CAP_HALT_POLL on vcpu 1 { max_ns 2 }")
                    + "vm x extends b {\n    cap KVM_CAP_HALT_POLL { max_ns 3 }\n    cap KVM_CAP_HALT_POLL { max_ns 4 }\n}\n")
    result = compiler.check([path])
    [x] = [vm for vm in result.vms if vm.name == "x"]
    assert [(c.vcpu, c.args[0].value) for c in x.caps] == [(1, 2), (None, 3), (None, 4)]


def test_suppressed_findings_of_many_vms_cost_linear_work(tmp_path: Path) -> None:
    # Every finding was held against every suppression of the run: N VMs, each with its
    # finding and its `# hvconf: ignore`, made N^2 comparisons (2,000 took 15 s).
    def job(n: int) -> None:
        path = vm_file(tmp_path / "suppressed", n, "hcalls { enable KVM_HC_KICK_CPU }",
                       "# hvconf: ignore[kick-cpu-single-vcpu]")
        report = compiler.check([path]).report
        assert "kick-cpu-single-vcpu" not in report.codes() and "unused-suppression" not in report.codes()

    assert growth(job, 100) < LINEAR


def test_the_suppression_sweep_hides_exactly_what_each_comment_covers() -> None:
    # Against the definition (Suppression.covers), on random nested and overlapping regions.
    rng = random.Random(12)
    for _ in range(300):
        pool = []
        for _ in range(rng.randrange(8)):
            line = rng.randrange(1, 12)
            start = (line, rng.randrange(1, 4))
            end = (line + rng.randrange(0, 4), rng.randrange(1, 4))
            pool.append(Suppression(rng.choice("ab"), Span(rng.choice("fg"), line, 1, line, 2), start, end,
                                    trailing=False))
        diags = [Diagnostic(rng.choice("ab"), Severity.WARNING, "m",
                            Span(rng.choice("fg"), rng.randrange(1, 14), rng.randrange(1, 4), 1, 1)
                            if rng.random() < 0.9 else None)
                 for _ in range(rng.randrange(12))]
        expected = [any(s.covers(d) for s in pool) for d in diags]
        used = [any(s.covers(d) for d in diags) for s in pool]
        assert _hidden(diags, pool) == expected
        assert [s.used for s in pool] == used


# ---- building ---------------------------------------------------------------------------


def test_a_file_of_many_vms_builds_in_linear_work(tmp_path: Path) -> None:
    # Each VM asked whether the whole report so far had an error, and its manifest made the
    # program's input paths relative again.
    def job(n: int) -> None:
        result = compiler.build([vm_file(tmp_path / "build", n, "hcalls { enable KVM_HC_KICK_CPU }")])
        assert len(result.built) == n and not result.report.has_errors

    assert growth(job, 50) < LINEAR


def test_a_build_in_two_processes_takes_the_workers_half_back_in_linear_work(tmp_path: Path) -> None:
    # The parent compiles half the VMs and merges the forked worker's half, files and findings
    # (hvconf/emit/jobs.py): what it does per merged VM must not grow with the build. Each VM
    # draws a warning while its artifacts are made (kernel-missing); calls count in the parent.
    base = ("format 1\nabstract vm b {\n    arch x86_64\n    memory 256M\n    console serial\n"
            "    irqchip kernel\n    pit on\n}\n")

    def job(n: int) -> None:
        path = tmp_path / f"vms-{n}.hv"
        path.write_text(base + "".join(f'vm v{i} extends b {{ kernel "bzImage" }}\n' for i in range(n)))
        result = compiler.build([path], jobs=2)
        assert len(result.built) == n and result.report.codes() == ["kernel-missing"] * n

    assert growth(job, 50) < LINEAR


def test_rewriting_many_vm_folders_lists_the_output_folder_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Before writing, each VM's leftovers were looked for by listing the whole output folder:
    # rebuilding N VMs into a folder of N listed N^2 entries.
    files = {f"vm{i}": {"plan.json": b"{}"} for i in range(60)}
    output.write_tree(tmp_path, files)
    listed: list[str] = []
    real = os.listdir

    def listdir(path: str | os.PathLike[str] = ".") -> list[str]:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    output.write_tree(tmp_path, files)
    assert listed.count(os.fspath(tmp_path)) == 1


# ---- rendering ------------------------------------------------------------------------


class CountingText(str):
    """Source text that counts the characters read out of it: sliced, split or searched."""

    read = 0

    def __getitem__(self, key: int | slice) -> str:  # type: ignore[override]
        part = super().__getitem__(key)
        CountingText.read += len(part)
        return part

    def splitlines(self, keepends: bool = False) -> list[str]:
        CountingText.read += len(self)
        return super().splitlines(keepends)

    def find(self, sub: str, start: int | None = None, end: int | None = None) -> int:  # type: ignore[override]
        at = super().find(sub, start, end)
        CountingText.read += (at if at >= 0 else len(self)) - (start or 0)
        return at


def one_long_line(n: int) -> Report:
    """n findings on one line of about 10n characters."""
    line = "vm a { " + " ".join(f"cap C{i:06d}" for i in range(n)) + " }"
    report = Report(sources={"long.hv": CountingText("format 1\n" + line + "\n")})
    for i in range(n):
        col = line.index(f"C{i:06d}") + 1
        report.error("unknown-cap", f"unknown capability 'C{i:06d}'", Span("long.hv", 2, col, 2, col + 7))
    return report


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_many_findings_on_one_long_line_render_in_linear_work(fmt: str) -> None:
    # The text format split the whole file for every finding and printed the whole line;
    # SARIF still split it for every finding's fingerprint.
    from hvconf.lint.formats import render

    def job(n: int) -> None:
        CountingText.read = 0
        out = render(fmt, LintResult(one_long_line(n), 1))
        assert out.count("C000000") >= 1 and len(out) < 2000 * n + 500_000
        # The file is indexed once; each finding reads a window of its line, not the line.
        assert CountingText.read < 200 * n + 20_000, CountingText.read

    assert growth(job, 250) < LINEAR
