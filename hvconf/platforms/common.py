"""Plan-building steps every target family shares: VM creation, caps,
memory slots, vCPU creation and the final KVM_RUNs, plus guest images.

The arch modules call these in the order KVM needs and add their own steps
in between. Tested through tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from hvconf.platforms import e500_tlb, kernel_elf
from hvconf.platforms.base import BuildContext
from hvconf.contract import ARCHES
from hvconf.diagnostics import Diagnostic, Severity, Span
from hvconf.emit.guest import GuestBuildError, assemble_reads
from hvconf.emit.plan import PlanBuilder, source_of
from hvconf.model import capargs, inputs, ir
from hvconf.record import Record
from hvconf.syntax.paths import MISSING, TOO_LARGE, PathRefused, read_checked


# caps.toml `encoder` -> the function turning a cap's typed arguments into the `config`
# the runtime builds args[0]'s struct from.
ENCODERS = {"sw_tlb": e500_tlb.config}


def vcpu_fd(index: int) -> str:
    return f"vcpu:{index}"


def new_plan(ctx: BuildContext) -> PlanBuilder:
    """An empty plan for the VM; its host is the one the arch's record names (hvconf/contract.py)."""
    arch = ctx.vm.arch or ""
    return PlanBuilder(ctx.vm.name, ctx.target.name, arch, ARCHES[arch].machine, ctx.root_dir)


def create_vm(plan: PlanBuilder, ctx: BuildContext) -> None:
    vm = ctx.vm
    vm_type = ctx.target.vm_type.get(vm.flavour or "", 0)
    plan.add("system", "KVM_CREATE_VM", {"type": vm_type}, vm.spans.get("flavour") or vm.span_of("arch"))


def enable_cap(plan: PlanBuilder, ctx: BuildContext, fd: str, cap: str, args: Iterable[int], span: Span | None,
               **extra: Any) -> None:
    """One KVM_ENABLE_CAP step, with the host caps it needs recorded in `requires`."""
    row = ctx.target.name2cap.get(cap)
    plan.add(fd, "KVM_ENABLE_CAP", {"cap": cap, "flags": 0, "args": list(args), **extra}, span)
    plan.require("KVM_CAP_ENABLE_CAP_VM" if fd == "vm" else "KVM_CAP_ENABLE_CAP", span)
    if row is not None and row.proposed:
        if ctx.proposed.number(cap) is None and cap not in plan.unmerged:
            plan.unmerged.append(cap)
    plan.require(cap, span)
    for needed in row.requires if row is not None else ():
        plan.require(needed, span)


def _scope(use: ir.CapUse, ctx: BuildContext) -> str | None:
    row = ctx.target.name2cap.get(use.name)
    if use.scope is not None:
        return "vm" if use.scope == "vm" else "vcpu"
    return row.scope if row is not None else None


def user_caps(plan: PlanBuilder, ctx: BuildContext, *, vcpu: int | None) -> None:
    """The `cap` statements for the VM fd (vcpu=None) or for one vCPU, in source order."""
    for use in ctx.vm.caps:
        row = ctx.target.name2cap.get(use.name)
        if row is None or row.scope == "check" or row.managed:
            continue
        scope = _scope(use, ctx)
        if vcpu is None:
            if scope != "vm":
                continue
            fd = "vm"
        else:
            if scope != "vcpu" or (use.scope == "vcpu" and use.vcpu != vcpu):
                continue
            if row.vm_wide and use.scope is None and vcpu != 0:  # one KVM_ENABLE_CAP sets it for the VM
                continue
            fd = vcpu_fd(vcpu)
        encoded = capargs.encode(row, use)
        extra: dict[str, Any] = dict(encoded.names)
        if encoded.struct:
            config = ENCODERS[row.encoder](ctx, encoded) if row.encoder else encoded.struct
            extra = {"config": config, **extra}
        enable_cap(plan, ctx, fd, use.name, encoded.args, use.span, **extra)


def memory(plan: PlanBuilder, ctx: BuildContext) -> None:
    vm = ctx.vm
    plan.add("vm", "KVM_SET_USER_MEMORY_REGION",
             {"slot": 0, "flags": 0, "guest_phys_addr": 0, "memory_size": vm.memory, "userspace_addr": "memory:0"},
             vm.span_of("memory"))
    plan.require("KVM_CAP_USER_MEMORY", vm.span_of("memory"))


def create_vcpu(plan: PlanBuilder, ctx: BuildContext, index: int) -> None:
    plan.add("vm", "KVM_CREATE_VCPU", {"vcpu_id": index}, ctx.vm.span_of("vcpus"))


def run_all(plan: PlanBuilder, ctx: BuildContext) -> None:
    for index in range(ctx.vm.vcpus):
        plan.add(vcpu_fd(index), "KVM_RUN", {}, ctx.vm.span_of("vcpus"))


def add_image(plan: PlanBuilder, ctx: BuildContext, name: str, file_name: str, data: bytes, gpa: int,
              span: Span | None, **extra: Any) -> None:
    """An image the launcher copies into guest memory; its bytes become an output file."""
    ctx.images[file_name] = data
    plan.images.append({"name": name, "path": file_name, "guest_phys_addr": gpa, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "source": source_of(span, ctx.root_dir), **extra})


def source_file(ctx: BuildContext, path: str, span: Span | None) -> Path:
    """A file named in a definition: relative to the .hv file that names it."""
    return inputs.source_path(path, span, ctx.root_dir)


MAX_IMAGE_BYTES = 1 << 30  # no guest image hvconf copies is near this; /proc files never end


def read_input(ctx: BuildContext, path: Path) -> bytes:
    """A guest or kernel image: a regular file of the project that fits in the guest's memory.
    Raises PathRefused (hvconf/syntax/paths.py) for anything else, without blocking or slurping."""
    limit = min(ctx.vm.memory or MAX_IMAGE_BYTES, MAX_IMAGE_BYTES)
    _, data = read_checked(path, ctx.input_scope(), limit)
    if len(data) > limit:
        raise PathRefused(TOO_LARGE, f"it is larger than the guest's {limit:#x} bytes of memory")
    ctx.inputs[Path(os.path.relpath(path, ctx.root_dir)).as_posix()] = hashlib.sha256(data).hexdigest()
    return data


def kernel_image(plan: PlanBuilder, ctx: BuildContext, *, load: int, format: str = "flat") -> bytes | None:
    """`kernel "FILE"` of a target that loads it as a whole file (e500, s390x: a raw image; x86: "linux",
    by its boot protocol): copied into the outputs when it exists; otherwise the launcher must be given
    `--kernel FILE` (a build machine rarely has the kernel). A kernel outside the project, or not a
    readable regular file, is an error. Returns its bytes when the build has them."""
    return _whole_file(plan, ctx, "kernel", load, format)


def initrd_image(plan: PlanBuilder, ctx: BuildContext, *, load: int = 0, format: str = "initrd") -> bytes | None:
    """`initrd "FILE"`, as `kernel_image`: copied when it exists, else the launcher's `--initrd FILE`.
    `load` 0 with format "initrd": the launcher places it (x86: at the top of RAM)."""
    return _whole_file(plan, ctx, "initrd", load, format)


def _whole_file(plan: PlanBuilder, ctx: BuildContext, name: str, load: int, fmt: str) -> bytes | None:
    named = named_boot_file(ctx, name)
    if named is None:
        return None
    if named.data is not None:
        add_image(plan, ctx, name, f"{name}.img", named.data, load, named.span, format=fmt)
    elif named.missing:
        missing_image(plan, ctx, name, named.path, load, named.span, fmt)
    return named.data


# A boot file the build machine does not have is a warning: the launcher takes it at run time.
MISSING_BOOT_FILE = {"kernel": Diagnostic("kernel-missing", Severity.WARNING, "", None),
                     "initrd": Diagnostic("initrd-missing", Severity.WARNING, "", None)}


def boot_file(ctx: BuildContext, construct: str, path: str, span: Span | None) -> tuple[bytes | None, bool]:
    """(the bytes of the `kernel` or `initrd` FILE, False), or (None, False) after an error (outside the
    project, not a regular file, unreadable), or (None, True) after a warning: missing, or larger than
    memory; the launcher then takes `--kernel`/`--initrd` FILE."""
    try:
        return read_input(ctx, source_file(ctx, path, span)), False
    except PathRefused as err:
        refused = inputs.refusal(construct, path, err, span)  # None: missing or too large, a warning
        if refused is not None:
            ctx.report.add(refused)
            return None, False
        why = "does not exist (yet)" if err.kind == MISSING else f"cannot be used ({err.reason})"
    ctx.report.add(MISSING_BOOT_FILE[construct]._replace(
        message=f"{construct} '{path}' {why}; the launcher needs --{construct} FILE to run this VM", span=span))
    return None, True


class NamedBootFile(Record):
    """The VM's `kernel` or `initrd`: the path it names, where, and what boot_file made of it."""

    __slots__ = ("path", "span", "data", "missing")
    path: str
    span: Span | None
    data: bytes | None
    missing: bool


def named_boot_file(ctx: BuildContext, construct: str) -> NamedBootFile | None:
    """boot_file of the VM's `kernel` or `initrd` (`construct`), None when the VM names none."""
    path: str | None = getattr(ctx.vm, construct)
    if path is None:
        return None
    span = ctx.vm.span_of(construct)
    return NamedBootFile(path, span, *boot_file(ctx, construct, path, span))


def missing_image(plan: PlanBuilder, ctx: BuildContext, name: str, hint: str, gpa: int, span: Span | None,
                  fmt: str) -> None:
    """A plan image the build does not have: the launcher's --NAME FILE supplies it."""
    plan.images.append({"name": name, "path": None, "guest_phys_addr": gpa, "hint": hint,
                        "source": source_of(span, ctx.root_dir), "format": fmt})


class BootKernel(NamedTuple):
    """A `kernel` as the build placed it: its entry, the memory it occupies [start, end), and the bytes
    the plan image holds (None when the file is missing at build time)."""

    entry: int
    start: int
    end: int
    data: bytes | None
    segments: tuple[tuple[int, int, int], ...]  # (guest_phys_addr, filesz, memsz); () for a flat image


def boot_kernel(ctx: BuildContext, *, load: int) -> BootKernel | None:
    """`kernel "FILE"` loaded as a boot loader does: an ELF by its PT_LOAD segments (kernel_elf.py),
    a raw image at `load` only when written `kernel "FILE" flat`. None when the VM has no kernel or
    the file cannot be used (reported); a missing file gives a kernel of no known size at `load`."""
    vm, named = ctx.vm, named_boot_file(ctx, "kernel")
    if named is None:
        return None
    data, span = named.data, named.span
    if data is None:
        return BootKernel(load, load, load, None, ()) if named.missing else None
    if vm.kernel_format == "flat":
        return BootKernel(load, load, load + len(data), data, ())
    try:
        parsed = kernel_elf.parse(data, vm.arch or "")
    except kernel_elf.KernelError as err:
        ctx.report.error("kernel-invalid", f"kernel '{vm.kernel}' cannot be loaded: {err}", span,
                         help='a vmlinux is an ELF file; write `kernel "FILE" flat` to load a raw image at '
                              f"{load:#x}")
        return None
    segments = tuple((s.paddr, s.filesz, s.memsz) for s in parsed.segments)
    start = min(s.paddr for s in parsed.segments)
    return BootKernel(parsed.entry, start, parsed.end, parsed.loaded_bytes(data), segments)


def add_kernel(plan: PlanBuilder, ctx: BuildContext, kernel: BootKernel) -> None:
    """The plan image of a placed kernel: its segments (an ELF), the raw bytes (flat), or a
    placeholder for --kernel FILE."""
    vm = ctx.vm
    assert vm.kernel is not None
    span = vm.span_of("kernel")
    if kernel.data is None:
        missing_image(plan, ctx, "kernel", vm.kernel, kernel.start, span, vm.kernel_format)
    elif kernel.segments:
        add_image(plan, ctx, "kernel", "kernel.img", kernel.data, kernel.start, span, format="segments",
                  segments=[list(s) for s in kernel.segments], memsz=kernel.end - kernel.start)
    else:
        add_image(plan, ctx, "kernel", "kernel.img", kernel.data, kernel.start, span, format="flat")


def boot_initrd(ctx: BuildContext) -> tuple[int, bytes | None] | None:
    """`initrd "FILE"`: (its size, its bytes), (0, None) when missing at build time (a warning: the
    launcher takes --initrd FILE), None without one or after an error."""
    named = named_boot_file(ctx, "initrd")
    if named is None:
        return None
    if named.data is None:
        return (0, None) if named.missing else None
    return len(named.data), named.data


def guest_bytes(ctx: BuildContext, *, arch: str, code16: bool = False) -> bytes | None:
    """`guest "FILE"`: a `.S` source assembled for `arch` (GNU as), or a flat binary as it is.
    None, with a diagnostic reported, when it cannot be read or built: the path's own
    (hvconf/model/inputs.py), at the guest source's line for what it includes, else
    `guest-build-failed`."""
    guest = ctx.vm.guest
    assert guest is not None
    path = source_file(ctx, guest.path, guest.span)
    try:
        source = read_input(ctx, path)
        if path.suffix != ".S":
            return source
        built = assemble_reads(path, arch=arch, code16=code16, scope=ctx.input_scope())
        for name, sha256 in built.reads:  # what it includes, as manifest.json's inputs
            ctx.inputs[Path(os.path.relpath(name, ctx.root_dir)).as_posix()] = sha256
        return built.image
    except PathRefused as err:
        found = inputs.refusal("guest", guest.path, err, guest.span)
        message = err.reason
    except GuestBuildError as err:
        found = _refused_by_source(err, guest.span)
        message = str(err)
    ctx.report.add(found or Diagnostic("guest-build-failed", Severity.ERROR,
                                       f"cannot build guest image '{guest.path}': {message}", guest.span))
    return None


def _refused_by_source(err: GuestBuildError, guest: Span | None) -> Diagnostic | None:
    """A path the guest source made `as` read, refused: at its directive when one is known
    (a name that is no plain string there too, as `guest-build-failed`), else at `guest`."""
    if err.span is not None:
        found = inputs.directive_refusal(err.kind, err.message, err.span)
        return found or Diagnostic("guest-build-failed", Severity.ERROR, err.message, err.span)
    template = inputs.PATH_REFUSALS.get(err.kind or "")
    return template._replace(message=err.message, span=guest) if template is not None else None
