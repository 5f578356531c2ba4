"""The ioctl plan as the compiler builds it, then written as plan.json (hvconf/contract.py) or as text.

Arch modules add steps to a `PlanBuilder` (ioctl name, typed args, the span
that caused them); each becomes a contract `Step` at once, with the request
number for the target's ABI and its span as `file:line:col` relative to the
root file's folder (so outputs do not depend on the working directory).
`to_json` numbers the caps (the unmerged proposal's from the overrides) and
writes the contract's object, `dumps` its text; `to_text` is the table `hvconf plan` prints.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from hvconf import abi
from hvconf.contract import CapRequirement, Step, write_plan
from hvconf.diagnostics import Span


class PlanBuilder:
    """Filled in as an arch module plans (a plain class with __slots__: docs/architecture.md#value-types)."""

    __slots__ = ("vm", "target", "arch", "host_arch", "root_dir", "steps", "spans", "requires", "images", "console",
                 "launcher", "unmerged")

    def __init__(self, vm: str, target: str, arch: str, host_arch: str, root_dir: Path) -> None:
        self.vm = vm
        self.target = target
        self.arch = arch
        self.host_arch = host_arch
        self.root_dir = root_dir  # the root .hv file's folder: sources are relative to it
        self.steps: list[Step] = []
        self.spans: list[Span | None] = []  # spans[i]: what asked for steps[i]
        self.requires: list[tuple[str, Span | None]] = []  # caps the host must report
        self.images: list[dict[str, Any]] = []
        self.console: dict[str, Any] | None = None
        self.launcher: dict[str, Any] = {}  # data for the runtime's devices (hvconf/kvm/*/devices.py)
        self.unmerged: list[str] = []  # proposed-ABI names whose numbers are missing

    def add(self, fd: str, ioctl: str, args: dict[str, Any] | None = None, span: Span | None = None) -> None:
        request = _request(ioctl, self.arch)
        self.steps.append(Step(len(self.steps), fd, ioctl, request, dict(args or {}), source_of(span, self.root_dir)))
        self.spans.append(span)

    def require(self, cap: str, span: Span | None) -> None:
        if all(cap != c for c, _ in self.requires):
            self.requires.append((cap, span))


def relative_file(file: str, root_dir: Path) -> str:
    """A span's file relative to the root .hv file's folder, with `/` separators."""
    return _relative(file, os.fspath(root_dir), os.getcwd())


@lru_cache(maxsize=1024)
def _relative(file: str, root_dir: str, cwd: str) -> str:
    """relative_file, once per file (and working folder): a build of N VMs asks it for the
    same few files N times, and this path arithmetic was 8% of building a VM's outputs."""
    return Path(os.path.relpath(os.path.join(cwd, file), os.path.join(cwd, root_dir))).as_posix()


def source_of(span: Span | None, root_dir: Path) -> str | None:
    """`file:line:col` with the file relative to the root .hv file's folder."""
    if span is None:
        return None
    # Every step, cap, image and device-tree property asks: one dict lookup rather than
    # relative_file's chain of calls.
    key = (span.file, root_dir, os.getcwd())
    file = _SOURCE_FILES.get(key)
    if file is None:
        if len(_SOURCE_FILES) >= 1024:  # bounded for a long-lived process (hvconf lsp)
            _SOURCE_FILES.clear()
        file = _SOURCE_FILES[key] = relative_file(span.file, root_dir)
    return f"{file}:{span.line}:{span.col}"


_SOURCE_FILES: dict[tuple[str, Path, str], str] = {}


def cap_number(name: str, proposed: "abi.ProposedAbi") -> int | None:
    """The number of a KVM_CAP_*, the user-supplied one for the unmerged proposal, or None."""
    key = (name, id(proposed))
    known = _CAP_NUMBERS.get(key)
    if known is None or known[0] is not proposed:
        number = proposed.number(name) if any(item.name == name for item in proposed.items) else abi.cap(name).number
        if len(_CAP_NUMBERS) >= 1024:  # a build with --abi-overrides reads a new proposal per VM
            _CAP_NUMBERS.clear()
        known = _CAP_NUMBERS[key] = (proposed, number)  # holds `proposed`: its id stays its own
    return known[1]


# (cap, id of the proposal) -> (the proposal, the cap's number): every VM asks for the same few.
_CAP_NUMBERS: dict[tuple[str, int], tuple["abi.ProposedAbi", int | None]] = {}


def _numbered(step: Step, proposed: "abi.ProposedAbi") -> Step:
    """A KVM_ENABLE_CAP step with its cap's number beside its name (`cap_nr`, what the runtime passes)."""
    if "cap" not in step.args or "cap_nr" in step.args:
        return step
    args = dict(step.args)
    return step._replace(args={"cap": args.pop("cap"), "cap_nr": cap_number(step.args["cap"], proposed), **args})


def _request(ioctl: str, arch: str) -> int:
    """abi.request, computed once per (ioctl, arch) in the process: a build of thousands of VMs
    asks for the same few dozen numbers once per step of each."""
    key = (ioctl, arch)
    if key not in _REQUESTS:
        _REQUESTS[key] = abi.request(ioctl, arch)
    return _REQUESTS[key]


_REQUESTS: dict[tuple[str, str], int] = {}


def to_json(plan: PlanBuilder, proposed: "abi.ProposedAbi") -> dict[str, Any]:
    caps = [CapRequirement(cap, cap_number(cap, proposed), source_of(span, plan.root_dir))
            for cap, span in plan.requires]  # fmt: skip
    return write_plan(vm=plan.vm, target=plan.target, arch=plan.arch, host_arch=plan.host_arch, caps=caps,
                      unmerged=plan.unmerged, images=plan.images, console=plan.console, launcher=plan.launcher,
                      steps=[_numbered(step, proposed) for step in plan.steps])  # fmt: skip


def dumps(data: dict[str, Any]) -> str:
    from hvconf.emit import jsontext

    return jsontext.dumps(data) + "\n"  # json.dumps(data, indent=2), faster


def _arg_text(args: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return json.dumps(value)
        if isinstance(value, int):
            return hex(value) if value > 9 else str(value)
        if isinstance(value, list):
            return "[" + ", ".join(one(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}={one(v)}" for k, v in value.items()) + "}"
        return json.dumps(value)

    return " ".join(f"{k}={one(v)}" for k, v in args.items())


def to_text(data: dict[str, Any]) -> str:
    """The plan as a table for people (`hvconf plan FILE`)."""
    steps = data["steps"]
    head = (f"plan for VM '{data['vm']}': target {data['target']}, {data['abi']} ioctl ABI, "
            f"{len(steps)} steps")
    rows = [(str(i), s["fd"], s["ioctl"], f"0x{s['request']:08x}", _arg_text(s["args"]), s["source"] or "")
            for i, s in enumerate(steps, 1)]
    widths = [max(len(r[c]) for r in rows) if rows else 0 for c in range(4)]
    lines = [head]
    for r in rows:
        lines.append(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}  {r[4]}  # {r[5]}")
    caps = data["requires"]["caps"]
    if caps:
        lines.append("host must report: " + ", ".join(c["cap"] for c in caps))
    if data["requires"]["unmerged"]:
        lines.append("unmerged ABI without numbers (the launcher will refuse): " + ", ".join(data["requires"]["unmerged"]))
    return "\n".join(lines) + "\n"
