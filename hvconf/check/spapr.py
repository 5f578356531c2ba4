"""Rules for sPAPR platform settings: the hash page table (`htab`), the
obsolete RMA, TCE (DMA) tables and RTAS tokens.

Limits are target data (targets/ppc64-spapr/target.toml [features.*]); a
target without the feature is `setting-unsupported`'s business, so every rule
here returns early when its feature table is absent. Tested by tests/test_checks.py.
"""

from __future__ import annotations

from hvconf.check.common import vcpu_count, vcpu_list
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity, Span
from hvconf.model import ir
from hvconf.model.target_toml import size_text

U64_LIMIT = 1 << 64


def auto_htab_order(memory: int, order_min: int, order_max: int, shift: int) -> int:
    """QEMU spapr_hpt_shift_for_ramsize: clamp(log2(pow2ceil(RAM)) - shift, min, max)."""
    log2 = (memory - 1).bit_length() if memory > 1 else 0
    return max(order_min, min(order_max, log2 - shift))


def htab_order_range(ctx: CheckContext) -> None:
    htab = ctx.target.features.htab
    order = ctx.vm.htab
    if htab is None or not isinstance(order, int):
        return
    if not htab.order_min <= order <= htab.order_max:
        ctx.emit(ctx.vm.span_of("htab"), f"htab order {order} is outside {htab.order_min}..{htab.order_max}",
                 help="write `htab auto` to size it from the memory")


def htab_wrong_flavour(ctx: CheckContext) -> None:
    htab = ctx.target.features.htab
    if htab is None or ctx.vm.htab is None or ctx.vm.flavour in htab.flavours:
        return
    notes = [Note("the flavour is chosen here", ctx.vm.spans["flavour"])] if "flavour" in ctx.vm.spans else []
    ctx.emit(ctx.vm.span_of("htab"), f"`htab` needs `kvm {' or '.join(htab.flavours)}`; `kvm {ctx.vm.flavour}` "
             "keeps the hash page table in userspace", notes=notes, help="remove `htab`")


def htab_radix(ctx: CheckContext) -> None:
    if ctx.target.features.htab is None or ctx.vm.htab is None or ctx.vm.mmu != "radix":
        return
    ctx.emit(ctx.vm.span_of("htab"), "`htab` allocates a hash page table, but the guest uses `mmu radix`",
             notes=[Note("radix is chosen here", ctx.vm.spans.get("mmu"))], help="remove `htab` or write `mmu hash`")


def mmu_radix_needs_hv(ctx: CheckContext) -> None:
    htab = ctx.target.features.htab
    if htab is None or ctx.vm.mmu != "radix" or ctx.vm.flavour in htab.flavours:
        return
    notes = [Note("the flavour is chosen here", ctx.vm.spans["flavour"])] if "flavour" in ctx.vm.spans else []
    ctx.emit(ctx.vm.span_of("mmu"), f"`mmu radix` needs `kvm {' or '.join(htab.flavours)}`; `kvm {ctx.vm.flavour}` "
             "runs hash-MMU guests only", notes=notes, help="write `mmu hash` or `kvm book3s_hv`")


def htab_too_small(ctx: CheckContext) -> None:
    htab, vm = ctx.target.features.htab, ctx.vm
    if htab is None or not isinstance(vm.htab, int) or vm.memory is None:
        return
    auto = auto_htab_order(vm.memory, htab.order_min, htab.order_max, htab.auto_shift)
    if vm.htab < auto:
        ctx.emit(vm.span_of("htab"), f"htab order {vm.htab} ({1 << vm.htab >> 10} KiB) is smaller than `auto` "
                 f"would choose for {size_text(vm.memory)} of memory (order {auto})",
                 notes=[Note("memory is set here", vm.spans.get("memory"))] if "memory" in vm.spans else (),
                 help=f"write `htab order {auto}` or `htab auto`")


# How far above `htab auto` an explicit order may go before it is surely a mistake: 16 times
# QEMU's RAM/128 is RAM/8, eight times what PAPR recommends (RAM/64).
HTAB_TOO_LARGE_SHIFT = 4


def htab_too_large(ctx: CheckContext) -> None:
    htab, vm = ctx.target.features.htab, ctx.vm
    if htab is None or not isinstance(vm.htab, int) or vm.memory is None:
        return
    auto = auto_htab_order(vm.memory, htab.order_min, htab.order_max, htab.auto_shift)
    if vm.htab > auto + HTAB_TOO_LARGE_SHIFT:
        ctx.emit(vm.span_of("htab"), f"htab order {vm.htab} ({size_text(1 << vm.htab)}) is 2^{vm.htab - auto} times "
                 f"what `auto` picks for {size_text(vm.memory)} of memory (order {auto}, {size_text(1 << auto)})",
                 notes=[Note("memory is set here", vm.spans.get("memory"))] if "memory" in vm.spans else (),
                 help=f"write `htab order {auto}` or `htab auto`; KVM takes the table from physically contiguous "
                      "host memory, and as much again for its reverse map")


def rma_obsolete(ctx: CheckContext) -> None:
    if ctx.target.features.rma is None or ctx.vm.rma in (None, "none"):
        return
    ctx.emit(ctx.vm.span_of("rma"), "RMA allocation is obsolete: current kernels have no KVM_ALLOCATE_RMA",
             help="write `rma none` (or drop it); the guest runs from the virtual RMA")


def tce_liobn_duplicate(ctx: CheckContext) -> None:
    first: dict[int, ir.Tce] = {}
    for tce in ctx.vm.tces:
        if tce.liobn in first:
            other = first[tce.liobn]
            ctx.emit(tce.span, f"tce {tce.name} uses LIOBN {tce.liobn:#x}, like tce {other.name}",
                     notes=[Note("first used here", other.span)], help="give every TCE table its own LIOBN")
        else:
            first[tce.liobn] = tce


def tce_liobn_too_large(ctx: CheckContext) -> None:
    tce_data = ctx.target.features.tce
    if tce_data is None:
        return
    for tce in ctx.vm.tces:
        if tce.liobn >> tce_data.liobn_bits:
            ctx.emit(tce.span, f"tce {tce.name}: LIOBN {tce.liobn:#x} does not fit in {tce_data.liobn_bits} bits",
                     help=f"VIO LIOBNs start at {tce_data.vio_liobn_base:#x}, PCI ones at {tce_data.pci_liobn_base:#x}")


def _page_shift(page: int) -> int | None:
    return page.bit_length() - 1 if page > 0 and not page & (page - 1) else None


def tce_page_size(ctx: CheckContext) -> None:
    tce_data = ctx.target.features.tce
    if tce_data is None:
        return
    lo, hi = tce_data.page_shift_min, tce_data.page_shift_max
    for tce in ctx.vm.tces:
        shift = _page_shift(tce.page)
        if shift is None:
            ctx.emit(tce.span, f"tce {tce.name}: page size {tce.page:#x} is not a power of two")
        elif not lo <= shift <= hi:
            ctx.emit(tce.span, f"tce {tce.name}: page size 2^{shift} is outside 2^{lo}..2^{hi} (4K..16G)")


def tce_window_align(ctx: CheckContext) -> None:
    if ctx.target.features.tce is None:
        return
    for tce in ctx.vm.tces:
        if _page_shift(tce.page) is None:
            continue  # tce-page-size
        for field in ("window", "offset"):
            value = getattr(tce, field)
            if value % tce.page:
                ctx.emit(tce.span, f"tce {tce.name}: {field} {value:#x} is not a multiple of the page size "
                         f"{tce.page:#x}", help=f"KVM counts the {field} in IOMMU pages")


def tce_window_overflow(ctx: CheckContext) -> None:
    if ctx.target.features.tce is None:
        return
    for tce in ctx.vm.tces:
        # The kernel counts in pages and refuses offset + size > ULLONG_MAX >> page_shift, so the
        # last page below 2^64 is out of reach too.
        if tce.offset + tce.window > U64_LIMIT - tce.page:
            ctx.emit(tce.span, f"tce {tce.name}: offset {tce.offset:#x} + window {tce.window:#x} reaches 2^64 "
                     f"(KVM takes windows that end at most one page below it)")


def _window(tce: ir.Tce) -> tuple[int, int]:
    return tce.offset, tce.offset + tce.window


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _bus_range(window: tuple[int, int]) -> str:
    return f"[{window[0]:#x}, {window[1]:#x})"


def _tables_by_phb(ctx: CheckContext) -> dict[int, list[ir.Tce]]:
    """The PCI tables of the VM by the PHB their LIOBN names, in source order. A VIO table is
    its own address space (every VIO device has its own LIOBN), so only a PHB's bus is shared."""
    tce_data = ctx.target.features.tce
    by_phb: dict[int, list[ir.Tce]] = {}
    if tce_data is None:
        return by_phb
    for tce in ctx.vm.tces:
        phb = None if tce.liobn >> tce_data.liobn_bits else tce_data.phb(tce.liobn)  # (tce-liobn-too-large)
        if phb is not None:
            by_phb.setdefault(phb, []).append(tce)
    return by_phb


def tce_window_overlap(ctx: CheckContext) -> None:
    tce_data = ctx.target.features.tce
    if tce_data is None:
        return
    mmio32 = (tce_data.pci_mem32_bus, 1 << 32)
    for phb, tables in _tables_by_phb(ctx).items():
        for index, tce in enumerate(tables):
            window = _window(tce)
            other = next((t for t in tables[:index] if _overlap(window, _window(t))), None)
            if other is not None:
                ctx.emit(tce.span, f"tce {tce.name}: its DMA window {_bus_range(window)} overlaps tce {other.name}'s "
                         f"{_bus_range(_window(other))} on the bus of PHB {phb}",
                         notes=[Note("that window is declared here", other.span)],
                         help="give each table a PHB of its own (LIOBN "
                              f"{tce_data.pci_liobn_base:#x} | PHB << {tce_data.pci_window_bits})")
            elif _overlap(window, mmio32):
                ctx.emit(tce.span, f"tce {tce.name}: its DMA window {_bus_range(window)} overlaps the 32-bit MMIO "
                         f"window {_bus_range(mmio32)} of PHB {phb} on the same bus",
                         help=f"end the window at {mmio32[0]:#x} or below (QEMU's default is [0, 1G)), or move it "
                              "above 4G with `offset`")


def tce_phb_shared(ctx: CheckContext) -> None:
    tce_data = ctx.target.features.tce
    if tce_data is None:
        return
    by_phb = _tables_by_phb(ctx)
    free = max(by_phb, default=-1) + 1
    for phb, tables in by_phb.items():
        first = tables[0]
        for index, tce in enumerate(tables[1:], start=1):
            if any(_overlap(_window(tce), _window(t)) for t in tables[:index]):
                continue  # tce-window-overlap says so
            liobn = tce_data.pci_liobn_base | free << tce_data.pci_window_bits
            ctx.emit(tce.span, f"tce {tce.name} is a second DMA window on PHB {phb}, beside tce {first.name}: "
                     "hvconf describes a PHB with one window, so both would be host bridges with the same "
                     "MMIO window", notes=[Note("the PHB's window is declared here", first.span)],
                     help=f"give it a PHB of its own, e.g. `liobn {liobn:#x}`; a second window on one PHB is the "
                          "guest's to create at run time (ibm,create-pe-dma-window)")
            free += 1


def rtas_token_duplicate(ctx: CheckContext) -> None:
    by_number: dict[int, Span | None] = {}
    by_name: dict[str, Span | None] = {}
    for tok in ctx.vm.rtas:
        if tok.name in by_name:
            ctx.emit(tok.span, f"RTAS call \"{tok.name}\" is given a token twice",
                     notes=[Note("first given here", by_name[tok.name])])
        elif tok.token in by_number:
            ctx.emit(tok.span, f"RTAS token {tok.token:#x} is used twice",
                     notes=[Note("first used here", by_number[tok.token])],
                     help="every RTAS call needs its own token")
        by_name.setdefault(tok.name, tok.span)
        by_number.setdefault(tok.token, tok.span)


def rtas_token_low(ctx: CheckContext) -> None:
    rtas = ctx.target.features.rtas
    if rtas is None:
        return
    for tok in ctx.vm.rtas:
        if tok.token < rtas.token_min:
            ctx.emit(tok.span, f"RTAS token {tok.token:#x} is below {rtas.token_min:#x}, where QEMU and kvmtool "
                     "start numbering", help=f"use tokens from {rtas.token_min:#x} up")


PAPR_CAP = "KVM_CAP_PPC_PAPR"


def _vcpus_without_papr(vm: ir.Vm, vcpus: int) -> list[int]:
    """The vCPUs below `vcpus` that no statement enables KVM_CAP_PPC_PAPR on (bounded by the
    target's limit, as common.vcpu_count: the IR allows 2^32 - 1 vCPUs)."""
    named: set[int] = set()
    for use in vm.caps:
        if use.name == PAPR_CAP:
            if use.vcpu is None:
                return []
            named.add(use.vcpu)
    return [i for i in range(vcpus) if i not in named]


def xics_needs_papr(ctx: CheckContext) -> None:
    vm = ctx.vm
    if vm.irqchip != "xics":
        return
    vcpus = vcpu_count(vm, ctx.target)
    missing = _vcpus_without_papr(vm, vcpus)
    if missing:
        which = "any vCPU" if len(missing) == vcpus else f"vCPU {vcpu_list(missing)}"
        ctx.emit(vm.span_of("irqchip"), f"`irqchip xics` connects every vCPU with KVM_CAP_IRQ_XICS, which KVM "
                 f"refuses on a vCPU without {PAPR_CAP} ({which})", help=f"add `cap {PAPR_CAP} on vcpus`")


def kernel_needs_irqchip(ctx: CheckContext) -> None:
    vm, irqchip = ctx.vm, ctx.target.features.irqchip
    if vm.kernel is None or vm.vcpus < 2 or vm.irqchip == "xics" or irqchip is None or "xics" not in irqchip.modes:
        return
    ctx.emit(vm.span_of("kernel"), f"a kernel on {vm.vcpus} vCPUs without an interrupt controller: its IPIs "
             "are lost", help="add `irqchip xics` (a Linux kernel needs its node even on one vCPU)")


def linux_pci_unserved(ctx: CheckContext) -> None:
    vm, tce = ctx.vm, ctx.target.features.tce
    if vm.kernel is None or tce is None:
        return
    for table in vm.tces:
        if table.liobn >= tce.pci_liobn_base:
            ctx.emit(table.span, f"tce '{table.name}' makes a PCI host bridge, which Linux probes with RTAS "
                     "ibm,read-pci-config and friends; nothing serves them", help="leave PCI windows out of a "
                     "Linux guest (a VIO window, LIOBN below 0x80000000, is fine)")


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("htab-order-range", E, "`htab order` outside the architected range", htab_order_range,
          why="kvmppc_allocate_hpt() (book3s_64_mmu_hv.c) rejects an order below PPC_MIN_HPT_ORDER (18) or "
              "above PPC_MAX_HPT_ORDER (46) with -EINVAL (KVM_PPC_ALLOCATE_HTAB, api.rst §4.86)."),
    Check("htab-wrong-flavour", E, "`htab` with a KVM flavour that has no in-kernel HPT", htab_wrong_flavour,
          why="KVM_PPC_ALLOCATE_HTAB is Book3S HV only (KVM_CAP_PPC_ALLOC_HTAB = hv_enabled); PR KVM takes "
              "the HPT from userspace through SDR1 in KVM_SET_SREGS (QEMU spapr_encode_hpt_for_kvm_pr)."),
    Check("htab-radix", E, "`htab` with `mmu radix`", htab_radix,
          why="A radix guest has no hash page table; KVM_PPC_ALLOCATE_HTAB switches a radix VM back to "
              "HPT mode (kvmppc_alloc_reset_hpt), and QEMU skips the HPT for radix guests "
              "(spapr_machine_reset)."),
    Check("mmu-radix-needs-hv", E, "`mmu radix` with a KVM flavour that has no radix guests", mmu_radix_needs_hv,
          why="KVM_PPC_CONFIGURE_V3_MMU with KVM_PPC_MMUV3_RADIX is Book3S HV on POWER9 and later "
              "(kvmhv_configure_mmu); Book3S PR emulates the hash MMU only and has no radix support."),
    Check("htab-too-small", W, "an explicit HTAB order smaller than `htab auto` would choose", htab_too_small,
          requires=("htab-order-range",),
          why="QEMU sizes the HPT at RAM/128 rounded up to a power of two (spapr_hpt_shift_for_ramsize, "
              "PAPR recommends RAM/64); a smaller table thrashes HPTE evictions and caps the VRMA "
              "(kvmppc_vrma_limit)."),
    Check("htab-too-large", W, "an explicit HTAB order far larger than the memory needs", htab_too_large,
          requires=("htab-order-range", "htab-wrong-flavour", "htab-radix"),
          why="KVM_PPC_ALLOCATE_HTAB (api.rst §4.86) has kvmppc_allocate_hpt (book3s_64_mmu_hv.c) take "
              "2^order bytes of physically contiguous host memory, from KVM's CMA area or the page "
              "allocator, plus a vmalloc'ed reverse map of 16 bytes per 16-byte HPTE; it accepts any order "
              "up to PPC_MAX_HPT_ORDER (46, 64 TiB). QEMU sizes the table at RAM/128 "
              "(spapr_hpt_shift_for_ramsize), PAPR recommends RAM/64; an order more than 4 above `auto` "
              "(RAM/8 or more) only costs host memory, or fails the ioctl with -ENOMEM."),
    Check("rma-obsolete", W, "an RMA size is requested", rma_obsolete,
          why="KVM_ALLOCATE_RMA served PPC970 only and was removed; KVM_CAP_PPC_RMA reads 0 on current "
              "kernels (powerpc.c kvm_vm_ioctl_check_extension). A host reporting 2 (RMA required) "
              "cannot run the guest."),
    Check("tce-liobn-duplicate", E, "two TCE tables share a LIOBN", tce_liobn_duplicate,
          why="KVM_CREATE_SPAPR_TCE_64 returns -EBUSY for a LIOBN already used in the VM "
              "(book3s_64_vio.c kvm_vm_ioctl_create_spapr_tce; api.rst §4.98); QEMU refuses it too "
              "(spapr_tce_new_table)."),
    Check("tce-liobn-too-large", E, "a LIOBN above 32 bits", tce_liobn_too_large,
          why="LIOBNs are one DT cell in ibm,my-dma-window and 32-bit in PAPR's H_PUT_TCE; QEMU's "
              "spapr_tce_find_by_liobn ignores wider values."),
    Check("tce-page-size", E, "a TCE page size that is not a power of two in 4K..16G", tce_page_size,
          why="KVM_CREATE_SPAPR_TCE_64 takes a page_shift; the kernel rejects page_shift < 12 or > 34 "
              "with -EINVAL (kvm_vm_ioctl_create_spapr_tce; api.rst §4.98)."),
    Check("tce-window-align", E, "a TCE window or offset that is not a whole number of pages", tce_window_align,
          why="kvm_create_spapr_tce_64 gives offset and size in IOMMU pages (api.rst §4.98), so a window "
              "or bus offset that is not a multiple of the page size cannot be expressed."),
    Check("tce-window-overflow", E, "a TCE window that reaches 2^64", tce_window_overflow,
          why="kvm_vm_ioctl_create_spapr_tce returns -EINVAL when offset + size, in IOMMU pages, is "
              "more than ULLONG_MAX >> page_shift (book3s_64_vio.c): a window may end one page below "
              "2^64 at most."),
    Check("tce-window-overlap", E, "a PCI DMA window overlaps another window on the same PHB's bus",
          tce_window_overlap,
          why="A PHB translates each bus address through one window: QEMU maps every TCE table of a PHB "
              "into one address space, its default window at [0, 1G) and the dynamic 64-bit one at 2^59 "
              "(hw/ppc/spapr_pci.c spapr_phb_realize, dma_win_addr/dma64_win_addr), and the bus's "
              "32-bit MMIO window, which hvconf's tree writes in the PHB's `ranges`, starts at 2G "
              "(SPAPR_PCI_MEM_WIN_BUS_OFFSET). Linux keeps that MMIO range out of a PHB's DMA window "
              "too (arch/powerpc/platforms/powernv/pci-ioda.c pnv_pci_ioda2_setup_default_config). "
              "VIO windows are not checked: each VIO device has a LIOBN and an address space of its "
              "own, and QEMU starts them all at bus address 0 (spapr_vio.c)."),
    Check("tce-phb-shared", E, "two TCE tables on the same PCI host bridge", tce_phb_shared,
          why="A PCI LIOBN is 0x80000000 | PHB << 8 | window (QEMU SPAPR_PCI_LIOBN). At boot a PHB has "
              "one DMA window, LIOBN window 0 (spapr_phb_dma_reset), and its node one `ibm,dma-window` "
              "(spapr_populate_pci_dt); a second window exists only once the guest asks for it with "
              "ibm,create-pe-dma-window (hw/ppc/spapr_rtas_ddw.c). hvconf writes a `pci@` node per "
              "PCI table, so two tables on one PHB would be two host bridges claiming the same MMIO "
              "window."),
    Check("rtas-token-duplicate", E, "an RTAS token number or call name is given twice", rtas_token_duplicate,
          why="KVM_PPC_RTAS_DEFINE_TOKEN returns -EEXIST for a token already in use (book3s_rtas.c "
              "rtas_token_define); /rtas holds one property per call name, and QEMU's "
              "spapr_rtas_register refuses duplicates."),
    Check("xics-needs-papr", E, "`irqchip xics` on a vCPU without KVM_CAP_PPC_PAPR", xics_needs_papr,
          why="KVM_ENABLE_CAP(KVM_CAP_IRQ_XICS) fails with EINVAL on a vCPU that is not in PAPR mode: the "
              "end of arch/powerpc/kvm/powerpc.c kvm_vcpu_ioctl_enable_cap runs the flavour's sanity check, "
              "and KVM-HV only runs PAPR vCPUs (docs/kernel-facts.md#booting-linux-from-a-flattened-tree). "
              "The plan connects each vCPU after its PAPR cap; the cap must be there."),
    Check("kernel-needs-irqchip", W, "a kernel on several pseries vCPUs without `irqchip xics`",
          kernel_needs_irqchip,
          why="Linux on pseries finds its interrupt controller in the tree: without /interrupt-controller it "
              "BUG()s in xics_smp_probe (arch/powerpc/sysdev/xics/xics-common.c), even with one vCPU; with "
              "more, IPIs that userspace swallowed were lost and a boot never reached /init. `irqchip xics` "
              "writes the node and gives the guest the kernel's XICS (docs/linux-guests.md)."),
    Check("linux-pci-unserved", W, "a PCI DMA window in a Linux guest", linux_pci_unserved,
          why="A `tce` table with a PCI LIOBN makes the tree carry a PHB node; Linux probes it through the "
              "RTAS calls ibm,read-pci-config, ibm,write-pci-config and friends (QEMU hw/ppc/spapr_pci.c), "
              "which neither the kernel nor the launcher serves, so the boot stalls or fails there."),
    Check("rtas-token-low", W, "an RTAS token below the usual base", rtas_token_low,
          why="QEMU (RTAS_TOKEN_BASE) and kvmtool number RTAS tokens from 0x2000; old kernels' early "
              "debug code treats token 0xa specially (QEMU spapr_rtas_call)."),
)
