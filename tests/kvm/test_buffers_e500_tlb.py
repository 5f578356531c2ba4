"""The e500 shared TLB (KVM_CAP_SW_TLB, KVM_DIRTY_TLB) through the runtime's own step handlers,
against a CRAFTED kernel: no e500 host exists here.

The plan is the compiler's, for samples/e500.hv; the steps go through
hvconf.kvm.steps as the launcher issues them, on a vCPU of arch ppc-e500. Only
the system call is replaced: `CraftedKernel` stands where libc's ioctl was and
does what the kernel does with the argument (kvm_vcpu_ioctl_enable_cap ->
kvm_vcpu_ioctl_config_tlb copy_from_user()s the kvm_config_tlb at args[0],
then its params, and pins the array; KVM_DIRTY_TLB reads the bitmap): it reads
the raw bytes at the addresses it is handed and decodes them with the offsets
of hvconf.abi's structs.toml (compared with the ppc cross headers by
tests/test_abi_headers.py), not with the cffi declarations under test. Fields
are in this host's byte order, as cffi writes them natively (an e500 host is
big-endian).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

import pytest

import hvconf.abi
from hvconf import compiler
from hvconf.abi import hcalls
from hvconf.kvm import fd as fd_module
from hvconf.kvm import steps_e500, sw_tlb
from hvconf.kvm.ffi import ffi
from hvconf.kvm.machine import Machine
from hvconf.kvm.plan import PlanError, parse
from hvconf.kvm.steps import STEPS, validate
from hvconf.kvm.vcpu import Vcpu

ARCH = "ppc-e500"
REPO = Path(__file__).resolve().parents[2]
RUN_SIZE = 3 * 4096
ENTRY = hvconf.abi.struct_size("kvm_book3e_206_tlb_entry", ARCH)
# Element width of the array members decoded here (structs.toml gives the whole array's size).
ELEMENT = {"args": 8, "pad": 1, "tlb_sizes": 4, "tlb_ways": 4, "reserved": 4, "gpr": 8}
REQUESTS = {hvconf.abi.request(n, ARCH): n for n in ("KVM_ENABLE_CAP", "KVM_DIRTY_TLB", "KVM_PPC_GET_PVINFO",
                                                     "KVM_GET_REGS", "KVM_SET_REGS", "KVM_SET_USER_MEMORY_REGION")}
MSR = 0x0002_9000  # what the crafted KVM_GET_REGS answers in msr (EE|ME|CE), to see it kept


def decode(raw: bytes, struct: str) -> dict[str, Any]:
    """`raw` as struct `struct` of the ppc-e500 layout in hvconf.abi, in this host's byte order."""
    out: dict[str, Any] = {}
    for name, field in hvconf.abi.struct_fields(struct, ARCH).items():
        data = raw[field.offset : field.offset + field.size]
        width = ELEMENT.get(name)
        if width is None:
            out[name] = int.from_bytes(data, os.sys.byteorder)
        else:
            out[name] = [int.from_bytes(data[i : i + width], os.sys.byteorder) for i in range(0, len(data), width)]
    return out


def read(address: int, struct: str) -> dict[str, Any]:
    return decode(ctypes.string_at(address, hvconf.abi.struct_size(struct, ARCH)), struct)


class CraftedKernel:
    """Stands for libc's ioctl(2): records what KVM would read through each argument, returns 0."""

    def __init__(self, hcall_words: tuple[int, ...] = ()) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.hcall_words = hcall_words  # what KVM_PPC_GET_PVINFO answers

    def ioctl(self, fd: int, number: int, arg: Any) -> int:
        name = REQUESTS[number]
        address = int(ffi.cast("uintptr_t", arg))
        if name == "KVM_PPC_GET_PVINFO":  # kvm_vm_ioctl_get_pvinfo stores the words as the (big-endian) host does
            at = hvconf.abi.struct_fields("kvm_ppc_pvinfo", ARCH)["hcall"].offset
            ctypes.memmove(address + at, b"".join(w.to_bytes(4, "big") for w in self.hcall_words), 16)
            self.calls.append((name, {}))
            return 0
        if name == "KVM_GET_REGS":  # kvm_arch_vcpu_ioctl_get_regs: every register, here only msr not 0
            fields = hvconf.abi.struct_fields("kvm_regs", ARCH)
            ctypes.memset(address, 0, hvconf.abi.struct_size("kvm_regs", ARCH))
            ctypes.memmove(address + fields["msr"].offset, MSR.to_bytes(8, os.sys.byteorder), 8)
            self.calls.append((name, {}))
            return 0
        if name == "KVM_SET_USER_MEMORY_REGION":  # the slot's mapping stays the runtime's to read and write
            self.calls.append((name, {"region": read(address, "kvm_userspace_memory_region")}))
            return 0
        if name == "KVM_SET_REGS":
            self.calls.append((name, {"regs": read(address, "kvm_regs")}))
            return 0
        if name == "KVM_ENABLE_CAP":
            cap = read(address, "kvm_enable_cap")
            config = read(cap["args"][0], "kvm_config_tlb")
            seen = {"cap": cap, "config": config, "params": read(config["params"], "kvm_book3e_206_tlb_params")}
        else:
            dirty = read(address, "kvm_dirty_tlb")
            seen = {"dirty": dirty}
        self.calls.append((name, seen))
        return 0


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """samples/e500.hv, built for a kernel with the ePAPR proposal (numbers from an overrides file,
    as its users must give them) so the runtime's validation accepts the rest of the plan."""
    overrides = tmp_path_factory.mktemp("abi") / "patched-kernel.toml"
    overrides.write_text("[numbers]\nKVM_EXIT_EPAPR_HCALL = 50\nKVM_HC_VM_RESET = 13\nKVM_HC_VM_SHUTDOWN = 14\n"
                         "KVM_CAP_EXIT_EPAPR_HCALL = 250\n")  # fmt: skip
    [built] = compiler.build([REPO / "samples" / "e500.hv"], proposed_overrides=overrides).built
    return parse(built.plan)


@pytest.fixture
def machine() -> Any:
    # A vCPU of arch ppc-e500 with a real kvm_run mapping (a memfd's) whose fd number is then closed.
    fd = os.memfd_create("kvm_run", os.MFD_CLOEXEC)
    os.ftruncate(fd, RUN_SIZE)
    vcpu = Vcpu(fd, 0, RUN_SIZE, None, ARCH)
    os.close(fd)
    m = Machine(None, [])  # type: ignore[arg-type]  # no system fd: only vCPU steps are issued
    m.vcpus[0] = vcpu
    yield m
    vcpu.fd = -1
    vcpu.close()


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> CraftedKernel:
    crafted = CraftedKernel()
    monkeypatch.setattr(fd_module, "lib", crafted)
    return crafted


def steps_of(plan: Any, ioctl: str, fd: str = "vcpu:0") -> list[Any]:
    return [s for s in plan.steps if s.ioctl == ioctl and s.fd == fd]


def test_sw_tlb_enable_cap_argument_decoded_from_a_crafted_kernel(plan, machine, kernel):
    [step] = [s for s in steps_of(plan, "KVM_ENABLE_CAP") if s.args["cap"] == "KVM_CAP_SW_TLB"]
    STEPS[step.ioctl].apply(machine, step)
    [(name, seen)] = kernel.calls
    assert name == "KVM_ENABLE_CAP"
    assert seen["cap"]["cap"] == hvconf.abi.cap("KVM_CAP_SW_TLB").number == step.args["cap_nr"]
    assert seen["cap"]["flags"] == 0 and seen["cap"]["args"][1:] == [0, 0, 0] and not any(seen["cap"]["pad"])
    # samples/e500.hv: mmu e500v2 sets 128 ways 4 -> TLB0 512 entries 4-way, TLB1 16 fully associative
    assert seen["params"] == {"tlb_sizes": [512, 16, 0, 0], "tlb_ways": [4, 16, 0, 0], "reserved": [0] * 8}
    tlb = machine.tlbs[0]
    config = seen["config"]
    assert config["mmu_type"] == hcalls.epapr_data()["sw_tlb"]["KVM_MMU_FSL_BOOKE_NOHV"] == 0
    assert config["array_len"] == (512 + 16) * ENTRY == 528 * 24
    assert config["params"] == sw_tlb.address(tlb.params)
    assert config["array"] == sw_tlb.address(tlb.entries)  # the array the Machine keeps for the VM's life
    assert cap_arg_is(seen, tlb.address)


def cap_arg_is(seen: dict[str, Any], address: int) -> bool:
    return seen["cap"]["args"][0] == address


def test_the_array_pointer_is_the_live_array_both_ways(plan, machine, kernel):
    [step] = [s for s in steps_of(plan, "KVM_ENABLE_CAP") if s.args["cap"] == "KVM_CAP_SW_TLB"]
    STEPS[step.ioctl].apply(machine, step)
    array = kernel.calls[0][1]["config"]["array"]
    tlb = machine.tlbs[0]
    # KVM writes a guest tlbwe into the shared array: the runtime's entries see it.
    at = array + tlb.index(1, 3) * ENTRY
    raw = (0x11).to_bytes(4, os.sys.byteorder) + (0x80000500).to_bytes(4, os.sys.byteorder)
    ctypes.memmove(at, raw + (0x2000).to_bytes(8, os.sys.byteorder) + (0x3F).to_bytes(8, os.sys.byteorder), ENTRY)
    entry = tlb.entries[tlb.index(1, 3)]
    assert (entry.mas8, entry.mas1, entry.mas2, entry.mas7_3) == (0x11, 0x80000500, 0x2000, 0x3F)
    # The runtime writes an entry: KVM reads it at the address it was given.
    [index] = tlb.write([{"tlb": 0, "esel": 7, "mas8": 0, "mas1": 1, "mas2": 2, "mas7_3": 3}])
    assert index == 7
    assert read(array + 7 * ENTRY, "kvm_book3e_206_tlb_entry") == {"mas8": 0, "mas1": 1, "mas2": 2, "mas7_3": 3}


def test_dirty_tlb_writes_the_initial_mapping_and_names_only_it(plan, machine, kernel):
    [cap] = [s for s in steps_of(plan, "KVM_ENABLE_CAP") if s.args["cap"] == "KVM_CAP_SW_TLB"]
    [dirty] = steps_of(plan, "KVM_DIRTY_TLB")
    STEPS[cap.ioctl].apply(machine, cap)
    STEPS[dirty.ioctl].apply(machine, dirty)
    (_, enabled), (name, seen) = kernel.calls
    assert name == "KVM_DIRTY_TLB"
    [want] = dirty.args["entries"]
    assert (want["tlb"], want["esel"]) == (1, 0)
    # 64 MiB from effective 0 to physical 0, valid, RWX for supervisor and user (ePAPR IMA; r7 says 64 MiB)
    assert (want["mas1"], want["mas2"], want["mas7_3"]) == (0x8000_0000 | 16 << 7, 0, 0x3F)
    count = 512 + 16
    bits = ctypes.string_at(seen["dirty"]["bitmap"], (count + 63) // 64 * 8)
    assert len(bits) == 72  # one bit per entry, rounded up to a multiple of 64 bits (api.rst §4.60)
    set_bits = [i for i in range(len(bits) * 8) if bits[i // 8] >> (i % 8) & 1]
    assert set_bits == [512] == [machine.tlbs[0].index(1, 0)]  # TLB1 entry 0 follows TLB0's 512
    assert seen["dirty"]["num_dirty"] == 1
    written = read(enabled["config"]["array"] + 512 * ENTRY, "kvm_book3e_206_tlb_entry")
    assert written == {k: want[k] for k in ("mas8", "mas1", "mas2", "mas7_3")}


def _with(plan: Any, index: int, **args: Any) -> dict[str, Any]:
    """The plan as JSON again, with step `index`'s args updated."""
    raw = {"format": 1, "vm": plan.vm, "arch": plan.arch, "requires": {"host_arch": plan.host_arch, "caps": []},
           "images": [], "launcher": dict(plan.launcher),
           "steps": [{"fd": s.fd, "ioctl": s.ioctl, "request": s.request, "args": dict(s.args), "source": s.source}
                     for s in plan.steps]}  # fmt: skip
    raw["steps"][index]["args"].update(args)
    return raw


def _sw_tlb_index(plan: Any) -> int:
    return next(s.index for s in plan.steps if s.ioctl == "KVM_ENABLE_CAP" and s.args["cap"] == "KVM_CAP_SW_TLB")


BAD_CONFIGS = [
    ({"mmu_type": 1}, "mmu_type is not KVM_MMU_FSL_BOOKE_NOHV"),
    ({"tlb_sizes": [512, 65, 0, 0], "tlb_ways": [4, 65, 0, 0]}, "TLB1 has more than 64 entries"),
    ({"tlb_ways": [4, 8, 0, 0]}, "TLB1 is not fully associative"),
    ({"tlb_sizes": [512, 16, 4, 0]}, "TLB2 and TLB3 are not empty"),
    ({"tlb_ways": [3, 16, 0, 0]}, "tlb_ways[0] is not a power of two"),
    ({"tlb_sizes": [384, 16, 0, 0]}, "set count (tlb_sizes[0] / tlb_ways[0]) is not a power of two"),
    ({"tlb_sizes": [1 << 31, 16, 0, 0]}, "more than the 4194304 this runtime allocates"),
    ({"tlb_sizes": [512, 16, 0]}, "config should be"),
    ({"mmu_type": -1}, "is not a u32"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_a_config_kvm_would_refuse_is_refused_before_anything_opens(plan, change, message):
    index = _sw_tlb_index(plan)
    raw = _with(plan, index, config={**plan.steps[index].args["config"], **change})
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):  # fmt: skip
        validate(parse(raw))


def test_sw_tlb_without_config_and_config_elsewhere_are_refused(plan):
    index = _sw_tlb_index(plan)
    raw = _with(plan, index)
    del raw["steps"][index]["args"]["config"]
    with pytest.raises(PlanError, match="KVM_CAP_SW_TLB needs 'config'"):
        validate(parse(raw))
    first_cap = next(s.index for s in plan.steps if s.ioctl == "KVM_ENABLE_CAP")
    raw = _with(plan, first_cap, config=plan.steps[index].args["config"])
    if first_cap != index:
        with pytest.raises(PlanError, match="'config' is for KVM_CAP_SW_TLB"):
            validate(parse(raw))


def test_dirty_tlb_needs_an_earlier_shared_tlb_and_entries_inside_it(plan):
    # validate() ends with this plan-wide check; called alone, since on this x86 host validate()
    # already stops at the first KVM_SET_REGS (the host's struct kvm_regs has no `pc`).
    [dirty] = steps_of(plan, "KVM_DIRTY_TLB")
    entry = dict(dirty.args["entries"][0])
    steps_e500.check_plan(plan)
    raw = _with(plan, dirty.index, entries=[{**entry, "esel": 16}])  # TLB1 has 16 entries: 0..15
    with pytest.raises(PlanError, match="TLB1 entry 16 is not in the shared array"):
        steps_e500.check_plan(parse(raw))
    raw = _with(plan, dirty.index, entries=[{**entry, "mas2": 1 << 64}])
    with pytest.raises(PlanError, match="mas2 out of range"):
        steps_e500.check_plan(parse(raw))
    raw = _with(plan, dirty.index, entries=[{k: v for k, v in entry.items() if k != "mas8"}])
    with pytest.raises(PlanError, match="a TLB entry is"):
        steps_e500.check_plan(parse(raw))
    raw = _with(plan, _sw_tlb_index(plan))
    raw["steps"] = [s for i, s in enumerate(raw["steps"]) if i != _sw_tlb_index(plan)]
    with pytest.raises(PlanError, match="no earlier KVM_CAP_SW_TLB step gives vcpu 0 a shared TLB"):
        steps_e500.check_plan(parse(raw))


@pytest.mark.parametrize(("mmu", "sets", "ways", "tlb1"), [("e500v2", 128, 4, 16), ("e500mc", 64, 4, 64),
                                                           ("e500v2", 1, 1, 16), ("e500mc", 65536, 64, 64)])
def test_every_compiled_config_passes_the_kernels_checks(tmp_path, mmu, sets, ways, tlb1):
    source = tmp_path / "vm.hv"
    source.write_text(f"format 1\nvm e {{\n  arch ppc-e500  memory 64M  vcpus 1\n"
                      f"  cap KVM_CAP_SW_TLB on vcpus {{ mmu {mmu}  sets {sets}  ways {ways} }}\n}}\n")
    result = compiler.build([source])
    assert not result.report.has_errors, [d.message for d in result.report]
    [built] = result.built
    [step] = [s for s in built.plan["steps"] if s["args"].get("cap") == "KVM_CAP_SW_TLB"]
    config = step["args"]["config"]
    assert config == {"mmu_type": 0, "tlb_sizes": [sets * ways, tlb1, 0, 0], "tlb_ways": [ways, tlb1, 0, 0]}
    assert sw_tlb.problems(config) == []


@pytest.mark.parametrize("host", ["pr_e500v2", "booke_hv"])
def test_pvinfo_step_refuses_a_host_whose_hcall_words_differ_from_the_tree(plan, monkeypatch, host):
    from hvconf.kvm.errors import UnexpectedResult
    from hvconf.kvm.system import Kvm
    from hvconf.kvm.vm import Vm

    words = tuple(hcalls.epapr_data()["pvinfo"][host])
    monkeypatch.setattr(fd_module, "lib", CraftedKernel(words))
    [step] = [s for s in plan.steps if s.ioctl == "KVM_PPC_GET_PVINFO"]
    m = Machine(None, [], Vm(-1, Kvm.from_fd(-1, None, ARCH)))  # type: ignore[arg-type]
    # samples/e500.hv says mmu e500v2: the tree promises the non-HV sequence (magic r0, sc)
    assert step.args["expect"] == list(hcalls.epapr_data()["pvinfo"]["pr_e500v2"])
    if host == "pr_e500v2":
        STEPS[step.ioctl].apply(m, step)
        return
    with pytest.raises(UnexpectedResult, match=r"KVM_PPC_GET_PVINFO gave \[0x44000022, .*the plan asked for "
                                               r"hcall-instructions \[0x3c004b56"):  # fmt: skip
        STEPS[step.ioctl].apply(m, step)


def test_a_suppressed_bad_sw_tlb_builds_and_the_launcher_refuses_its_config(tmp_path):
    # `hvconf: ignore` lets a definition without `mmu` build; its step cannot become a kvm_config_tlb.
    source = tmp_path / "vm.hv"
    source.write_text("format 1\n# hvconf: ignore[cap-bad-args]\nvm e {\n  arch ppc-e500  memory 64M  vcpus 1\n"
                      "  cap KVM_CAP_SW_TLB on vcpus { sets 128 }\n}\n")  # fmt: skip
    [built] = compiler.build([source]).built
    [step] = [s for s in parse(built.plan).steps if s.args.get("cap") == "KVM_CAP_SW_TLB"]
    with pytest.raises(PlanError, match="KVM would refuse this KVM_CAP_SW_TLB config: config should be"):
        STEPS[step.ioctl].check(step)
