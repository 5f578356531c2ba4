"""The ioctl plan: ordered steps, serialised as plan.json and as text.

Arch modules produce `Step`s (ioctl name, typed args, the span that caused
them); this module adds the request number for the target's ABI, turns
spans into `file:line:col` relative to the root file's folder (so outputs do
not depend on the working directory), and writes JSON or a table.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hvconf import abi
from hvconf.diagnostics import Span

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Step:
    fd: str  # "system" | "vm" | "vcpu:N"
    ioctl: str
    args: dict[str, Any]
    span: Span | None


@dataclass
class Plan:
    vm: str
    target: str
    arch: str
    host_arch: str
    steps: list[Step] = field(default_factory=list)
    requires: list[tuple[str, Span | None]] = field(default_factory=list)  # caps the host must report
    images: list[dict[str, Any]] = field(default_factory=list)
    console: dict[str, Any] | None = None
    launcher: dict[str, Any] = field(default_factory=dict)  # data for userspace exit handlers
    unmerged: list[str] = field(default_factory=list)  # proposed-ABI names whose numbers are missing

    def add(self, fd: str, ioctl: str, args: dict[str, Any] | None = None, span: Span | None = None) -> None:
        self.steps.append(Step(fd, ioctl, dict(args or {}), span))

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
    return f"{relative_file(span.file, root_dir)}:{span.line}:{span.col}"


def cap_number(name: str, proposed: "abi.ProposedAbi") -> int | None:
    """The number of a KVM_CAP_*, the user-supplied one for the unmerged proposal, or None."""
    if any(item.name == name for item in proposed.items):
        return proposed.number(name)
    return abi.cap(name).number


def _request(ioctl: str, arch: str) -> int:
    """abi.request, computed once per (ioctl, arch) in the process: a build of thousands of VMs
    asks for the same few dozen numbers once per step of each."""
    key = (ioctl, arch)
    if key not in _REQUESTS:
        _REQUESTS[key] = abi.request(ioctl, arch)
    return _REQUESTS[key]


_REQUESTS: dict[tuple[str, str], int] = {}


def to_json(plan: Plan, root_dir: Path, proposed: "abi.ProposedAbi") -> dict[str, Any]:
    files: dict[str, str] = {}  # span file -> relative_file: the steps come from a few files

    def source(span: Span | None) -> str | None:
        if span is None:
            return None
        if span.file not in files:
            files[span.file] = relative_file(span.file, root_dir)
        return f"{files[span.file]}:{span.line}:{span.col}"

    steps = []
    for step in plan.steps:
        args = dict(step.args)
        if "cap" in args and "cap_nr" not in args:
            args = {"cap": args.pop("cap"), "cap_nr": cap_number(step.args["cap"], proposed), **args}
        steps.append({"fd": step.fd, "ioctl": step.ioctl, "request": _request(step.ioctl, plan.arch),
                      "args": args, "source": source(step.span)})
    return {
        "format": PLAN_FORMAT,
        "vm": plan.vm,
        "target": plan.target,
        "arch": plan.arch,
        "abi": abi.ABI_OF_ARCH[plan.arch],
        "requires": {
            "host_arch": plan.host_arch,
            "caps": [{"cap": cap, "cap_nr": cap_number(cap, proposed), "source": source(span)}
                     for cap, span in plan.requires],
            "unmerged": list(plan.unmerged),
        },
        "images": plan.images,
        "console": plan.console,
        "launcher": plan.launcher,
        "steps": steps,
    }


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
