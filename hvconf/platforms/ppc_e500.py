"""e500 (BookE, ePAPR) plans.

QEMU's ppce500 order (hw/ppc/e500.c ppce500_init, target/ppc/kvm.c
kvm_arch_init_vcpu): VM, VM caps, KVM_PPC_GET_PVINFO (so the launcher can
confirm the hcall-instructions the device tree carries), RAM, then per vCPU:
create, KVM_CAP_SW_TLB (its `config`: hvconf.platforms.e500_tlb) and other caps,
and for the boot vCPU the initial mapped area as a TLB1 entry (KVM_DIRTY_TLB)
and the ePAPR boot registers; then KVM_RUN. The secondaries wait in the ePAPR
spin table (an image, and plan.launcher.epapr.spin_table: hvconf.platforms.e500_spin)
until the guest releases them. The device tree lives in e500_tree.py.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

from hvconf.platforms import common, e500_spin, e500_tlb
from hvconf.platforms.base import BuildContext
from hvconf.platforms.e500_tree import HOST_CELLS, device_tree, hcall_instructions
from hvconf.contract import Step
from hvconf.emit.plan import PlanBuilder

__all__ = ["plan", "device_tree"]

EPAPR_MAGIC = 0x4550_4150  # r6 at entry: "EPAP" (ePAPR 1.1 §5.4.1)
DTB_ADDRESS = 0x00F0_0000  # inside the initial 64 MiB TLB1 mapping, below any kernel's bss
INITIAL_MAP = 0x0400_0000  # r7: size of the initial mapped area (IMA), 64 MiB as QEMU maps for secondaries
STACK_TOP = 0x0100_0000 - 8  # r1: QEMU ppce500_cpu_reset
BOOT_ESEL = 0  # the TLB1 entry of the boot vCPU's IMA (QEMU mmubooke_create_initial_mapping)


def plan(ctx: BuildContext) -> PlanBuilder:
    vm = ctx.vm
    p = common.new_plan(ctx)
    common.create_vm(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    if vm.hypervisor is not None:
        p.add("vm", "KVM_PPC_GET_PVINFO", {"expect": list(hcall_instructions(ctx))}, vm.span_of("hypervisor"))
        p.require("KVM_CAP_PPC_GET_PVINFO", vm.span_of("hypervisor"))
    common.memory(p, ctx)
    common.kernel_image(p, ctx, load=0)
    if ctx.dtb is not None:
        common.add_image(p, ctx, "fdt", f"{vm.name}.dtb", ctx.dtb, DTB_ADDRESS, vm.span, format="dtb")
    if vm.vcpus > 1:  # the secondaries wait in the ePAPR spin table the tree's cpu-release-addr point at
        common.add_image(p, ctx, "spin-table", "spin-table.bin", e500_spin.table(vm.vcpus), e500_spin.ADDRESS,
                         vm.span_of("vcpus"), format="flat")
    for index in range(vm.vcpus):
        fd = common.vcpu_fd(index)
        common.create_vcpu(p, ctx, index)
        common.user_caps(p, ctx, vcpu=index)
        if index == 0:  # a secondary gets its mapping and registers when released from the spin table
            _initial_mapping(p, fd)
            regs = {"pc": 0, "gpr": {"1": STACK_TOP, "3": DTB_ADDRESS, "6": EPAPR_MAGIC, "7": INITIAL_MAP}}
            p.add(fd, "KVM_SET_REGS", regs, vm.span_of("vcpus"))
    common.run_all(p, ctx)
    exits = sorted(ctx.hcalls.exits)
    proposed = {item.name for item in ctx.proposed.items}
    p.unmerged += [name for name in exits if name in proposed and ctx.proposed.number(name) is None]
    p.launcher = {"epapr": {"exits": exits, "unknown": ctx.target.launcher.unknown}}
    if ctx.dtb is not None:  # where the launcher puts the host's cpu clocks (hvconf/kvm/powerpc/host_cells.py)
        from hvconf.emit.dtb import value_offsets  # pyfdt: only for builds, as emit/artifacts.py does

        cells = {name: [at for path, at in value_offsets(ctx.dtb, name) if path.startswith("/cpus/")]
                 for name in HOST_CELLS}  # fmt: skip
        p.launcher["epapr"]["host_cells"] = {"image": "fdt", "cells": cells}
    if vm.vcpus > 1:
        p.launcher["epapr"]["spin_table"] = e500_spin.section(vm.vcpus, INITIAL_MAP)
    console = ctx.target.name2console.get(vm.console or ctx.target.default_console)
    if console is not None and console.node is not None:
        p.console = {"kind": console.name}
    return p


def _sw_tlb_step(p: PlanBuilder, fd: str) -> Step | None:
    return next((s for s in p.steps if s.fd == fd and s.ioctl == "KVM_ENABLE_CAP" and "config" in s.args), None)


def _initial_mapping(p: PlanBuilder, fd: str) -> None:
    """ePAPR 1.1 §5.4.1: the client starts with its initial mapped area (r7 bytes from 0) in the TLB.
    Through the shared TLB that is an entry the launcher writes, then KVM_DIRTY_TLB (api.rst §4.60)."""
    sw_tlb = _sw_tlb_step(p, fd)
    if sw_tlb is None:  # cap-required reported the missing KVM_CAP_SW_TLB
        return
    ima = e500_tlb.mapping(BOOT_ESEL, 0, 0, INITIAL_MAP)
    p.add(fd, "KVM_DIRTY_TLB", {"entries": [ima]}, p.spans[sw_tlb.index])
