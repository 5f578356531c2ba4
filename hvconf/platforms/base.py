"""What every target family's module provides, and the context it gets.

An arch module exposes `plan(ctx) -> PlanBuilder` and `device_tree(ctx) -> Node | None`
(kvmtool keeps the same file names in every arch folder; hvconf keeps the
same function names in every arch module). Tested through the golden tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class BuildContext:
    vm: ir.Vm
    target: "Target"
    report: Report
    root_dir: Path  # folder of the root .hv file: guest sources and kernels resolve against it
    proposed: "ProposedAbi"
    hcalls: HcallSet
    images: dict[str, bytes] = field(default_factory=dict)  # output file name -> bytes loaded into the guest
    dtb: bytes | None = None  # the device tree blob, built before the plan that loads it
    reserve: list[tuple[int, int]] = field(default_factory=list)  # (address, size): the DTB's /memreserve/ entries
    boot: object | None = None  # the platform's boot layout (spapr_boot.Layout), placed once for tree and plan
    inputs: dict[str, str] = field(default_factory=dict)  # extra input files (guest sources): path -> sha256
    # Where guest sources, kernels and what a guest source includes may be read from; None:
    # the project of root_dir (hvconf/syntax/paths.py), without folders allowed on the command line.
    scope: "Scope | None" = None

    def input_scope(self) -> "Scope":
        from hvconf.syntax.paths import scope_for

        if self.scope is None:
            self.scope = scope_for(self.root_dir / "-")  # a file of root_dir: its project
        return self.scope


class ArchModule(Protocol):
    def plan(self, ctx: BuildContext) -> "PlanBuilder": ...

    def device_tree(self, ctx: BuildContext) -> "Node | None": ...
