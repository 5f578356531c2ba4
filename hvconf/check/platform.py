"""Rules for the platform settings every target shares: memory size, vCPU and
thread counts, settings a target does not support, console/irqchip/pit
values, and the guest image.

Every limit and every "does this target have X" answer is target data
(targets/*/target.toml), except KVM's own cap on one memory slot.
Tested by tests/test_checks.py and tests/test_hostile_inputs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hvconf.check.common import did_you_mean, usable_caps
from hvconf.check.registry import Check, CheckContext
from hvconf.diagnostics import Note, Severity, Span
from hvconf.model import ir
from hvconf.model.target_toml import size_text
from hvconf.model.inputs import GUEST_FORMATS  # by file suffix; whether the file is usable: model/inputs.py

if TYPE_CHECKING:
    from hvconf.model.target import Target


def memory_granularity(ctx: CheckContext) -> None:
    vm, mem = ctx.vm, ctx.target.memory
    if vm.memory is None or vm.memory % mem.granularity == 0:
        return
    down = vm.memory - vm.memory % mem.granularity
    up = down + mem.granularity
    choices = " or ".join(f"`memory {size_text(n)}`" for n in (down, up) if n >= mem.min)
    ctx.emit(vm.span_of("memory"), f"memory {size_text(vm.memory)} is not a multiple of {size_text(mem.granularity)} "
             f"on target {ctx.target.name}", help=f"write {choices}" if choices else None)


def memory_too_small(ctx: CheckContext) -> None:
    vm, mem = ctx.vm, ctx.target.memory
    if vm.memory is not None and vm.memory < mem.min:
        ctx.emit(vm.span_of("memory"), f"memory {size_text(vm.memory)} is below the {size_text(mem.min)} target "
                 f"{ctx.target.name} needs", help=f"write `memory {size_text(mem.min)}` or more")


# virt/kvm/kvm_main.c refuses a memory slot of more than KVM_MEM_MAX_NR_PAGES = 2^31 - 1 host
# pages (include/linux/kvm_host.h); the plan maps all RAM as slot 0. Largest base page a host of
# the target can have: x86 and s390 have only 4 KiB, powerpc kernels may use 64 KiB.
KVM_MEM_MAX_NR_PAGES = (1 << 31) - 1
HOST_PAGE_MAX = {"x86_64": 4 << 10, "s390x": 4 << 10}
HOST_PAGE_DEFAULT = 64 << 10


def memory_too_large(ctx: CheckContext) -> None:
    vm = ctx.vm
    limit = KVM_MEM_MAX_NR_PAGES * HOST_PAGE_MAX.get(ctx.target.name, HOST_PAGE_DEFAULT)
    if vm.memory is not None and vm.memory > limit:
        ctx.emit(vm.span_of("memory"), f"memory {size_text(vm.memory)} is more than one KVM memory slot holds on "
                 f"target {ctx.target.name} ({limit:#x} bytes)", help="KVM_SET_USER_MEMORY_REGION refuses it "
                 "with EINVAL; no host has that much RAM for a guest anyway")


def vcpus_too_many(ctx: CheckContext) -> None:
    limit = ctx.target.limits.max_vcpus
    if ctx.vm.vcpus > limit:
        ctx.emit(ctx.vm.span_of("vcpus"), f"{ctx.vm.vcpus} vCPUs exceed the {limit} target {ctx.target.name} allows")


def _threads_supported(target: "Target") -> bool:
    return target.limits.threads_per_core_max is not None


def threads_not_power_of_two(ctx: CheckContext) -> None:
    t = ctx.vm.threads
    if _threads_supported(ctx.target) and ctx.target.limits.threads_power_of_two and t & (t - 1):
        ctx.emit(ctx.vm.span_of("threads"), f"threads {t} is not a power of two",
                 help=f"write `threads {1 << (t.bit_length() - 1)}` or `threads {1 << t.bit_length()}`")


def threads_too_many(ctx: CheckContext) -> None:
    limit = ctx.target.limits.threads_per_core_max
    if limit is not None and ctx.vm.threads > limit:
        ctx.emit(ctx.vm.span_of("threads"), f"threads {ctx.vm.threads} exceeds {limit} threads per core")


def vcpus_threads_mismatch(ctx: CheckContext) -> None:
    vm = ctx.vm
    if _threads_supported(ctx.target) and vm.vcpus % vm.threads:
        ctx.emit(vm.span_of("vcpus"), f"{vm.vcpus} vCPUs do not fill whole cores of {vm.threads} threads",
                 notes=[Note("threads per core are set here", vm.spans.get("threads"))] if "threads" in vm.spans else (),
                 help=f"make `vcpus` a multiple of {vm.threads}")


# The cap that sets the virtual SMT mode, and its argument (api.rst §7.11).
SMT_CAP, SMT_ARG = "KVM_CAP_PPC_SMT", "vsmt_mode"


def threads_wrong_flavour(ctx: CheckContext) -> None:
    vm, row = ctx.vm, ctx.target.name2cap.get(SMT_CAP)
    if row is None or vm.threads <= 1 or vm.flavour not in ctx.target.flavours or vm.flavour in (row.flavours or ()):
        return
    with_smt = " or ".join(f"`kvm {f}`" for f in row.flavours or ())
    notes = [Note("the flavour is chosen here", vm.spans["flavour"])] if "flavour" in vm.spans else []
    ctx.emit(vm.span_of("threads"), f"`threads {vm.threads}` needs a virtual SMT mode ({SMT_CAP}), which only "
             f"{with_smt} has; `kvm {vm.flavour}` runs every vCPU as a core of its own", notes=notes,
             help=f"write `threads 1` (or drop it), or use {with_smt}")


def vsmt_below_threads(ctx: CheckContext) -> None:
    vm = ctx.vm
    for use, _row in usable_caps(vm, ctx.target):
        mode = use.arg_dict.get(SMT_ARG) if use.name == SMT_CAP else None
        if isinstance(mode, int) and not isinstance(mode, bool) and 0 < mode < vm.threads:
            ctx.emit(use.span, f"{SMT_CAP} {SMT_ARG} {mode} is below the {vm.threads} threads per core",
                     notes=[Note("threads per core are set here", vm.spans.get("threads"))] if "threads" in vm.spans else (),
                     help=f"write `{SMT_ARG} {vm.threads}` or more")


# setting as written -> (the spans where the VM writes it, whether the target supports it).
_Where = Callable[[ir.Vm], list[Span | None]]
_SETTINGS: tuple[tuple[str, _Where, Callable[["Target"], bool]], ...] = (
    ("htab", lambda vm: [vm.span_of("htab")] if vm.htab is not None else [], lambda t: t.features.htab is not None),
    ("rma", lambda vm: [vm.span_of("rma")] if vm.rma is not None else [], lambda t: t.features.rma is not None),
    # radix vs hash is the Book3S-64 MMU choice, offered where the HPT is.
    ("mmu", lambda vm: [vm.span_of("mmu")] if vm.mmu is not None else [], lambda t: t.features.htab is not None),
    ("tce", lambda vm: [t.span for t in vm.tces], lambda t: t.features.tce is not None),
    ("rtas", lambda vm: [vm.rtas[0].span] if vm.rtas else [], lambda t: t.features.rtas is not None),
    ("hypervisor", lambda vm: [vm.span_of("hypervisor")] if vm.hypervisor is not None else [],
     lambda t: t.features.hypervisor_node is not None),
    ("pv_features", lambda vm: [vm.span_of("pv_features")] if vm.pv_features else [],
     lambda t: t.features.pv_features is not None),
    ("irqchip", lambda vm: [vm.span_of("irqchip")] if vm.irqchip is not None else [],
     lambda t: t.features.irqchip is not None),
    ("pit", lambda vm: [vm.span_of("pit")] if vm.pit is not None else [], lambda t: t.features.pit is not None),
    # Flat guest images with a start mode: x86 (its only payload) and sPAPR (test guests beside kernels).
    ("guest", lambda vm: [vm.guest.span] if vm.guest is not None else [],
     lambda t: t.features.guest_modes is not None),
    ("kernel", lambda vm: [vm.span_of("kernel")] if vm.kernel is not None else [],
     lambda t: t.features.guest_modes is None or t.has_device_tree or t.features.linux_boot is not None),
    # An initrd is placed and announced by the platforms that say where (target.toml [features.boot], or
    # x86's [features.linux_boot]).
    ("initrd", lambda vm: [vm.span_of("initrd")] if vm.initrd is not None else [],
     lambda t: t.features.boot is not None or t.features.linux_boot is not None),
    # The command line reaches the guest through /chosen bootargs, or x86's boot_params.
    ("cmdline", lambda vm: [vm.span_of("cmdline")] if vm.cmdline is not None else [],
     lambda t: t.has_device_tree or t.features.linux_boot is not None),
    ("threads", lambda vm: [vm.span_of("threads")] if "threads" in vm.spans else [], _threads_supported),
    ("enforce", lambda vm: [vm.hcalls.enforce_span] if vm.hcalls.enforce else [],
     lambda t: any(c.managed == "enforce" for c in t.caps)),
)


def _unsupported(target: "Target") -> tuple[tuple[str, _Where], ...]:
    """The settings `target` does not support, worked out once per target (a target is
    immutable and loaded once per process), not once per VM."""
    known = _UNSUPPORTED.get(id(target))
    if known is None or known[0] is not target:
        known = _UNSUPPORTED[id(target)] = (target, tuple((s, w) for s, w, ok in _SETTINGS if not ok(target)))
    return known[1]


_UNSUPPORTED: dict[int, tuple["Target", tuple[tuple[str, _Where], ...]]] = {}  # holds the target: its id stays its own


def setting_unsupported(ctx: CheckContext) -> None:
    for setting, where in _unsupported(ctx.target):
        for span in where(ctx.vm):
            ctx.emit(span, f"`{setting}` is not supported by target {ctx.target.name}",
                     help=f"remove it (target {ctx.target.name}: {ctx.target.description})")


def unknown_console(ctx: CheckContext) -> None:
    name = ctx.vm.console
    if name is not None and name not in ctx.target.name2console:
        ctx.emit(ctx.vm.span_of("console"), f"target {ctx.target.name} has no console '{name}'",
                 help=did_you_mean(name, ctx.target.name2console)
                 or f"consoles are: {', '.join(ctx.target.name2console)}")


def unknown_mode(ctx: CheckContext) -> None:
    f = ctx.target.features
    for setting, value, modes in (("irqchip", ctx.vm.irqchip, f.irqchip), ("pit", ctx.vm.pit, f.pit)):
        if value is None or modes is None or value in modes.modes:
            continue
        ctx.emit(ctx.vm.span_of(setting), f"unknown {setting} mode '{value}'",
                 help=did_you_mean(value, modes.modes) or f"{setting} modes are: {', '.join(modes.modes)}")
    if ctx.vm.guest is not None and f.guest_modes is not None and ctx.vm.guest.mode not in f.guest_modes.modes:
        ctx.emit(ctx.vm.guest.span, f"unknown guest mode '{ctx.vm.guest.mode}'",
                 help=did_you_mean(ctx.vm.guest.mode, f.guest_modes.modes))


def pit_needs_irqchip(ctx: CheckContext) -> None:
    pit, irqchip = ctx.target.features.pit, ctx.target.features.irqchip
    vm = ctx.vm
    if pit is None or vm.pit is None or vm.pit == pit.default or vm.pit not in pit.modes or not pit.irqchip_modes:
        return
    current = vm.irqchip or (irqchip.default if irqchip else None)
    if current in pit.irqchip_modes:
        return
    notes = [Note(f"irqchip is {current} here", vm.spans.get("irqchip"))] if "irqchip" in vm.spans else []
    ctx.emit(vm.span_of("pit"), f"`pit {vm.pit}` needs `irqchip {' or '.join(pit.irqchip_modes)}` "
             f"(the irqchip is {current})", notes=notes,
             help=f"add `irqchip {pit.irqchip_modes[0]}`")


def guest_out_of_reach(ctx: CheckContext) -> None:
    vm, guest = ctx.vm, ctx.vm.guest
    if guest is None or guest.at is None or ctx.target.features.guest_modes is None:
        return
    if vm.memory is not None and guest.at >= vm.memory:
        ctx.emit(guest.span, f"the guest is loaded at {guest.at:#x}, beyond the VM's {vm.memory:#x} bytes of memory",
                 help="lower `at` or raise `memory`")
    elif guest.mode == "real" and (reach := ctx.target.features.guest_modes.real_reach) and guest.at >= reach:
        ctx.emit(guest.span, f"a real-mode guest starts at CS:IP = 0:{guest.at:#x}, but IP has 16 bits",
                 help="load it below 0x10000 (the default is 0x7c00)")


def guest_and_kernel(ctx: CheckContext) -> None:
    vm = ctx.vm
    if vm.guest is None or vm.kernel is None:
        return
    ctx.emit(vm.guest.span, "a VM boots either a `guest` image or a `kernel`, not both (both start where the "
             "kernel is entered)", notes=[Note("the kernel is named here", vm.spans.get("kernel"))],
             help="remove one of them")


def guest_format(ctx: CheckContext) -> None:
    guest = ctx.vm.guest
    if guest is None:
        return
    suffix = Path(guest.path).suffix
    if suffix not in GUEST_FORMATS:
        known = "; ".join(f"{s} ({what})" for s, what in GUEST_FORMATS.items())
        ctx.emit(guest.span, f"guest image '{guest.path}' has an unsupported format"
                 f"{f' ({suffix})' if suffix else ''}", help=f"guest images are {known}")


E, W = Severity.ERROR, Severity.WARNING

CHECKS: tuple[Check, ...] = (
    Check("memory-too-small", E, "memory below the target's minimum", memory_too_small,
          why="targets/<t>/target.toml [memory] min: the smallest RAM the platform layout fits in "
              "(one LMB on pseries, the device tree and payload window on e500)."),
    Check("memory-granularity", E, "memory is not a multiple of the target's granularity", memory_granularity,
          requires=("memory-too-small",),
          why="pseries RAM must be a multiple of the 256 MiB LMB size (QEMU spapr_validate_node_memory); "
              "e500 of 64 MiB (QEMU ppce500_init); s390 storage increments of 1 MiB; x86 maps whole 4 KiB "
              "pages with KVM_SET_USER_MEMORY_REGION (api.rst §4.35: sizes page-aligned)."),
    Check("memory-too-large", E, "memory beyond what one KVM memory slot can map", memory_too_large,
          requires=("memory-granularity",),
          why="__kvm_set_memory_region (virt/kvm/kvm_main.c) returns -EINVAL for a slot of more than "
              "KVM_MEM_MAX_NR_PAGES = 2^31 - 1 pages, about 8 TiB with 4 KiB host pages (128 TiB with "
              "64 KiB), and hvconf maps the guest's RAM as one slot (KVM_SET_USER_MEMORY_REGION, api.rst "
              "§4.35)."),
    Check("vcpus-too-many", E, "more vCPUs than the target allows", vcpus_too_many,
          why="KVM_CREATE_VCPU fails past KVM_MAX_VCPUS (KVM_CAP_MAX_VCPUS, api.rst §4.7); the static "
              "limit is target data, `check --host` uses the probed one."),
    Check("threads-not-power-of-two", E, "threads per core is not a power of two", threads_not_power_of_two,
          why="KVM_CAP_PPC_SMT takes a power-of-two vsmt mode (api.rst §7.11); QEMU spapr_set_vsmt_mode "
              "refuses other thread counts."),
    Check("threads-too-many", E, "more threads per core than the target allows", threads_too_many,
          why="Book3S HV virtual SMT modes are 1..8 (KVM_CAP_PPC_SMT, api.rst §7.11)."),
    Check("vcpus-threads-mismatch", E, "vcpus is not a multiple of threads", vcpus_threads_mismatch,
          why="sPAPR vCPU ids are (index / threads) * vsmt + index % threads (QEMU spapr_vcpu_id); a "
              "partial core leaves a core with missing threads, which QEMU's core model refuses."),
    Check("threads-wrong-flavour", E, "threads per core with a KVM flavour that has no virtual SMT mode",
          threads_wrong_flavour,
          why="Threads per core need KVM's virtual SMT mode, KVM_CAP_PPC_SMT (api.rst §7.11), which only "
              "Book3S HV implements (kvmppc_ops set_smt_mode; powerpc.c kvm_vm_ioctl_enable_cap returns "
              "-EINVAL without it, and KVM_CAP_PPC_SMT reads 0 on a PR VM). QEMU refuses more than one "
              "thread per core when it cannot set the mode (hw/ppc/spapr.c spapr_set_vsmt_mode). On HV "
              "the plan sets the mode from `threads` itself."),
    Check("vsmt-below-threads", E, "KVM_CAP_PPC_SMT sets fewer threads than each core has", vsmt_below_threads,
          why="QEMU spapr_set_vsmt_mode: the virtual SMT mode must be at least the threads per core, or "
              "vCPU ids of a core fall outside it (api.rst §7.11 KVM_CAP_PPC_SMT)."),
    Check("setting-unsupported", E, "a setting the target does not have", setting_unsupported,
          why="HTAB, RMA, MMU mode, TCE and RTAS are sPAPR (Book3S-64) concepts; the ePAPR /hypervisor "
              "node is e500's; PV features, the in-kernel irqchip/PIT, guest entry modes and `enforce` "
              "are x86 KVM; threads per core are sPAPR (targets/<t>/target.toml [features], [limits])."),
    Check("unknown-console", E, "`console` names no console of the target", unknown_console,
          why="Consoles are target data (targets/<t>/devices.toml [[console]]): each one fixes the device "
              "node or port and the hypercalls or exits the launcher serves it with."),
    Check("unknown-mode", E, "an irqchip or pit mode the target does not know", unknown_mode,
          why="irqchip kernel = KVM_CREATE_IRQCHIP, split = KVM_CAP_SPLIT_IRQCHIP (api.rst §4.24, §7.5); "
              "pit on/speaker_dummy = KVM_CREATE_PIT2 with or without KVM_PIT_SPEAKER_DUMMY (§4.45)."),
    Check("pit-needs-irqchip", E, "`pit` without the in-kernel irqchip", pit_needs_irqchip,
          why="KVM_CREATE_PIT2 (api.rst §4.45) delivers the timer through the in-kernel PIC/IOAPIC, so it "
              "comes after KVM_CREATE_IRQCHIP; QEMU and Firecracker create it only with the full "
              "in-kernel irqchip."),
    Check("guest-out-of-reach", E, "the guest's load address is outside memory or real mode's reach",
          guest_out_of_reach,
          why="The launcher copies the image to `at` inside the one memory slot, and starts a real-mode "
              "vCPU with flat segments at base 0 (KVM_SET_SREGS) and RIP = `at`; the CPU fetches CS:IP "
              "with a 16-bit IP, so an entry at or above 64 KiB is not reachable."),
    Check("guest-format", E, "the guest image has an unsupported format", guest_format,
          why="hvconf builds .S sources with GNU as + objcopy into a flat image (hvconf/emit/guest.py) "
              "and loads .bin files as they are; other formats would be copied into guest memory "
              "unparsed."),
    Check("guest-and-kernel", E, "both a `guest` image and a `kernel`", guest_and_kernel,
          why="On sPAPR both are entered the same way, at the kernel's load address with r3 = the device "
              "tree (kvmtool's and QEMU's kernel entry); two images there would overwrite each other."),
)
