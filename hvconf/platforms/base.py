"""What every target family's module provides, and the context it gets.

An arch module exposes `plan(ctx) -> PlanBuilder` and `device_tree(ctx) -> Node | None`
(kvmtool keeps the same file names in every arch folder; hvconf keeps the
same function names in every arch module). Tested through the golden tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hvconf.diagnostics import Report
from hvconf.model import ir
from hvconf.model.hcallset import HcallSet

if TYPE_CHECKING:
    from hvconf.abi import ProposedAbi
    from hvconf.emit.fdt import Node
    from hvconf.emit.plan import PlanBuilder
    from hvconf.model.target import Target
    from hvconf.syntax.paths import Scope


class BuildContext:
    """What an arch module gets, filled in as it builds (a plain class with __slots__:
    docs/architecture.md#value-types)."""

    __slots__ = ("vm", "target", "report", "root_dir", "proposed", "hcalls", "images", "dtb", "reserve", "boot",
                 "inputs", "scope")

    def __init__(self, vm: ir.Vm, target: "Target", report: Report, root_dir: Path, proposed: "ProposedAbi",
                 hcalls: HcallSet, *, scope: "Scope | None" = None) -> None:
        self.vm = vm
        self.target = target
        self.report = report
        self.root_dir = root_dir  # folder of the root .hv file: guest sources and kernels resolve against it
        self.proposed = proposed
        self.hcalls = hcalls
        self.images: dict[str, bytes] = {}  # output file name -> bytes loaded into the guest
        self.dtb: bytes | None = None  # the device tree blob, built before the plan that loads it
        self.reserve: list[tuple[int, int]] = []  # (address, size): the DTB's /memreserve/ entries
        self.boot: object | None = None  # the platform's boot layout (spapr_boot.Layout), placed once for tree and plan
        self.inputs: dict[str, str] = {}  # extra input files (guest sources): path -> sha256
        # Where guest sources, kernels and what a guest source includes may be read from; None:
        # the project of root_dir (hvconf/syntax/paths.py), without folders allowed on the command line.
        self.scope = scope

    def input_scope(self) -> "Scope":
        from hvconf.syntax.paths import scope_for

        if self.scope is None:
            self.scope = scope_for(self.root_dir / "-")  # a file of root_dir: its project
        return self.scope


class ArchModule(Protocol):
    def plan(self, ctx: BuildContext) -> "PlanBuilder": ...

    def device_tree(self, ctx: BuildContext) -> "Node | None": ...
