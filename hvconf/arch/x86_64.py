"""x86_64 plans: VM, TSS, irqchip/PIT, caps, memory, guest image, and per vCPU
CPUID (KVM PV leaves), caps, segment and general registers, then KVM_RUN.

The order follows kvmtool and Firecracker: irqchip and PIT before vCPUs,
CPUID before any other vCPU state. x86 boots without a device tree.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

from hvconf import abi
from hvconf.arch import common
from hvconf.arch.base import BuildContext
from hvconf.emit.guest import GuestBuildError, assemble
from hvconf.emit.plan import Plan

# KVM_SET_TSS_ADDR: three pages just below the 4 GiB BIOS area, where kvmtool and
# QEMU put it; Intel VMX needs it to emulate real mode without unrestricted guest.
TSS_ADDR = 0xFFFB_D000
# Where a guest image is loaded when its `guest` statement has no `at` (per start mode).
DEFAULT_LOAD = {"real": 0x7C00, "prot32": 0x10_0000, "long64": 0x10_0000}
RFLAGS_RESERVED = 0x2  # bit 1 of RFLAGS is always 1


def device_tree(ctx: BuildContext) -> None:
    return None


def _pv_features(ctx: BuildContext) -> tuple[int, list[str]]:
    mask, names = 0, []
    for feature in ctx.vm.pv_features:
        row = ctx.target.pv_feature(feature.name)
        if row is not None:
            mask |= abi.kvm_feature(row.name).mask
            names.append(row.name)
    return mask, names


def _irqchip_and_pit(plan: Plan, ctx: BuildContext) -> None:
    vm, features = ctx.vm, ctx.target.features
    if features.irqchip is None:
        return
    irqchip = vm.irqchip or features.irqchip.default
    span = vm.span_of("irqchip")
    if irqchip == "kernel":
        plan.add("vm", "KVM_CREATE_IRQCHIP", {}, span)
    elif irqchip == "split":
        common.enable_cap(plan, ctx, "vm", "KVM_CAP_SPLIT_IRQCHIP", [features.irqchip.split_routes or 0, 0, 0, 0], span)
    for cap in features.irqchip.requires.get(irqchip, ()):
        plan.require(cap, span)
    pit = vm.pit or (features.pit.default if features.pit else "off")
    if features.pit is not None and pit != "off":
        plan.add("vm", "KVM_CREATE_PIT2", {"flags": 1 if pit == "speaker_dummy" else 0}, vm.span_of("pit"))
        for cap in features.pit.requires:
            plan.require(cap, vm.span_of("pit"))


def _exit_hypercalls(plan: Plan, ctx: BuildContext) -> None:
    """`hcalls { exit KVM_HC_X }` -> one KVM_CAP_EXIT_HYPERCALL with the OR of their bits."""
    mask, names, span = 0, [], None
    for ref in ctx.hcalls.refs:
        if ref.action == "exit" and ref.name is not None and ref.number is not None:
            mask |= 1 << ref.number
            names.append(ref.name)
            span = span or ref.span
    if mask:
        common.enable_cap(plan, ctx, "vm", "KVM_CAP_EXIT_HYPERCALL", [mask, 0, 0, 0], span, hypercalls=names)


def _guest_image(plan: Plan, ctx: BuildContext) -> int | None:
    guest = ctx.vm.guest
    if guest is None:
        return None
    path = common.source_file(ctx, guest.path, guest.span)
    try:
        source = common.read_input(ctx, path)
        if path.suffix == ".S":
            image = assemble(path, arch="x86_64", code16=guest.mode == "real")
        else:
            image = source
    except (OSError, GuestBuildError) as err:
        message = err.strerror if isinstance(err, OSError) else str(err)
        ctx.report.error("guest-build-failed", f"cannot build guest image '{guest.path}': {message}", guest.span)
        return None
    load = guest.at if guest.at is not None else DEFAULT_LOAD[guest.mode]
    common.add_image(plan, ctx, "guest", "guest.bin", image, load, guest.span, format="flat")
    return load


def plan(ctx: BuildContext) -> Plan:
    vm = ctx.vm
    p = common.new_plan(ctx, host_arch="x86_64")
    common.create_vm(p, ctx)
    p.add("vm", "KVM_SET_TSS_ADDR", {"addr": TSS_ADDR}, vm.span_of("arch"))
    p.require("KVM_CAP_SET_TSS_ADDR", vm.span_of("arch"))
    _irqchip_and_pit(p, ctx)
    _exit_hypercalls(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    common.memory(p, ctx)
    entry = _guest_image(p, ctx)
    features, feature_names = _pv_features(ctx)
    mode = vm.guest.mode if vm.guest else "real"
    for index in range(vm.vcpus):
        fd = common.vcpu_fd(index)
        common.create_vcpu(p, ctx, index)
        p.add(fd, "KVM_SET_CPUID2", {"base": "supported", "signature": "KVMKVMKVM", "features": features,
                                     "feature_names": feature_names}, vm.spans.get("pv_features") or vm.span_of("arch"))
        p.require("KVM_CAP_EXT_CPUID", vm.span_of("arch"))
        if vm.hcalls.enforce:
            common.enable_cap(p, ctx, fd, "KVM_CAP_ENFORCE_PV_FEATURE_CPUID", [1, 0, 0, 0], vm.hcalls.enforce_span)
        common.user_caps(p, ctx, vcpu=index)
        p.add(fd, "KVM_SET_SREGS", {"mode": mode}, vm.span_of("guest"))
        p.add(fd, "KVM_SET_REGS", {"rip": entry or 0, "rflags": RFLAGS_RESERVED}, vm.span_of("guest"))
    common.run_all(p, ctx)
    console = ctx.target.name2console.get(vm.console or ctx.target.default_console)
    if console is not None and console.io_port is not None:
        p.console = {"kind": console.name, "port": console.io_port}
    p.launcher = {"x86": {"exit_hypercalls": sorted(ctx.hcalls.exits)}}
    return p
