"""The ePAPR spin table, run by the launcher: secondary e500 vCPUs wait outside KVM_RUN until released.

plan.launcher.epapr.spin_table = {address, entry_size, vcpus, map_size, tlb_entry}
(hvconf/platforms/e500_spin.py writes it; the table's first contents are a plan
image). ePAPR 1.1 §5.5 puts a spinning CPU in a loop over its entry; here the
vCPU's thread is that loop: `wait` reads the entry's entry_addr (big-endian,
as the guest wrote it) every POLL seconds until bit 0 is clear or the run
ends. `release` then does what QEMU's spin_kick (hw/ppc/ppce500_spin.c) does:
the table's pir gets the vCPU's PIR (KVM sets it to the vCPU id); the
registers start from the vCPU's own (KVM_GET_REGS) with pc = entry_addr within
a `map_size` mapping, r3 from the table, r4-r9 zero but r7 = map_size; the
mapping goes into the shared TLB as `tlb_entry` (its mas2/mas7_3 hold the
flags, the mapping's start is ORed into mas7_3) and KVM_DIRTY_TLB names it.
Tests: tests/kvm/test_buffers_e500_spin.py (crafted: no e500 host exists here).
"""

from __future__ import annotations

import time

from hvconf.contract import PlanError
from hvconf.kvm.powerpc.sw_tlb import entry_problem, shared_tlb
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from hvconf.contract import Plan
    from hvconf.kvm.ending import Ending
    from hvconf.kvm.machine import Machine

POLL = 0.002  # seconds between two reads of a waiting entry; Linux gives a secondary seconds to call in
SPINNING = 1  # entry_addr bit 0: keep spinning
R3, PIR = 8, 20  # offsets in an entry: u64 entry_addr, u64 r3, u32 reserved, u32 pir
WHERE = "plan.launcher.epapr.spin_table"
KEYS = {"address": int, "entry_size": int, "vcpus": list, "map_size": int, "tlb_entry": dict}


class SpinTable(Record):
    """The table, as devices.Devices.held: `vcpus` wait in it, `hold` waits for one and releases it."""

    __slots__ = ("address", "entry_size", "vcpus", "map_size", "tlb_entry")
    address: int
    entry_size: int
    vcpus: frozenset[int]
    map_size: int
    tlb_entry: Mapping[str, int]
    what = "the spin table"

    def entry(self, vcpu_id: int) -> int:
        """The guest-physical address of vCPU `vcpu_id`'s entry (its cpu-release-addr)."""
        return self.address + vcpu_id * self.entry_size

    def hold(self, machine: Machine, vcpu_id: int, ending: Ending, note: Callable[[str], None]) -> bool:
        """Wait until the guest releases `vcpu_id`, then release it (True); False when the run ended first."""
        return run_when_released(self, machine, vcpu_id, ending, note)


def from_plan(plan: Plan) -> SpinTable | None:
    """plan.launcher.epapr.spin_table checked, or None when the plan has none; PlanError names what is wrong."""
    epapr = plan.launcher.get("epapr")
    raw = epapr.get("spin_table") if isinstance(epapr, dict) else None
    if raw is None:
        return None
    where = WHERE
    if not isinstance(raw, dict) or any(not isinstance(raw.get(k), t) or isinstance(raw.get(k), bool)
                                        for k, t in KEYS.items()):  # fmt: skip
        raise PlanError(f"{where}: should be {{{', '.join(f'{k}: {t.__name__}' for k, t in KEYS.items())}}}")
    size = raw["map_size"]
    if size < 4096 or size & (size - 1) or raw["entry_size"] < PIR + 4 or raw["address"] < 0:
        raise PlanError(f"{where}: map_size must be a power of two of at least 4 KiB and entries hold 24 bytes")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw["vcpus"]):
        raise PlanError(f"{where}: vcpus are the secondary vCPU ids (the boot vCPU 0 never spins)")
    return SpinTable(raw["address"], raw["entry_size"], frozenset(raw["vcpus"]), size, dict(raw["tlb_entry"]))


def check(plan: Plan, table: SpinTable) -> None:
    """Every waiting vCPU is created, has its entry in guest RAM, a shared TLB to map its entry point
    in, and a KVM_RUN."""
    from hvconf.kvm.images import memory_slots

    slots = memory_slots(plan)
    for vcpu_id in sorted(table.vcpus):
        at = table.entry(vcpu_id)
        if not any(start <= at and at + table.entry_size <= start + size for start, size in slots):
            raise PlanError(f"{WHERE}: vcpu {vcpu_id}'s entry at {at:#x} is not inside one memory slot")
    for ioctl, what in (("KVM_CREATE_VCPU", "is never created"), ("KVM_RUN", "never runs")):
        have = {s.args["vcpu_id"] if ioctl == "KVM_CREATE_VCPU" else s.vcpu_id for s in plan.steps
                if s.ioctl == ioctl}  # fmt: skip
        missing = sorted(table.vcpus - have)
        if missing:
            raise PlanError(f"{WHERE}: vcpu {missing[0]} waits in the spin table but {what}")
    tlbs = {s.vcpu_id for s in plan.steps if s.ioctl == "KVM_ENABLE_CAP" and "config" in s.args}
    missing = sorted(table.vcpus - tlbs)
    if missing:
        raise PlanError(f"{WHERE}: vcpu {missing[0]} has no KVM_CAP_SW_TLB step, so no TLB "
                        "to map its entry point in when it is released")  # fmt: skip
    sizes = next(s.args["config"]["tlb_sizes"] for s in plan.steps
                 if s.ioctl == "KVM_ENABLE_CAP" and "config" in s.args and s.vcpu_id in table.vcpus)  # fmt: skip
    problem = entry_problem(table.tlb_entry, sizes)
    if problem:
        raise PlanError(f"{WHERE}: {problem}")


def _u64(machine: Machine, gpa: int) -> int | None:
    data = machine.read(gpa, 8)
    return None if data is None else int.from_bytes(data, "big")


def wait(table: SpinTable, machine: Machine, vcpu_id: int, ending: Ending) -> int | None:
    """Block until the guest releases `vcpu_id` (its entry_addr), or None once the run is ending."""
    at = table.entry(vcpu_id)
    while not ending.stopping:
        entry = _u64(machine, at)
        if entry is None:
            raise PlanError(f"{WHERE}: vcpu {vcpu_id}'s entry at {at:#x} is outside guest memory")
        if not entry & SPINNING:
            return entry
        time.sleep(POLL)
    return None


def release(table: SpinTable, machine: Machine, vcpu_id: int, entry: int) -> tuple[int, int]:
    """Start `vcpu_id` at `entry` as QEMU's spin_kick does; returns (pc, r3) for the trace."""
    at = table.entry(vcpu_id)
    r3 = _u64(machine, at + R3) or 0
    machine.write(at + PIR, vcpu_id.to_bytes(4, "big"))
    start, pc = entry & ~(table.map_size - 1), entry & (table.map_size - 1)
    vcpu = machine.vcpus[vcpu_id]
    regs = vcpu.regs
    regs.pc = pc
    for number, value in ((3, r3), (4, 0), (5, 0), (6, 0), (7, table.map_size), (8, 0), (9, 0)):
        regs.gpr[number] = value
    vcpu.set_regs(regs)
    tlb = shared_tlb(machine, vcpu_id)
    mapping = {**table.tlb_entry, "mas7_3": table.tlb_entry["mas7_3"] | start}
    tlb.dirty(vcpu, tlb.write([mapping]))
    return pc, r3


def run_when_released(table: SpinTable, machine: Machine, vcpu_id: int, ending: Ending, note: Any) -> bool:
    """For a vCPU in the table: wait, then release it (True), or False when the run ended first."""
    entry = wait(table, machine, vcpu_id, ending)
    if entry is None:
        return False
    pc, r3 = release(table, machine, vcpu_id, entry)
    note(f"vcpu:{vcpu_id}: released from the spin table: entry {entry:#x}, pc {pc:#x}, r3 {r3:#x}")
    return True
