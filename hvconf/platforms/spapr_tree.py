"""The sPAPR (pseries) device tree of one VM, built from the IR as an `fdt.Node` tree.

Nodes: / , /chosen, /memory@0, /cpus (one node per core), /rtas (hypertas sets
from the resolved hcall set, RTAS tokens), /vdevice (console, VIO DMA windows)
and a PHB per PCI-range TCE table. Every property carries the `file:line:col`
of the construct that produced it. Pure: no I/O, no FDT library; what the IR
cannot express in a tree is reported, never raised. Tests: tests/test_device_trees.py.

Where this differs from QEMU (spapr_build_fdt) and kvmtool (powerpc/kvm.c setup_fdt):
- / keeps QEMU's compatible "qemu,pseries" (lscpu and systemd-detect-virt detect a
  KVM pseries guest by it); the model names hvconf; no vm,uuid, ibm,partition-name.
- cpu nodes are ascending by first thread id, as QEMU's finished tree is (it adds them
  in reverse); thread ids are the vCPU indexes the plan creates (no vsmt spacing). They
  carry only what a firmware-less Linux LPAR boot reads: no cpu-version, cache sizes,
  ibm,segment-page-sizes (kvmtool asks KVM_PPC_GET_SMMU_INFO at run time), clock-frequency.
  `ibm,pft-size` follows the VM's HPT order on PR too (kvmtool: a fixed <0 24>), and is
  left out for radix guests unless `htab` is written.
- no interrupt controller node and no `interrupts` on the vty: the console is polled.
- /rtas has no linux,rtas-base/-entry (where the RTAS blob goes is the plan's
  business); rtas-size is QEMU's (blob + error log + 16 bytes per vCPU + 8).
- a TCE window node under /vdevice has no device_type/compatible (no device model
  behind it; Linux's vio bus warns and skips it); `ibm,my-dma-window` writes the real
  size high word (QEMU writes 0, its VIO windows being below 4 GiB).
- a PHB is `pci@<liobn>` with reg <liobn 0> (QEMU: BUID 0x800000020000000 + index)
  and only its 32-bit MMIO window in `ranges`, at QEMU's placement for the PHB index
  in the LIOBN (dtc needs `ranges` on a PCI bridge); no I/O or 64-bit window,
  interrupt-map or DDW properties. kvmtool's PHB has no DMA window at all.
- one memory@0 node for all RAM (kvmtool; QEMU splits off the RMA).
"""

from __future__ import annotations

from collections.abc import Callable

from hvconf.platforms import spapr_boot, spapr_linux
from hvconf.platforms.base import BuildContext
from hvconf.diagnostics import Span
from hvconf.emit.fdt import Bytes, Empty, FdtError, Node, cells, cells64, strings
from hvconf.emit.plan import source_of
from hvconf.model import ir
from hvconf.model.target import Console, Target

MODEL = "IBM pSeries (emulated by hvconf)"
COMPATIBLE = "qemu,pseries"
CPU_NAME = "PowerPC,POWER9"
TIMEBASE_HZ = 512_000_000  # POWER8/9/10 timebase
RTAS_BLOB_SIZE = 20  # QEMU RTAS_MIN_SIZE: the 5-instruction H_RTAS trampoline
RTAS_ERROR_LOG_MAX = spapr_boot.RTAS_ERROR_LOG_MAX
DMA_CELLS = 2  # ibm,#dma-address-cells and ibm,#dma-size-cells
# QEMU hw/pci-host/spapr.h, spapr_phb_placement: the 32-bit MMIO window of PHB n is
# 2 GiB at 32 TiB + (n + 1) * 2 GiB, seen on the PCI bus at 2 GiB.
PCI_BASE = 1 << 45
PCI_MEM32_BUS = 0x8000_0000
PCI_MEM32_SIZE = (1 << 32) - PCI_MEM32_BUS
PCI_MEM32_SPACE = 0x0200_0000  # phys.hi of a 32-bit memory-space range (ss = 2)
U32 = 1 << 32

Source = Callable[[Span | None], str | None]


def _sources(ctx: BuildContext) -> Source:
    return lambda span: source_of(span, ctx.root_dir)


def _written(vm: ir.Vm, key: str) -> Span | None:
    # The span of a setting only if the user wrote it (span_of falls back to the VM).
    return vm.spans.get(key)


def _unrepresentable(ctx: BuildContext, message: str, span: Span | None) -> None:
    ctx.report.error("dt-unrepresentable", message, span or ctx.vm.span)


def pft_order(vm: ir.Vm, target: Target) -> int | None:
    """The HPT order for `ibm,pft-size`: `htab order N`, else the target's auto rule
    (clamp(log2(pow2ceil(RAM)) - shift)); None for radix guests with no `htab`."""
    rule = target.features.htab
    if isinstance(vm.htab, int):
        return vm.htab
    if rule is None or vm.memory is None or (vm.mmu == "radix" and vm.htab is None):
        return None
    order = (vm.memory - 1).bit_length() - rule.auto_shift
    return min(max(order, rule.order_min), rule.order_max)


def cores(vm: ir.Vm) -> list[tuple[int, ...]]:
    """The vCPU ids of each core: core c holds c*threads .. c*threads+threads-1."""
    return [tuple(range(first, min(first + vm.threads, vm.vcpus))) for first in range(0, vm.vcpus, vm.threads)]


def _dma_window(liobn: int, offset: int, size: int) -> tuple[int, ...]:
    # ibm,my-dma-window / ibm,dma-window: LIOBN, bus offset hi/lo, size hi/lo.
    return (liobn, *cells64(offset).values, *cells64(size).values)


def _root(ctx: BuildContext) -> Node:
    root = Node("/", source_of(ctx.vm.span, ctx.root_dir))
    root.prop("device_type", strings("chrp")).prop("model", strings(MODEL))
    root.prop("compatible", strings(COMPATIBLE))
    root.prop("#address-cells", cells(2)).prop("#size-cells", cells(2))
    return root


def _chosen(ctx: BuildContext, root: Node, src: Source) -> None:
    vm, console = ctx.vm, _console(ctx)
    chosen = root.child("chosen")
    if vm.cmdline:
        try:
            chosen.prop("bootargs", strings(vm.cmdline), src(_written(vm, "cmdline")))
        except FdtError as err:
            _unrepresentable(ctx, f"cmdline cannot be a device-tree string: {err}", _written(vm, "cmdline"))
    if console is not None and console.node is not None and console.stdout_path:
        # Both, as QEMU writes them: old kernels read linux,stdout-path, dtc wants stdout-path.
        where = src(_written(vm, "console"))
        chosen.prop("linux,stdout-path", strings(console.node), where)
        chosen.prop("stdout-path", strings(console.node), where)
    if vm.kernel is not None:
        _boot_chosen(ctx, chosen, src)


def _boot_chosen(ctx: BuildContext, chosen: Node, src: Source) -> None:
    """What a kernel entered with a flattened tree reads in /chosen: its initrd and the CAS result."""
    vm, boot = ctx.vm, spapr_boot.layout(ctx)
    if boot.initrd is not None:
        where = src(_written(vm, "initrd"))
        # u64 each; the launcher rewrites the end for an initrd given at run time (--initrd)
        chosen.prop("linux,initrd-start", cells64(boot.initrd.address), where)
        chosen.prop("linux,initrd-end", cells64(boot.initrd.address + boot.initrd.size), where)
    chosen.prop("ibm,architecture-vec-5", Bytes(spapr_linux.vec5(vm.mmu == "radix")),
                src(_written(vm, "mmu") or _written(vm, "kernel")))


def _memory(ctx: BuildContext, root: Node, src: Source) -> None:
    vm = ctx.vm
    if vm.memory is None:  # lowering already reported the missing setting
        return
    where = src(_written(vm, "memory"))
    memory = root.child("memory@0", where).prop("device_type", strings("memory"))
    memory.prop("reg", cells64(0, vm.memory), where)


def _cpus(ctx: BuildContext, root: Node, src: Source) -> None:
    vm = ctx.vm
    cpus = root.child("cpus").prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    vcpus = src(_written(vm, "vcpus"))
    threads = src(_written(vm, "threads") or _written(vm, "vcpus"))
    order = pft_order(vm, ctx.target)
    pft = src(_written(vm, "htab") or _written(vm, "memory"))
    if order is not None and not 0 <= order < 64:  # the checks report the architected 18..46
        _unrepresentable(ctx, f"HPT order {order} cannot be ibm,pft-size", _written(vm, "htab"))
        order = None
    for ids in cores(vm):
        cpu = cpus.child(f"{CPU_NAME}@{ids[0]:x}", vcpus)
        cpu.prop("device_type", strings("cpu")).prop("reg", cells(ids[0]), vcpus)
        cpu.prop("ibm,ppc-interrupt-server#s", cells(*ids), threads)
        if order is not None:
            cpu.prop("ibm,pft-size", cells(0, order), pft)
        cpu.prop("64-bit", Empty()).prop("status", strings("okay"))
        cpu.prop("timebase-frequency", cells(TIMEBASE_HZ))
        if vm.kernel is not None:
            _linux_cpu(vm, cpu, src)


def _linux_cpu(vm: ir.Vm, cpu: Node, src: Source) -> None:
    """The cpu properties Linux reads (spapr_linux.py says whose each value is)."""
    where = src(_written(vm, "kernel"))
    cpu.prop("ibm,vmx", cells(spapr_linux.VMX), where).prop("ibm,dfp", cells(spapr_linux.DFP), where)
    cpu.prop("clock-frequency", cells(spapr_linux.CLOCK_HZ), where)
    cpu.prop("ibm,pa-features", Bytes(spapr_linux.PA_FEATURES_300), where)
    mmu = src(_written(vm, "mmu"))
    if vm.mmu == "radix":
        cpu.prop("ibm,processor-radix-AP-encodings", cells(*spapr_linux.RADIX_AP_ENCODINGS), mmu)
    else:
        cpu.prop("ibm,slb-size", cells(spapr_linux.SLB_SIZE), mmu)
        cpu.prop("ibm,processor-segment-sizes", cells(*spapr_linux.SEGMENT_SIZES), mmu)
        cpu.prop("ibm,segment-page-sizes", cells(*spapr_linux.SEGMENT_PAGE_SIZES), mmu)


def _rtas(ctx: BuildContext, root: Node, src: Source) -> None:
    vm, facts = ctx.vm, ctx.target.features.rtas
    rtas = root.child(facts.node.strip("/") if facts else "rtas")
    sets = ctx.hcalls.advertised_sets(ctx.target)
    # Linux sets FW_FEATURE_LPAR because the property exists, so keep it even when empty.
    rtas.prop(facts.hypertas_property if facts else "ibm,hypertas-functions",
              strings(*sets) if sets else Empty(), src(_written(vm, "hcalls")))
    fixed = {"rtas-size", "rtas-error-log-max", "name", "phandle"}
    for token in vm.rtas:
        if token.name in fixed:
            _unrepresentable(ctx, f"RTAS token name '{token.name}' is a /rtas property hvconf writes itself",
                             token.span)
            continue
        try:
            rtas.prop(token.name, cells(token.token), src(token.span))
        except FdtError as err:
            _unrepresentable(ctx, f"RTAS token '{token.name}' cannot be a /rtas property: {err}", token.span)
    rtas.prop("rtas-size", cells(RTAS_BLOB_SIZE + RTAS_ERROR_LOG_MAX + vm.vcpus * 16 + 8),
              src(_written(vm, "vcpus")))
    rtas.prop("rtas-error-log-max", cells(RTAS_ERROR_LOG_MAX))
    boot = spapr_boot.layout(ctx) if vm.kernel is not None else None
    if boot is not None and boot.rtas is not None:
        # Where Linux calls RTAS (arch/powerpc/kernel/rtas.c early_init_dt_scan_rtas), kept out of its
        # allocator by a /memreserve/ as prom_init would have reserved it.
        where = src(_written(vm, "kernel"))
        rtas.prop("linux,rtas-base", cells(boot.rtas), where).prop("linux,rtas-entry", cells(boot.rtas), where)
        ctx.reserve.append((boot.rtas, boot.rtas_size))


def _console(ctx: BuildContext) -> Console | None:
    return ctx.target.name2console.get(ctx.vm.console or ctx.target.default_console)


def _vty(ctx: BuildContext, src: Source) -> tuple[int, Node] | None:
    console = _console(ctx)
    if console is None or console.node is None or console.reg is None:
        return None
    parent, _, name = console.node.rpartition("/")
    if parent != "/vdevice":
        _unrepresentable(ctx, f"console node {console.node} is not under /vdevice", _written(ctx.vm, "console"))
        return None
    where = src(_written(ctx.vm, "console"))
    vty = Node(name, where).prop("reg", cells(console.reg), where)
    if console.device_type:
        vty.prop("device_type", strings(console.device_type), where)
    if console.compatible:
        vty.prop("compatible", strings(*console.compatible), where)
    return console.reg, vty


def _tce_node(ctx: BuildContext, tce: ir.Tce, src: Source, pci: bool) -> Node | None:
    where = src(tce.span)
    name = f"pci@{tce.liobn:x}" if pci else f"{tce.name}@{tce.liobn:x}"
    try:
        node = Node(name, where)
    except FdtError as err:
        _unrepresentable(ctx, f"tce '{tce.name}' cannot name a device-tree node: {err}", tce.span)
        return None
    window = cells(*_dma_window(tce.liobn, tce.offset, tce.window))
    if pci:
        index = (tce.liobn & 0x7FFF_FFFF) >> 8  # SPAPR_PCI_LIOBN(index, window)
        node.prop("device_type", strings("pci")).prop("compatible", strings("IBM,Logical_PHB"))
        node.prop("reg", cells64(tce.liobn, 0), where)
        node.prop("#address-cells", cells(3)).prop("#size-cells", cells(2))
        node.prop("bus-range", cells(0, 0xFF))
        mem32 = PCI_BASE + (index + 1) * PCI_MEM32_SIZE
        node.prop("ranges", cells(PCI_MEM32_SPACE, *cells64(PCI_MEM32_BUS).values,
                                  *cells64(mem32, PCI_MEM32_SIZE).values), where)
        node.prop("ibm,dma-window", window, where)
    else:
        node.prop("reg", cells(tce.liobn), where).prop("ibm,my-dma-window", window, where)
    node.prop("ibm,#dma-address-cells", cells(DMA_CELLS), where)
    node.prop("ibm,#dma-size-cells", cells(DMA_CELLS), where)
    return node


def _vdevice_and_phbs(ctx: BuildContext, root: Node, src: Source) -> None:
    facts = ctx.target.features.tce
    pci_base = facts.pci_liobn_base if facts else 0x8000_0000
    vio: list[tuple[int, Node]] = []
    phbs: list[tuple[int, Node]] = []
    for tce in ctx.vm.tces:
        if tce.liobn >= U32:
            _unrepresentable(ctx, f"tce '{tce.name}': LIOBN {tce.liobn:#x} does not fit the 32-bit "
                             "LIOBN of ibm,my-dma-window", tce.span)
            continue
        pci = tce.liobn >= pci_base
        node = _tce_node(ctx, tce, src, pci)
        if node is not None:
            (phbs if pci else vio).append((tce.liobn, node))
    vty = _vty(ctx, src)
    if vty is not None:
        vio.append(vty)
    vdevice = root.child("vdevice").prop("device_type", strings("vdevice"))
    vdevice.prop("compatible", strings("IBM,vdevice"))
    vdevice.prop("#address-cells", cells(1)).prop("#size-cells", cells(0))
    vdevice.prop("#interrupt-cells", cells(2)).prop("interrupt-controller", Empty())
    # QEMU sorts /vdevice children by reg; PHBs follow in LIOBN order.
    for parent, nodes in ((vdevice, vio), (root, phbs)):
        for _, node in sorted(nodes, key=lambda item: (item[0], item[1].name)):
            try:
                parent.add(node)
            except FdtError as err:
                _unrepresentable(ctx, str(err), ctx.vm.span)


def _xics(ctx: BuildContext, root: Node, src: Source) -> None:
    """`irqchip xics`: the interrupt presentation node Linux's xics_spapr_init looks for (QEMU
    hw/intc/xics_spapr.c spapr_dt_xics); without it a kernel BUG()s in xics_smp_probe."""
    vm = ctx.vm
    if vm.irqchip != "xics":
        return
    where = src(_written(vm, "irqchip"))
    node = root.child(spapr_linux.XICS_NODE, where)
    node.prop("device_type", strings("PowerPC-External-Interrupt-Presentation"), where)
    node.prop("compatible", strings("IBM,ppc-xicp"), where).prop("interrupt-controller", Empty(), where)
    node.prop("ibm,interrupt-server-ranges", cells(0, vm.vcpus), where)
    node.prop("#interrupt-cells", cells(2), where).prop("phandle", cells(spapr_linux.XICS_PHANDLE), where)
    node.prop("#address-cells", cells(0), where)  # an interrupt provider's, for dtc (Linux reads none)


def _rng(ctx: BuildContext, root: Node, src: Source) -> None:
    """/ibm,platform-facilities/ibm,random-v1 when H_RANDOM gets an answer (in the kernel, or from the
    launcher with `exit H_RANDOM`): Linux's pseries-rng driver binds to it."""
    vm = ctx.vm
    if vm.kernel is None or not ctx.hcalls.handled("H_RANDOM", ctx.target):
        return
    where = src(ctx.hcalls.changed_by.get("H_RANDOM") or _written(vm, "hcalls"))
    # QEMU also writes #address-cells <1> and #size-cells <0>, which dtc calls unnecessary (no child has reg)
    parent = root.child(spapr_linux.RNG_PARENT, where).prop("device_type", strings("ibm,platform-facilities"))
    parent.child(spapr_linux.RNG_NODE, where).prop("compatible", strings("ibm,random"), where)


def device_tree(ctx: BuildContext) -> Node:
    """The pseries device tree of `ctx.vm` (see the module docstring for its layout)."""
    src = _sources(ctx)
    root = _root(ctx)
    _chosen(ctx, root, src)
    _memory(ctx, root, src)
    _cpus(ctx, root, src)
    _rtas(ctx, root, src)
    _vdevice_and_phbs(ctx, root, src)
    _xics(ctx, root, src)
    _rng(ctx, root, src)
    return root
