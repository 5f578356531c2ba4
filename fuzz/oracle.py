"""Run one input through the compiler and say whether hvconf misbehaved.

`run_case` writes the input as `<folder>/<name>.hv`, runs compiler.check and
compiler.build in this process under a wall-clock alarm, renders every
diagnostic, and checks what a good result looks like: errors have a code
and a place, a built launcher compiles and embeds plan.json. Anything else
(an exception, a timeout, a malformed result) is a `Finding`. `cli_batch`
does the same through `python -m hvconf` under an address-space limit.
Tested by tests/test_fuzz.py.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fuzz.cases import SECRET

CASE_SECONDS = 20.0  # of CPU: far above the slowest legitimate case (a 4 MiB file), far below a hang
# Of wall-clock time: a case blocked without using the CPU (a read of a FIFO) is a hang too. A
# multiple of CASE_SECONDS, because on this shared 2-core machine a niced fuzzer may get a fifth
# of a core: 501-VM builds of 2 s of CPU took over 20 s of wall time at load 10 (false hangs).
WALL_FACTOR = 6
CLI_ADDRESS_SPACE = 2 << 30  # RLIMIT_AS of a CLI subprocess


@dataclass(frozen=True)
class Finding:
    kind: str  # "crash" | "hang" | "bad-result" | "cli"
    detail: str


class CaseTimeout(BaseException):
    """A BaseException, so no `except Exception` in hvconf can swallow it."""


@contextmanager
def deadline(seconds: float, wall: float | None = None) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after `seconds` of this process's CPU time
    (ITIMER_PROF: user + sys, what the machine's load does not stretch), or `wall` seconds
    (default WALL_FACTOR times `seconds`) of wall-clock time, whichever comes first."""
    wall = WALL_FACTOR * seconds if wall is None else wall

    def expire(signum: int, frame: object) -> None:
        what = "of CPU" if signum == signal.SIGPROF else "of wall-clock time"
        raise CaseTimeout(f"no result after {seconds if signum == signal.SIGPROF else wall:g} s {what}")

    previous = {sig: signal.signal(sig, expire) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, wall)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _judge(result: object, built: bool) -> str | None:
    """What is wrong with a compiler Result, or None."""
    from hvconf.lint.formats.json import diagnostic
    from hvconf.lint.render import render_report

    report = result.report  # type: ignore[attr-defined]
    shown = render_report(report) + "".join(json.dumps(diagnostic(d)) for d in report.diagnostics)
    if SECRET in shown:
        return "a diagnostic shows the contents of a file outside the project"
    for d in report.errors:
        if not d.code or d.span is None or d.span.line < 1 or d.span.col < 1:
            return f"error without a code or place: {d}"
    if not built:
        return None
    if report.has_errors and result.built:  # type: ignore[attr-defined]
        return "a build with errors returned artifacts"
    for b in result.built:  # type: ignore[attr-defined]
        leaked = [name for name, data in b.files.items() if SECRET.encode() in data]
        if leaked:
            return f"{b.vm.name}: {', '.join(leaked)} hold bytes of a file outside the project"
        launcher = b.files["launch.py"].decode()
        compile(launcher, "launch.py", "exec")
        tree = ast.parse(launcher)
        plans = [n.value for n in tree.body if isinstance(n, ast.Assign)
                 and [getattr(t, "id", None) for t in n.targets] == ["PLAN"]]
        if len(plans) != 1 or ast.literal_eval(plans[0]) != json.loads(b.files["plan.json"]):
            return f"{b.vm.name}: launch.py does not embed plan.json"
    return None


def run_case(data: bytes, folder: Path, name: str = "case", seconds: float = CASE_SECONDS) -> Finding | None:
    """Check and build `data` in-process; None when hvconf behaved."""
    path = folder / f"{name}.hv"
    path.write_bytes(data)
    start, cpu = time.monotonic(), time.process_time()
    finding = _run_jobs(path, seconds)
    # The alarm's exception can be swallowed where Python ignores exceptions (a gc callback, a
    # __del__: seen in long runs under load), so a case that ran past its deadline is a hang
    # even when it returned.
    elapsed, used = time.monotonic() - start, time.process_time() - cpu
    if finding is None and (used > seconds or elapsed > WALL_FACTOR * seconds):
        return Finding("hang", f"took {used:.1f} s of CPU and {elapsed:.1f} s in all, over the {seconds:g} s "
                       f"(CPU) or {WALL_FACTOR * seconds:g} s deadline")
    return finding


def _run_jobs(path: Path, seconds: float) -> Finding | None:
    from hvconf import compiler
    from hvconf.syntax.loader import InputError

    try:
        with deadline(seconds):
            for job, built in ((compiler.check, False), (compiler.build, True)):
                try:
                    result = job([path])
                except InputError:
                    continue  # exit status 2: the root file itself cannot be read
                problem = _judge(result, built)
                if problem:
                    return Finding("bad-result", problem)
    except CaseTimeout as err:
        return Finding("hang", str(err))
    except BaseException as err:  # noqa: B902 - a fuzzer reports everything, KeyboardInterrupt aside
        if isinstance(err, KeyboardInterrupt):
            raise
        return Finding("crash", "".join(traceback.format_exception(err))[-4000:])
    return None


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_ADDRESS_SPACE, CLI_ADDRESS_SPACE))


def cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m hvconf ARGS` with a bounded address space and wall clock."""
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, capture_output=True, text=True,
                          errors="replace", timeout=timeout, check=False, env=env, stdin=subprocess.DEVNULL,
                          preexec_fn=_limit_address_space)


def cli_finding(done: subprocess.CompletedProcess[str]) -> Finding | None:
    if "Traceback" in done.stderr or "Traceback" in done.stdout or done.returncode not in (0, 1, 2):
        return Finding("cli", f"status {done.returncode}: {done.stderr[-3000:]}")
    if SECRET in done.stdout + done.stderr:
        return Finding("cli", f"the output shows a file outside the project: {done.args}")
    return None


def leaked_outputs(out: Path) -> list[str]:
    """Files below a build's output folder holding bytes of a file outside the project."""
    return sorted(str(p) for p in out.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes())


def cli_batch(paths: list[Path], cwd: Path, out: Path) -> list[Finding]:
    """`hvconf check` of all `paths` in one process, then `hvconf build` of each
    of the first few: exit status in {0, 1, 2} and no traceback, under RLIMIT_AS."""
    findings = []
    rel = [str(p.relative_to(cwd)) for p in paths]
    for args in (["check", *rel], ["check", "--format", "json", *rel]):
        finding = cli_finding(cli(args, cwd))
        if finding:
            findings.append(finding)
    for path in rel[:3]:
        finding = cli_finding(cli(["build", path, "-o", str(out)], cwd))
        if finding:
            findings.append(finding)
    if out.exists() and (leaked := leaked_outputs(out)):
        findings.append(Finding("cli", f"build outputs hold bytes of a file outside the project: {leaked}"))
    return findings
