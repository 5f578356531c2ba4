"""Rules for booting a Linux kernel: an `initrd` needs a `kernel`; on x86 (the target's
[features.linux_boot], Documentation/arch/x86/boot.rst) the command line must fit Linux's
buffer, RAM must fit below the interrupt controllers' windows, the kernel needs the
in-kernel irqchip and PIT to tick, its vCPUs must fit an MP table, and it is a bzImage or an
ELF vmlinux (the loader knows no `flat` image: a raw binary is a `guest`). Whether the kernel
and initrd files fit in memory is the build's to say (it reads them: hvconf/platforms/x86_64.py).
Tested by tests/test_explain.py (the samples in tests/invalid), tests/kvm/test_linux_boot.py and
tests/x86 (a real boot).
"""

from __future__ import annotations

from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity


def initrd_without_kernel(ctx: CheckContext) -> None:
    vm = ctx.vm
    if vm.initrd is not None and vm.kernel is None and vm.guest is None:
        ctx.emit(vm.span_of("initrd"), "an `initrd` is given to a kernel, but the VM names no `kernel`",
                 help='add `kernel "FILE"` (or pass --kernel FILE to the launcher), or remove the initrd')
    elif vm.initrd is not None and vm.guest is not None:
        ctx.emit(vm.span_of("initrd"), "an `initrd` is read by a Linux kernel; a `guest` image never sees it",
                 notes=[Note("the guest image is here", vm.guest.span)], help="remove the initrd")


def cmdline_too_long(ctx: CheckContext) -> None:
    boot, vm = ctx.target.features.linux_boot, ctx.vm
    if boot is None or vm.cmdline is None:
        return
    size = len(vm.cmdline.encode("utf-8")) + 1
    if size > boot.cmdline_max:
        ctx.emit(vm.span_of("cmdline"), f"the command line takes {size} bytes with its NUL; Linux copies at "
                 f"most {boot.cmdline_max}", help="shorten it")


def linux_memory(ctx: CheckContext) -> None:
    boot, vm = ctx.target.features.linux_boot, ctx.vm
    if boot is None or vm.kernel is None or vm.memory is None or vm.memory <= boot.memory_max:
        return
    ctx.emit(vm.span_of("memory"), f"a Linux guest's RAM is one slot from address 0, so it must end by "
             f"{boot.memory_max:#x}, below the IOAPIC and local APIC windows; this is {vm.memory:#x}",
             notes=[Note("the kernel is named here", vm.spans.get("kernel"))],
             help=f"lower `memory` to {boot.memory_max >> 20}M or less")


def kernel_flat_unsupported(ctx: CheckContext) -> None:
    """A target that boots its kernels by the Linux boot protocol (x86's [features.linux_boot]) reads
    the kernel's own header to place it; a raw image has none, and `guest "FILE" at ADDR` already
    loads raw bytes where they are asked for."""
    vm = ctx.vm
    if ctx.target.features.linux_boot is None or vm.kernel is None or vm.kernel_format != "flat":
        return
    ctx.emit(vm.spans.get("kernel_format") or vm.span_of("kernel"),
             f"on {vm.arch} a kernel is booted by the Linux boot protocol, which reads a bzImage or an "
             "ELF vmlinux; it has no `flat` (raw) format",
             help='remove `flat`; for a raw binary, write `guest "FILE.bin" at ADDR` instead of `kernel`')


def linux_too_many_vcpus(ctx: CheckContext) -> None:
    boot, vm = ctx.target.features.linux_boot, ctx.vm
    if boot is None or vm.kernel is None or vm.vcpus <= boot.max_cpus:
        return
    ctx.emit(vm.span_of("vcpus"), f"a Linux guest finds its vCPUs in the MP table, which names at most "
             f"{boot.max_cpus}; this VM has {vm.vcpus}", help=f"lower `vcpus` to {boot.max_cpus} or fewer")


def linux_needs_irqchip(ctx: CheckContext) -> None:
    f, vm = ctx.target.features, ctx.vm
    if f.linux_boot is None or vm.kernel is None or f.irqchip is None or f.pit is None:
        return
    irqchip = vm.irqchip or f.irqchip.default
    pit = vm.pit or f.pit.default
    missing = [text for text, ok in (("`irqchip kernel`", irqchip == "kernel"), ("`pit on`", pit != "off")) if not ok]
    if missing:
        ctx.emit(vm.span_of("kernel"), f"a Linux kernel needs the in-kernel irqchip and PIT: without "
                 f"{' and '.join(missing)} its timer never ticks and the serial console gets no interrupt",
                 help=f"add {' and '.join(missing)}")


E = Severity.ERROR

CHECKS: tuple[Check, ...] = (
    Check("initrd-without-kernel", E, "an `initrd` with no kernel to read it", initrd_without_kernel,
          why="An initial ramdisk is handed to a Linux kernel (x86: boot_params ramdisk_image and "
              "ramdisk_size, Documentation/arch/x86/boot.rst; a device tree's /chosen linux,initrd-start "
              "elsewhere); a VM without a `kernel`, or one that boots a `guest` image, has nobody to read "
              "it."),
    Check("cmdline-too-long", E, "the kernel command line does not fit Linux's buffer", cmdline_too_long,
          why="Linux copies at most COMMAND_LINE_SIZE bytes (2048 on x86, arch/x86/include/asm/setup.h; "
              "boot.rst cmdline_size) of the command line, NUL included, and cuts the rest silently."),
    Check("linux-memory-hole", E, "a Linux guest's RAM reaches the interrupt controllers' windows", linux_memory,
          why="hvconf maps RAM as one KVM_SET_USER_MEMORY_REGION slot from address 0 (api.rst §4.35), and "
              "the e820 map the launcher gives the kernel says so; the in-kernel IOAPIC answers at "
              "0xFEC00000 and each local APIC at 0xFEE00000, which RAM must not cover. hvconf stops at "
              "3 GiB, where a PC's PCI hole begins (QEMU's pc machine, below_4g_mem_size)."),
    Check("kernel-flat-unsupported", E, "`kernel \"FILE\" flat` on a target that boots Linux by its boot "
          "protocol", kernel_flat_unsupported,
          why="On x86_64 the launcher boots a `kernel` by the 64-bit boot protocol "
              "(Documentation/arch/x86/boot.rst): it reads a bzImage's setup header (setup_sects, the "
              "protocol version, init_size) or an ELF vmlinux's program headers to know where the kernel "
              "goes and where it is entered (hvconf/kvm/x86/linux.py; kvmtool's x86/kvm.c load_bzimage). "
              "A raw image carries neither, so `flat` cannot be honoured there. Raw bytes at a chosen "
              "address are what `guest` loads (with `at`, entered in its `mode`)."),
    Check("linux-too-many-vcpus", E, "more vCPUs than a Linux guest's MP table can name", linux_too_many_vcpus,
          why="Without firmware there is no ACPI MADT: the launcher shows Linux its vCPUs in an Intel MP "
              "table (hvconf/kvm/x86/mptable.py, as kvmtool's x86/mptable.c and Firecracker's "
              "arch/x86_64/mptable.rs write it), whose processor entries carry 8-bit local APIC ids. 0xFF "
              "is the broadcast id and the IOAPIC takes one more, so 254 is the most it can name "
              "(Firecracker's MAX_SUPPORTED_CPUS); the KVM vCPU id is the APIC id."),
    Check("linux-needs-irqchip", E, "a Linux kernel without the in-kernel irqchip and PIT", linux_needs_irqchip,
          why="With no firmware there is no ACPI MADT, so Linux finds its timer in the 8254 PIT, behind the "
              "8259 PIC (one vCPU, no MP table) or the IOAPIC the MP table names (more vCPUs): "
              "KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (api.rst §4.24, §4.45). "
              "Without them its timer never ticks (calibration and `reboot -f` hang), and the 16550 "
              "console's interrupt (KVM_IRQ_LINE on IRQ 4) has no controller to reach "
              "(docs/x86-linux.md)."),
)
