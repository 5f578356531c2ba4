"""hvconf.abi: _IOC encodings, request numbers, and the hypercall/cap tables.

Vectors are literal numbers compiled once from the 6.1 uapi headers
(docs/kernel-facts.md#ioctl-encoding); tests/test_abi_headers.py re-derives
every table entry from the headers themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hvconf.abi as abi
from hvconf.abi import AbiError
from hvconf.abi.hcalls import epapr_data, rtas_in_kernel, s390_diag500, x86_data
from hvconf.abi.ioc import GENERIC, POWERPC, decode, encode

# --- _IOC encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "direction", "nr", "size", "expected"),
    [
        (GENERIC, "none", 0x01, 0, 0x0000AE01),  # KVM_CREATE_VM
        (POWERPC, "none", 0x01, 0, 0x2000AE01),
        (GENERIC, "w", 0xA3, 104, 0x4068AEA3),  # KVM_ENABLE_CAP
        (POWERPC, "w", 0xA3, 104, 0x8068AEA3),
        (GENERIC, "r", 0x81, 144, 0x8090AE81),  # KVM_GET_REGS
        (POWERPC, "r", 0x81, 392, 0x4188AE81),
        (GENERIC, "rw", 0x05, 8, 0xC008AE05),  # KVM_GET_SUPPORTED_CPUID
        (POWERPC, "rw", 0xE0, 12, 0xC00CAEE0),  # KVM_CREATE_DEVICE
        (GENERIC, "r", 0xA4, 4096, 0x9000AEA4),  # KVM_GET_XSAVE: size 0x1000 spills into bit 28
    ],
)
def test_encode_matches_header_values(layout, direction, nr, size, expected):
    assert encode(layout, direction, 0xAE, nr, size) == expected
    assert encode(layout.name, direction, 0xAE, nr, size) == expected


@pytest.mark.parametrize("layout", [GENERIC, POWERPC])
@pytest.mark.parametrize("direction", ["none", "r", "w", "rw"])
@pytest.mark.parametrize(("nr", "size"), [(0, 0), (0x7F, 1), (0xFF, 8191)])
def test_decode_round_trips(layout, direction, nr, size):
    size = 0 if direction == "none" else size
    request = encode(layout, direction, 0xAE, nr, size)
    ioc = decode(layout, request)
    assert (ioc.direction, ioc.type_, ioc.nr, ioc.size) == (direction, 0xAE, nr, size)


def test_directions_are_opposite_between_layouts():
    # The top nibble 0x4/0x8 means write on one ABI and read on the other.
    assert decode(GENERIC, 0x4068AEA3).direction == "w"
    assert decode(POWERPC, 0x4068AEA3).direction == "r"
    assert decode(POWERPC, 0x8068AEA3).macro == "_IOW"


def test_size_field_limits():
    assert encode(GENERIC, "w", 0xAE, 0, 16383) >> 16 & 0x3FFF == 16383
    with pytest.raises(AbiError, match="14-bit size field of the generic"):
        encode(GENERIC, "w", 0xAE, 0, 16384)
    assert encode(POWERPC, "w", 0xAE, 0, 8191) >> 16 & 0x1FFF == 8191
    with pytest.raises(AbiError, match="13-bit size field of the powerpc"):
        encode(POWERPC, "w", 0xAE, 0, 8192)  # KVM_GET_XSAVE-sized (4096) fits, 8 KiB does not
    with pytest.raises(AbiError, match="_IO request cannot carry a size"):
        encode(GENERIC, "none", 0xAE, 0, 4)
    with pytest.raises(AbiError, match="nr 256 does not fit"):
        encode(GENERIC, "none", 0xAE, 256, 0)
    with pytest.raises(AbiError, match="not one of"):
        encode(GENERIC, "write", 0xAE, 1, 4)


def test_decode_rejects_impossible_powerpc_direction():
    with pytest.raises(AbiError, match="not a valid powerpc _IOC direction"):
        decode(POWERPC, 0x0000AE01)  # dir 0 does not exist on powerpc (_IO is 1)


# --- request() per arch --------------------------------------------------------------------

# (ioctl, x86_64, ppc64le) as gcc computes them from the 6.1 headers; None = macro does not compile there.
TABLE2 = [
    ("KVM_GET_API_VERSION", 0x0000AE00, 0x2000AE00),
    ("KVM_CREATE_VM", 0x0000AE01, 0x2000AE01),
    ("KVM_CHECK_EXTENSION", 0x0000AE03, 0x2000AE03),
    ("KVM_GET_VCPU_MMAP_SIZE", 0x0000AE04, 0x2000AE04),
    ("KVM_GET_SUPPORTED_CPUID", 0xC008AE05, None),
    ("KVM_CREATE_VCPU", 0x0000AE41, 0x2000AE41),
    ("KVM_SET_USER_MEMORY_REGION", 0x4020AE46, 0x8020AE46),
    ("KVM_SET_TSS_ADDR", 0x0000AE47, 0x2000AE47),
    ("KVM_SET_IDENTITY_MAP_ADDR", 0x4008AE48, 0x8008AE48),
    ("KVM_CREATE_IRQCHIP", 0x0000AE60, 0x2000AE60),
    ("KVM_IRQ_LINE", 0x4008AE61, 0x8008AE61),
    ("KVM_SET_IRQCHIP", 0x8208AE63, 0x4208AE63),  # historic _IOR for an input
    ("KVM_CREATE_PIT2", 0x4040AE77, 0x8040AE77),
    ("KVM_PPC_GET_PVINFO", 0x4080AEA1, 0x8080AEA1),  # historic _IOW for an output
    ("KVM_PPC_GET_SMMU_INFO", 0x8250AEA6, 0x4250AEA6),
    ("KVM_PPC_ALLOCATE_HTAB", 0xC004AEA7, 0xC004AEA7),
    ("KVM_CREATE_SPAPR_TCE", None, 0x8010AEA8),
    ("KVM_CREATE_SPAPR_TCE_64", None, 0x8020AEA8),
    ("KVM_ALLOCATE_RMA", None, 0x4008AEA9),
    ("KVM_PPC_RTAS_DEFINE_TOKEN", None, 0x8080AEAC),
    ("KVM_PPC_CONFIGURE_V3_MMU", None, 0x8010AEAF),
    ("KVM_PPC_GET_RMMU_INFO", None, 0x8060AEB0),
    ("KVM_CREATE_DEVICE", 0xC00CAEE0, 0xC00CAEE0),
    ("KVM_RUN", 0x0000AE80, 0x2000AE80),
    ("KVM_GET_REGS", 0x8090AE81, 0x4188AE81),
    ("KVM_SET_REGS", 0x4090AE82, 0x8188AE82),
    ("KVM_GET_SREGS", 0x8138AE83, 0x44D0AE83),
    ("KVM_SET_SREGS", 0x4138AE84, 0x84D0AE84),
    ("KVM_INTERRUPT", 0x4004AE86, 0x8004AE86),
    ("KVM_SET_SIGNAL_MASK", 0x4004AE8B, 0x8004AE8B),
    ("KVM_GET_FPU", 0x81A0AE8C, 0x4100AE8C),
    ("KVM_SET_FPU", 0x41A0AE8D, 0x8100AE8D),
    ("KVM_SET_CPUID2", 0x4008AE90, None),
    ("KVM_GET_CPUID2", 0xC008AE91, None),
    ("KVM_GET_MP_STATE", 0x8004AE98, 0x4004AE98),
    ("KVM_SET_MP_STATE", 0x4004AE99, 0x8004AE99),
    ("KVM_SET_GUEST_DEBUG", 0x4048AE9B, 0x8108AE9B),
    ("KVM_ENABLE_CAP", 0x4068AEA3, 0x8068AEA3),
    ("KVM_DIRTY_TLB", 0x4010AEAA, 0x8010AEAA),
    ("KVM_GET_ONE_REG", 0x4010AEAB, 0x8010AEAB),  # _IOW although the value flows out
    ("KVM_SET_ONE_REG", 0x4010AEAC, 0x8010AEAC),
    ("KVM_GET_STATS_FD", 0x0000AECE, 0x2000AECE),
    ("KVM_S390_INTERRUPT", 0x4010AE94, 0x8010AE94),
    ("KVM_S390_ENABLE_SIE", 0x0000AE06, 0x2000AE06),
]


@pytest.mark.parametrize(("name", "x86", "ppc"), TABLE2, ids=[row[0] for row in TABLE2])
def test_request_matches_fact_sheet(name, x86, ppc):
    for arch, expected in (("x86_64", x86), ("ppc64le", ppc), ("ppc64", ppc), ("ppc-e500", ppc)):
        if expected is None:
            with pytest.raises(AbiError, match=rf"{name} is not defined for arch {arch}"):
                abi.request(name, arch)
        else:
            assert abi.request(name, arch) == expected, (name, arch)


def test_s390_uses_generic_encoding_with_its_own_structs():
    assert abi.request("KVM_ENABLE_CAP", "s390x") == 0x4068AEA3
    assert abi.request("KVM_GET_REGS", "s390x") == 0x8080AE81  # kvm_regs = gprs[16]
    assert abi.request("KVM_S390_SET_INITIAL_PSW", "s390x") == 0x4010AE96


def test_shared_nr_ioctls_differ_in_full_request():
    for arch in abi.ARCHES:
        numbers = [abi.request(n, arch) for n in ("KVM_CREATE_SPAPR_TCE", "KVM_CREATE_SPAPR_TCE_64")
                   if arch in abi.ioctl(n).arches]
        assert len(numbers) == len(set(numbers))
    assert abi.request("KVM_DIRTY_TLB", "ppc-e500") != abi.request("KVM_PPC_GET_HTAB_FD", "ppc-e500")


def test_word_sized_argument_is_not_offered_for_32bit_e500():
    assert abi.request("KVM_S390_STORE_STATUS", "s390x") == 0x4008AE95
    with pytest.raises(AbiError, match="not defined for arch ppc-e500"):
        abi.request("KVM_S390_STORE_STATUS", "ppc-e500")


def test_request_errors_name_ioctl_and_arch():
    with pytest.raises(AbiError, match=r"KVM_SET_CPUID2 is not defined for arch ppc64le.*x86_64"):
        abi.request("KVM_SET_CPUID2", "ppc64le")
    with pytest.raises(AbiError, match=r"unknown ioctl 'KVM_SET_CPUID3'; did you mean .*KVM_SET_CPUID2"):
        abi.request("KVM_SET_CPUID3", "x86_64")
    with pytest.raises(AbiError, match=r"unknown arch 'ppc64el'.*did you mean ppc64le"):
        abi.request("KVM_RUN", "ppc64el")


REQUIRED_IOCTLS = """
KVM_GET_API_VERSION KVM_CREATE_VM KVM_CHECK_EXTENSION KVM_GET_VCPU_MMAP_SIZE KVM_GET_SUPPORTED_CPUID
KVM_CREATE_VCPU KVM_SET_USER_MEMORY_REGION KVM_SET_TSS_ADDR KVM_SET_IDENTITY_MAP_ADDR KVM_CREATE_IRQCHIP
KVM_CREATE_PIT2 KVM_RUN KVM_GET_REGS KVM_SET_REGS KVM_GET_SREGS KVM_SET_SREGS KVM_SET_CPUID2
KVM_GET_CPUID2 KVM_ENABLE_CAP KVM_GET_ONE_REG KVM_SET_ONE_REG KVM_PPC_GET_PVINFO KVM_PPC_ALLOCATE_HTAB
KVM_CREATE_SPAPR_TCE KVM_CREATE_SPAPR_TCE_64 KVM_ALLOCATE_RMA KVM_PPC_RTAS_DEFINE_TOKEN
KVM_PPC_GET_SMMU_INFO KVM_PPC_CONFIGURE_V3_MMU KVM_PPC_GET_RMMU_INFO KVM_DIRTY_TLB KVM_INTERRUPT
KVM_SET_GUEST_DEBUG KVM_GET_MP_STATE KVM_SET_MP_STATE KVM_SET_SIGNAL_MASK KVM_GET_FPU KVM_SET_FPU
KVM_IRQ_LINE KVM_CREATE_DEVICE KVM_GET_STATS_FD KVM_S390_INTERRUPT KVM_S390_SET_INITIAL_PSW
KVM_S390_INITIAL_RESET KVM_S390_MEM_OP KVM_S390_IRQ KVM_S390_ENABLE_SIE
""".split()


def test_required_ioctls_and_structs_are_present():
    assert [n for n in REQUIRED_IOCTLS if n not in abi.ioctls()] == []
    assert all(n.startswith("KVM_") and abi.ioctl(n).fds for n in abi.ioctls())
    for struct in ("kvm_run", "kvm_enable_cap", "kvm_userspace_memory_region", "kvm_one_reg",
                   "kvm_create_spapr_tce", "kvm_create_spapr_tce_64", "kvm_rtas_token_args",
                   "kvm_ppc_pvinfo", "kvm_config_tlb", "kvm_pit_config", "kvm_regs", "kvm_sregs"):
        arch = "x86_64" if struct in ("kvm_pit_config",) else "ppc64le"
        assert abi.struct_fields(struct, arch), struct
    assert abi.struct_fields("kvm_cpuid_entry2", "x86_64")["edx"].offset == 24


def test_ioctl_rows_carry_fd_kinds_and_direction():
    assert abi.ioctl("KVM_CHECK_EXTENSION").fds == ("system", "vm")
    assert abi.ioctl("KVM_ENABLE_CAP").fds == ("vcpu", "vm")
    assert abi.ioctl("KVM_CREATE_VM").by_value == "unsigned long"
    assert abi.ioctl("KVM_PPC_GET_PVINFO").direction == "w"
    assert abi.ioctl("KVM_SET_GUEST_DEBUG").struct == "kvm_guest_debug"
    assert set(abi.ioctl("KVM_SET_DEVICE_ATTR").fds) == {"vm", "vcpu", "device"}


# --- arches and structs ------------------------------------------------------------------


def test_arch_tables():
    assert abi.ABI_OF_ARCH == {
        "x86_64": "generic", "s390x": "generic",
        "ppc64": "powerpc", "ppc64le": "powerpc", "ppc-e500": "powerpc",
    }
    assert {abi.LAYOUT_OF_ARCH[a] for a in ("ppc64", "ppc64le", "ppc-e500")} == {"powerpc64"}


def test_kvm_run_layout():
    x86 = abi.struct_fields("kvm_run", "x86_64")
    s390 = abi.struct_fields("kvm_run", "s390x")
    assert abi.struct_size("kvm_run", "x86_64") == abi.struct_size("kvm_run", "ppc64le") == 2352
    assert x86["io"].offset == 32 and s390["io"].offset == 48  # s390: psw_mask/psw_addr first
    assert s390["psw_mask"].offset == 32 and "psw_mask" not in x86
    ppc = abi.struct_fields("kvm_run", "ppc64le")
    assert (ppc["papr_hcall.nr"].offset, ppc["papr_hcall.ret"].offset) == (32, 40)
    assert (ppc["papr_hcall.args"].offset, ppc["papr_hcall.args"].size) == (48, 72)
    assert (x86["hypercall.ret"].offset, x86["hypercall.longmode"].offset) == (88, 96)
    assert x86["system_event.flags"].offset == x86["system_event.data"].offset == 40
    for member in ("io", "mmio", "hypercall", "papr_hcall", "osi", "system_event", "internal",
                   "fail_entry", "ex", "s390_sieic", "epr", "dcr"):
        assert member in x86 and s390[member].offset == x86[member].offset + 16
    assert "epapr_hcall" not in x86  # the proposal never reached a header


def test_arch_specific_structs():
    assert abi.struct_fields("kvm_regs", "x86_64")["rip"].offset == 128
    assert abi.struct_fields("kvm_regs", "ppc64le")["gpr"].offset == 136
    assert "rip" not in abi.struct_fields("kvm_regs", "ppc-e500")
    assert abi.struct_size("kvm_sregs", "ppc64") == 1232
    assert abi.struct_fields("kvm_sregs", "ppc-e500")["u.e.mas0"].size == 4
    assert abi.struct_fields("kvm_cpuid2", "x86_64")["entries"].size is None  # flexible array
    assert abi.struct_size("struct kvm_cpuid_entry2", "x86_64") == 40
    with pytest.raises(AbiError, match="kvm_cpuid2 is not defined in the ppc64le"):
        abi.struct_size("kvm_cpuid2", "ppc64le")
    with pytest.raises(AbiError, match="did you mean kvm_enable_cap"):
        abi.struct_size("kvm_enable_caps", "x86_64")


# --- caps and exits -----------------------------------------------------------------------


def test_caps():
    assert abi.cap("KVM_CAP_PPC_ENABLE_HCALL").number == 104
    assert abi.cap("KVM_CAP_PPC_ENABLE_HCALL").enable == "vm"
    assert abi.cap("KVM_CAP_PPC_PAPR").enable == "vcpu"
    assert abi.cap("KVM_CAP_PPC_FWNMI").enable == "vcpu"  # documented as vm, code takes vcpu
    assert abi.cap("KVM_CAP_SW_TLB").arches == ("ppc-e500",)
    assert abi.cap("KVM_CAP_EXIT_HYPERCALL").number == 201
    assert abi.cap("KVM_CAP_IRQCHIP").enable == "check"
    assert abi.cap("KVM_CAP_X86_GUEST_MODE").since == "6.10"
    assert abi.cap("KVM_CAP_PIT2").since is None
    all_caps = abi.caps()
    assert len({c.number for c in all_caps.values()}) == len(all_caps)  # numbers are unique
    assert all(c.enable in ("vm", "vcpu", "check") and c.arches for c in all_caps.values())
    with pytest.raises(AbiError, match="unmerged proposal"):
        abi.cap("KVM_CAP_EXIT_EPAPR_HCALL")


def test_exit_reasons():
    assert abi.exit_reason("KVM_EXIT_PAPR_HCALL").member == "papr_hcall"
    assert abi.exit_reason(19).name == "KVM_EXIT_PAPR_HCALL"
    assert abi.exit_reason(24).member == "system_event"
    assert abi.exit_reason("KVM_EXIT_HLT").member is None
    with pytest.raises(AbiError, match="unmerged proposal"):
        abi.exit_reason("KVM_EXIT_EPAPR_HCALL")
    with pytest.raises(AbiError, match="unknown exit reason number 99"):
        abi.exit_reason(99)


# --- PAPR ---------------------------------------------------------------------------------

HV_DEFAULT = {
    "H_REMOVE", "H_ENTER", "H_READ", "H_PROTECT", "H_BULK_REMOVE", "H_GET_TCE", "H_PUT_TCE",
    "H_SET_DABR", "H_SET_XDABR", "H_CEDE", "H_PROD", "H_CONFER", "H_REGISTER_VPA",
    "H_EOI", "H_CPPR", "H_IPI", "H_IPOLL", "H_XIRR", "H_XIRR_X",  # the XICS (‡) set
}
PR_DEFAULT = {
    "H_ENTER", "H_REMOVE", "H_PROTECT", "H_BULK_REMOVE", "H_GET_TCE", "H_PUT_TCE", "H_CEDE",
    "H_SET_MODE", "H_EOI", "H_CPPR", "H_IPI", "H_IPOLL", "H_XIRR", "H_XIRR_X",
}


def test_papr_default_sets_match_fact_sheet():
    hcalls = abi.papr_hcalls().values()
    assert {h.name for h in hcalls if h.hv_default} == HV_DEFAULT
    assert {h.name for h in hcalls if h.pr_default} == PR_DEFAULT
    set_mode = abi.papr_hcall("H_SET_MODE")
    assert set_mode.pr_default and set_mode.hv_implemented and not set_mode.hv_default
    assert all(h.hv_implemented for h in hcalls if h.hv_default)
    assert all(h.pr_implemented for h in hcalls if h.pr_default)


def test_papr_in_kernel_counts():
    # §5.3: the opcodes KVM_CAP_PPC_ENABLE_HCALL can toggle are HV 29 / PR 18, counting
    # the CONFIG_SPAPR_TCE_IOMMU (4: GET/PUT/STUFF_TCE, PUT_TCE_INDIRECT) and
    # CONFIG_KVM_XICS (6: EOI, CPPR, IPI, IPOLL, XIRR, XIRR_X) ones. The table gives
    # exactly that, so no difference to explain; a host kernel built without those
    # options implements 10 fewer in either flavour.
    hcalls = [h for h in abi.papr_hcalls().values() if not h.platform]
    hv = [h for h in hcalls if h.hv_implemented]
    pr = [h for h in hcalls if h.pr_implemented]
    assert (len(hv), len(pr)) == (29, 18)
    for flavour in (hv, pr):
        assert len([h for h in flavour if h.guard == "tce"]) == 4
        assert len([h for h in flavour if h.guard == "xics"]) == 6


def test_papr_opcodes_and_max():
    assert abi.MAX_HCALL_OPCODE == 0x488 == abi.papr_hcall("H_GUEST_DELETE").opcode
    rtas = abi.papr_hcall("H_RTAS")
    assert rtas.opcode == 0xF000 > abi.MAX_HCALL_OPCODE and rtas.platform
    assert not rtas.hv_implemented  # governed by KVM_PPC_RTAS_DEFINE_TOKEN, never ENABLE_HCALL
    assert abi.papr_hcall(0xE0).name == "H_CEDE" and abi.papr_hcall("H_CEDE").bit == 56
    hcalls = [h for h in abi.papr_hcalls().values() if not h.platform]
    assert all(h.opcode % 4 == 0 and h.opcode <= abi.MAX_HCALL_OPCODE for h in hcalls)
    assert abi.papr_hcall("H_GET_TCE").guard == "tce" and abi.papr_hcall("H_EOI").guard == "xics"
    assert rtas_in_kernel() == ("ibm,set-xive", "ibm,get-xive", "ibm,int-off", "ibm,int-on")
    with pytest.raises(AbiError, match="did you mean H_CEDE"):
        abi.papr_hcall("H_CEED")


# --- ePAPR, x86, s390 ---------------------------------------------------------------------


def test_epapr_tokens_and_pvinfo():
    assert abi.epapr_token("EV_IDLE").token == 0x00010010 and abi.epapr_token("EV_IDLE").kvm_handles
    assert abi.epapr_token("KVM_HC_PPC_MAP_MAGIC_PAGE").token == 0x002A0004
    assert abi.epapr_token("KVM_HC_FEATURES").token == 0x002A0003
    assert abi.epapr_token("KVM_HC_MAP_GPA_RANGE").token == 0x002A000C
    assert not abi.epapr_token("EV_BYTE_CHANNEL_SEND").kvm_handles  # EV_UNIMPLEMENTED in-kernel
    data = epapr_data()
    assert data["status"]["EV_UNIMPLEMENTED"] == 12
    assert data["pvinfo"]["booke_hv"][0] == 0x44000022  # sc 1
    assert data["pvinfo"]["pr_e500v2"][:3] == [0x3C004B56, 0x60004D21, 0x44000002]
    assert data["pvinfo"]["qemu_always_fail"][0] == 0x3860FFFF  # li r3,-1


def test_x86_hypercall_gates():
    assert abi.x86_hypercall("KVM_HC_KICK_CPU").feature == "KVM_FEATURE_PV_UNHALT"
    assert abi.kvm_feature("PV_UNHALT").bit == 7
    assert abi.kvm_feature(abi.x86_hypercall("KVM_HC_SEND_IPI").feature).bit == 11
    assert abi.kvm_feature(abi.x86_hypercall("KVM_HC_SCHED_YIELD").feature).bit == 13
    assert abi.kvm_feature("pv_unhalt") == abi.kvm_feature("KVM_FEATURE_PV_UNHALT")
    assert abi.kvm_feature("REALTIME").register == "edx"
    assert abi.x86_hypercall("KVM_HC_MMU_OP").deprecated
    exiting = [h.name for h in abi.x86_hypercalls().values() if h.exits_to_userspace]
    assert exiting == ["KVM_HC_MAP_GPA_RANGE"]
    assert 1 << abi.x86_hypercall("KVM_HC_MAP_GPA_RANGE").number == 0x1000
    cpuid = x86_data()["cpuid"]
    words = b"".join(cpuid[k].to_bytes(4, "little") for k in ("signature_ebx", "signature_ecx"))
    assert words + cpuid["signature_edx"].to_bytes(4, "little") == b"KVMKVMKVM\0\0\0"
    assert x86_data()["return_codes"]["KVM_ENOSYS"] == 1000


def test_s390_diag500():
    subcodes = s390_diag500()
    assert [s["number"] for s in subcodes.values()] == [0, 1, 2, 3, 4]
    assert [n for n, s in subcodes.items() if s["handled_by"] == "kernel"] == [
        "KVM_S390_VIRTIO_CCW_NOTIFY"
    ]


# --- the unmerged proposal ----------------------------------------------------------------


def test_proposal_has_no_numbers_by_default():
    prop = abi.proposed()
    assert prop.status == "unmerged"
    names = {i.name for i in prop.items}
    assert {"KVM_CAP_EXIT_EPAPR_HCALL", "KVM_EXIT_EPAPR_HCALL", "KVM_HC_VM_RESET",
            "KVM_HC_VM_SHUTDOWN", "kvm,has-reset", "kvm,has-shutdown"} <= names
    assert all(i.number is None for i in prop.items) and not prop.complete


def test_proposal_overrides(tmp_path: Path):
    good = tmp_path / "patched.toml"
    good.write_text("[numbers]\nKVM_CAP_EXIT_EPAPR_HCALL = 250\nKVM_EXIT_EPAPR_HCALL = 60\n"
                    "KVM_HC_VM_RESET = 13\nKVM_HC_VM_SHUTDOWN = 14\n")
    prop = abi.proposed(good)
    assert prop.number("KVM_HC_VM_RESET") == 13 and prop.complete and prop.overrides == str(good)
    assert prop.number("kvm,has-reset") is None

    cases = {
        "[numbers]\nKVM_HC_VM_RESETT = 13\n": r"KVM_HC_VM_RESETT: not a name.*did you mean KVM_HC_VM_RESET",
        "[numbers]\nKVM_HC_VM_RESET = \"13\"\n": r"KVM_HC_VM_RESET: expected an integer",
        "[numbers]\nKVM_HC_VM_RESET = true\n": r"KVM_HC_VM_RESET: expected an integer",
        "[numbers]\n\"kvm,has-reset\" = 1\n": r"kvm,has-reset: a dt_property takes no number",
        "[numbers]\nKVM_HC_VM_RESET = 12\n": r"collides with upstream KVM_HC_MAP_GPA_RANGE",
        "[numbers]\nKVM_CAP_EXIT_EPAPR_HCALL = 104\n": r"collides with upstream KVM_CAP_PPC_ENABLE_HCALL",
        "[nums]\n": r"unknown top-level key",
        "[numbers\n": r"not valid TOML",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.toml"
        bad.write_text(text)
        with pytest.raises(AbiError, match=message) as err:
            abi.proposed(bad)
        assert str(bad) in str(err.value)
    with pytest.raises(AbiError, match="cannot read"):
        abi.proposed(tmp_path / "missing.toml")


def test_overrides_that_are_no_small_regular_file_are_refused_without_reading_them(tmp_path):
    # `--abi-overrides /dev/zero` read for ever; a FIFO blocked the build on its open.
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big.toml").write_bytes(b"#" * ((1 << 20) + 1))
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe")
    for path, message in ((Path("/dev/zero"), "not a regular file"), (tmp_path / "fifo", "not a regular file"),
                          (tmp_path, "not a regular file"), (tmp_path / "big.toml", "larger than 1048576 bytes"),
                          (tmp_path / "binary.toml", "not UTF-8 text")):  # fmt: skip
        with pytest.raises(AbiError, match=message):
            abi.proposed(path)


# --- helpers and import hygiene -----------------------------------------------------------


def test_names_close_to():
    assert "KVM_CAP_PPC_PAPR" in abi.names_close_to("cap", "KVM_CAP_PAPR")
    assert abi.names_close_to("papr_hcall", "H_CEED")[0] == "H_CEDE"
    assert abi.names_close_to("proposed", "KVM_HC_VM_RESTE")[0] == "KVM_HC_VM_RESET"
    with pytest.raises(AbiError, match="unknown name kind"):
        abi.names_close_to("capz", "x")


def test_import_is_cheap_and_lazy():
    code = (
        "import sys, hvconf.abi as a; "
        "bad = [m for m in ('tomllib', 'pydantic', 'lark', 'cffi', 'hvconf.abi.tables') if m in sys.modules]; "
        "assert not bad, bad; a.request('KVM_RUN', 'x86_64'); "
        "bad = [m for m in ('pydantic', 'lark', 'cffi') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
