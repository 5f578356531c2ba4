"""x86_64 plans: VM, TSS, irqchip/PIT, caps, memory, guest image or Linux kernel
(and initrd), and per vCPU CPUID (KVM PV leaves), caps, segment and general
registers, then KVM_RUN.

The order follows kvmtool and Firecracker: irqchip and PIT before vCPUs,
CPUID before any other vCPU state. x86 boots without a device tree. A
prot32/long64 guest gets `tables` in its KVM_SET_SREGS: the page where the
launcher writes its GDT, IDT and (long64) page tables, which the guest
image must not overlap. A `kernel` is booted by the 64-bit protocol of
Documentation/arch/x86/boot.rst without firmware, as kvmtool and Firecracker
do: the plan says where boot_params, the command line and (more than one
vCPU) the MP table go (`launcher.x86.linux`), the launcher builds them from the kernel's setup
header and starts vCPU 0 in long64 at the kernel's 64-bit entry with rsi =
boot_params (docs/x86-linux.md). Tested by tests/test_plan.py, the golden tests and
tests/kvm/test_modes.py (which holds TABLES_SIZE to the runtime's layout).
"""

from __future__ import annotations

from hvconf import abi
from hvconf.contract import ELF_MAGIC, initrd_at, linux_header
from hvconf.platforms import common
from hvconf.platforms.base import BuildContext
from hvconf.emit.plan import PlanBuilder

# KVM_SET_TSS_ADDR: three pages just below the 4 GiB BIOS area, where kvmtool and
# QEMU put it; Intel VMX needs it to emulate real mode without unrestricted guest.
TSS_ADDR = 0xFFFB_D000
# Where a guest image is loaded when its `guest` statement has no `at` (per start mode).
DEFAULT_LOAD = {"real": 0x7C00, "prot32": 0x10_0000, "long64": 0x10_0000}
RFLAGS_RESERVED = 0x2  # bit 1 of RFLAGS is always 1
# The launcher's GDT/IDT/TSS/page tables for prot32 and long64 (hvconf.kvm.x86.modes
# lays them out): one page, plus one PML4, one PDPT and 4 PDs (4 GiB in 2 MiB pages).
TABLES_AT = 0x1000
TABLES_SIZE = {"real": 0, "prot32": 0x1000, "long64": 0x7000}
VCPU_INDEX_REGISTER = "rdi"  # each vCPU starts with its index here (x86 has no firmware to tell it)


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


def _irqchip_and_pit(plan: PlanBuilder, ctx: BuildContext) -> None:
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


def _exit_hypercalls(plan: PlanBuilder, ctx: BuildContext) -> None:
    """`hcalls { exit KVM_HC_X }` -> one KVM_CAP_EXIT_HYPERCALL with the OR of their bits."""
    mask, names, span = 0, [], None
    for ref in ctx.hcalls.refs:
        if ref.action == "exit" and ref.name is not None and ref.number is not None:
            mask |= 1 << ref.number
            names.append(ref.name)
            span = span or ref.span
    if mask:
        common.enable_cap(plan, ctx, "vm", "KVM_CAP_EXIT_HYPERCALL", [mask, 0, 0, 0], span, hypercalls=names)


def _guest_image(plan: PlanBuilder, ctx: BuildContext) -> int | None:
    guest = ctx.vm.guest
    if guest is None:
        return None
    image = common.guest_bytes(ctx, arch="x86_64", code16=guest.mode == "real")
    if image is None:
        return None
    load = guest.at if guest.at is not None else DEFAULT_LOAD[guest.mode]
    _check_layout(ctx, load, len(image))
    common.add_image(plan, ctx, "guest", "guest.bin", image, load, guest.span, format="flat")
    return load


def _check_layout(ctx: BuildContext, load: int, size: int) -> None:
    """The image must fit in memory and stay clear of the launcher's mode tables."""
    vm, guest = ctx.vm, ctx.vm.guest
    assert guest is not None
    tables = TABLES_SIZE[guest.mode]
    if vm.memory is not None and load + size > vm.memory and (guest.at is None or guest.at < vm.memory):
        # (an `at` beyond memory is the checker's guest-out-of-reach)
        ctx.report.error("guest-beyond-memory", f"the {size}-byte guest image at {load:#x} ends at "
                         f"{load + size:#x}, beyond the VM's {vm.memory:#x} bytes of memory", guest.span,
                         help="raise `memory` or load the guest lower with `at`")
    if tables and vm.memory is not None and TABLES_AT + tables > vm.memory:
        ctx.report.error("mode-tables-beyond-memory", f"mode {guest.mode} needs [{TABLES_AT:#x}, "
                         f"{TABLES_AT + tables:#x}) of memory for the launcher's GDT, IDT and page tables",
                         guest.span, help="raise `memory`")
    if tables and load < TABLES_AT + tables and TABLES_AT < load + size:
        ctx.report.error("guest-overlaps-mode-tables", f"the guest image [{load:#x}, {load + size:#x}) overlaps "
                         f"[{TABLES_AT:#x}, {TABLES_AT + tables:#x}), where the launcher writes the {guest.mode} "
                         "GDT, IDT and page tables", guest.span,
                         help=f"load the guest at or above {TABLES_AT + tables:#x} (the default for "
                              f"{guest.mode} is {DEFAULT_LOAD[guest.mode]:#x})")


def _linux(plan: PlanBuilder, ctx: BuildContext) -> dict[str, object] | None:
    """A `kernel` (and `initrd`, `cmdline`): the images, their fit, and what the launcher writes."""
    vm, boot = ctx.vm, ctx.target.features.linux_boot
    if vm.kernel is None or boot is None:
        return None
    kernel = common.kernel_image(plan, ctx, load=boot.kernel_at, format="linux")
    initrd = common.initrd_image(plan, ctx)
    _check_fit(ctx, kernel, initrd)
    section: dict[str, object] = {"zero_page": boot.zero_page, "cmdline_at": boot.cmdline_at,
                                  "cmdline": vm.cmdline or "", "serial_irq": boot.serial_irq}
    if vm.vcpus > 1:  # one CPU needs no MP table (SeaBIOS writes none either: src/fw/mptable.c)
        section["mptable_at"] = boot.mptable_at
    return section


def _check_fit(ctx: BuildContext, kernel: bytes | None, initrd: bytes | None) -> None:
    """A bzImage the build has must be bootable and, with its initrd, fit in memory (an ELF vmlinux
    is placed by its segments, which the launcher checks; its initrd must at least stay above the
    load address)."""
    vm, boot = ctx.vm, ctx.target.features.linux_boot
    assert boot is not None and vm.memory is not None
    span = vm.span_of("kernel")
    header, end = None, boot.kernel_at  # an ELF vmlinux or a missing kernel: at least its load address
    if kernel is not None and not kernel.startswith(ELF_MAGIC):
        try:
            header = linux_header(kernel)
        except ValueError as err:
            ctx.report.error("kernel-not-bootable", f"kernel '{vm.kernel}' cannot be booted: {err}", span,
                             help="name an x86_64 bzImage (arch/x86/boot/bzImage, /boot/vmlinuz-*) or vmlinux")
            return
        end = boot.kernel_at + max(header.init_size, len(kernel) - header.setup_bytes)
        if end > vm.memory:
            ctx.report.error("linux-does-not-fit", f"the kernel needs [{boot.kernel_at:#x}, {end:#x}) (init_size "
                             f"of its setup header), beyond the VM's {vm.memory:#x} bytes of memory", span,
                             help=f"raise `memory` above {end:#x}")
            return
    if initrd is not None:
        at = initrd_at(vm.memory, len(initrd), header)
        if at < end:
            ctx.report.error("linux-does-not-fit", f"the {len(initrd)}-byte initrd does not fit between the kernel, "
                             f"which needs memory up to {end:#x}, and the end of memory ({vm.memory:#x})",
                             vm.span_of("initrd"), help=f"raise `memory` to {end + len(initrd):#x} or more")


def _cpuid_args(ctx: BuildContext, linux: bool) -> dict[str, object]:
    features, feature_names = _pv_features(ctx)
    args: dict[str, object] = {"base": "supported", "signature": "KVMKVMKVM", "features": features,
                               "feature_names": feature_names}
    boot = ctx.target.features.linux_boot
    if linux and boot is not None:
        # what KVM_GET_SUPPORTED_CPUID leaves out and Linux reads: the hypervisor bit (without it no
        # KVM detection, no kvm-clock) and a brand string (/proc/cpuinfo's model name)
        args.update(hypervisor=True, brand=boot.brand)
    return args


def plan(ctx: BuildContext) -> PlanBuilder:
    vm = ctx.vm
    p = common.new_plan(ctx)
    common.create_vm(p, ctx)
    p.add("vm", "KVM_SET_TSS_ADDR", {"addr": TSS_ADDR}, vm.span_of("arch"))
    p.require("KVM_CAP_SET_TSS_ADDR", vm.span_of("arch"))
    _irqchip_and_pit(p, ctx)
    _exit_hypercalls(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    common.memory(p, ctx)
    entry = _guest_image(p, ctx)
    linux = _linux(p, ctx)
    cpuid = _cpuid_args(ctx, linux is not None)
    mode = vm.guest.mode if vm.guest else "long64" if linux else "real"
    for index in range(vm.vcpus):
        fd = common.vcpu_fd(index)
        common.create_vcpu(p, ctx, index)
        p.add(fd, "KVM_SET_CPUID2", cpuid, vm.spans.get("pv_features") or vm.span_of("arch"))
        p.require("KVM_CAP_EXT_CPUID", vm.span_of("arch"))
        if vm.hcalls.enforce:
            common.enable_cap(p, ctx, fd, "KVM_CAP_ENFORCE_PV_FEATURE_CPUID", [1, 0, 0, 0], vm.hcalls.enforce_span)
        common.user_caps(p, ctx, vcpu=index)
        if linux is not None:
            _linux_registers(p, ctx, index, linux)
            continue
        sregs: dict[str, object] = {"mode": mode}
        if TABLES_SIZE[mode]:
            sregs["tables"] = TABLES_AT
        p.add(fd, "KVM_SET_SREGS", sregs, vm.span_of("guest"))
        p.add(fd, "KVM_SET_REGS", {"rip": entry or 0, "rflags": RFLAGS_RESERVED, VCPU_INDEX_REGISTER: index},
              vm.span_of("guest"))
    common.run_all(p, ctx)
    console = ctx.target.name2console.get(vm.console or ctx.target.default_console)
    if console is not None and console.io_port is not None:
        p.console = {"kind": console.name, "port": console.io_port}
    p.launcher = {"x86": {"exit_hypercalls": sorted(ctx.hcalls.exits)}}
    if linux is not None:
        p.launcher["x86"]["linux"] = linux
    return p


def _linux_registers(plan: PlanBuilder, ctx: BuildContext, index: int, linux: dict[str, object]) -> None:
    """vCPU 0 enters the kernel in long mode (boot.rst "64-bit Boot Protocol"); the others wait in the
    kernel's local APIC for the INIT/SIPI Linux sends them, as on a PC."""
    if index != 0:
        return
    span = ctx.vm.span_of("kernel")
    plan.add(common.vcpu_fd(0), "KVM_SET_SREGS", {"mode": "long64", "tables": TABLES_AT}, span)
    # rip: the kernel image's entry (the launcher's: load address + 0x200 for a bzImage, e_entry for vmlinux)
    plan.add(common.vcpu_fd(0), "KVM_SET_REGS", {"rflags": RFLAGS_RESERVED, "rsi": linux["zero_page"],
                                                 "rsp": linux["zero_page"]}, span)
