"""Plan steps only sPAPR (Book3S) VMs have: HPT, radix MMU, TCE tables, in-kernel RTAS tokens.

KVM_PPC_ALLOCATE_HTAB checks the order the kernel answers (it writes the
order it allocated back); KVM_CREATE_SPAPR_TCE(_64) keeps each table's fd
open in the Machine for the VM's lifetime (closing it would drop the
table, and the kernel then hands the guest's TCE hcalls for that LIOBN to
userspace). Merged into steps.STEPS. Tests: tests/kvm/test_runtime.py
(validation, anywhere) and tests/ppc/ (for real, on the POWER host).
"""

from __future__ import annotations

from hvconf.kvm.errors import UnexpectedResult
from hvconf.kvm.machine import Machine
from hvconf.kvm.plan import PlanError, Step
from hvconf.kvm.step_kind import StepKind, vm_of, where

U32 = 1 << 32


def _allocate_htab(m: Machine, step: Step) -> None:
    wanted = step.args["order"]
    got = vm_of(m).ppc_allocate_htab(wanted)
    if wanted and got != wanted:
        raise UnexpectedResult(step.ioctl, f"order {wanted}", f"order {got}")


def _check_order(step: Step) -> None:
    if not 0 <= step.args["order"] < U32:
        raise PlanError(f"{where(step)}: order {step.args['order']} is not a 32-bit unsigned integer")


def _tce(m: Machine, step: Step) -> None:
    a = step.args
    table = vm_of(m).create_spapr_tce(a["liobn"], a["window_size"])
    m.tce_tables[a["liobn"]] = table


def _tce_64(m: Machine, step: Step) -> None:
    a = step.args
    table = vm_of(m).create_spapr_tce_64(a["liobn"], a["page_shift"], a["offset"], a["size"], a["flags"])
    m.tce_tables[a["liobn"]] = table


def _check_liobn(step: Step) -> None:
    if not 0 <= step.args["liobn"] < 1 << 64:
        raise PlanError(f"{where(step)}: liobn {step.args['liobn']:#x} is not a 64-bit unsigned integer")


def _rtas_token(m: Machine, step: Step) -> None:
    vm_of(m).ppc_rtas_define_token(step.args["name"], step.args["token"])


def _check_rtas_token(step: Step) -> None:
    name = step.args["name"]
    if not name.isascii() or not 0 < len(name) < 120:  # struct kvm_rtas_token_args: char name[120]
        raise PlanError(f"{where(step)}: RTAS name {name!r} is not 1 to 119 ASCII characters")


def _configure_v3_mmu(m: Machine, step: Step) -> None:
    vm_of(m).ppc_configure_v3_mmu(step.args["flags"], step.args["process_table"])


PPC_STEPS: dict[str, StepKind] = {
    "KVM_PPC_ALLOCATE_HTAB": StepKind(("vm",), {"order": int}, _allocate_htab, _check_order),
    "KVM_CREATE_SPAPR_TCE": StepKind(("vm",), {"liobn": int, "window_size": int}, _tce, _check_liobn),
    "KVM_CREATE_SPAPR_TCE_64": StepKind(
        ("vm",), {"liobn": int, "page_shift": int, "offset": int, "size": int, "flags": int}, _tce_64, _check_liobn
    ),
    "KVM_PPC_RTAS_DEFINE_TOKEN": StepKind(("vm",), {"name": str, "token": int}, _rtas_token, _check_rtas_token),
    "KVM_PPC_CONFIGURE_V3_MMU": StepKind(("vm",), {"flags": int, "process_table": int}, _configure_v3_mmu),
}
