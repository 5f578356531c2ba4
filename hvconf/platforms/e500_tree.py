"""The e500 (ePAPR) device tree of one VM, built from the IR as an `fdt.Node` tree.

What Linux's qemu_e500 platform (arch/powerpc/platforms/85xx/qemu_e500.c,
matched by `fsl,qemu-e500`) and ePAPR 1.1 need, laid out as QEMU's ppce500
machine writes it (hw/ppc/e500.c ppce500_load_device_tree, addresses from
hw/ppc/e500plat.c):
- / with #address-cells/#size-cells 2, model and compatible; /memory@0;
- /cpus: one PowerPC,e500@<i> per vCPU with clock-frequency and
  timebase-frequency (generic_calibrate_decr reads them), the cache geometry
  of the `mmu`'s CPU, bus-frequency; secondaries are status "disabled" with
  enable-method "spin-table" and their cpu-release-addr (ePAPR 1.1 §5.5; the
  table itself and its /memreserve/ entry: hvconf.platforms.e500_spin);
- /soc@fe0000000 (the CCSR window, fsl,mpc8544-immr simple-bus) holding the
  MPIC at pic@40000: qemu_e500_pic_init() BUG()s when mpic_alloc() finds no
  open-pic node to map;
- /chosen (bootargs, the console's stdout-path) and /hypervisor (compatible,
  the hcall instruction words, has-idle and the proposal's
  kvm,has-reset/kvm,has-shutdown), plus the ePAPR byte channel that
  `console byte_channel` points stdout-path at.
Pure: no I/O, no FDT library; every property carries the source that produced
it, platform ones none; what the IR cannot express in a tree is reported,
never raised. Tests: tests/test_device_trees.py (QEMU_PROPERTIES compares
every property QEMU sets with this tree), tests/test_dtb_readback.py.

Where this differs from QEMU (each row of QEMU_PROPERTIES says why):
- RAM is /memory@0, not /memory: dtc warns about a `reg` without a unit address.
- cpu nodes are PowerPC,e500@<i> (QEMU: PowerPC,8544); clock-frequency and
  timebase-frequency are built as QEMU's platform clock, 400 MHz
  (PLATFORM_CLK_FREQ_HZ, what QEMU writes without KVM), and the launcher
  overwrites them with the host's before loading the DTB, as QEMU does under
  KVM (HOST_CELLS; the plan says where they are).
- cpu-release-addr points into RAM (QEMU: its MMIO spin device at 0xfef000000).
- /soc holds only the MPIC: hvconf models no ns16550, i2c, GPIO, guts or MSI,
  so it writes no node for them, nor /pci, /platform or /aliases; no
  rng-seed (builds are reproducible), no qemu,boot-kernel (no firmware).
- /hypervisor is always written (QEMU: under KVM), but `has-idle` only when the
  definition says `idle` (QEMU: whenever KVM_PPC_GET_PVINFO reports EV_IDLE), and
  `hcall-instructions` is the static sequence for the KVM_CAP_SW_TLB mmu (QEMU asks
  PVINFO at run time; the plan's KVM_PPC_GET_PVINFO step compares the two).
- the byte channel console follows Freescale's Topaz layout
  (/hypervisor/handles/byte-channel, hv-handle <0>) without `interrupts`: Linux's
  early console works from it, its tty driver needs interrupts. QEMU has none.
- the MPIC node describes QEMU's address, but no plan step creates an in-kernel
  MPIC there yet (KVM_CREATE_DEVICE + KVM_CAP_IRQ_MPIC): its registers read 0.
"""

from __future__ import annotations

from hvconf.abi import hcalls as abi_hcalls
from hvconf.platforms import e500_spin
from hvconf.platforms.base import BuildContext
from hvconf.diagnostics import Span
from hvconf.emit.fdt import Empty, FdtError, Node, Phandles, cells, cells64, strings
from hvconf.emit.plan import source_of
from hvconf.model import ir

MODEL = "hvconf ppce500"
COMPATIBLE = "fsl,qemu-e500"  # what Linux's qemu_e500 platform probes for
CPU_NAME = "PowerPC,e500"
SW_TLB = "KVM_CAP_SW_TLB"
BYTE_CHANNEL_HANDLE = 0

# QEMU ppce500 (hw/ppc/e500.c, hw/ppc/e500plat.c e500plat_machine_class_init).
PLATFORM_CLOCK_HZ = 400_000_000  # PLATFORM_CLK_FREQ_HZ: cpu clock-frequency and timebase-frequency
# cpu properties QEMU copies from the host under KVM: the launcher does the same (hvconf/kvm/powerpc/host_cells.py)
HOST_CELLS = ("clock-frequency", "timebase-frequency")
CCSR_BASE = 0xF_E000_0000  # pmc->ccsrbar_base
CCSR_SIZE = 0x10_0000  # MPC8544_CCSRBAR_SIZE
SOC_COMPATIBLE = ("fsl,mpc8544-immr", "simple-bus")
MPIC_OFFSET, MPIC_SIZE = 0x4_0000, 0x4_0000  # MPC8544_MPIC_REGS_OFFSET, and the size QEMU's reg gives
L1_CACHE_SIZE = 0x8000  # QEMU writes 32 KiB i- and d-cache for every e500
# Cache line per `mmu` (QEMU target/ppc/cpu_init.c init_proc_e500); 32 when no mmu is given (e500v2,
# QEMU ppce500's default CPU).
CACHE_LINE = {"e500v2": 32, "e500mc": 64}
DEFAULT_CACHE_LINE = 32


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


def _cpus(ctx: BuildContext, root: Node) -> None:
    """/cpus: the boot vCPU "okay", every other one "disabled" in the ePAPR spin table."""
    vm = ctx.vm
    where = source_of(_written(vm, "vcpus"), ctx.root_dir)
    line = CACHE_LINE.get(_mmu_name(ctx) or "", DEFAULT_CACHE_LINE)
    cpus = root.child("cpus").prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    for index in range(vm.vcpus):
        cpu = cpus.child(f"{CPU_NAME}@{index:x}", where)
        cpu.prop("device_type", strings("cpu")).prop("reg", cells(index), where)
        cpu.prop("clock-frequency", cells(PLATFORM_CLOCK_HZ)).prop("timebase-frequency", cells(PLATFORM_CLOCK_HZ))
        cpu.prop("d-cache-line-size", cells(line)).prop("i-cache-line-size", cells(line))
        cpu.prop("d-cache-size", cells(L1_CACHE_SIZE)).prop("i-cache-size", cells(L1_CACHE_SIZE))
        cpu.prop("bus-frequency", cells(0))
        if index == 0:
            cpu.prop("status", strings("okay"))
            continue
        cpu.prop("status", strings("disabled")).prop("enable-method", strings("spin-table"), where)
        cpu.prop("cpu-release-addr", cells64(e500_spin.release_addr(index)), where)
    if vm.vcpus > 1:  # ePAPR 1.1 §5.5: the client must not use the spin table's memory
        ctx.reserve.append((e500_spin.ADDRESS, e500_spin.SIZE))


def _soc(root: Node) -> None:
    """The CCSR window with the MPIC Linux's qemu_e500 platform allocates (QEMU's layout and values)."""
    soc = root.child(f"soc@{CCSR_BASE:x}").prop("device_type", strings("soc"))
    soc.prop("compatible", strings(*SOC_COMPATIBLE)).prop("#address-cells", cells(1)).prop("#size-cells", cells(1))
    soc.prop("ranges", cells(0, CCSR_BASE >> 32, CCSR_BASE & 0xFFFF_FFFF, CCSR_SIZE)).prop("bus-frequency", cells(0))
    mpic = soc.child(f"pic@{MPIC_OFFSET:x}").prop("device_type", strings("open-pic"))
    mpic.prop("compatible", strings("fsl,mpic")).prop("reg", cells(MPIC_OFFSET, MPIC_SIZE))
    mpic.prop("#address-cells", cells(0)).prop("#interrupt-cells", cells(2))
    handle = Phandles().assign(mpic)
    mpic.prop("linux,phandle", cells(handle)).prop("interrupt-controller", Empty())


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
    _cpus(ctx, root)
    chosen = root.child("chosen")
    if vm.cmdline:
        try:
            chosen.prop("bootargs", strings(vm.cmdline), src(_written(vm, "cmdline")))
        except FdtError as err:
            ctx.report.error("dt-unrepresentable", f"cmdline cannot be a device-tree string: {err}",
                             _written(vm, "cmdline") or vm.span)
    _hypervisor(ctx, root)
    _byte_channel(ctx, root, chosen)
    _soc(root)
    return root
