"""Rules for the `hcalls` block on every target: names and presets, hypercalls
of another architecture, sPAPR in-kernel toggles (KVM_CAP_PPC_ENABLE_HCALL),
redundant operations, hypertas sets the guest is promised, and hypercalls
routed to a launcher that cannot answer them.

The effective set comes from hvconf.model.hcallset, the same resolution the
device tree and the plan use. Tested by tests/test_checks.py.
"""

from __future__ import annotations

from hvconf import abi
from hvconf.check.common import did_you_mean, foreign_label, missing_caps, native_names, toggles_hcalls
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity, Span
from hvconf.model import hcallset
from hvconf.model.hcallset import HcallRef

# The hypertas set a guest needs once it has TCE tables (it programs them with H_PUT_TCE).
TCE_SET = "hcall-tce"


def _ref_label(ref: HcallRef) -> str:
    return ref.name or ref.text


def unknown_hcall(ctx: CheckContext) -> None:
    hs = hcallset.resolve(ctx.vm, ctx.target)
    for ref in hs.refs:
        if ref.name is not None or foreign_label(ref.text, ctx.target):
            continue
        if toggles_hcalls(ctx.target) and ref.number is not None:
            continue  # a raw sPAPR opcode: hcall-not-toggleable / hcall-no-handler judge it
        if ref.number is not None:
            ctx.emit(ref.span, f"no hypercall of target {ctx.target.name} has number {ref.text}")
        else:
            ctx.emit(ref.span, f"unknown hypercall '{ref.text}'",
                     help=did_you_mean(ref.text, native_names(ctx.target)))


def unknown_preset(ctx: CheckContext) -> None:
    name, span = ctx.vm.hcalls.preset, ctx.vm.hcalls.preset_span
    if name is None or name in ctx.target.presets:
        return
    if not ctx.target.presets:
        ctx.emit(span, f"target {ctx.target.name} has no hcall presets",
                 help="remove `preset`; this target has no per-hcall in-kernel switch")
        return
    ctx.emit(span, f"unknown hcall preset '{name}'",
             help=did_you_mean(name, ctx.target.presets) or f"presets are: {', '.join(ctx.target.presets)}")


def hcall_wrong_arch(ctx: CheckContext) -> None:
    for op in ctx.vm.hcalls.ops:
        if not isinstance(op.ref, str):
            continue
        label = foreign_label(op.ref, ctx.target)
        if label:
            ctx.emit(op.span, f"{op.ref} is {label}, not a hypercall of target {ctx.target.name}",
                     help="remove it; a guest of this target cannot make that call")


def hcall_deprecated(ctx: CheckContext) -> None:
    hs = hcallset.resolve(ctx.vm, ctx.target)
    for ref in hs.refs:
        row = ctx.target.name2hcall.get(ref.name or "")
        if row is not None and row.deprecated and not row.foreign_arch:
            detail = f": {row.doc}" if row.doc else ""
            ctx.emit(ref.span, f"{ref.name} is deprecated{detail}")


def _toggle_problem(ref: HcallRef, ctx: CheckContext) -> tuple[str, str | None] | None:
    """Why KVM_CAP_PPC_ENABLE_HCALL would refuse this hcall (powerpc.c kvm_vm_ioctl_enable_cap)."""
    max_op = abi.MAX_HCALL_OPCODE
    rtas = ctx.target.features.rtas
    if rtas is not None and ref.name == rtas.hcall:
        return (f"{ref.name} cannot be {ref.action}d with KVM_CAP_PPC_ENABLE_HCALL",
                "define RTAS tokens in an `rtas` block instead (KVM serves a token in-kernel once it "
                "is defined with KVM_PPC_RTAS_DEFINE_TOKEN)")
    if ref.number is not None and ref.number > max_op:
        what = f"{ref.name} (opcode {ref.number:#x})" if ref.name else f"opcode {ref.number:#x}"
        return (f"{what} is above MAX_HCALL_OPCODE ({max_op:#x}): KVM never gates it with "
                "KVM_CAP_PPC_ENABLE_HCALL", None)
    if ref.number is not None and ref.number % 4:
        return f"hcall opcode {ref.number:#x} is not a multiple of 4", "PAPR hcall opcodes are multiples of 4"
    if ref.name is None:
        return f"no PAPR hcall has opcode {ref.number:#x}", None
    if ref.action == "enable" and ref.name not in ctx.target.kernel_hcalls(ctx.vm.flavour or ""):
        return (f"{_ref_label(ref)} has no in-kernel implementation in `kvm {ctx.vm.flavour}`; it always exits "
                "to userspace", "remove it from `enable`" + (
                    "; the launcher serves it" if ref.name in ctx.target.launcher.handlers else ""))
    return None


def hcall_not_toggleable(ctx: CheckContext) -> None:
    if not toggles_hcalls(ctx.target) or ctx.vm.flavour not in ctx.target.abi_flavour:
        return
    for ref in hcallset.resolve(ctx.vm, ctx.target).refs:
        if ref.action not in ("enable", "disable") or (ref.name is None and ref.number is None):
            continue
        problem = _toggle_problem(ref, ctx)
        if problem:
            ctx.emit(ref.span, problem[0], help=problem[1])


def hcall_redundant(ctx: CheckContext) -> None:
    """Replays the block over the preset, as hcallset.resolve does, and flags no-ops."""
    vm, target = ctx.vm, ctx.target
    if not toggles_hcalls(target) or vm.flavour is None or vm.flavour not in target.abi_flavour:
        return
    hs = hcallset.resolve(vm, target)
    implemented = target.kernel_hcalls(vm.flavour)
    state = set(hs.default)
    if hs.preset is not None and hs.preset in target.presets:
        state = set(target.preset(hs.preset, vm.flavour))
    origin = f"by preset {vm.hcalls.preset}" if vm.hcalls.preset else "by default"
    last: dict[str, Span | None] = {}
    for ref in hs.refs:
        name = ref.name
        if name is None or ref.action == "exit":
            if name is not None:
                state.discard(name)
            continue
        if _toggle_problem(ref, ctx):
            continue  # hcall-not-toggleable says why
        notes = [Note("changed last here", last[name])] if last.get(name) else []
        if ref.action == "enable" and name in state:
            why = "it was enabled before" if notes else origin
            ctx.emit(ref.span, f"{name} is already handled in-kernel ({why})", notes=notes,
                     help="remove it from `enable`")
        elif ref.action == "disable" and name not in state:
            why = (f"`kvm {vm.flavour}` never handles it in-kernel" if name not in implemented
                   else f"it is not handled in-kernel {origin}" if not notes else "it was disabled before")
            ctx.emit(ref.span, f"{name} is already off: {why}", notes=notes, help="remove it from `disable`")
        if ref.action == "enable" and name in implemented:
            state.add(name)
        elif ref.action == "disable":
            state.discard(name)
        last[name] = ref.span


def _needed_sets(ctx: CheckContext) -> list[tuple[str, str, Span | None]]:
    """(set, who needs it, where) for the hypertas sets the guest will rely on."""
    vm, target = ctx.vm, ctx.target
    out = []
    console = target.name2console.get(vm.console or target.default_console)
    if console is not None:
        where = vm.spans.get("console") or vm.span
        out += [(s, f"console {console.name}", where) for s in console.needs_sets]
    if vm.tces and target.features.tce is not None and TCE_SET in target.name2set:
        out.append((TCE_SET, f"tce {vm.tces[0].name}", vm.tces[0].span))
    return out


def hcall_set_unhandled(ctx: CheckContext) -> None:
    vm, target = ctx.vm, ctx.target
    if not target.hcall_sets:
        return
    hs = hcallset.resolve(vm, target)
    advertised = hs.advertised_sets(target)
    for hset, who, where in _needed_sets(ctx):
        if hset in advertised:
            continue
        lost = [n for n in target.set2hcalls[hset] if not hs.handled(n, target)]
        cause = next((hs.changed_by[n] for n in lost if hs.changed_by.get(n)), None)
        notes = [Note(f"{who} needs it", where)] if cause else []
        ctx.emit(cause or where, f"{who} needs the hypertas set {hset}, but {', '.join(lost)} "
                 f"{'has' if len(lost) == 1 else 'have'} no handler (neither in-kernel nor in the launcher)",
                 notes=notes, help=f"keep {', '.join(lost)} handled in-kernel (do not disable it, or `enable` it)")


def _can_exit(name: str, ctx: CheckContext) -> bool:
    """Whether `exit NAME` can route the hypercall to the launcher on this target."""
    if toggles_hcalls(ctx.target):
        return True  # sPAPR: any hcall the kernel does not take exits as KVM_EXIT_PAPR_HCALL
    row = ctx.target.name2hcall.get(name)
    if row is None:
        return True  # nothing says otherwise; hcall-no-handler judges it
    if row.exit_capable:
        return True
    # Targets that mark exit-capable rows (x86: KVM_CAP_EXIT_HYPERCALL) forward only those;
    # elsewhere what the kernel serves itself never leaves it.
    per_hcall = any(h.exit_capable for h in ctx.target.hcalls)
    return not per_hcall and row.handler != "kernel"


def hcall_cannot_exit(ctx: CheckContext) -> None:
    for ref in hcallset.resolve(ctx.vm, ctx.target).refs:
        if ref.action != "exit" or ref.name is None or foreign_label(ref.name, ctx.target):
            continue
        if not _can_exit(ref.name, ctx):
            able = [h.name for h in ctx.target.hcalls if h.exit_capable]
            ctx.emit(ref.span, f"{ref.name} cannot exit to userspace on target {ctx.target.name}: "
                     "KVM handles it in the kernel",
                     help=f"only {', '.join(able)} can be forwarded" if able else "remove it from `exit`")


def hcall_no_handler(ctx: CheckContext) -> None:
    launcher = ctx.target.launcher
    for ref in hcallset.resolve(ctx.vm, ctx.target).refs:
        if ref.action != "exit":
            continue
        label = _ref_label(ref)
        if ref.name is None and ref.number is None or foreign_label(ref.text, ctx.target):
            continue  # unknown-hcall / hcall-wrong-arch
        if ref.name is not None and not _can_exit(ref.name, ctx):
            continue  # hcall-cannot-exit
        if ref.name in launcher.handlers and launcher.supported:
            continue
        if not launcher.supported:
            message = f"{label} is routed to the launcher, but target {ctx.target.name} has no launcher runtime"
        else:
            message = f"{label} is routed to the launcher, which has no handler for it: the guest gets {launcher.unknown}"
        ctx.emit(ref.span, message,
                 help=f"the launcher serves: {', '.join(launcher.handlers)}" if launcher.handlers else None)


def hcall_needs_cap(ctx: CheckContext) -> None:
    for ref in hcallset.resolve(ctx.vm, ctx.target).refs:
        row = ctx.target.name2hcall.get(ref.name or "")
        if row is None or ref.action == "disable":
            continue
        missing = missing_caps(ctx.vm, ctx.target, row.requires)
        if missing:
            ctx.emit(ref.span, f"{ref.name} needs {', '.join(missing)}, which the VM does not enable",
                     help="; ".join(f"add `cap {c}`" for c in missing))


def console_unserved(ctx: CheckContext) -> None:
    vm, target = ctx.vm, ctx.target
    console = target.name2console.get(vm.console or target.default_console)
    if console is None or not console.needs_hcalls:
        return
    hs = hcallset.resolve(vm, target)
    where = vm.spans.get("console") or vm.span
    # Hcalls of a set the console needs are hcall-set-unhandled's to report.
    lost = [n for n in console.needs_hcalls if not hs.handled(n, target)
            and getattr(target.name2hcall.get(n), "set", None) not in console.needs_sets]
    if lost:
        ctx.emit(where, f"console {console.name} needs {', '.join(lost)}, which nothing handles",
                 notes=[Note("changed here", hs.changed_by[n]) for n in lost if hs.changed_by.get(n)])
    needs = sorted({c for n in console.needs_hcalls if n in target.name2hcall
                    for c in missing_caps(vm, target, target.name2hcall[n].requires)})
    if needs:
        ctx.emit(where, f"console {console.name} talks through {', '.join(console.needs_hcalls)}, which reach "
                 f"the launcher only with {', '.join(needs)}", help="; ".join(f"add `cap {c}`" for c in needs))


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("unknown-hcall", E, "an `hcalls` block names no hypercall of the target", unknown_hcall,
          why="Hypercall names come from Linux: PAPR hcalls from arch/powerpc/include/asm/hvcall.h, "
              "ePAPR and KVM_HC_* from asm/epapr_hcalls.h and linux/kvm_para.h, s390 DIAG 0x500 "
              "subcodes from s390-diag.rst; a name with no number cannot be enabled or routed."),
    Check("unknown-preset", E, "`preset` names no preset of the target", unknown_preset,
          why="Presets are the in-kernel hcall sets of targets/<t>/target.toml [presets] (kernel_default "
              "= default_hcall_list of book3s_hv.c/book3s_pr_papr.c; qemu = what spapr_machine_init "
              "enables in addition)."),
    Check("hcall-wrong-arch", E, "a hypercall of another architecture is used", hcall_wrong_arch,
          why="Hypercall numbers are per architecture: KVM_HC_FEATURES and KVM_HC_PPC_MAP_MAGIC_PAGE are "
              "ePAPR tokens of powerpc (kvmppc_kvm_pv), KVM_HC_MIPS_* are MIPS-only, and x86 KVM answers "
              "every number it does not implement with -KVM_ENOSYS (x86.c ____kvm_emulate_hypercall; "
              "Documentation/virt/kvm/x86/hypercalls.rst)."),
    Check("hcall-deprecated", W, "a deprecated hypercall is used", hcall_deprecated,
          why="KVM_HC_MMU_OP was removed from KVM and returns -KVM_ENOSYS (hypercalls.rst); the legacy "
              "s390-virtio DIAG 0x500 subcodes 0-2 belong to a machine QEMU dropped (s390-diag.rst)."),
    Check("hcall-not-toggleable", E, "KVM_CAP_PPC_ENABLE_HCALL would refuse this hcall", hcall_not_toggleable,
          why="api.rst §7.1 KVM_CAP_PPC_ENABLE_HCALL: only hcalls with an in-kernel implementation can be "
              "toggled; powerpc.c kvm_vm_ioctl_enable_cap returns -EINVAL when the opcode is above "
              "MAX_HCALL_OPCODE (H_RTAS is 0xF000), not a multiple of 4, or not "
              "kvmppc_book3s_hcall_implemented() for the VM's HV/PR module."),
    Check("hcall-redundant", W, "`enable` of an hcall already handled in-kernel, or `disable` of one already off",
          hcall_redundant,
          why="KVM starts every sPAPR VM with its flavour's default_hcall_list enabled "
              "(book3s_hv.c/book3s_pr_papr.c kvmppc_*_init_default_hcalls); re-enabling or disabling what "
              "is already so changes nothing and usually means the preset is not what the author thinks."),
    Check("hcall-set-unhandled", E, "a hypertas set the guest needs cannot be advertised", hcall_set_unhandled,
          why="Linux trusts `ibm,hypertas-functions` in /rtas (pseries/firmware.c fw_hypertas_feature_init); "
              "QEMU only lists sets it serves (spapr_dt_rtas). hvconf advertises a set only when every hcall "
              "of it has a handler, so a console or TCE table whose set is dropped would be unusable."),
    Check("hcall-cannot-exit", E, "`exit` names a hypercall KVM never forwards to userspace", hcall_cannot_exit,
          why="x86: KVM_CAP_EXIT_HYPERCALL (api.rst §7.40) takes only the bits its CHECK_EXTENSION "
              "returns, today KVM_HC_MAP_GPA_RANGE (0x1000); other KVM_HC_* are served or refused in "
              "x86.c. e500: kvmppc_kvm_pv() serves EV_IDLE and the magic page itself."),
    Check("hcall-no-handler", W, "`exit` routes a hypercall to a launcher that does not serve it",
          hcall_no_handler,
          why="A hypercall that reaches userspace without a handler gets the platform's 'unimplemented' "
              "answer (sPAPR H_FUNCTION as in QEMU spapr_hypercall and kvmtool spapr_hcall; x86 "
              "-KVM_ENOSYS; ePAPR EV_UNIMPLEMENTED). targets/<t>/target.toml [launcher.handlers] lists "
              "what the launcher serves."),
    Check("hcall-needs-cap", E, "a hypercall reaches userspace only with a cap the VM does not enable",
          hcall_needs_cap,
          why="Upstream ePAPR hypercalls never leave the kernel (kvmppc_kvm_pv answers EV_UNIMPLEMENTED); "
              "the proposed KVM_CAP_EXIT_EPAPR_HCALL forwards them "
              "(docs/kernel-facts.md#the-unmerged-epapr-proposal). s390 virtio-ccw notify "
              "needs KVM_CAP_S390_CSS_SUPPORT (s390-diag.rst)."),
    Check("console-unserved", E, "the console's hypercalls have no handler or need a cap", console_unserved,
          why="hvterm (hvc_vio) writes with H_PUT_TERM_CHAR and reads with H_GET_TERM_CHAR; the ePAPR byte "
              "channel (ehv_bytechan.c) uses EV_BYTE_CHANNEL_*. Without a handler the guest's console "
              "output is lost."),
)
