"""hvconf.check: every rule as a named Check (docs/diagnostics.md lists them), and the entry
point the compiler calls for each VM.

CHECKS lists the rules explicitly, topic by topic (no registration by import
side effect). `run_checks` never raises for bad input: it collects findings
into the caller's report, once each. hvconf/lint/explain.py renders their docs.
Tested by tests/test_checks.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hvconf.check import boot, caps, epapr, hcalls, platform, spapr, suppression, x86
from hvconf.check import host as host_rules
from hvconf.check.registry import Check, CheckContext, run
from hvconf.diagnostics import Report
from hvconf.model import ir

if TYPE_CHECKING:
    from hvconf.model.host import HostFacts
    from hvconf.model.target import Target
    from hvconf.syntax.paths import Scope

CHECKS: tuple[Check, ...] = (
    caps.CHECKS + hcalls.CHECKS + x86.CHECKS + spapr.CHECKS + epapr.CHECKS + platform.CHECKS + boot.CHECKS
    + suppression.CHECKS  # decided over the whole report by hvconf/check/suppress.py
)
# Rules that hold a VM against one host's facts; they run only when facts are given.
HOST_CHECKS: tuple[Check, ...] = host_rules.CHECKS

# Rules that make sense on an `abstract` base, whose settings a concrete VM may
# still complete or override: names and the shape of what is written, nothing
# that depends on memory, vCPUs, flavour choices or the rest of the VM.
ABSTRACT_CODES: frozenset[str] = frozenset({
    "unknown-cap", "cap-bad-args", "unknown-hcall", "unknown-preset", "hcall-wrong-arch",
    "unknown-pv-feature", "unknown-console", "unknown-mode", "tce-liobn-duplicate", "tce-page-size",
    "tce-window-align", "tce-window-overflow", "tce-window-overlap", "tce-phb-shared", "rtas-token-duplicate",
    "hcall-instructions-length", "guest-format",
})


# What an abstract VM is checked with, chosen once rather than for every VM.
_ABSTRACT_CHECKS: tuple[Check, ...] = tuple(c for c in CHECKS if c.code in ABSTRACT_CODES)


def by_code() -> dict[str, Check]:
    return {c.code: c for c in CHECKS}


def run_checks(vm: ir.Vm, target: "Target", report: Report, host: "HostFacts | None" = None,
               scope: "Scope | None" = None) -> None:
    """Run every rule on `vm` (only ABSTRACT_CODES for an abstract VM), then HOST_CHECKS
    against `host` for a concrete VM, into `report`. `scope` is where the VM's files may be
    read from (its program's; by default its file's project).

    A finding already in the report (same code, span and message) is not added
    again: a base's statement checked through two derived VMs is reported once.
    """
    checks = _ABSTRACT_CHECKS if vm.abstract else CHECKS + HOST_CHECKS if host is not None else CHECKS
    local = Report()
    run(checks, CheckContext(vm, target, local, host=host, scope=scope))
    for diagnostic in local.diagnostics:
        report.add_new(diagnostic)


__all__ = ["ABSTRACT_CODES", "CHECKS", "HOST_CHECKS", "by_code", "run_checks"]
