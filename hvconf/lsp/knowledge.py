"""What the language server says about a name: hover text and completion items, from the
target knowledge base (targets/<name>/*.toml through hvconf/model/target.py), Linux's numbers
(hvconf/abi), the explain pages (hvconf/lint/explain.py) and docs/language.md.

Every function takes the targets the cursor's VM may compile for (one when its `arch` and `kvm`
are known, else all of them) and returns Markdown or plain records; nothing here speaks LSP.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from hvconf.model.target import Target, load_target, target_names
from hvconf.model.target_toml import CapArg
from hvconf.record import Record, _set

Found = TypeVar("Found")

# Sub-keywords documented in the section of the statement they belong to (docs/language.md).
KEYWORD_SECTION = {"enable": "hcalls", "disable": "hcalls", "exit": "hcalls", "preset": "hcalls",
                   "enforce": "hcalls", "token": "rtas", "order": "htab", "auto": "htab", "on": "cap",
                   "vcpu": "cap", "mode": "guest", "at": "guest", "abstract": "abstract vm"}
USER_SCOPES = ("vm", "vcpu")  # caps a definition may enable; "check" rows are CHECK_EXTENSION only
# `cap NAME on ...`: the targets each fd accepts (docs/language.md#cap).
ON_TARGETS = {"vm": ("vm",), "vcpu": ("vcpus", "vcpu")}


class Item(Record):
    """One completion: the text inserted, what kind of thing it is, a one-line detail, a doc."""

    __slots__ = ("label", "kind", "detail", "doc")
    _defaults = {"detail": "", "doc": ""}
    label: str
    kind: str  # keyword | cap | hcall | preset | console | value | vm
    detail: str
    doc: str


class Scope(Record):
    """The targets a VM may compile for, and its KVM flavour when known."""

    __slots__ = ("targets", "flavour")
    targets: tuple[Target, ...]
    flavour: str | None

    def __init__(self, targets: Sequence[Target], flavour: str | None = None) -> None:
        _set(self, "targets", tuple(targets))
        _set(self, "flavour", flavour)

    def flavours(self, target: Target) -> tuple[str, ...]:
        return (self.flavour,) if self.flavour in target.flavours else target.flavours


def all_targets() -> tuple[Target, ...]:
    return tuple(load_target(name) for name in target_names())


def scope_for(target: str | None, flavour: str | None) -> Scope:
    """The Scope of a VM whose target is `target` (None: unknown, so every target)."""
    if target is not None and target in target_names():
        return Scope([load_target(target)], flavour)
    return Scope(all_targets(), flavour)


# ---- hover --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _language_doc() -> str:
    from hvconf.lint.doctext import without_markers
    from hvconf.resources import language_doc

    return without_markers(language_doc().read_text(encoding="utf-8"))


def keyword_doc(word: str) -> str | None:
    """The docs/language.md section of keyword `word` (or of the statement it belongs to)."""
    from hvconf.lint.doctext import section
    from hvconf.syntax.highlight import KEYWORDS

    if word not in KEYWORDS:
        return None
    heading = KEYWORD_SECTION.get(word, word)
    text = section(_language_doc(), f"`{heading}`")
    return f"**`{heading}`** (docs/language.md)\n\n{text}" if text else None


def code_doc(code: str) -> str | None:
    """The explain page of diagnostic code `code` (what `hvconf explain CODE --format markdown` prints)."""
    from hvconf.codes import CODES
    from hvconf.lint import explain

    if code not in CODES:
        return None
    try:
        return explain.to_markdown(explain.page(code))
    except explain.UnknownCode:  # a code no stage emits yet
        return None


def _cap_abi(name: str) -> str:
    from hvconf import abi

    try:
        info = abi.cap(name)
    except Exception:  # an unmerged or unknown cap: the target row says what hvconf knows
        return "not in Linux's headers (an unmerged proposal, see hvconf.abi.proposed())"
    fd = {"vm": "KVM_ENABLE_CAP on the VM fd", "vcpu": "KVM_ENABLE_CAP on a vCPU fd",
          "check": "KVM_CHECK_EXTENSION only"}[info.enable]
    since = f", since Linux {info.since}" if info.since else ""
    return f"`{name}` = {info.number} (include/uapi/linux/kvm.h{since}); {fd}"


def cap_doc(name: str, scope: Scope) -> str | None:
    """Where a KVM_CAP_* comes from in KVM's API and what it does for each of `scope`'s targets."""
    rows = [(t, t.name2cap[name]) for t in scope.targets if name in t.name2cap]
    if not rows:
        return None
    parts = [f"**{name}**: {_cap_abi(name)}"]
    for target, cap in rows:
        flavours = ", ".join(cap.flavours or target.flavours)
        args = ", ".join(f"`{a.name}` ({a.kind})" for a in cap.args)
        parts.append(f"*{target.name}* ({flavours}; {cap.scope} fd{'; args ' + args if args else ''}"
                     f"{'; written by the plan, not by hand' if cap.managed else ''}): {cap.doc}")
    return "\n\n".join(parts)


def _hcall_number(target: Target, name: str) -> str:
    """The hypercall's number in Linux, by the table of the target's hypercall ABI."""
    from hvconf import abi

    lookups: dict[str, Callable[[str], str]] = {
        "ppc64-spapr": lambda n: f"opcode {abi.papr_hcall(n).opcode:#x} (PAPR)",
        "ppc-e500": lambda n: f"token {abi.epapr_token(n).token:#x} (ePAPR)",
        "x86_64": lambda n: f"number {abi.x86_hypercall(n).number} (linux/kvm_para.h)",
    }
    try:
        return lookups[target.name](name) if target.name in lookups else ""
    except Exception:  # a name the ABI tables lack (proposed, platform-only)
        return ""


def _found(scope: Scope, lookup: Callable[[Target], Found | None]) -> Iterator[tuple[Target, Found]]:
    """(target, what `lookup` finds there) for each of `scope`'s targets where it finds something."""
    for target in scope.targets:
        found = lookup(target)
        if found is not None:
            yield target, found


def _titled(title: str, parts: list[str]) -> str | None:
    """A hover: `title`, then a paragraph per target (and flavour); None where no target had one."""
    return f"{title}\n\n" + "\n\n".join(parts) if parts else None


def hcall_doc(name: str, scope: Scope) -> str | None:
    """Who serves a hypercall on each of `scope`'s targets, and its number."""
    parts = []
    for target, row in _found(scope, lambda t: t.name2hcall.get(name)):
        number = _hcall_number(target, name)
        facts = [f for f in (number, f"handler: {row.handler}", f"set {row.set}" if row.set else "",
                             "deprecated" if row.deprecated else "") if f]
        parts.append(f"*{target.name}*: {'; '.join(facts)}{'. ' + row.doc if row.doc else ''}")
    return _titled(f"**{name}**", parts)


def preset_doc(name: str, scope: Scope) -> str | None:
    """What `hcalls { preset NAME }` enables in-kernel, per flavour."""
    parts = []
    for target, preset in _found(scope, lambda t: t.presets.get(name)):
        for flavour in scope.flavours(target):
            if flavour in target.abi_flavour:
                hcalls = sorted(target.preset(name, flavour))
                parts.append(f"*{target.name}, {flavour}*: {preset.doc} ({len(hcalls)} in-kernel hcalls: "
                             f"{', '.join(hcalls) or 'none'})")
    return _titled(f"**preset {name}**", parts)


def console_doc(name: str, scope: Scope) -> str | None:
    parts = []
    for target, row in _found(scope, lambda t: t.name2console.get(name)):
        facts = [f for f in (f"device-tree node {row.node}" if row.node else "",
                             f"served on {row.exit}" if row.exit else "",
                             f"I/O port {row.io_port:#x}" if row.io_port is not None else "",
                             "" if row.supported else "planned only: the launcher cannot serve it") if f]
        parts.append(f"*{target.name}*: {'; '.join(facts) or 'no console'}{'. ' + row.doc if row.doc else ''}")
    return _titled(f"**console {name}**", parts)


def _cap_arg(target: Target, cap: str, name: str) -> CapArg | None:
    row = target.name2cap.get(cap)
    return next((a for a in row.args if a.name == name), None) if row else None


def cap_arg_doc(cap: str, name: str, scope: Scope) -> str | None:
    """An argument of a cap block (`cap KVM_CAP_PPC_SMT { vsmt_mode 4 }`): its type, slot and range."""
    parts = []
    for target, arg in _found(scope, lambda t: _cap_arg(t, cap, name)):
        facts = [arg.kind, f"args[{arg.slot}]" if arg.slot is not None else "",
                 f"{arg.min}..{arg.max}" if arg.min is not None and arg.max is not None else "",
                 "a power of two" if arg.power_of_two else "", "required" if arg.required else "",
                 f"default {arg.default}" if arg.default is not None else "",
                 f"values {', '.join(map(str, arg.values))}" if arg.values else ""]
        parts.append(f"*{target.name}*: {', '.join(f for f in facts if f)}{'. ' + arg.doc if arg.doc else ''}")
    return _titled(f"**{name}**, an argument of {cap} (KVM_ENABLE_CAP args)", parts)


# What a word after a keyword names: `preset kernel_default`, `console hvterm`.
AFTER_KEYWORD: dict[str, Callable[[str, Scope], str | None]] = {"preset": preset_doc, "console": console_doc}


def describe(word: str, before: str | None, scope: Scope, cap: str | None = None,
             block: str | None = None) -> str | None:
    """Hover text for `word`: `before` is the word in front of it on its line, `cap` the cap
    whose block it is in and `block` the keyword of the block it is in (`tce`, `hypervisor`)."""
    if cap is not None and word != cap:
        found = cap_arg_doc(cap, word, scope)
        if found:
            return found
    if before in AFTER_KEYWORD:
        found = AFTER_KEYWORD[before](word, scope)
        if found:
            return found
    for lookup in (cap_doc, hcall_doc):
        found = lookup(word, scope)
        if found:
            return found
    # A property of a block (`liobn` in a `tce` block) is documented in the block's section.
    return code_doc(word) or keyword_doc(word) or (keyword_doc(block) if block and word != before else None)


# ---- completion ---------------------------------------------------------------------------


def keywords() -> list[Item]:
    from hvconf.syntax.highlight import KEYWORDS

    return [Item(k, "keyword", "keyword") for k in KEYWORDS]


def caps(scope: Scope) -> list[Item]:
    """Caps a definition may enable for the target and flavour, with the fd they go to."""
    seen: dict[str, Item] = {}
    for target in scope.targets:
        offered = {f: target.flavour2cap_names[f] for f in scope.flavours(target)}
        for flavour, rows in offered.items():
            for cap in rows.values():
                if cap.scope in USER_SCOPES and cap.managed is None and cap.name not in seen:
                    seen[cap.name] = Item(cap.name, "cap", f"{cap.scope} fd ({target.name})", cap.doc)
    return sorted(seen.values(), key=lambda i: i.label)


def cap_targets(name: str, scope: Scope) -> list[Item]:
    """What may follow `cap NAME on`: the fds KVM accepts the cap on."""
    fds = {t.name2cap[name].scope for t in scope.targets if name in t.name2cap}
    return [Item(word, "value", f"{fd} fd") for fd in USER_SCOPES if fd in fds for word in ON_TARGETS[fd]]


# Which hcalls each `hcalls` action takes: `exit` only those that may be forwarded to userspace.
HCALL_FILTER: dict[str, Callable[[object], bool]] = {
    "enable": lambda row: True, "disable": lambda row: True,
    "exit": lambda row: bool(getattr(row, "exit_capable", False)),
}


def hcalls(scope: Scope, action: str) -> list[Item]:
    keep = HCALL_FILTER.get(action, HCALL_FILTER["enable"])
    items = {row.name: Item(row.name, "hcall", f"{row.handler} ({target.name})", row.doc)
             for target in scope.targets for row in target.hcalls if keep(row) and not row.foreign_arch}
    return sorted(items.values(), key=lambda i: i.label)


def presets(scope: Scope) -> list[Item]:
    return _named((t, t.presets.items()) for t in scope.targets)


def consoles(scope: Scope) -> list[Item]:
    return _named((t, ((c.name, c) for c in t.consoles)) for t in scope.targets)


def arches() -> list[Item]:
    return sorted({a: Item(a, "value", f"arch ({t.name})") for t in all_targets() for a in t.arches}.values(),
                  key=lambda i: i.label)


def flavours(scope: Scope) -> list[Item]:
    return sorted({f: Item(f, "value", f"kvm flavour ({t.name})") for t in scope.targets
                   for f in t.flavours}.values(), key=lambda i: i.label)


def _named(groups: Iterable[tuple[Target, Iterable[tuple[str, object]]]]) -> list[Item]:
    items: dict[str, Item] = {}
    for target, rows in groups:
        for name, row in rows:
            items.setdefault(name, Item(name, "value", target.name, getattr(row, "doc", "")))
    return sorted(items.values(), key=lambda i: i.label)
