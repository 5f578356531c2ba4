"""The ePAPR spin table of an e500 VM, from the built outputs to a released secondary, against a
CRAFTED kernel (tests/kvm/test_buffers_e500_tlb.py): no e500 host exists here.

The build is samples/e500.hv's (2 vCPUs). Guest memory is a real mapping set up by the
runtime's own KVM_SET_USER_MEMORY_REGION step, which copies the plan's images (spin table and
DTB) in. The guest's side is played as Linux's smp_85xx_start_cpu
(arch/powerpc/platforms/85xx/smp.c) plays it: cpu-release-addr from the DTB the launcher loaded,
wait for entry_addr == 1, write r3, then entry_addr; the release goes through
hvconf/kvm/powerpc/spin_table.py with the crafted ioctl decoding KVM_SET_REGS and KVM_DIRTY_TLB from raw
memory. Later tests run vCPU 1's thread as run.py starts it, and put the host's cpu clocks
(from a crafted /proc/device-tree) into the DTB.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import hvconf.abi
from hvconf import compiler
from hvconf.emit.output import write_tree
from hvconf.kvm.ioctls import fd as fd_module
from hvconf.kvm.powerpc import host_cells, spin_table
from hvconf.kvm import images as image_files
from hvconf.kvm import families
from hvconf.kvm.devices import Devices
from hvconf.kvm.ending import Ending
from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.machine import Machine
from hvconf.contract import PlanError, read_plan
from hvconf.kvm.sequence import Sequencer
from hvconf.kvm.status import Status
from hvconf.kvm.steps import table
from hvconf.kvm.powerpc.sw_tlb import address, shared_tlb
from hvconf.kvm.ioctls.system import Kvm
from hvconf.kvm.trace import Tracer
from hvconf.kvm.ioctls.vcpu import Vcpu
from hvconf.kvm.vcpu_thread import Shared, VcpuThread
from hvconf.kvm.ioctls.vm import Vm

from .test_buffers_e500_tlb import ARCH, ENTRY, MSR, REPO, RUN_SIZE, CraftedKernel, read

libfdt = pytest.importorskip("libfdt", reason="pylibfdt is not installed")
MIB = 1 << 20
OVERRIDES = ("[numbers]\nKVM_EXIT_EPAPR_HCALL = 50\nKVM_HC_VM_RESET = 13\nKVM_HC_VM_SHUTDOWN = 14\n"
             "KVM_CAP_EXIT_EPAPR_HCALL = 250\n")  # fmt: skip


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """samples/e500.hv built and written as `hvconf build` writes it: (parsed plan, its folder)."""
    base = tmp_path_factory.mktemp("e500")
    (base / "abi.toml").write_text(OVERRIDES)
    [built] = compiler.build([REPO / "samples" / "e500.hv"], proposed_overrides=base / "abi.toml").built
    [folder] = write_tree(base / "out", {built.vm.name: built.files})
    return read_plan(built.plan), folder


def vcpu(vcpu_id: int) -> Vcpu:
    fd = os.memfd_create("kvm_run", os.MFD_CLOEXEC)
    os.ftruncate(fd, RUN_SIZE)
    made = Vcpu(fd, vcpu_id, RUN_SIZE, None, ARCH)
    os.close(fd)
    made.fd = -1  # the crafted kernel answers; nothing reaches a real fd
    return made


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> CraftedKernel:
    crafted = CraftedKernel()
    monkeypatch.setattr(fd_module, "lib", crafted)
    return crafted


@pytest.fixture
def machine(outputs: tuple[Any, Path], kernel: CraftedKernel) -> Any:
    """Guest memory with the plan's images, through the runtime's memory step; vCPU 1 with its shared TLB."""
    plan, folder = outputs
    loaded = image_files.load(plan, folder, {})
    m = Machine(Kvm.from_fd(-1, None, ARCH), loaded, Vm(-1, Kvm.from_fd(-1, None, ARCH)))
    [memory] = [s for s in plan.steps if s.ioctl == "KVM_SET_USER_MEMORY_REGION"]
    table(ARCH)[memory.ioctl].apply(m, memory)
    m.vcpus[1] = vcpu(1)
    [tlb] = [s for s in plan.steps if s.fd == "vcpu:1" and s.args.get("cap") == "KVM_CAP_SW_TLB"]
    table(ARCH)[tlb.ioctl].apply(m, tlb)
    kernel.calls.clear()
    yield m
    for v in m.vcpus.values():
        v.close()
    for region in m.memory.values():
        region.close()


def release_addr(machine: Machine, vcpu_id: int) -> int:
    """What Linux reads: the cpu node's cpu-release-addr, from the DTB as the launcher loaded it."""
    [fdt_chunk] = [chunk for image in machine.images if image.name == "fdt" for chunk in image.chunks]
    fdt = libfdt.Fdt(machine.read(fdt_chunk[0], len(fdt_chunk[1])))
    node = fdt.path_offset(f"/cpus/PowerPC,e500@{vcpu_id}")
    assert bytes(fdt.getprop(node, "enable-method")) == b"spin-table\0"
    return int.from_bytes(bytes(fdt.getprop(node, "cpu-release-addr")), "big")


def be(machine: Machine, gpa: int, width: int) -> int:
    return int.from_bytes(machine.read(gpa, width), "big")


def kick_cpu(machine: Machine, at: int, entry: int, r3: int) -> None:
    """Linux's side (32-bit, PHYS_64BIT): r3, then addr_h, then addr_l, whose bit 0 releases."""
    machine.write(at + 8, r3.to_bytes(8, "big"))
    machine.write(at, (entry >> 32).to_bytes(4, "big"))
    machine.write(at + 4, (entry & 0xFFFF_FFFF).to_bytes(4, "big"))


def table_of(plan: Any) -> spin_table.SpinTable:
    table = spin_table.from_plan(plan)
    assert table is not None
    return table


def test_the_table_is_in_reserved_guest_ram_where_the_tree_says(outputs, machine):
    plan, folder = outputs
    table = table_of(plan)
    at = release_addr(machine, 1)
    assert at == table.entry(1) and table.vcpus == {1}
    # as Linux first finds it (smp_85xx_start_cpu waits for addr_l == 1), and QEMU's spin_reset values
    assert (be(machine, at, 8), be(machine, at + 8, 8), be(machine, at + 20, 4)) == (1, 1, 1)
    [fdt_chunk] = [c for image in machine.images if image.name == "fdt" for c in image.chunks]
    fdt = libfdt.Fdt(fdt_chunk[1])
    reserved = [tuple(fdt.get_mem_rsv(i))[-2:] for i in range(fdt.num_mem_rsv())]
    assert [(a, s) for a, s in reserved if a <= at < a + s] == [(table.address, 0x1000)]
    # inside the boot vCPU's initial mapped area, clear of the DTB that follows it
    assert at + 24 <= fdt_chunk[0] and at + 24 <= 64 * MIB


def test_a_released_secondary_gets_qemus_spin_kick_state(outputs, machine, kernel):
    plan, _ = outputs
    table = table_of(plan)
    at = release_addr(machine, 1)
    kick_cpu(machine, at, 0x0400_1230, 0x1)  # an entry point in the second 64 MiB
    notes: list[str] = []
    assert spin_table.run_when_released(table, machine, 1, Ending(lambda: None), notes.append)
    names = [name for name, _ in kernel.calls]
    assert names == ["KVM_GET_REGS", "KVM_SET_REGS", "KVM_DIRTY_TLB"]  # registers, then the TLB, before KVM_RUN
    regs = kernel.calls[1][1]["regs"]
    assert regs["pc"] == 0x1230  # the entry within its 64 MiB mapping, which starts at effective 0
    assert [regs["gpr"][i] for i in range(3, 10)] == [1, 0, 0, 0, 64 * MIB, 0, 0]
    assert regs["msr"] == MSR  # the rest is the vCPU's own (KVM_GET_REGS), as QEMU's cpu_synchronize_state
    assert be(machine, at + 20, 4) == 1  # pir: the vCPU's PIR, which KVM sets to its id
    tlb = shared_tlb(machine, 1)
    index = tlb.index(1, 1)
    written = read(address(tlb.entries) + index * ENTRY, "kvm_book3e_206_tlb_entry")
    assert written == {"mas8": 0, "mas1": 0x8000_0000 | 16 << 7, "mas2": 0x4, "mas7_3": 0x0400_0000 | 0x3F}
    dirty = kernel.calls[2][1]["dirty"]
    assert dirty["num_dirty"] == 1
    bits = ctypes.string_at(dirty["bitmap"], (tlb.count + 63) // 64 * 8)
    assert [i for i in range(len(bits) * 8) if bits[i // 8] >> i % 8 & 1] == [index]
    assert notes == ["vcpu:1: released from the spin table: entry 0x4001230, pc 0x1230, r3 0x1"]


def test_a_secondary_waits_until_the_guest_writes_its_entry(outputs, machine, kernel):
    plan, _ = outputs
    table = table_of(plan)
    at = release_addr(machine, 1)
    polled = threading.Event()
    original = machine.read

    def watched(gpa: int, length: int) -> bytes | None:
        if gpa == at:
            polled.set()
        return original(gpa, length)

    machine.read = watched  # type: ignore[method-assign]
    guest = threading.Thread(target=lambda: (polled.wait(10), kick_cpu(machine, at, 0x2000, 7)))
    guest.start()
    assert spin_table.run_when_released(table, machine, 1, Ending(lambda: None), lambda text: None)
    guest.join()
    assert kernel.calls[1][1]["regs"]["pc"] == 0x2000 and kernel.calls[1][1]["regs"]["gpr"][3] == 7


def test_the_end_of_the_run_stops_the_wait_without_touching_the_vcpu(outputs, machine, kernel):
    plan, _ = outputs
    ending = Ending(lambda: None)
    stopper = threading.Thread(target=lambda: ending.end(Status.HALTED, "guest powered off"))
    stopper.start()
    assert not spin_table.run_when_released(table_of(plan), machine, 1, ending, lambda text: None)
    stopper.join()
    assert kernel.calls == []
    assert be(machine, release_addr(machine, 1), 8) == 1


def _plan_with(outputs: Any, **changes: Any) -> Any:
    plan, _ = outputs
    epapr = plan.launcher["epapr"]
    return plan._replace(launcher={"epapr": {**epapr, "spin_table": {**epapr["spin_table"], **changes}}})


@pytest.mark.parametrize(("changes", "message"), [
    ({"map_size": 3 << 20}, "map_size must be a power of two"),
    ({"entry_size": 16}, "entries hold 24 bytes"),
    ({"vcpus": [0]}, "the boot vCPU 0 never spins"),
    ({"vcpus": [5]}, "vcpu 5 waits in the spin table but is never created"),
    ({"address": "0xeff000"}, "should be {address: int"),
    ({"address": (256 << 20) - 64}, "vcpu 1's entry at 0x10000000 is not inside one memory slot"),
    ({"tlb_entry": {"tlb": 1, "esel": 99, "mas8": 0, "mas1": 0, "mas2": 0, "mas7_3": 0}},
     "TLB1 entry 99 is not in the shared array"),
])
def test_a_spin_table_the_runtime_cannot_serve_is_refused_before_anything_opens(outputs, changes, message):
    from hvconf.kvm.powerpc.steps import check_plan

    with pytest.raises(PlanError, match=message.replace("{", r"\{")):
        check_plan(_plan_with(outputs, **changes))


def test_a_waiting_vcpu_needs_a_shared_tlb(outputs):
    from hvconf.kvm.powerpc.steps import check_plan

    plan, _ = outputs
    steps = tuple(s for s in plan.steps if not (s.fd == "vcpu:1" and s.args.get("cap") == "KVM_CAP_SW_TLB"))
    with pytest.raises(PlanError, match="vcpu 1 has no KVM_CAP_SW_TLB step"):
        check_plan(plan._replace(steps=steps))


def test_the_plan_starts_only_the_boot_vcpu(outputs):
    plan, _ = outputs
    assert [s.fd for s in plan.steps if s.ioctl in ("KVM_SET_REGS", "KVM_DIRTY_TLB")] == ["vcpu:0", "vcpu:0"]
    assert [s.fd for s in plan.steps if s.ioctl == "KVM_RUN"] == ["vcpu:0", "vcpu:1"]
    assert hvconf.abi.request("KVM_DIRTY_TLB", ARCH) == next(s.request for s in plan.steps
                                                             if s.ioctl == "KVM_DIRTY_TLB")


def _thread(outputs: Any, machine: Machine, ending: Ending, trace: io.StringIO) -> VcpuThread:
    """vCPU 1's thread as run.py makes it, with its KVM_RUN step as the only (first) step."""
    plan, _ = outputs
    [run] = [s for s in plan.steps if s.ioctl == "KVM_RUN" and s.fd == "vcpu:1"]
    shared = Shared(machine, Sequencer(), ending, Tracer(trace), Devices(held=table_of(plan)),
                    families.part(ARCH, "exits"), table(ARCH))  # fmt: skip
    return VcpuThread(1, [run._replace(index=0)], shared)


def _until(condition: Any) -> None:
    event = threading.Event()
    while not condition() and not event.wait(0.001):
        pass


def test_the_vcpu_thread_releases_before_its_first_kvm_run(outputs, machine, kernel):
    ending, trace = Ending(lambda: None), io.StringIO()
    thread = _thread(outputs, machine, ending, trace)
    thread.start()
    _until(lambda: thread.held or ending.finished)
    assert thread.held and ending.ran == []  # waiting, not running, not counted as a running vCPU
    kick_cpu(machine, release_addr(machine, 1), 0x3000, 1)
    thread.join()
    assert [name for name, _ in kernel.calls] == ["KVM_GET_REGS", "KVM_SET_REGS", "KVM_DIRTY_TLB"]
    # then KVM_RUN itself, on this vCPU's (closed) fd: the real ioctl, refused with EBADF
    assert isinstance(ending.error, KvmError) and (ending.error.ioctl, ending.error.errno) == ("KVM_RUN", errno.EBADF)
    assert ending.ran == [1] and not thread.held
    assert "trace: vcpu:1: released from the spin table: entry 0x3000, pc 0x3000, r3 0x1\n" in trace.getvalue()


def test_a_vcpu_thread_still_spinning_when_the_run_ends_never_runs(outputs, machine, kernel):
    ending = Ending(lambda: None)
    thread = _thread(outputs, machine, ending, io.StringIO())
    thread.start()
    _until(lambda: thread.held or ending.finished)
    ending.end(Status.HALTED, "guest powered off")
    thread.join()
    assert kernel.calls == [] and ending.ran == [] and ending.error is None and ending.finished


# ---- the host's cpu clocks (hvconf/kvm/powerpc/host_cells.py), from a CRAFTED /proc/device-tree ----------


def host_tree(base: Path, **values: bytes) -> Path:
    """A host device tree as Linux shows it under /proc/device-tree/cpus: one cpu node, one cache."""
    cpus = base / "cpus"
    (cpus / "l2-cache-controller").mkdir(parents=True)  # no device_type: not a cpu
    (cpus / "l2-cache-controller" / "timebase-frequency").write_bytes((1).to_bytes(4, "big"))
    cpu = cpus / "PowerPC,e500mc@0"
    cpu.mkdir()
    (cpu / "device_type").write_bytes(b"cpu\0")
    for name, data in values.items():
        (cpu / name.replace("_", "-")).write_bytes(data)
    return cpus


def fdt_image(loaded: list[Any]) -> bytes:
    [data] = [chunk[1] for image in loaded if image.name == "fdt" for chunk in image.chunks]
    return data


def test_the_launcher_gives_the_dtb_the_hosts_cpu_clocks(outputs, tmp_path):
    plan, folder = outputs
    loaded = image_files.load(plan, folder, {})
    # timebase-frequency one cell; clock-frequency two, as some hosts write it (QEMU reads both)
    cpus = host_tree(tmp_path, timebase_frequency=(41_666_666).to_bytes(4, "big"),
                     clock_frequency=(1_333_333_333).to_bytes(8, "big"))  # fmt: skip
    notes: list[str] = []
    patched = host_cells.patch(plan, loaded, notes.append, str(cpus))
    fdt = libfdt.Fdt(fdt_image(patched))
    for index in (0, 1):
        cpu = fdt.path_offset(f"/cpus/PowerPC,e500@{index}")
        assert fdt.getprop(cpu, "timebase-frequency").as_uint32() == 41_666_666
        assert fdt.getprop(cpu, "clock-frequency").as_uint32() == 1_333_333_333
    before, after = fdt_image(loaded), fdt_image(patched)
    changed = {i for i in range(len(before)) if before[i] != after[i]}
    cells = plan.launcher["epapr"]["host_cells"]["cells"]
    assert changed <= {at + i for offsets in cells.values() for at in offsets for i in range(4)}
    assert notes == ["clock-frequency = 1333333333 from the host (2 cpu nodes)",
                     "timebase-frequency = 41666666 from the host (2 cpu nodes)"]
    assert [image.name for image in patched] == [image.name for image in loaded]


def test_a_host_without_the_values_keeps_the_built_ones_and_says_so(outputs, tmp_path):
    plan, folder = outputs
    loaded = image_files.load(plan, folder, {})
    notes: list[str] = []
    patched = host_cells.patch(plan, loaded, notes.append, str(host_tree(tmp_path)))
    assert fdt_image(patched) == fdt_image(loaded)
    assert notes == [f"the host's device tree has no cpu {n}; the guest's keeps the built value"
                     for n in ("clock-frequency", "timebase-frequency")]
    assert host_cells.host_cell("timebase-frequency", str(tmp_path / "nowhere")) is None


@pytest.mark.parametrize(("cells", "message"), [
    ({"timebase-frequency": [1 << 20]}, "an offset of timebase-frequency lies outside"),
    ({"timebase-frequency": ["360"]}, "should be"),
])
def test_host_cells_the_runtime_cannot_place_are_refused(outputs, tmp_path, cells, message):
    plan, folder = outputs
    epapr = {**plan.launcher["epapr"], "host_cells": {"image": "fdt", "cells": cells}}
    with pytest.raises(PlanError, match=message):
        host_cells.patch(plan._replace(launcher={"epapr": epapr}), image_files.load(plan, folder, {}),
                         lambda text: None, str(host_tree(tmp_path, timebase_frequency=bytes(4))))


# ---- the launcher's host check on an e500 host (CRAFTED: its uname, as no e500 host exists here) ----------


def test_an_e500_host_checks_the_plan_against_its_arch_not_its_machine_name(outputs, monkeypatch):
    # `uname -m` says "ppc" on an e500; request numbers are the ppc-e500 arch's (hvconf/contract.py). The check
    # once asked for "ppc"'s numbers and refused every e500 plan as "unknown arch".
    from hvconf.kvm import run

    plan, _ = outputs
    assert plan.host_arch == "ppc" and not plan.unmerged
    monkeypatch.setattr(run, "ARCH", ARCH)
    monkeypatch.setattr(run.os, "uname", lambda: os.uname_result(("Linux", "e500", "6.1", "#1", "ppc")))
    run._check_runtime(plan)  # no HostMismatch
    wrong = plan._replace(steps=tuple(s._replace(request=s.request ^ 1) if s.index == 0 else s for s in plan.steps))
    with pytest.raises(run.HostMismatch, match="is not this host's 0x2000ae01 \\(ppc\\)"):
        run._check_runtime(wrong)
