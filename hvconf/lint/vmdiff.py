"""`hvconf diff`: what a change does to the compiled VMs, by meaning (a terraform plan for VMs).

Each side is a set of built VMs (hvconf.compiler.build). A VM is compared as its meaning:
the ioctl steps (fd, ioctl, arguments), the device tree (every node and property of the DTB),
the capabilities it enables and requires, the hypercalls it switches
(KVM_CAP_PPC_ENABLE_HCALL, the launcher's handlers and exits), its images (by hash, size and
address) and the rest of plan.json. Where things come from (the `source` of steps, caps and
images, the DTS comments) is not compared: moving lines or editing comments is no change.
Pure functions from built VMs to a Changes value and its text, Markdown and JSON renderings;
the command (hvconf/cli/diff.py) compiles the two sides. Tested by tests/test_vmdiff.py.
"""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from hvconf.emit.artifacts import Built

Json = Any
PROVENANCE = "source"  # where a plan entry came from: never part of its meaning


def _strip(value: Json) -> Json:
    """`value` without provenance (`source` keys at any depth)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != PROVENANCE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _text(value: Json) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


# ---- what a VM means ------------------------------------------------------------------------


class Meaning:
    """The comparable parts of one built VM (a plain class: filled in once, then read)."""

    def __init__(self, name: str, target: str, steps: list[tuple[str, str, Json]], tree: dict[str, str] | None,
                 caps: dict[str, list[str]], required: list[str], hcalls: dict[str, str], images: dict[str, Json],
                 other: dict[str, Json]) -> None:
        self.name, self.target = name, target
        self.steps, self.tree, self.caps, self.required = steps, tree, caps, required
        self.hcalls, self.images, self.other = hcalls, images, other


def _value_text(value: bytes) -> str:
    """A property value as `dtc -O dts` guesses its type: strings, cells or bytes."""
    if not value:
        return "(empty)"
    parts = value[:-1].split(b"\0")
    if value.endswith(b"\0") and all(parts) and all(32 <= c < 127 for part in parts for c in part):
        return ", ".join(json.dumps(part.decode()) for part in parts)
    if len(value) % 4 == 0:
        return "<" + " ".join(f"0x{int.from_bytes(value[i:i + 4], 'big'):x}" for i in range(0, len(value), 4)) + ">"
    return "[" + " ".join(f"{b:02x}" for b in value) + "]"


_BEGIN_NODE, _END_NODE, _PROP, _NOP, _END = 1, 2, 3, 4, 9


def device_tree(dtb: bytes) -> dict[str, str]:
    """Every node (`/path/`: "node") and property (`/path/name`: its value) of a DTB, and the
    memory reservations as `/memreserve/`. Read here from the flattened format itself (the
    Devicetree Specification v0.4, chapter 5 "Flattened Devicetree (DTB) Format"; Linux
    scripts/dtc/libfdt/fdt.h: header, reserve map, a structure block of BEGIN_NODE, PROP and
    END_NODE tokens, a strings block), not through the FDT library hvconf/emit/dtb.py writes with."""
    import struct

    def u32(at: int) -> int:
        return int(struct.unpack_from(">I", dtb, at)[0])

    struct_at, strings_at, rsv_at = u32(8), u32(12), u32(16)
    out: dict[str, str] = {}
    reserved = []
    while True:
        address, size = struct.unpack_from(">QQ", dtb, rsv_at)
        if address == size == 0:
            break
        reserved.append(f"0x{address:x} 0x{size:x}")
        rsv_at += 16
    if reserved:
        out["/memreserve/"] = ", ".join(reserved)
    path: list[str] = []
    at = struct_at
    while True:
        token = u32(at)
        at += 4
        if token == _BEGIN_NODE:
            end = dtb.index(b"\0", at)
            path.append(dtb[at:end].decode("ascii", "replace"))
            out["/".join(path) + "/" if path != [""] else "/"] = "node"
            at = (end + 4) & ~3
        elif token == _END_NODE:
            path.pop()
        elif token == _PROP:
            length, name_at = u32(at), u32(at + 4)
            name_end = dtb.index(b"\0", strings_at + name_at)
            name = dtb[strings_at + name_at:name_end].decode("ascii", "replace")
            out["/".join(path) + "/" + name if path != [""] else "/" + name] = _value_text(dtb[at + 8:at + 8 + length])
            at = (at + 8 + length + 3) & ~3
        elif token == _NOP:
            continue
        else:  # _END, or anything else: the block is over
            break
    return out


def _hcalls(plan: Mapping[str, Json]) -> dict[str, str]:
    """Each hypercall's handling that the plan sets: in-kernel on or off (KVM_CAP_PPC_ENABLE_HCALL),
    served by the launcher, or made to exit to it."""
    out: dict[str, str] = {}
    for step in plan.get("steps", []):
        args = step.get("args", {})
        if step.get("ioctl") == "KVM_ENABLE_CAP" and args.get("cap") == "KVM_CAP_PPC_ENABLE_HCALL":
            values = args.get("args", [])
            name = args.get("hcall") or (f"0x{values[0]:x}" if values else "?")
            out[str(name)] = "in-kernel" if values[1:2] == [1] else "not in-kernel"
    for family in plan.get("launcher", {}).values():
        if isinstance(family, dict):
            for name in family.get("handlers", []):
                out.setdefault(str(name), "served by the launcher")
            for key in ("exits", "exit_hypercalls"):
                for name in family.get(key, []):
                    out[str(name)] = "exits to the launcher"
    return out


def meaning(built: "Built") -> Meaning:
    plan = built.plan
    steps = [(s["fd"], s["ioctl"], _strip(s["args"])) for s in plan["steps"]]
    dtb = built.files.get(f"{built.vm.name}.dtb")
    caps: dict[str, list[str]] = {}
    for fd, ioctl, args in steps:
        if ioctl == "KVM_ENABLE_CAP" and isinstance(args, dict) and args.get("cap") != "KVM_CAP_PPC_ENABLE_HCALL":
            caps.setdefault(str(args.get("cap")), []).append(fd)
    images = {i["name"]: {k: v for k, v in _strip(i).items() if k != "name"} for i in plan.get("images", [])}
    other = {k: _strip(v) for k, v in plan.items() if k not in ("steps", "images", "requires")}
    other["requires.host_arch"] = plan["requires"]["host_arch"]
    other["requires.unmerged"] = plan["requires"]["unmerged"]
    return Meaning(built.vm.name, plan["target"], steps, device_tree(dtb) if dtb is not None else None,
                   {c: _fds(f) for c, f in caps.items()}, sorted(c["cap"] for c in plan["requires"]["caps"]),
                   _hcalls(plan), images, other)


def _fds(fds: list[str]) -> list[str]:
    vcpus = [f for f in fds if f.startswith("vcpu:")]
    rest = sorted(set(f for f in fds if not f.startswith("vcpu:")))
    return rest + ([f"{len(vcpus)} vCPU{'s' if len(vcpus) != 1 else ''}"] if vcpus else [])


# ---- changes ----------------------------------------------------------------------------------


class Change:
    """One line of a VM's change: `kind` + (added), - (removed) or ~ (changed), in a section."""

    __slots__ = ("section", "kind", "what", "old", "new")

    def __init__(self, section: str, kind: str, what: str, old: str | None = None, new: str | None = None) -> None:
        self.section, self.kind, self.what, self.old, self.new = section, kind, what, old, new

    def as_json(self) -> dict[str, Json]:
        return {"section": self.section, "change": {"+": "added", "-": "removed", "~": "changed"}[self.kind],
                "what": self.what, "old": self.old, "new": self.new}

    def line(self) -> str:
        if self.kind == "~":
            return f"~ {self.what}: {self.old} -> {self.new}"
        return f"{self.kind} {self.what}" + (f" = {self.new if self.kind == '+' else self.old}"
                                            if (self.new if self.kind == "+" else self.old) is not None else "")


class VmChange:
    __slots__ = ("name", "target", "action", "changes")

    def __init__(self, name: str, target: str, action: str, changes: list[Change]) -> None:
        self.name, self.target, self.action, self.changes = name, target, action, changes


SECTIONS = ("plan", "device tree", "caps", "hcalls", "images", "settings")


def _step_text(step: tuple[str, str, Json]) -> str:
    fd, ioctl, args = step
    return f"{fd} {ioctl} {_text(args)}"


def _step_changes(old: Sequence[tuple[str, str, Json]], new: Sequence[tuple[str, str, Json]]) -> list[Change]:
    """Steps added, removed, changed (same fd and ioctl in the same place, other arguments) or
    moved (the same step elsewhere in the order KVM sees them)."""
    out: list[Change] = []
    keys_old, keys_new = [_step_text(s) for s in old], [_step_text(s) for s in new]
    removed: dict[str, list[int]] = {}
    added: dict[str, list[int]] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys_old, keys_new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        pairs = list(zip(old[i1:i2], new[j1:j2])) if tag == "replace" else []
        if pairs and all(a[:2] == b[:2] for a, b in pairs) and i2 - i1 == j2 - j1:
            out += [Change("plan", "~", f"step {j} {a[0]} {a[1]}", _text(a[2]), _text(b[2]))
                    for j, (a, b) in enumerate(pairs, j1)]
            continue
        for i in range(i1, i2):
            removed.setdefault(keys_old[i], []).append(i)
        for j in range(j1, j2):
            added.setdefault(keys_new[j], []).append(j)
    for key in list(removed):
        while removed[key] and added.get(key):
            i, j = removed[key].pop(0), added[key].pop(0)
            out.append(Change("plan", "~", f"moved {key}", f"step {i}", f"step {j}"))
    out += [Change("plan", "-", f"step {i} {key}") for key, where in removed.items() for i in where]
    out += [Change("plan", "+", f"step {j} {key}") for key, where in added.items() for j in where]
    return out


def _map_changes(section: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            out.append(Change(section, "-", key, old=None if old[key] == "node" else old[key]))
        elif key not in old:
            out.append(Change(section, "+", key, new=None if new[key] == "node" else new[key]))
        elif old[key] != new[key]:
            out.append(Change(section, "~", key, old[key], new[key]))
    return out


def _texts(values: Mapping[str, Json]) -> dict[str, str]:
    """`values` one level flattened (`fdt.sha256`), each as text, so a change names its field."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update({f"{key}.{k}": v if isinstance(v, str) else _text(v) for k, v in value.items()})
        else:
            out[key] = value if isinstance(value, str) else _text(value)
    return out


def compare_vm(old: Meaning, new: Meaning) -> list[Change]:
    changes = _step_changes(old.steps, new.steps)
    changes += _map_changes("device tree", old.tree or {}, new.tree or {})
    changes += _map_changes("caps", {c: "enabled on " + ", ".join(f) for c, f in old.caps.items()},
                            {c: "enabled on " + ", ".join(f) for c, f in new.caps.items()})
    changes += [Change("caps", c.kind, f"host must offer {c.what}") for c in
                _map_changes("caps", dict.fromkeys(old.required, "x"), dict.fromkeys(new.required, "x"))]
    changes += _map_changes("hcalls", old.hcalls, new.hcalls)
    changes += _map_changes("images", _texts(old.images), _texts(new.images))
    changes += _map_changes("settings", _texts(old.other), _texts(new.other))
    return changes


def _summary_of(m: Meaning) -> list[Change]:
    """What an added or removed VM is, in a few lines."""
    return [Change("plan", "+", f"{len(m.steps)} ioctl steps"),
            *([Change("device tree", "+", f"{sum(1 for v in m.tree.values() if v == 'node')} nodes")] if m.tree else []),
            *(Change("caps", "+", c, new="enabled on " + ", ".join(f)) for c, f in sorted(m.caps.items())),
            *(Change("images", "+", name, new=_text(v)) for name, v in sorted(m.images.items()))]


class Changes:
    def __init__(self, vms: list[VmChange]) -> None:
        self.vms = vms

    @property
    def empty(self) -> bool:
        return not self.vms

    def counts(self) -> dict[str, int]:
        return {action: sum(1 for v in self.vms if v.action == action) for action in ("add", "change", "remove")}


def compare(old: Iterable["Built"], new: Iterable["Built"]) -> Changes:
    """What turns the VMs of `old` into those of `new`, by VM name."""
    before = {b.vm.name: meaning(b) for b in old}
    after = {b.vm.name: meaning(b) for b in new}
    vms = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            vms.append(VmChange(name, before[name].target, "remove", []))
        elif name not in before:
            vms.append(VmChange(name, after[name].target, "add", _summary_of(after[name])))
        else:
            changes = compare_vm(before[name], after[name])
            if changes:
                vms.append(VmChange(name, after[name].target, "change", changes))
    return Changes(vms)


# ---- renderings --------------------------------------------------------------------------------

_SIGN = {"add": "+", "change": "~", "remove": "-"}


def _sections(v: VmChange) -> list[tuple[str, list[Change]]]:
    return [(s, [c for c in v.changes if c.section == s]) for s in SECTIONS if any(c.section == s for c in v.changes)]


def summary_line(changes: Changes) -> str:
    if changes.empty:
        return "No changes: the compiled VMs are the same."
    n = changes.counts()
    return f"Plan: {n['add']} VM(s) to add, {n['change']} to change, {n['remove']} to remove."


def to_text(changes: Changes) -> str:
    lines: list[str] = []
    for v in changes.vms:
        lines.append(f"{_SIGN[v.action]} vm {v.name} ({v.target})")
        for section, items in _sections(v):
            lines.append(f"    {section}:")
            lines += [f"      {c.line()}" for c in items]
    lines += ([""] if lines else []) + [summary_line(changes)]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks in `lines` (a value may hold ```)."""
    import re

    runs = [len(r) for line in lines for r in re.findall(r"`+", line)]
    return "`" * max(3, max(runs, default=0) + 1)


def to_markdown(changes: Changes, title: str = "hvconf diff") -> str:
    """For a pull-request comment: a summary table, then each VM's changes in a `diff` block
    (GitHub and GitLab colour + and - lines, and ! for changed ones)."""
    import html

    lines = [f"### {title}", "", summary_line(changes)]
    if changes.empty:
        return "\n".join(lines) + "\n"
    lines += ["", "| | VM | target | changes |", "|---|---|---|---|"]
    for v in changes.vms:
        counts = ", ".join(f"{len(items)} {section}" for section, items in _sections(v)) or "removed"
        lines.append(f"| {_SIGN[v.action]} | `{_md_cell(v.name)}` | {_md_cell(v.target)} | {_md_cell(counts)} |")
    for v in changes.vms:
        body: list[str] = []
        for section, items in _sections(v):
            body.append(f"# {section}")
            body += [("! " + c.line()[2:]) if c.kind == "~" else c.line() for c in items]
        if not v.changes:
            body.append(f"- vm {v.name}")
        fence = _fence(body)
        lines += ["", f"<details><summary>{_SIGN[v.action]} <code>{html.escape(v.name)}</code></summary>", "",
                  f"{fence}diff", *body, fence, "", "</details>"]
    return "\n".join(lines) + "\n"


def to_json(changes: Changes) -> str:
    return json.dumps({"changed": not changes.empty, "summary": changes.counts(),
                       "vms": [{"vm": v.name, "target": v.target, "action": v.action,
                                "changes": [c.as_json() for c in v.changes]} for v in changes.vms]},
                      indent=2) + "\n"


RENDERERS = {"text": to_text, "markdown": to_markdown, "json": to_json}
