"""Rules that hold a VM against one host's facts (`hvconf check --host` / `--host-facts`).

They read what the VM needs from its own plan (the arch module's `plan()`,
built here without writing anything), so the launcher's host check and these
rules share one source: host arch, KVM_CREATE_VM type, `requires` caps and
unmerged names. vCPU count and PV features come from the IR for their spans.
They run only when host facts are given (HOST_CHECKS) and never probe a host.
Tested by tests/test_host.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hvconf import abi
from hvconf.check.registry import Check, CheckContext
from hvconf.contract import ARCHES
from hvconf.diagnostics import Note, Report, Severity, Span
from hvconf.model import hcallset

if TYPE_CHECKING:
    from hvconf.emit.plan import PlanBuilder
    from hvconf.model.host import HostFacts

FACTS_HELP = "probe the host with `hvconf host --format json` and pass it with `--host-facts FILE`"


def proposed_for(facts: HostFacts) -> abi.ProposedAbi:
    """The unmerged ePAPR proposal numbered as the host facts say (unnumbered otherwise)."""
    base = abi.proposed()
    items = tuple(i._replace(number=facts.proposed.get(i.name)) for i in base.items)
    return base._replace(items=items, overrides="host facts" if facts.proposed else None)


def host_plan(ctx: CheckContext) -> PlanBuilder | None:
    """The plan the VM would get, numbered with the host's proposal numbers; None for a
    VM with errors (arch modules expect a checked VM) or without host facts. Computed once
    per VM: several host rules read it, and it may assemble the guest."""
    if "host_plan" not in ctx.memo:
        ctx.memo["host_plan"] = _plan(ctx)
    plan: PlanBuilder | None = ctx.memo["host_plan"]
    return plan


def _plan(ctx: CheckContext) -> PlanBuilder | None:
    if ctx.host is None or any(d.severity is Severity.ERROR and not d.code.startswith("host-") for d in ctx.report):
        return None
    from hvconf.platforms import platform_module
    from hvconf.platforms.base import BuildContext

    vm = ctx.vm
    root = Path(vm.span.file).parent if vm.span is not None else Path.cwd()
    # A scratch report: build-time findings (a guest that does not assemble, a missing
    # kernel) belong to `hvconf build`; here only the plan's shape matters.
    build = BuildContext(vm, ctx.target, Report(), root, proposed_for(ctx.host), hcallset.resolve(vm, ctx.target),
                         scope=ctx.scope)
    return platform_module(ctx.target.platform_module).plan(build)


def vm_type_of(plan: PlanBuilder) -> int:
    return next((int(s.args["type"]) for s in plan.steps if s.ioctl == "KVM_CREATE_VM"), 0)


def _vm_type(ctx: CheckContext) -> int:
    # What common.create_vm writes into the plan; read from target data so VMs with
    # errors (no plan) still get the vCPU and PV checks against the right VM type.
    return ctx.target.vm_type.get(ctx.vm.flavour or "", 0)


def _flavour_span(ctx: CheckContext) -> Span | None:
    return ctx.vm.spans.get("flavour") or ctx.vm.span_of("arch")


def host_wrong_arch(ctx: CheckContext) -> None:
    facts = ctx.host
    assert facts is not None
    # what its plan's requires.host_arch says, also for a VM with errors (no plan): hvconf/contract.py
    record = ARCHES.get(ctx.vm.arch or "")
    need = record.machine if record is not None else None
    if need is not None and need != facts.machine:
        ctx.emit(ctx.vm.span_of("arch"), f"VM '{ctx.vm.name}' runs on {need} hosts only; the host facts are "
                 f"for {facts.machine} (Linux {facts.kernel_release})",
                 help=f"lint it against the facts of a {need} host (`hvconf host --format json` there, saved for "
                      "`--host-facts FILE`), or check this file without `--host` or `--host-facts`")


def host_flavour_unavailable(ctx: CheckContext) -> None:
    facts = ctx.host
    assert facts is not None
    vm_type = _vm_type(ctx)
    row = facts.vm_type(vm_type)
    if row is None or row.created:
        return  # the probe did not try this type: the facts do not say
    why = f": KVM_CREATE_VM failed with {row.error}" if row.error else ""
    ctx.emit(_flavour_span(ctx), f"`kvm {ctx.vm.flavour}` needs KVM_CREATE_VM type {vm_type} ({row.name}), which "
             f"this host cannot create{why}",
             help="load the KVM module of this flavour on the host (kvm_hv or kvm_pr on Book3S), "
                  "or choose a flavour the host offers")


def host_unmerged_abi(ctx: CheckContext) -> None:
    plan = host_plan(ctx)
    if plan is None:
        return
    spans = dict(plan.requires)
    spans.update({str(op.ref): op.span for op in ctx.vm.hcalls.ops if op.span is not None})
    for name in plan.unmerged:
        ctx.emit(spans.get(name) or ctx.vm.span, f"{name} belongs to the unmerged ePAPR proposal and the host "
                 "facts give it no number, so no launcher can run this VM on that host",
                 help=f"if the host runs a kernel with the proposal, probe it with `hvconf host --abi-overrides "
                      f"FILE`, or add \"proposed\": {{\"{name}\": N}} to the facts")


def host_missing_cap(ctx: CheckContext) -> None:
    facts, plan = ctx.host, host_plan(ctx)
    if plan is None or facts is None:
        return
    from hvconf.emit.plan import cap_number

    proposed = proposed_for(facts)
    vm_type = vm_type_of(plan)
    for cap, span in plan.requires:
        number = cap_number(cap, proposed)
        if number is None:
            continue  # host-unmerged-abi
        value = facts.cap_value(cap, vm_type)
        if value is None:
            ctx.emit(span, f"the host facts do not list {cap} (cap {number}), which this VM needs",
                     help="probe the host again with this hvconf (it asks for every cap it knows), "
                          "or add the cap to the facts")
        elif value[0] == 0:
            ctx.emit(span, f"this host's KVM lacks {cap} (cap {number}): KVM_CHECK_EXTENSION returns 0 on "
                     f"{value[1]}", help="remove what needs it, or run the VM on a host that has it")


def host_no_hash_guests(ctx: CheckContext) -> None:
    facts, plan = ctx.host, host_plan(ctx)
    if plan is None or facts is None or facts.ppc_mmu is None or facts.ppc_mmu.hash:
        return
    step = next((s for s in plan.steps if s.ioctl == "KVM_PPC_ALLOCATE_HTAB"), None)
    if step is None:
        return
    span = ctx.vm.spans.get("htab") or ctx.vm.spans.get("mmu") or ctx.vm.span_of("memory")
    radix = " (it runs radix guests)" if facts.ppc_mmu.radix else ""
    ctx.emit(span, f"this host cannot run hash-MMU guests{radix}: {facts.ppc_mmu.hash_probe}; a nested KVM-HV "
             "refuses KVM_PPC_ALLOCATE_HTAB", help="write `mmu radix` (and remove `htab`), or run the VM on a "
             "bare-metal POWER host")


def host_too_many_vcpus(ctx: CheckContext) -> None:
    facts = ctx.host
    assert facts is not None
    limit = facts.max_vcpus(_vm_type(ctx))
    if limit is not None and ctx.vm.vcpus > limit[0]:
        ctx.emit(ctx.vm.span_of("vcpus"), f"{ctx.vm.vcpus} vCPUs exceed this host's limit of {limit[0]} ({limit[1]})",
                 help=f"use at most {limit[0]} vCPUs on this host")


def host_memory_too_small(ctx: CheckContext) -> None:
    facts = ctx.host
    assert facts is not None
    if facts.memory_bytes is not None and ctx.vm.memory is not None and ctx.vm.memory > facts.memory_bytes:
        ctx.emit(ctx.vm.span_of("memory"), f"{ctx.vm.memory:#x} bytes of guest memory exceed this host's "
                 f"{facts.memory_bytes:#x} ({facts.memory_bytes >> 20} MiB)",
                 help="lower `memory`; the launcher refuses a guest the host cannot back")


def host_pv_feature_unsupported(ctx: CheckContext) -> None:
    facts = ctx.host
    assert facts is not None
    pv = facts.pv_features
    if pv is None or ctx.target.features.pv_features is None:
        return
    # A feature whose hypercall the VM routes to the launcher is provided by the
    # launcher, not by KVM (e.g. HC_MAP_GPA_RANGE with `exit KVM_HC_MAP_GPA_RANGE`).
    served = {ctx.target.name2hcall[n].feature for n in hcallset.resolve(ctx.vm, ctx.target).exits
              if n in ctx.target.name2hcall}
    for feature in ctx.vm.pv_features:
        row = ctx.target.pv_feature(feature.name)
        if row is None or row.name in served or pv.supports(row.name):
            continue
        info = abi.kvm_feature(row.name)
        ctx.emit(feature.span, f"{row.name} (CPUID 0x40000001 {info.register} bit {info.bit}) is not supported "
                 f"by this host's KVM: KVM_GET_SUPPORTED_CPUID reports {info.register} "
                 f"{getattr(pv, info.register):#010x}",
                 notes=[Note("the guest would be told of a paravirtual feature that nobody provides")],
                 help=f"remove {row.name.removeprefix('KVM_FEATURE_').lower()} from `pv_features` for this host")


E = Severity.ERROR
ARCH = ("host-wrong-arch",)

CHECKS: tuple[Check, ...] = (
    Check("host-wrong-arch", E, "the VM is for another architecture than the host", host_wrong_arch,
          why="KVM runs guests of the host's own architecture only, and ioctl numbers and struct layouts "
              "differ between arches (docs/kernel-facts.md#ioctl-encoding); the launcher compares the plan's "
              "requires.host_arch with uname -m before it opens anything."),
    Check("host-flavour-unavailable", E, "the host cannot create a VM of the flavour's KVM_CREATE_VM type",
          host_flavour_unavailable, requires=ARCH,
          why="On Book3S the VM type picks the KVM module: KVM_VM_PPC_HV (1) needs kvm_hv, KVM_VM_PPC_PR (2) "
              "kvm_pr; KVM_CREATE_VM fails with EINVAL when that module is not loaded (api.rst §4.2, "
              "arch/powerpc/kvm/powerpc.c kvm_arch_init_vm)."),
    Check("host-unmerged-abi", E, "the VM needs the unmerged ePAPR proposal, and the host facts give no numbers",
          host_unmerged_abi, requires=ARCH,
          why="KVM_CAP_EXIT_EPAPR_HCALL, KVM_EXIT_EPAPR_HCALL and KVM_HC_VM_RESET/SHUTDOWN were never merged "
              "(docs/kernel-facts.md#the-unmerged-epapr-proposal); only a patched kernel has numbers for them, "
              "and host facts list them "
              "under `proposed` when probed with `hvconf host --abi-overrides FILE`."),
    Check("host-missing-cap", E, "the host's KVM lacks a capability the VM's plan needs", host_missing_cap,
          requires=(*ARCH, "host-flavour-unavailable"),
          why="Each cap in the plan's requires (declared caps and those behind the ioctls the plan issues, "
              "e.g. KVM_CAP_PPC_ALLOC_HTAB for `htab`) must read non-zero with KVM_CHECK_EXTENSION (api.rst "
              "§4.4). The value on a VM fd of the VM's type decides where the facts have it: it can differ "
              "from the system fd's (Book3S HV vs PR; X2APIC_API reads 15 on the system fd, 11 on a VM fd)."),
    Check("host-memory-too-small", E, "more guest memory than the host has", host_memory_too_small,
          why="The launcher maps guest memory with MAP_NORESERVE, so the mapping of a guest larger than the "
              "host succeeds and the guest dies later when the host runs out; the launcher therefore refuses "
              "memory beyond the host's physical memory before mapping anything, and the host check says so "
              "at lint time (host facts `memory_bytes`, from sysconf SC_PHYS_PAGES)."),
    Check("host-no-hash-guests", E, "a hash-MMU (HTAB) guest on a host that runs radix guests only",
          host_no_hash_guests, requires=(*ARCH, "host-flavour-unavailable"),
          why="KVM-HV running nested under another hypervisor (an LPAR) supports radix guests only: "
              "KVM_PPC_ALLOCATE_HTAB fails with EOPNOTSUPP although KVM_CAP_PPC_ALLOC_HTAB reads 1 "
              "(seen on Linux 6.1 under QEMU pseries with cap-nested-hv). The host probe tries the ioctl on a "
              "scratch VM, and the launcher does the same before it creates the guest."),
    Check("host-too-many-vcpus", E, "more vCPUs than the host's KVM_CAP_MAX_VCPUS", host_too_many_vcpus,
          requires=(*ARCH, "host-flavour-unavailable"),
          why="KVM_CREATE_VCPU fails with EINVAL past KVM_CAP_MAX_VCPUS (or KVM_CAP_NR_VCPUS where "
              "MAX_VCPUS reads 0, or 4 where neither exists: api.rst §4.4, §4.7)."),
    Check("host-pv-feature-unsupported", E, "a declared PV feature the host's KVM does not support",
          host_pv_feature_unsupported, requires=ARCH,
          why="hvconf writes the declared pv_features into CPUID 0x40000001 verbatim; KVM_SET_CPUID2 accepts "
              "any bits, so only KVM_GET_SUPPORTED_CPUID says which features KVM implements (cpuid.rst). "
              "Features whose hypercall the VM sends to the launcher (`hcalls { exit ... }`) are the "
              "launcher's to provide and are not held against the host."),
)
