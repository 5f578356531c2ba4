"""Rules for the ePAPR `/hypervisor` node and for the unmerged ePAPR ABI
(docs/kernel-facts.md#the-unmerged-epapr-proposal): flags that promise
hypercalls nobody serves, the `hcall_instructions` override, and every use of
the proposed ABI.

Flag -> hypercall rows are target data (target.toml
[features.hypervisor_node]); proposed names come from hvconf.abi.proposed().
Tested by tests/test_checks.py.
"""

from __future__ import annotations

from hvconf import abi
from hvconf.check.common import missing_caps
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity, Span
from hvconf.model import hcallset

OVERRIDES_HELP = ("its number is not in Linux: pass `--abi-overrides FILE` with `[numbers] {name} = N` from "
                  "your patched kernel's headers; a launcher on a host without it refuses to run")


def hypervisor_flag_unserved(ctx: CheckContext) -> None:
    node, hv, vm = ctx.target.features.hypervisor_node, ctx.vm.hypervisor, ctx.vm
    if node is None or hv is None:
        return
    hs = hcallset.resolve(vm, ctx.target)
    for flag in node.flags:
        if not getattr(hv, flag.name, False):
            continue
        span = vm.spans.get(f"hypervisor.{flag.name}") or vm.span_of("hypervisor")
        if not hs.handled(flag.hcall, ctx.target):
            cause = hs.changed_by.get(flag.hcall)
            ctx.emit(span, f"`{flag.name}` writes {flag.property}, which promises {flag.hcall}, but "
                     f"{flag.hcall} is {'disabled' if cause else 'not handled'}",
                     notes=[] if cause is None else [Note("disabled here", cause)],
                     help=f"remove `{flag.name}`, or keep {flag.hcall} enabled")
            continue
        row = ctx.target.name2hcall.get(flag.hcall)
        missing = missing_caps(vm, ctx.target, row.requires if row else ())
        if missing:
            ctx.emit(span, f"`{flag.name}` writes {flag.property}, but {flag.hcall} reaches the launcher only "
                     f"with {', '.join(missing)}", help="; ".join(f"add `cap {c}`" for c in missing))


def hcall_instructions_length(ctx: CheckContext) -> None:
    node, hv = ctx.target.features.hypervisor_node, ctx.vm.hypervisor
    if node is None or hv is None or hv.hcall_instructions is None:
        return
    words = hv.hcall_instructions
    span = ctx.vm.spans.get("hypervisor.hcall_instructions") or ctx.vm.span_of("hypervisor")
    max_words = node.instructions_max_bytes // 4
    if not 1 <= len(words) <= max_words:
        ctx.emit(span, f"`hcall_instructions` has {len(words)} words; {node.instructions_property} takes "
                 f"1 to {max_words} 32-bit instructions", help="pad the sequence with nop (0x60000000)")
    for word in words:
        if not 0 <= word <= 0xFFFF_FFFF:
            ctx.emit(span, f"`hcall_instructions` word {word:#x} is not a 32-bit instruction")


def _proposed_names() -> set[str]:
    return {item.name for item in abi.proposed().items}


def abi_unmerged(ctx: CheckContext) -> None:
    vm, target = ctx.vm, ctx.target
    proposed = _proposed_names()
    found: list[tuple[Span | None, str, str]] = []  # (span, what, name for the overrides file)
    for use in vm.caps:
        cap = target.name2cap.get(use.name)
        if (cap is not None and cap.proposed) or use.name in proposed:
            found.append((use.span, use.name, use.name))
    for op in vm.hcalls.ops:
        hcall = target.name2hcall.get(str(op.ref))
        if (hcall is not None and hcall.proposed) or op.ref in proposed:
            found.append((op.span, str(op.ref), str(op.ref)))
    node = target.features.hypervisor_node
    if node is not None and vm.hypervisor is not None:
        for flag in node.flags:
            if flag.proposed and getattr(vm.hypervisor, flag.name, False):
                found.append((vm.spans.get(f"hypervisor.{flag.name}") or vm.span_of("hypervisor"),
                              f"`{flag.name}` ({flag.property}, {flag.hcall})", flag.hcall))
    console = target.name2console.get(vm.console or "")
    if console is not None and console.proposed:
        exit_name = target.launcher.exit if target.launcher.exit_proposed else "the proposed exit"
        found.append((vm.span_of("console"), f"console {console.name} (it needs {exit_name})", exit_name))
    for span, what, name in found:
        ctx.emit(span, f"{what} belongs to the ePAPR hypercall proposal that was never merged into Linux",
                 help=OVERRIDES_HELP.format(name=name))


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("hypervisor-flag-unserved", E, "a /hypervisor flag promises a hypercall nobody serves",
          hypervisor_flag_unserved,
          why="Linux idles with EV_IDLE once /hypervisor has `has-idle` (epapr_paravirt.c); the proposed "
              "kvm,has-reset / kvm,has-shutdown promise KVM_HC_VM_RESET / KVM_HC_VM_SHUTDOWN, which only "
              "reach the launcher with the proposed KVM_CAP_EXIT_EPAPR_HCALL (upstream kvmppc_kvm_pv "
              "answers EV_UNIMPLEMENTED). hvconf requires that cap; `hcalls { exit ... }` is not needed "
              "because the proposed exit forwards every hcall the kernel does not serve."),
    Check("hcall-instructions-length", E, "`hcall_instructions` is not 1 to 4 32-bit words",
          hcall_instructions_length,
          why="Linux early_init_dt_scan_epapr reads hcall-instructions only when its length is a multiple "
              "of 4 and at most 16 bytes (KVM_PPC_GET_PVINFO returns 4 words, api.rst §4.48)."),
    Check("abi-unmerged", W, "the unmerged ePAPR proposal is used", abi_unmerged,
          why="KVM_CAP_EXIT_EPAPR_HCALL, KVM_EXIT_EPAPR_HCALL, KVM_HC_VM_RESET/SHUTDOWN and "
              "kvm,has-reset/kvm,has-shutdown (a kvm@vger proposal) were never merged: no Linux header "
              "defines their numbers (docs/kernel-facts.md#the-unmerged-epapr-proposal). hvconf models them "
              "faithfully; numbers come from an "
              "`--abi-overrides FILE`, and a launcher refuses to run on a host that lacks them."),
)
