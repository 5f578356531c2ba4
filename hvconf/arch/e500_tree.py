"""The e500 (ePAPR) device tree of one VM, built from the IR as an `fdt.Node` tree.

Nodes: / , /memory@0, /cpus, /chosen and /hypervisor (compatible, the hcall
instruction words, has-idle and the proposal's kvm,has-reset/kvm,has-shutdown),
plus the ePAPR byte channel that `console byte_channel` points stdout-path at.
Pure: no I/O, no FDT library; every property carries the source that produced
it; what the IR cannot express in a tree is reported, never raised.
Tests: tests/test_device_trees.py.

Where this differs from QEMU (ppce500_load_device_tree; kvmtool has no e500):
- RAM is /memory@0, not /memory: dtc warns about a `reg` without a unit address.
- cpu nodes are PowerPC,e500@<i>, ascending (QEMU: PowerPC,8544, added in reverse so
  the finished tree is ascending too), with no clock/timebase/cache properties (QEMU
  copies the host's); secondaries are status "disabled" with no spin-table
  properties, because hvconf places no spin table.
- no /soc (MPIC, ns16550, guts, MSI), /pci, /platform or /aliases nodes.
- /hypervisor is always written (QEMU: under KVM), but `has-idle` only when the
  definition says `idle` (QEMU: whenever KVM_PPC_GET_PVINFO reports EV_IDLE), and
  `hcall-instructions` is the static sequence for the KVM_CAP_SW_TLB mmu (QEMU asks
  PVINFO at run time; the plan's KVM_PPC_GET_PVINFO step compares the two).
- the byte channel console follows Freescale's Topaz layout
  (/hypervisor/handles/byte-channel, hv-handle <0>) without `interrupts`: Linux's
  early console works from it, its tty driver needs interrupts. QEMU has none.
"""

from __future__ import annotations

from hvconf.abi import hcalls as abi_hcalls
from hvconf.arch.base import BuildContext
from hvconf.diagnostics import Span
from hvconf.emit.fdt import Empty, FdtError, Node, cells, cells64, strings
from hvconf.emit.plan import source_of
from hvconf.model import ir

MODEL = "hvconf ppce500"
COMPATIBLE = "fsl,qemu-e500"  # what Linux's qemu_e500 platform probes for
CPU_NAME = "PowerPC,e500"
SW_TLB = "KVM_CAP_SW_TLB"
BYTE_CHANNEL_HANDLE = 0


def _written(vm: ir.Vm, key: str) -> Span | None:
    # The span of a setting only if the user wrote it (span_of falls back to the VM).
    return vm.spans.get(key)


def _sw_tlb(vm: ir.Vm) -> ir.CapUse | None:
    return next((c for c in vm.caps if c.name == SW_TLB and "mmu" in c.arg_dict), None)


def _mmu_name(ctx: BuildContext) -> str | None:
    # The SW_TLB `mmu` as its enum name, also when written as the number (0 = e500v2).
    use = _sw_tlb(ctx.vm)
    if use is None:
        return None
    value = use.arg_dict["mmu"]
    cap = ctx.target.name2cap.get(SW_TLB)
    arg = cap.name2arg.get("mmu") if cap else None
    if isinstance(value, int) and arg is not None and arg.values is not None:
        return next((name for name, number in arg.values.items() if number == value), None)
    return str(value)


def hcall_instructions(ctx: BuildContext) -> tuple[int, ...]:
    """The /hypervisor `hcall-instructions` words: the definition's own, else the
    sequence the KVM_CAP_SW_TLB mmu's kernel reports (e500v2: magic r0 + sc,
    e500mc: sc 1), else the target's fallback (every hcall returns -1)."""
    vm, facts = ctx.vm, ctx.target.features.hypervisor_node
    if vm.hypervisor is not None and vm.hypervisor.hcall_instructions is not None:
        return tuple(vm.hypervisor.hcall_instructions)
    pvinfo = abi_hcalls.epapr_data()["pvinfo"]
    mmu = _mmu_name(ctx)
    if facts is not None:
        sequence = facts.instructions.get(mmu) if mmu else None
        sequence = sequence or facts.instructions_fallback
        if sequence is not None:
            return tuple(pvinfo[sequence])
    return tuple(pvinfo["qemu_always_fail"])


def _instructions_span(vm: ir.Vm) -> Span | None:
    if vm.hypervisor is not None and vm.hypervisor.hcall_instructions is not None:
        return _written(vm, "hypervisor.hcall_instructions")
    use = _sw_tlb(vm)
    return use.span if use else None


def _hypervisor(ctx: BuildContext, root: Node) -> Node:
    vm, facts = ctx.vm, ctx.target.features.hypervisor_node
    hv = vm.hypervisor or ir.Hypervisor()
    path = facts.path if facts else "/hypervisor"
    node = root.child(path.strip("/"), source_of(_written(vm, "hypervisor"), ctx.root_dir))
    written = _written(vm, "hypervisor.compatible")
    compatible = hv.compatible if written or not facts else facts.compatible[0]
    try:
        node.prop("compatible", strings(compatible), source_of(written or _written(vm, "hypervisor"), ctx.root_dir))
    except FdtError as err:
        ctx.report.error("dt-unrepresentable", f"hypervisor compatible cannot be a device-tree string: {err}",
                         written or vm.span)
    words = hcall_instructions(ctx)
    span = _instructions_span(vm)
    prop = facts.instructions_property if facts else "hcall-instructions"
    try:
        node.prop(prop, cells(*words), source_of(span, ctx.root_dir))
    except FdtError as err:
        ctx.report.error("dt-unrepresentable", f"hcall_instructions cannot be 32-bit cells: {err}", span or vm.span)
    # Flag rows (target data) name the property each `hypervisor { NAME }` flag sets.
    for flag in facts.flags if facts else ():
        if getattr(hv, flag.name, False):
            node.prop(flag.property, Empty(), source_of(_written(vm, f"hypervisor.{flag.name}"), ctx.root_dir))
    return node


def _byte_channel(ctx: BuildContext, root: Node, chosen: Node) -> None:
    console = ctx.target.name2console.get(ctx.vm.console or ctx.target.default_console)
    if console is None or console.node is None:
        return
    where = source_of(_written(ctx.vm, "console"), ctx.root_dir)
    node = root
    for part in console.node.strip("/").split("/"):
        node = node.find(part) if part in {c.name for c in node.children} else node.child(part, where)
    if console.compatible:
        node.prop("compatible", strings(*console.compatible), where)
    node.prop("hv-handle", cells(BYTE_CHANNEL_HANDLE), where)
    if console.stdout_path:
        # Both, as QEMU writes them for its serial port: old kernels read linux,stdout-path.
        chosen.prop("linux,stdout-path", strings(console.node), where)
        chosen.prop("stdout-path", strings(console.node), where)


def device_tree(ctx: BuildContext) -> Node:
    """The ePAPR device tree of `ctx.vm` (see the module docstring for its layout)."""
    vm = ctx.vm

    def src(span: Span | None) -> str | None:
        return source_of(span, ctx.root_dir)

    root = Node("/", src(vm.span))
    root.prop("#address-cells", cells(2)).prop("#size-cells", cells(2))
    root.prop("model", strings(MODEL)).prop("compatible", strings(COMPATIBLE))
    if vm.memory is not None:  # lowering already reported a missing setting
        where = src(_written(vm, "memory"))
        memory = root.child("memory@0", where).prop("device_type", strings("memory"))
        memory.prop("reg", cells64(0, vm.memory), where)
    cpus = root.child("cpus").prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    for index in range(vm.vcpus):
        where = src(_written(vm, "vcpus"))
        cpu = cpus.child(f"{CPU_NAME}@{index:x}", where)
        cpu.prop("device_type", strings("cpu")).prop("reg", cells(index), where)
        cpu.prop("status", strings("okay" if index == 0 else "disabled"))
    chosen = root.child("chosen")
    if vm.cmdline:
        try:
            chosen.prop("bootargs", strings(vm.cmdline), src(_written(vm, "cmdline")))
        except FdtError as err:
            ctx.report.error("dt-unrepresentable", f"cmdline cannot be a device-tree string: {err}",
                             _written(vm, "cmdline") or vm.span)
    _hypervisor(ctx, root)
    _byte_channel(ctx, root, chosen)
    return root
