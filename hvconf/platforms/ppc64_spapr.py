"""sPAPR (pseries) plans for Book3S HV and PR.

Order as QEMU's spapr machine issues it (hw/ppc/spapr.c spapr_machine_init): VM of the
flavour's type, VM-wide caps (the virtual SMT mode `threads` asks for among
them), in-kernel hcall toggles, HTAB, TCE tables,
in-kernel RTAS tokens, RAM, then per vCPU: create, caps (PAPR), registers;
then KVM_RUN. The device tree lives in spapr_tree.py.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

from hvconf import abi
from hvconf.abi.tables import raw
from hvconf.platforms import common, spapr_boot
from hvconf.platforms.base import BuildContext
from hvconf.platforms.spapr_boot import fdt_address
from hvconf.platforms.spapr_tree import device_tree
from hvconf.emit.plan import PlanBuilder

__all__ = ["plan", "device_tree", "htab_order", "fdt_address"]

MSR_SF_ME = 0x8000_0000_0000_1000  # 64-bit mode, machine checks on: kvmtool's boot MSR
SECONDARY_ENTRY = 0x60  # kvmtool: secondaries spin at 0x60 with r3 = their id


def htab_order(ctx: BuildContext) -> int | None:
    """The HPT order the plan allocates, or None (PR keeps the HPT in userspace; radix needs none)."""
    vm, htab = ctx.vm, ctx.target.features.htab
    if htab is None or vm.flavour not in htab.flavours or vm.mmu == "radix":
        return None
    if isinstance(vm.htab, int):
        return vm.htab
    assert vm.memory is not None  # lowering reports a missing `memory`; no plan is built after an error
    order = max(vm.memory - 1, 1).bit_length() - htab.auto_shift  # log2(pow2ceil(RAM)) - 7
    return min(max(order, htab.order_min), htab.order_max)


SMT_CAP = "KVM_CAP_PPC_SMT"


def _smt(plan: PlanBuilder, ctx: BuildContext) -> None:
    """`threads N` on a flavour with KVM_CAP_PPC_SMT: the virtual SMT mode N, before any vCPU,
    as QEMU's spapr_set_vsmt_mode sets it. KVM-HV otherwise emulates SMT1 (book3s_hv.c
    kvmppc_core_init_vm_hv: emul_smt_mode = 1) and drops a guest's doorbells to the sibling
    threads the device tree gives it (kvmppc_emulate_doorbell_instr). A `cap KVM_CAP_PPC_SMT`
    written by hand sets the mode itself (vsmt-below-threads holds it to >= threads)."""
    vm, row = ctx.vm, ctx.target.name2cap.get(SMT_CAP)
    if vm.threads <= 1 or row is None or vm.flavour not in (row.flavours or ()):
        return
    if any(use.name == SMT_CAP for use in vm.caps):
        return
    common.enable_cap(plan, ctx, "vm", SMT_CAP, [vm.threads, 0, 0, 0], vm.spans.get("threads") or vm.span_of("vcpus"))


def _hcall_toggles(plan: PlanBuilder, ctx: BuildContext) -> None:
    """One KVM_CAP_PPC_ENABLE_HCALL per toggle; an hcall enabled in the kernel brings the host caps its row
    requires (H_RANDOM: KVM_CAP_PPC_HWRNG, else the kernel answers H_HARDWARE), which the launcher and
    `check --host-facts` hold against the host."""
    for name, on, span in ctx.hcalls.toggles():
        common.enable_cap(plan, ctx, "vm", "KVM_CAP_PPC_ENABLE_HCALL", [abi.papr_hcall(name).opcode, int(on), 0, 0],
                          span, hcall=name, enable=on)
        row = ctx.target.name2hcall.get(name)
        for cap in row.requires if on and row is not None else ():
            plan.require(cap, span)


def _tces(plan: PlanBuilder, ctx: BuildContext) -> None:
    limits = ctx.target.features.tce
    for tce in ctx.vm.tces:
        shift = tce.page.bit_length() - 1
        legacy = (limits is not None and shift == limits.legacy_page_shift and tce.offset == 0
                  and tce.window < limits.legacy_window_max)
        if legacy:
            plan.add("vm", "KVM_CREATE_SPAPR_TCE", {"liobn": tce.liobn, "window_size": tce.window, "table": tce.name},
                     tce.span)
            plan.require("KVM_CAP_SPAPR_TCE", tce.span)
        else:
            plan.add("vm", "KVM_CREATE_SPAPR_TCE_64",
                     {"liobn": tce.liobn, "page_shift": shift, "flags": 0, "offset": tce.offset >> shift,
                      "size": tce.window >> shift, "table": tce.name}, tce.span)
            plan.require("KVM_CAP_SPAPR_TCE_64", tce.span)


def _rtas(plan: PlanBuilder, ctx: BuildContext) -> dict[str, int]:
    """Define in-kernel RTAS tokens; return the ones the launcher serves."""
    rtas = ctx.target.features.rtas
    launcher: dict[str, int] = {}
    for token in ctx.vm.rtas:
        if rtas is not None and token.name in rtas.kernel_tokens:
            plan.add("vm", "KVM_PPC_RTAS_DEFINE_TOKEN", {"name": token.name, "token": token.token}, token.span)
            plan.require("KVM_CAP_PPC_RTAS", token.span)
        else:
            launcher[token.name] = token.token
    return launcher


XICS_DEVICE = "xics"  # the label of the device fd in the plan
KVM_DEV_TYPE_XICS = 3  # include/uapi/linux/kvm.h enum kvm_device_type
XICS_CAP = "KVM_CAP_IRQ_XICS"


def _xics_device(plan: PlanBuilder, ctx: BuildContext) -> None:
    """`irqchip xics`: the kernel's XICS, created once before any vCPU (QEMU xics_kvm_connect)."""
    if ctx.vm.irqchip != "xics":
        return
    span = ctx.vm.span_of("irqchip")
    plan.add("vm", "KVM_CREATE_DEVICE", {"type": KVM_DEV_TYPE_XICS, "device": XICS_DEVICE}, span)
    plan.require(XICS_CAP, span)


def _xics_connect(plan: PlanBuilder, ctx: BuildContext, index: int) -> None:
    """Connect vCPU `index` as interrupt server `index`: after KVM_CAP_PPC_PAPR, since KVM-HV refuses
    a non-PAPR vCPU with EINVAL (arch/powerpc/kvm/powerpc.c kvm_vcpu_ioctl_enable_cap's sanity check)."""
    if ctx.vm.irqchip != "xics":
        return
    common.enable_cap(plan, ctx, common.vcpu_fd(index), XICS_CAP, [0, index], ctx.vm.span_of("irqchip"),
                      device=XICS_DEVICE)


def _mmu(plan: PlanBuilder, ctx: BuildContext) -> None:
    """`mmu radix`: KVM_PPC_CONFIGURE_V3_MMU (radix, global TLB shootdown), as QEMU sets a radix guest up
    before its first H_REGISTER_PROC_TBL; the process table itself is the guest's business."""
    vm = ctx.vm
    if vm.mmu != "radix" or ctx.target.features.htab is None or vm.flavour not in ctx.target.features.htab.flavours:
        return
    mmuv3 = raw("papr")["mmuv3"]
    span = vm.span_of("mmu")
    plan.add("vm", "KVM_PPC_CONFIGURE_V3_MMU",
             {"flags": mmuv3["KVM_PPC_MMUV3_RADIX"] | mmuv3["KVM_PPC_MMUV3_GTSE"], "process_table": mmuv3["PATB_GR"],
              "flags_names": ["KVM_PPC_MMUV3_RADIX", "KVM_PPC_MMUV3_GTSE"]}, span)
    plan.require("KVM_CAP_PPC_MMU_RADIX", span)


def _guest(plan: PlanBuilder, ctx: BuildContext, fdt: int, fdt_size: int) -> int:
    """A `guest` image instead of a kernel: built, placed, and its start address returned (0 without one)."""
    vm, guest = ctx.vm, ctx.vm.guest
    if guest is None:
        return 0
    load = guest.at or 0
    image = common.guest_bytes(ctx, arch=vm.arch or "ppc64le")
    if image is None:
        return load
    assert vm.memory is not None
    if load + len(image) > vm.memory and load < vm.memory:  # (an `at` beyond memory is guest-out-of-reach)
        ctx.report.error("guest-beyond-memory", f"the {len(image)}-byte guest image at {load:#x} ends at "
                         f"{load + len(image):#x}, beyond the VM's {vm.memory:#x} bytes of memory", guest.span,
                         help="raise `memory` or load the guest lower with `at`")
    elif fdt_size and load < fdt + fdt_size and fdt < load + len(image):
        ctx.report.error("guest-overlaps-fdt", f"the guest image [{load:#x}, {load + len(image):#x}) overlaps "
                         f"the device tree at {fdt:#x}", guest.span, help="load the guest lower with `at`")
    common.add_image(plan, ctx, "guest", "guest.bin", image, load, guest.span, format="flat")
    return load


def _boot_files(plan: PlanBuilder, ctx: BuildContext) -> int:
    """The kernel, initrd and RTAS blob where spapr_boot placed them; the kernel's entry (0 without one)."""
    vm, boot = ctx.vm, spapr_boot.layout(ctx)
    if boot.kernel is not None:
        common.add_kernel(plan, ctx, boot.kernel)
    if boot.initrd is not None:
        assert vm.initrd is not None
        span = vm.span_of("initrd")
        if boot.initrd.data is None:
            common.missing_image(plan, ctx, "initrd", vm.initrd, boot.initrd.address, span, "flat")
        else:
            common.add_image(plan, ctx, "initrd", "initrd.img", boot.initrd.data, boot.initrd.address, span,
                             format="flat")
    features = ctx.target.features.boot
    if boot.rtas is not None and features is not None:
        blob = b"".join(word.to_bytes(4, "big") for word in features.rtas_blob)
        common.add_image(plan, ctx, "rtas", "rtas.bin", blob, boot.rtas, vm.span_of("kernel"), format="flat")
    return boot.kernel.entry if boot.kernel is not None else 0


def _initrd_end(ctx: BuildContext) -> dict[str, int]:
    """Where the DTB holds /chosen/linux,initrd-end: the launcher writes the loaded initrd's end there."""
    if ctx.dtb is None or ctx.vm.initrd is None:
        return {}
    from hvconf.emit.dtb import value_offsets

    found = [at for path, at in value_offsets(ctx.dtb, "linux,initrd-end") if path == "/chosen"]
    return {"initrd_end": found[0]} if found else {}


def plan(ctx: BuildContext) -> PlanBuilder:
    vm = ctx.vm
    p = common.new_plan(ctx)
    common.create_vm(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    _smt(p, ctx)
    _hcall_toggles(p, ctx)
    order = htab_order(ctx)
    if order is not None:
        p.add("vm", "KVM_PPC_ALLOCATE_HTAB", {"order": order}, vm.spans.get("htab") or vm.span_of("memory"))
        p.require("KVM_CAP_PPC_ALLOC_HTAB", vm.spans.get("htab") or vm.span_of("memory"))
    _mmu(p, ctx)
    _tces(p, ctx)
    _xics_device(p, ctx)
    launcher_rtas = _rtas(p, ctx)
    common.memory(p, ctx)
    assert vm.memory is not None  # as in htab_order: a concrete VM without `memory` is an error
    fdt = fdt_address(vm.memory)
    if ctx.dtb is not None:
        common.add_image(p, ctx, "fdt", f"{vm.name}.dtb", ctx.dtb, fdt, vm.span, format="dtb")
    start = _boot_files(p, ctx)
    start = _guest(p, ctx, fdt, len(ctx.dtb or b"")) if vm.guest is not None else start
    for index in range(vm.vcpus):
        fd = common.vcpu_fd(index)
        common.create_vcpu(p, ctx, index)
        common.user_caps(p, ctx, vcpu=index)
        _xics_connect(p, ctx, index)
        regs = {"pc": start, "msr": MSR_SF_ME, "gpr": {"3": fdt, "4": 0, "5": 0}} if index == 0 else \
            {"pc": start + SECONDARY_ENTRY, "msr": MSR_SF_ME, "gpr": {"3": index}}
        p.add(fd, "KVM_SET_REGS", regs, vm.span_of("vcpus"))
    common.run_all(p, ctx)
    console = ctx.target.name2console.get(vm.console or ctx.target.default_console)
    if console is not None and console.node is not None:
        p.console = {"kind": console.name, "reg": console.reg}
    p.launcher = {"papr": {"exit": ctx.target.launcher.exit, "unknown": ctx.target.launcher.unknown,
                           "handlers": sorted(ctx.target.launcher.handlers), "exits": sorted(ctx.hcalls.exits),
                           "rtas": launcher_rtas, "liobns": [t.liobn for t in vm.tces],
                           **({"mmu": vm.mmu} if vm.mmu is not None else {}), **_initrd_end(ctx)}}
    return p
