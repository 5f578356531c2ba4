"""Rules for x86 paravirtual features (CPUID 0x40000001) and the hypercalls
they gate: unknown or non-advertisable features, hypercalls whose feature
bit is missing, features KVM clears or that need a forwarded hypercall,
`enforce` without features, KICK_CPU on a single vCPU, and a real-mode
guest source whose hypercall runs with a CS base KVM's patching gets wrong.

Feature rows are target data (targets/x86_64/target.toml [features.pv_features]);
nothing here applies to targets without them. Tested by tests/test_checks.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from hvconf.check.common import did_you_mean, usable_caps
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity
from hvconf.diagnostics import Span
from hvconf.model import capargs, hcallset, inputs, ir
from hvconf.syntax.gas import MAX_SOURCE_BYTES, statements
from hvconf.syntax.loader import display_path
from hvconf.syntax.paths import PathRefused, read_resolved, resolve, scope_for

if TYPE_CHECKING:
    from hvconf.model.target import Target

# The cap whose `exits` argument makes KVM clear some PV features itself (api.rst §7.13).
DISABLE_EXITS = "KVM_CAP_X86_DISABLE_EXITS"
KICK_CPU = "KVM_HC_KICK_CPU"


def declared(vm: ir.Vm, target: "Target") -> dict[str, ir.PvFeature]:
    """Declared features by their full row name (unknown names left out)."""
    out: dict[str, ir.PvFeature] = {}
    for feature in vm.pv_features:
        row = target.pv_feature(feature.name)
        if row is not None:
            out.setdefault(row.name, feature)
    return out


def _used(ctx: CheckContext) -> list[hcallset.HcallRef]:
    """`enable` and `exit` references of hypercalls the target knows."""
    return [r for r in hcallset.resolve(ctx.vm, ctx.target).refs
            if r.action in ("enable", "exit") and r.name in ctx.target.name2hcall]


def unknown_pv_feature(ctx: CheckContext) -> None:
    if ctx.target.features.pv_features is None or not ctx.vm.pv_features:
        return
    shorts = [n for n in ctx.target.name2pv_feature if not n.startswith("KVM_")]
    for feature in ctx.vm.pv_features:
        if ctx.target.pv_feature(feature.name) is None:
            ctx.emit(feature.span, f"unknown PV feature '{feature.name}'",
                     help=did_you_mean(feature.name, shorts, ctx.target.name2pv_feature))


def pv_feature_not_advertisable(ctx: CheckContext) -> None:
    for feature in ctx.vm.pv_features:
        row = ctx.target.pv_feature(feature.name)
        if row is not None and not row.advertisable:
            detail = f": {row.doc}" if row.doc else ""
            ctx.emit(feature.span, f"{row.name} cannot be advertised by hvconf{detail}",
                     help="remove it from `pv_features`")


def pv_feature_missing(ctx: CheckContext) -> None:
    vm, target = ctx.vm, ctx.target
    have = declared(vm, target)
    for ref in _used(ctx):
        row = target.name2hcall[ref.name or ""]
        if row.feature is None or row.foreign_arch or row.deprecated or row.feature in have:
            continue
        if ref.action == "exit" and not row.exit_capable:
            continue  # hcall-cannot-exit
        short = row.feature.removeprefix("KVM_FEATURE_").lower()
        gated = row.handler == "kernel" and vm.hcalls.enforce
        if gated:
            message = (f"{ref.name} is gated by {row.feature}, which `pv_features` does not declare: with "
                       "`enforce` the guest gets -KVM_ENOSYS")
        else:
            message = (f"{ref.name} is announced by {row.feature}, which `pv_features` does not declare: "
                       "the guest cannot discover it")
        ctx.emit(ref.span, message, severity=Severity.ERROR if gated else Severity.WARNING,
                 notes=[Note("`enforce` is here", vm.hcalls.enforce_span)] if gated and vm.hcalls.enforce_span else (),
                 help=f"add `{short}` to `pv_features`")


def hcall_disable_x86(ctx: CheckContext) -> None:
    """x86 has no per-hypercall switch: KVM refuses one only when `enforce` is on and its
    PV feature bit is not advertised; say when a `disable` cannot have that effect."""
    vm, target = ctx.vm, ctx.target
    if target.features.pv_features is None:
        return
    have = declared(vm, target)
    for ref in hcallset.resolve(vm, target).refs:
        row = target.name2hcall.get(ref.name or "")
        if ref.action != "disable" or row is None or row.foreign_arch or row.handler != "kernel":
            continue
        if row.feature is None:
            ctx.emit(ref.span, f"{ref.name} cannot be disabled: KVM serves it whatever CPUID says",
                     help="remove the line; no x86 setting refuses this hypercall")
        elif row.feature in have:
            ctx.emit(ref.span, f"{ref.name} is disabled but its feature bit {row.feature} is declared in "
                     "`pv_features`, which offers it to the guest", notes=[Note("declared here", have[row.feature].span)],
                     help=f"remove `{row.feature.removeprefix('KVM_FEATURE_').lower()}` from `pv_features`, or the `disable`")
        elif not vm.hcalls.enforce:
            ctx.emit(ref.span, f"{ref.name} still works: without `enforce` KVM ignores the missing {row.feature} bit",
                     severity=Severity.WARNING, help="add `enforce` to the `hcalls` block")


def pv_feature_needs_exit(ctx: CheckContext) -> None:
    exits = hcallset.resolve(ctx.vm, ctx.target).exits
    for full, feature in declared(ctx.vm, ctx.target).items():
        row = ctx.target.name2pv_feature[full]
        if row.requires_exit and row.requires_exit not in exits:
            ctx.emit(feature.span, f"{full} tells the guest it may call {row.requires_exit}, which is not "
                     "forwarded to the launcher", help=f"add `hcalls {{ exit {row.requires_exit} }}`")


def _disabled_exits(ctx: CheckContext) -> tuple[set[str], ir.CapUse | None]:
    for use, row in usable_caps(ctx.vm, ctx.target):
        if use.name != DISABLE_EXITS:
            continue
        encoded = capargs.encode(row, use)
        names: set[str] = set()
        for arg in row.args:
            if arg.kind == "mask" and arg.slot is not None and arg.values:
                mask = encoded.args[arg.slot]
                names |= {n for n, bit in arg.values.items() if mask & bit}
        return names, use
    return set(), None


def pv_feature_cleared(ctx: CheckContext) -> None:
    exits, use = _disabled_exits(ctx)
    if use is None:
        return
    for full, feature in declared(ctx.vm, ctx.target).items():
        row = ctx.target.name2pv_feature[full]
        clash = sorted(exits & set(row.not_with_disable_exits))
        if clash:
            ctx.emit(feature.span, f"KVM clears {full} because {DISABLE_EXITS} disables {', '.join(clash)} exits",
                     notes=[Note(f"{', '.join(clash)} exits are disabled here", use.span)],
                     help=f"drop `{', '.join(clash)}` from the cap's `exits`, or the feature")


def enforce_without_features(ctx: CheckContext) -> None:
    vm = ctx.vm
    if vm.hcalls.enforce and not vm.pv_features and ctx.target.features.pv_features is not None:
        ctx.emit(vm.hcalls.enforce_span, "`enforce` without `pv_features`: every feature-gated hypercall and "
                 "PV MSR is refused", help="declare the features the guest uses in `pv_features { ... }`")


def kick_cpu_single_vcpu(ctx: CheckContext) -> None:
    if ctx.vm.vcpus != 1:
        return
    for ref in _used(ctx):
        if ref.name == KICK_CPU and ref.action == "enable":
            ctx.emit(ref.span, f"{KICK_CPU} wakes another halted vCPU, but the VM has one vCPU",
                     help="remove it, or raise `vcpus`")


# A statement's mnemonic (after any labels); GNU as mnemonics are case-insensitive.
_MNEMONIC = re.compile(r"(?:[A-Za-z_.$][\w.$]*:\s*)*([A-Za-z][\w.]*)")
HYPERCALLS = frozenset({"vmcall", "vmmcall"})
# Far transfers that load CS in real mode, the only way a guest the launcher starts with CS base 0
# (hvconf/kvm/x86/modes.py `_real`) gets another base.
FAR_TRANSFERS = frozenset({"ljmp", "ljmpw", "ljmpl", "lcall", "lcallw", "lcalll", "lret", "lretw", "lretl",
                           "iret", "iretw", "iretl", "retf"})


def _mnemonics(file: str, text: str) -> list[tuple[str, Span]]:
    """(mnemonic, span) of each statement of a GNU as source (directives and labels alone skipped)."""
    found = []
    for line, col, statement in statements(text):
        m = _MNEMONIC.match(statement.strip())
        if m is not None:
            name = m.group(1).lower()
            start = col + m.start(1)
            found.append((name, Span(file, line, start, line, start + len(name))))
    return found


def real_mode_hypercall_segment(ctx: CheckContext) -> None:
    """A real-mode `.S` guest that issues vmcall/vmmcall and also reloads CS: statically the
    only case where hvconf can tell the hypercall may run with a non-zero CS base."""
    guest = ctx.vm.guest
    if guest is None or guest.mode != "real" or Path(guest.path).suffix != ".S":
        return
    source = inputs.source_path(guest.path, guest.span, Path.cwd())
    try:
        scope = ctx.scope or scope_for(guest.span.file if guest.span else source)
        real, _ = resolve(source, scope)
        text = read_resolved(real, scope, MAX_SOURCE_BYTES).decode("utf-8")
    except (PathRefused, UnicodeDecodeError):
        return  # the path's own diagnostics (guest-not-found, path-*) say why
    found = _mnemonics(display_path(source.absolute()), text)
    far = next((span for name, span in found if name in FAR_TRANSFERS), None)
    if far is None:
        return
    for name, span in found:
        if name in HYPERCALLS:
            ctx.emit(span, f"`{name}` in a real-mode guest that reloads CS: KVM rewrites the instruction at "
                     "linear address rip, not CS.base + rip, so with a non-zero CS base it never returns",
                     notes=[Note("CS is reloaded here", far), Note("the guest starts in real mode here", guest.span)])


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("unknown-pv-feature", E, "`pv_features` names no KVM PV feature", unknown_pv_feature,
          help="write the KVM_FEATURE_ name, its lower-case suffix (pv_unhalt) or an alias (unhalt)",
          why="CPUID 0x40000001 bits are KVM_FEATURE_* / KVM_HINTS_* of arch/x86/include/uapi/asm/"
              "kvm_para.h (Documentation/virt/kvm/x86/cpuid.rst)."),
    Check("pv-feature-not-advertisable", E, "a PV feature that needs userspace support hvconf lacks",
          pv_feature_not_advertisable,
          why="Some bits promise userspace behaviour: KVM_FEATURE_MIGRATION_CONTROL needs an MSR filter, "
              "MSI_EXT_DEST_ID a userspace IOAPIC, KVM_HINTS_REALTIME dedicated CPUs; MMU_OP is gone "
              "(cpuid.rst). Advertising them lies to the guest."),
    Check("pv-feature-missing", E, "an enabled hypercall's PV feature bit is not declared", pv_feature_missing,
          why="With KVM_CAP_ENFORCE_PV_FEATURE_CPUID (api.rst §6.80) x86.c checks guest_pv_has(): "
              "KVM_HC_KICK_CPU needs PV_UNHALT, SEND_IPI PV_SEND_IPI, SCHED_YIELD PV_SCHED_YIELD, else "
              "-KVM_ENOSYS. Without enforcement KVM serves them, but a guest only calls what CPUID "
              "announces (hypercalls.rst; KVM_HC_MAP_GPA_RANGE is announced by HC_MAP_GPA_RANGE). "
              "Error when enforced, warning otherwise."),
    Check("pv-feature-needs-exit", E, "a PV feature promises a hypercall that is not forwarded",
          pv_feature_needs_exit,
          why="hypercalls.rst: userspace must enable KVM_CAP_EXIT_HYPERCALL for KVM_HC_MAP_GPA_RANGE "
              "before advertising KVM_FEATURE_HC_MAP_GPA_RANGE; otherwise the call returns -KVM_ENOSYS."),
    Check("pv-feature-cleared", W, "a declared PV feature that KVM clears because of disabled exits",
          pv_feature_cleared,
          why="api.rst §7.13 KVM_CAP_X86_DISABLE_EXITS: do not advertise KVM_FEATURE_PV_UNHALT when HLT "
              "exits are disabled; kvm_update_cpuid_runtime() clears the bit itself."),
    Check("enforce-without-features", W, "`enforce` with no `pv_features`", enforce_without_features,
          why="KVM_CAP_ENFORCE_PV_FEATURE_CPUID (api.rst §6.80) gates every KVM_HC_* and PV MSR by the "
              "CPUID 0x40000001 bits; with none set, each gated call returns -KVM_ENOSYS and PV MSRs #GP."),
    Check("hcall-disable-ineffective", E, "an x86 `disable` that cannot make KVM refuse the hypercall",
          hcall_disable_x86,
          why="x86 KVM has no per-hypercall enable bitmap: ____kvm_emulate_hypercall serves every "
              "implemented KVM_HC_*, and refuses a gated one (-KVM_ENOSYS) only when "
              "KVM_CAP_ENFORCE_PV_FEATURE_CPUID is on and guest_pv_has() finds its KVM_FEATURE_* bit "
              "clear (api.rst §6.80; arch/x86/kvm/x86.c). Hypercalls without a feature bit "
              "(KVM_HC_VAPIC_POLL_IRQ, KVM_HC_CLOCK_PAIRING) cannot be refused at all."),
    Check("kick-cpu-single-vcpu", W, "KVM_HC_KICK_CPU with one vCPU", kick_cpu_single_vcpu,
          why="KVM_HC_KICK_CPU wakes a vCPU halted in a PV spinlock slow path (hypercalls.rst, "
              "kvm_pv_kick_cpu_op); a one-vCPU guest has nobody to kick."),
    Check("real-mode-hypercall-segment", W, "a real-mode guest's hypercall may run with a non-zero CS base",
          real_mode_hypercall_segment,
          help="issue the hypercall with CS = 0 (the launcher starts real mode there), or from protected or "
               "long mode; the launcher's watchdog (`--timeout`) ends a run that hangs, with status 4",
          why="KVM serves the other vendor's hypercall instruction by rewriting it (vmcall <-> vmmcall) "
              "and re-entering the guest on it: arch/x86/kvm/x86.c emulator_fix_hypercall() patches the "
              "bytes at kvm_rip_read(), a linear address that equals CS.base + rip only when CS.base is 0. "
              "In real mode after a far jump, call, return or iret CS.base is the segment times 16, so "
              "the rewrite lands elsewhere, the guest meets the same instruction again and KVM_RUN never "
              "returns (seen on kvm_amd: docs/kernel-facts.md#the-emulated-x86_64-host). hvconf can tell "
              "only from a `.S` source in `mode real` that has both a hypercall and a far transfer."),
)
