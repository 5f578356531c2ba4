"""The check framework: named rules with a stable code, a severity, a one-line
summary, help, an explanation, and optional prerequisites (dtc's checks.c).

A rule is a function over a CheckContext that calls `ctx.emit(...)`; it
never raises for bad input. Rules are listed explicitly in
hvconf/check/__init__.py (no registration by import side effect).
Tested by tests/test_checks.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from hvconf.diagnostics import Diagnostic, Note, Report, Severity, Span
from hvconf.model import ir
from hvconf.record import Record

if TYPE_CHECKING:
    from hvconf.model.host import HostFacts
    from hvconf.model.target import Target
    from hvconf.syntax.paths import Scope


class Check(Record):
    """One rule. `code` is its name everywhere: CLI switches, docs, test oracles."""

    __slots__ = ("code", "severity", "summary", "fn", "help", "why", "requires")
    _defaults = {"help": None, "why": "", "requires": ()}
    code: str
    severity: Severity
    summary: str
    fn: Callable[["CheckContext"], None]
    help: str | None
    why: str  # the KVM doc or kernel behaviour behind the rule (for `hvconf explain`)
    requires: tuple[str, ...]


class CheckContext:
    """What a rule sees: one VM, its target's data, and where findings go."""

    __slots__ = ("vm", "target", "report", "check", "fired", "host", "scope", "memo")

    def __init__(self, vm: ir.Vm, target: Target, report: Report, check: Check | None = None,
                 host: HostFacts | None = None, scope: Scope | None = None) -> None:
        self.vm = vm
        self.target = target
        self.report = report
        self.check = check
        self.fired: set[str] = set()
        self.host = host  # a host's facts, for HOST_CHECKS (check --host / --host-facts)
        self.scope = scope  # where the VM's files may be read from (host rules build its plan)
        self.memo: dict[str, Any] = {}  # what several rules derive once per VM

    def emit(self, span: Span | None, message: str, *, notes: Iterable[Note] = (), help: str | None = None,
             severity: Severity | None = None) -> None:
        assert self.check is not None
        self.fired.add(self.check.code)
        self.report.add(Diagnostic(self.check.code, severity or self.check.severity, message,
                                   span or self.vm.span, tuple(notes), help or self.check.help))


def run(checks: Iterable[Check], ctx: CheckContext) -> None:
    """Run every check in order; a check whose prerequisite fired is skipped (its
    findings would only restate the prerequisite's)."""
    for check in checks:
        if check.requires and not ctx.fired.isdisjoint(check.requires):
            continue
        ctx.check = check
        check.fn(ctx)
    ctx.check = None
