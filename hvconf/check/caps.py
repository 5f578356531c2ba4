"""Rules for `cap` statements: the name, the target and flavour offering it,
the fd kind it is enabled on, its typed arguments, duplicates, and the caps a
flavour cannot run without.

Each cap statement gets at most one of the "is this cap usable" findings
(unknown -> not offered -> wrong flavour -> check-only -> managed -> wrong fd),
so a typo never drowns in follow-ups. Tested by tests/test_checks.py.
"""

from __future__ import annotations

from hvconf import abi
from hvconf.check.common import (did_you_mean, enabled_fds, fd_kind, fds, offered, usable_caps, vcpu_count,
                                 vcpu_list)
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity
from hvconf.model import capargs, ir


def _proposed(name: str) -> bool:
    return any(item.name == name and item.kind == "cap" for item in abi.proposed().items)


def _known_to_linux(name: str) -> bool:
    return name in abi.caps() or _proposed(name)


def unknown_cap(ctx: CheckContext) -> None:
    for use in ctx.vm.caps:
        if use.name in ctx.target.name2cap or _known_to_linux(use.name):
            continue
        mine = [c.name for c in ctx.target.caps_for(ctx.vm.flavour)] if ctx.vm.flavour in ctx.target.flavours else []
        ctx.emit(use.span, f"unknown capability '{use.name}'",
                 help=did_you_mean(use.name, mine, ctx.target.name2cap, abi.names_close_to("cap", use.name)))


def cap_not_offered(ctx: CheckContext) -> None:
    for use in ctx.vm.caps:
        if use.name in ctx.target.name2cap or not _known_to_linux(use.name):
            continue
        if _proposed(use.name):
            where = "it is part of the unmerged ePAPR proposal, modelled for ppc-e500 only"
        else:
            arches = [a for a in abi.cap(use.name).arches]
            where = f"Linux defines it for {', '.join(arches)}" if arches else "no hvconf arch enables it"
        ctx.emit(use.span, f"{use.name} is not offered by target {ctx.target.name} ({where})",
                 help=f"remove the statement, or use an arch whose target offers {use.name}")


def cap_wrong_flavour(ctx: CheckContext) -> None:
    rows = offered(ctx.target, ctx.vm.flavour)
    for use in ctx.vm.caps:
        row = ctx.target.name2cap.get(use.name)
        if row is None or use.name in rows:
            continue
        flavours = ", ".join(row.flavours or ())
        ctx.emit(use.span, f"{use.name} is not available with `kvm {ctx.vm.flavour}` (only with {flavours})",
                 notes=[Note(f"the flavour is {ctx.vm.flavour} because of this", ctx.vm.spans.get("flavour"))]
                 if "flavour" in ctx.vm.spans else (),
                 help=f"use `kvm {(row.flavours or ('?',))[0]}`, or remove the cap")


def cap_check_only(ctx: CheckContext) -> None:
    rows = offered(ctx.target, ctx.vm.flavour)
    for use in ctx.vm.caps:
        row = rows.get(use.name)
        if row is not None and row.scope == "check":
            ctx.emit(use.span, f"{use.name} can only be queried with KVM_CHECK_EXTENSION, not enabled")


# How to say each managed cap in the language.
_MANAGED_HELP = {
    "hcalls": "write an `hcalls {{ ... }}` block (`enable`/`disable`/`exit`); hvconf turns it into {cap}",
    "enforce": "write `hcalls {{ enforce }}`; hvconf then enables {cap} on every vCPU",
    "irqchip": "write `irqchip split`; hvconf then enables {cap} before the vCPUs",
}


def cap_managed(ctx: CheckContext) -> None:
    rows = offered(ctx.target, ctx.vm.flavour)
    for use in ctx.vm.caps:
        row = rows.get(use.name)
        if row is not None and row.managed:
            ctx.emit(use.span, f"{use.name} is written by hvconf from the language; do not enable it by hand",
                     help=_MANAGED_HELP[row.managed].format(cap=use.name))


def cap_wrong_fd(ctx: CheckContext) -> None:
    rows = offered(ctx.target, ctx.vm.flavour)
    for use in ctx.vm.caps:
        row = rows.get(use.name)
        if row is None or row.scope == "check" or row.managed or fd_kind(use, row) == row.scope:
            continue
        if row.scope == "vcpu" and row.vm_wide:
            ctx.emit(use.span, f"{use.name} is VM-wide, but the kernel takes it on a vCPU fd only, not on the vm fd",
                     help=f"write `cap {use.name}` without `on`: hvconf enables it once, on vCPU 0")
        elif row.scope == "vcpu":
            ctx.emit(use.span, f"{use.name} is enabled on vCPU fds, not on the vm fd",
                     help=f"write `cap {use.name} on vcpus` (or `on vcpu N`)")
        else:
            ctx.emit(use.span, f"{use.name} is enabled on the vm fd, not on vCPU fds",
                     help=f"write `cap {use.name}` or `cap {use.name} on vm`")


def cap_vm_wide(ctx: CheckContext) -> None:
    for use, row in usable_caps(ctx.vm, ctx.target):
        if not row.vm_wide or use.scope is None:
            continue
        what = (f"enabling it on vCPU {use.vcpu} turns it on for every vCPU of the VM" if use.scope == "vcpu"
                else "`on vcpus` issues the one VM-wide switch once per vCPU")
        ctx.emit(use.span, f"{use.name} is VM-wide: {what}",
                 help=f"write `cap {use.name}` without `on`; hvconf enables it once, on vCPU 0 (the kernel takes "
                      "it on a vCPU fd only)")


def cap_no_such_vcpu(ctx: CheckContext) -> None:
    for use, _row in usable_caps(ctx.vm, ctx.target):
        if use.scope == "vcpu" and use.vcpu is not None and use.vcpu >= ctx.vm.vcpus:
            ctx.emit(use.span, f"vCPU {use.vcpu} does not exist: the VM has {ctx.vm.vcpus} vCPU"
                     f"{'s' if ctx.vm.vcpus != 1 else ''} (0..{ctx.vm.vcpus - 1})",
                     notes=[Note("vCPUs are counted here", ctx.vm.spans.get("vcpus"))] if "vcpus" in ctx.vm.spans else ())


def cap_bad_args(ctx: CheckContext) -> None:
    rows = offered(ctx.target, ctx.vm.flavour)
    for use in ctx.vm.caps:
        row = rows.get(use.name)
        if row is None or row.scope == "check" or row.managed:
            continue
        for span, message, help_ in capargs.encode(row, use).problems:
            ctx.emit(span or use.span, f"{use.name}: {message}" if not message.startswith(use.name) else message,
                     help=help_)


def cap_duplicate(ctx: CheckContext) -> None:
    first: dict[tuple[str, str], ir.CapUse] = {}
    for use, row in usable_caps(ctx.vm, ctx.target):
        again = sorted(fd for fd in fds(use, row, vcpu_count(ctx.vm, ctx.target)) if (use.name, fd) in first)
        if again:
            earlier = first[(use.name, again[0])]
            where = "the vm fd" if again == ["vm"] else ", ".join(f"vCPU {fd.split(':')[1]}" for fd in again)
            ctx.emit(use.span, f"{use.name} is enabled twice on {where}",
                     notes=[Note("first enabled here", earlier.span)],
                     help="remove one of the statements (the plan would issue KVM_ENABLE_CAP twice)")
        for fd in fds(use, row, vcpu_count(ctx.vm, ctx.target)):
            first.setdefault((use.name, fd), use)


def cap_required(ctx: CheckContext) -> None:
    vm = ctx.vm
    for row in offered(ctx.target, vm.flavour).values():
        if vm.flavour not in row.required_for:
            continue
        have = enabled_fds(vm, ctx.target, row.name)
        want = {"vm"} if row.scope == "vm" else {f"vcpu:{i}" for i in range(vcpu_count(vm, ctx.target))}
        missing = sorted(want - have, key=lambda fd: int(fd.split(":")[1]) if ":" in fd else -1)
        if not missing:
            continue
        uses = [u for u in vm.caps if u.name == row.name]
        if row.scope == "vm":
            message, fix = f"`kvm {vm.flavour}` needs {row.name} on the vm fd", f"add `cap {row.name}`"
        elif have:
            listed = vcpu_list([int(fd.split(":")[1]) for fd in missing])
            message = f"`kvm {vm.flavour}` needs {row.name} on every vCPU; vCPU {listed} lack{'s' if len(missing) == 1 else ''} it"
            fix = f"write `cap {row.name} on vcpus`"
        else:
            message, fix = f"`kvm {vm.flavour}` needs {row.name} on every vCPU", f"add `cap {row.name} on vcpus`"
        args = [a.name for a in row.args if a.required]
        if args:
            fix += " { " + "  ".join(f"{a} ..." for a in args) + " }"
        ctx.emit(vm.spans.get("flavour") or vm.span_of("arch"), message,
                 notes=[Note("enabled only here", u.span) for u in uses], help=fix)


def cap_needs_device(ctx: CheckContext) -> None:
    for use, row in usable_caps(ctx.vm, ctx.target):
        devices = [a.name for a in row.args if a.kind == "fd"]
        if devices:
            ctx.emit(use.span, f"{use.name} connects the vCPU to an in-kernel device ({', '.join(devices)}), "
                     "which hvconf cannot create yet")


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("unknown-cap", E, "a `cap` names no Linux KVM_CAP_*", unknown_cap,
          help="check the spelling against Linux include/uapi/linux/kvm.h",
          why="KVM_ENABLE_CAP takes a capability number; names come from linux/kvm.h (api.rst §4.37). "
              "A name hvconf.abi does not know has no number to put in kvm_enable_cap.cap."),
    Check("cap-not-offered", E, "the cap exists in Linux but not on this target", cap_not_offered,
          why="Capabilities are per architecture: KVM_ENABLE_CAP of a cap the arch does not implement "
              "returns -EINVAL (api.rst §4.37; arch kvm_vm_ioctl_enable_cap/kvm_vcpu_ioctl_enable_cap "
              "fall through to -EINVAL). targets/<t>/caps.toml lists what each target offers."),
    Check("cap-wrong-flavour", E, "the cap is offered by the target but not for this KVM flavour",
          cap_wrong_flavour,
          why="Book3S HV and PR are different KVM modules: e.g. KVM_CAP_PPC_OSI reads 0 on HV "
              "(powerpc.c kvm_vm_ioctl_check_extension: `r = !hv_enabled`) and its enable fails; "
              "KVM_CAP_PPC_SMT and KVM_CAP_PPC_FWNMI are HV only (api.rst §6.1, §7.11, §7.12)."),
    Check("cap-check-only", E, "a check-only cap is enabled", cap_check_only,
          help="remove the statement; the plan checks the host for it where it is needed",
          why="Some caps only announce an ioctl or a limit through KVM_CHECK_EXTENSION; KVM_ENABLE_CAP "
              "has no case for them and returns -EINVAL (api.rst §4.37; probed on this host: "
              "KVM_ENABLE_CAP(KVM_CAP_IRQCHIP) -> EINVAL)."),
    Check("cap-managed", E, "a cap that a language construct writes is enabled by hand", cap_managed,
          why="KVM_CAP_PPC_ENABLE_HCALL, KVM_CAP_EXIT_HYPERCALL, KVM_CAP_ENFORCE_PV_FEATURE_CPUID and "
              "KVM_CAP_SPLIT_IRQCHIP carry state hvconf derives from the `hcalls` block and `irqchip` "
              "(api.rst §7.1, §7.40, §6.80, §7.5). Writing them by hand would let the plan, the device "
              "tree and the launcher disagree about which hcalls reach userspace."),
    Check("cap-wrong-fd", E, "a vm cap is enabled on vCPUs or a vCPU cap on the vm fd", cap_wrong_fd,
          why="KVM_ENABLE_CAP on a vm fd and on a vcpu fd are different handlers "
              "(kvm_vm_ioctl_enable_cap vs kvm_vcpu_ioctl_enable_cap); a cap issued on the wrong fd "
              "kind returns -EINVAL (api.rst §4.37 'vcpu/vm ioctl'; probed: HALT_POLL on a vcpu fd "
              "-> EINVAL)."),
    Check("cap-vm-wide", W, "a VM-wide cap is written for some vCPUs", cap_vm_wide,
          why="Some caps are taken on a vCPU fd but set state of the whole VM: KVM_CAP_PPC_FWNMI is "
              "handled in kvm_vcpu_ioctl_enable_cap (arch/powerpc/kvm/powerpc.c), which sets "
              "vcpu->kvm->arch.fwnmi_enabled, so machine checks of every vCPU exit as KVM_EXIT_NMI once "
              "any vCPU enabled it. QEMU enables it once, on the vCPU that calls ibm,nmi-register "
              "(target/ppc/kvm.c kvmppc_set_fwnmi). `on vcpu N` promises a per-vCPU effect KVM does not "
              "have, and `on vcpus` issues the same VM-wide switch once per vCPU."),
    Check("cap-no-such-vcpu", E, "`on vcpu N` names a vCPU the VM does not have", cap_no_such_vcpu,
          help="vCPUs are numbered from 0; raise `vcpus` or pick an existing vCPU",
          why="The plan creates vCPUs 0..vcpus-1 (KVM_CREATE_VCPU); there is no fd to enable the cap on."),
    Check("cap-bad-args", E, "a cap argument is missing, unknown, of the wrong kind or out of range",
          cap_bad_args,
          why="kvm_enable_cap.args[] are checked by each cap's handler (e.g. KVM_CAP_PPC_SMT: "
              "power-of-two vsmt_mode 1..8, api.rst §7.11; KVM_CAP_SW_TLB: sets/ways powers of two, "
              "e500_mmu.c kvm_vcpu_ioctl_config_tlb). targets/<t>/caps.toml types every argument."),
    Check("cap-needs-device", E, "the cap takes the fd of a device the plan cannot create", cap_needs_device,
          help="remove the statement; on sPAPR, `irqchip xics` creates the in-kernel XICS and connects every vCPU "
               "(e500's MPIC is not modelled yet)",
          why="KVM_CAP_IRQ_XICS, KVM_CAP_IRQ_MPIC and KVM_CAP_PPC_IRQ_XIVE take in args[0] the fd that "
              "KVM_CREATE_DEVICE returned for the interrupt controller (api.rst §6.6, §6.7, §6.75); "
              "without that device there is no fd to pass and the enable fails with -EBADF/-EPERM."),
    Check("cap-duplicate", W, "the same cap is enabled twice on the same fd", cap_duplicate,
          why="Most caps are one-shot: a second KVM_ENABLE_CAP either repeats the first or fails "
              "(-EEXIST for KVM_CAP_SPLIT_IRQCHIP, -EBUSY for caps that must precede vCPUs)."),
    Check("cap-required", E, "the KVM flavour needs a cap the VM does not enable", cap_required,
          why="Book3S HV only runs PAPR guests: kvmppc_sanity_check() marks a vCPU without "
              "KVM_CAP_PPC_PAPR unusable and KVM_RUN fails with -EINVAL (api.rst §6.2; "
              "arch/powerpc/kvm/powerpc.c). e500 guests need KVM_CAP_SW_TLB for QEMU's TLB layout "
              "(api.rst §6.3). caps.toml `required_for` lists them."),
)
