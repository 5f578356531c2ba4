"""Where an sPAPR VM's boot files go: kernel, initrd, RTAS blob and device tree, placed once per build.

A Linux kernel entered with a flattened tree (docs/linux-guests.md) finds everything through the
tree: the initrd in /chosen (linux,initrd-start/-end), the RTAS entry in /rtas (linux,rtas-base,
linux,rtas-entry, with a /memreserve/ so Linux never allocates it). The layout:

- the kernel: an ELF's PT_LOAD segments at their p_paddr (0 for vmlinux), memsz counted, or a
  `flat` image at 0;
- the initrd above the kernel's end, rounded up to target.toml's `initrd_align` (64 MiB: kvmtool's
  fixed 0x2800000 lies inside the bss of Debian's 6.1 vmlinux), or at `initrd_default` when the
  kernel is not there at build time;
- the RTAS blob (QEMU's and kvmtool's 5-instruction H_RTAS trampoline) 64 KiB below the tree;
- the tree 64 KiB below the end of the first 256 MiB (ppc64_spapr.fdt_address: the smallest RMA).

`layout(ctx)` computes it once (the tree needs the addresses, the plan the bytes) and reports
`boot-images-overlap` when two of them overlap or one leaves memory. Tests: tests/test_boot_images.py.
"""

from __future__ import annotations

from typing import NamedTuple

from hvconf.platforms import common
from hvconf.platforms.base import BuildContext

FDT_MAX_SIZE = 0x1_0000
RMA_CEILING = 0x1000_0000  # keep the FDT inside the smallest VRMA a guest gets (256 MiB)
RTAS_AREA = 0x1_0000  # the RTAS blob, its error log and per-vCPU words (rtas-size) fit in 64 KiB
RTAS_ERROR_LOG_MAX = 2048  # QEMU RTAS_ERROR_LOG_MAX


def fdt_address(memory: int) -> int:
    return min(memory, RMA_CEILING) - FDT_MAX_SIZE


def rtas_size(vcpus: int, blob: int) -> int:
    """QEMU's rtas-size: the blob, the error log, 16 bytes per vCPU and 8."""
    return blob + RTAS_ERROR_LOG_MAX + vcpus * 16 + 8


class Initrd(NamedTuple):
    address: int
    size: int  # 0 when missing at build time (the launcher's --initrd FILE sets linux,initrd-end)
    data: bytes | None


class Layout(NamedTuple):
    kernel: common.BootKernel | None
    initrd: Initrd | None
    rtas: int | None  # the RTAS blob's address: a Linux guest (one with a `kernel`) only
    rtas_size: int
    fdt: int


def _align_up(value: int, align: int) -> int:
    return -(-value // align) * align


def layout(ctx: BuildContext) -> Layout:
    """The VM's boot layout, computed (and its problems reported) on first use."""
    if ctx.boot is None:
        ctx.boot = _place(ctx)
        _check(ctx, ctx.boot)
    assert isinstance(ctx.boot, Layout)
    return ctx.boot


def _place(ctx: BuildContext) -> Layout:
    vm, boot = ctx.vm, ctx.target.features.boot
    assert vm.memory is not None  # a concrete VM without `memory` is an error before any output
    fdt = fdt_address(vm.memory)
    kernel = common.boot_kernel(ctx, load=0)
    initrd = None
    read = common.boot_initrd(ctx)
    if read is not None and boot is not None:
        size, data = read
        known = kernel is not None and kernel.data is not None
        address = _align_up(kernel.end, boot.initrd_align) if known and kernel else boot.initrd_default
        initrd = Initrd(address, size, data)
    blob = 4 * len(boot.rtas_blob) if boot is not None else 0
    rtas = fdt - RTAS_AREA if vm.kernel is not None and blob else None
    return Layout(kernel, initrd, rtas, rtas_size(vm.vcpus, blob), fdt)


def areas(boot: Layout) -> list[tuple[str, int, int]]:
    """(what, start, end) of everything placed, the tree included."""
    found = [("the device tree", boot.fdt, boot.fdt + FDT_MAX_SIZE)]
    if boot.kernel is not None and boot.kernel.end > boot.kernel.start:
        found.append(("the kernel", boot.kernel.start, boot.kernel.end))
    if boot.initrd is not None:
        found.append(("the initrd", boot.initrd.address, boot.initrd.address + boot.initrd.size))
    if boot.rtas is not None:
        found.append(("the RTAS blob", boot.rtas, boot.rtas + boot.rtas_size))
    return found


def _check(ctx: BuildContext, boot: Layout) -> None:
    """`boot-images-overlap`: two placed files overlap, or one ends beyond memory."""
    vm = ctx.vm
    assert vm.memory is not None
    span = vm.spans.get("initrd") if boot.initrd is not None else vm.spans.get("kernel")
    placed = sorted(areas(boot), key=lambda a: a[1])
    for what, start, end in placed:
        if end > vm.memory:
            ctx.report.error("boot-images-overlap", f"{what} [{start:#x}, {end:#x}) ends beyond the VM's "
                             f"{vm.memory:#x} bytes of memory", span or vm.span,
                             help="raise `memory`, or boot a smaller kernel or initrd")
            return
    for (what, start, end), (other, other_start, other_end) in zip(placed, placed[1:]):
        if other_start < end:
            ctx.report.error("boot-images-overlap", f"{what} [{start:#x}, {end:#x}) overlaps {other} "
                             f"[{other_start:#x}, {other_end:#x})", span or vm.span,
                             help="raise `memory` (the tree and RTAS stay below 256 MiB), or boot a smaller "
                                  "kernel or initrd")
            return
