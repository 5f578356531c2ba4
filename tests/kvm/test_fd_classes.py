"""Kvm, Vm and Vcpu: every method through the errno boundary on a closed fd, and the x86 ones on /dev/kvm.

The `_bad_fd` tests run anywhere: each method builds its argument with its
arch's declarations, computes that arch's request number and issues the
ioctl on a closed fd, which must fail with EBADF as a KvmError naming the
ioctl. That proves request numbers and marshalling without the hardware; the
real PowerPC path runs only under the emulated POWER9 host of issue 7. The
`kvm` tests use this host's /dev/kvm (x86_64), every KVM_RUN under a timer.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

import hvconf.abi
from hvconf.kvm import cdefs, exits
from hvconf.kvm.errors import KvmError
from hvconf.kvm.ffi import ffi_for
from hvconf.kvm.memory import GuestMemory
from hvconf.kvm.system import Kvm
from hvconf.kvm.vcpu import Vcpu, one_reg_size
from hvconf.kvm.vm import PvInfo, Vm
from hvconf.kvm.x86 import CpuidEntry

RUN_SIZE = 3 * 4096
LPCR = 0x603000000000007E  # KVM_REG_PPC_LPCR_64: KVM_REG_PPC | KVM_REG_SIZE_U64 | 0xb5
PSW_MASK_64 = 0x0000000180000000


def closed_fd() -> int:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    return fd


class Traced:
    """A tracer that keeps (label, ioctl, request) of every ioctl issued."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, label: str, ioctl: str, request: int) -> None:
        self.calls.append((label, ioctl, request))


def dead_kvm(arch: str, tracer: Traced) -> Kvm:
    return Kvm.from_fd(closed_fd(), tracer, arch)


def dead_vm(arch: str, tracer: Traced) -> Vm:
    return Vm(closed_fd(), dead_kvm(arch, tracer), tracer)


def dead_vcpu(arch: str, tracer: Traced) -> Vcpu:
    # A real shared mapping (of a memfd) for kvm_run, then the fd number is closed: every ioctl sees EBADF.
    fd = os.memfd_create("kvm_run", os.MFD_CLOEXEC)
    os.ftruncate(fd, RUN_SIZE)
    vcpu = Vcpu(fd, 0, RUN_SIZE, tracer, arch)
    os.close(fd)
    return vcpu


Call = Callable[[Any], object]
KVM_CALLS: list[tuple[str, str, Call]] = [
    ("KVM_GET_API_VERSION", "*", lambda k: k.api_version),
    ("KVM_CHECK_EXTENSION", "*", lambda k: k.check_extension(3)),
    ("KVM_GET_VCPU_MMAP_SIZE", "*", lambda k: k.vcpu_mmap_size),
    ("KVM_CREATE_VM", "*", lambda k: k.create_vm(1)),
    ("KVM_GET_SUPPORTED_CPUID", "x86_64", lambda k: k.supported_cpuid()),
]
VM_CALLS: list[tuple[str, str, Call]] = [
    ("KVM_CHECK_EXTENSION", "*", lambda v: v.check_extension(104)),
    ("KVM_ENABLE_CAP", "*", lambda v: v.enable_cap(104, [0x31C, 1])),
    ("KVM_SET_USER_MEMORY_REGION", "*", lambda v: v.set_user_memory_region(0, 0, 1 << 28, 0x7F0000000000)),
    ("KVM_CREATE_VCPU", "*", lambda v: v.create_vcpu(0)),
    ("KVM_SET_TSS_ADDR", "x86_64", lambda v: v.set_tss_addr(0xFFFBD000)),
    ("KVM_CREATE_IRQCHIP", "x86_64", lambda v: v.create_irqchip()),
    ("KVM_CREATE_PIT2", "x86_64", lambda v: v.create_pit2(1)),
    ("KVM_CREATE_SPAPR_TCE", "ppc", lambda v: v.create_spapr_tce(0x71000000, 1 << 28)),
    ("KVM_CREATE_SPAPR_TCE_64", "ppc", lambda v: v.create_spapr_tce_64(0x80000000, 16, 0, 16384)),
    ("KVM_PPC_ALLOCATE_HTAB", "ppc", lambda v: v.ppc_allocate_htab(25)),
    ("KVM_PPC_RTAS_DEFINE_TOKEN", "ppc", lambda v: v.ppc_rtas_define_token("ibm,set-xive", 0x200A)),
    ("KVM_PPC_GET_PVINFO", "ppc", lambda v: v.get_pvinfo()),
    ("KVM_PPC_CONFIGURE_V3_MMU", "ppc", lambda v: v.ppc_configure_v3_mmu(0, 0)),
]
VCPU_CALLS: list[tuple[str, str, Call]] = [
    ("KVM_GET_REGS", "*", lambda c: c.regs),
    ("KVM_SET_REGS", "*", lambda c: c.set_regs(c.new("struct kvm_regs *"))),
    ("KVM_GET_SREGS", "*", lambda c: c.sregs),
    ("KVM_SET_SREGS", "*", lambda c: c.set_sregs(c.new("struct kvm_sregs *"))),
    ("KVM_GET_ONE_REG", "*", lambda c: c.get_one_reg(LPCR)),
    ("KVM_SET_ONE_REG", "*", lambda c: c.set_one_reg(LPCR, 1 << 25)),
    ("KVM_ENABLE_CAP", "*", lambda c: c.enable_cap(68)),
    ("KVM_RUN", "*", lambda c: c.run()),
    ("KVM_SET_CPUID2", "x86_64", lambda c: c.set_cpuid2([CpuidEntry(0x40000001, eax=0x80)])),
    ("KVM_DIRTY_TLB", "ppc", lambda c: c.dirty_tlb(0x10000, 1)),
    ("KVM_S390_SET_INITIAL_PSW", "s390x", lambda c: c.s390_set_initial_psw(PSW_MASK_64, 0x10000)),
]
ARCHES_OF = {"*": ("x86_64", "ppc64le", "ppc64", "ppc-e500", "s390x"), "x86_64": ("x86_64",),
             "ppc": ("ppc64le", "ppc64", "ppc-e500"), "s390x": ("s390x",)}  # fmt: skip
MAKERS = {"kvm": dead_kvm, "vm": dead_vm, "vcpu": dead_vcpu}
CASES = [(kind, ioctl, arch, call) for kind, calls in (("kvm", KVM_CALLS), ("vm", VM_CALLS), ("vcpu", VCPU_CALLS))
         for ioctl, where, call in calls for arch in ARCHES_OF[where]]  # fmt: skip


@pytest.mark.parametrize(("kind", "ioctl", "arch", "call"), CASES,
                         ids=[f"{k}-{i}-{a}" for k, i, a, _ in CASES])  # fmt: skip
def test_every_method_fails_through_the_boundary_bad_fd(kind, ioctl, arch, call):
    # The real PowerPC and s390 paths run only under the emulated hosts of issue 7.
    tracer = Traced()
    fd = MAKERS[kind](arch, tracer)
    try:
        with pytest.raises(KvmError) as caught:
            call(fd)
        assert (caught.value.ioctl, caught.value.errno) == (ioctl, errno.EBADF)
        assert str(caught.value).startswith(f"{ioctl} failed: EBADF")
        if ioctl != "KVM_RUN":  # KVM_RUN is untraced: it repeats per exit
            assert tracer.calls[-1][1:] == (ioctl, hvconf.abi.request(ioctl, arch))
    finally:
        fd.fd = -1  # the number is closed already (and may be reused): only unmap what is ours
        fd.close()


def test_the_cases_cover_every_arch_and_method():
    assert len(CASES) == 4 * 5 + 1 + 4 * 5 + 3 + 6 * 3 + 8 * 5 + 1 + 3 + 1


STRUCT_ARGS = ["KVM_CREATE_SPAPR_TCE", "KVM_CREATE_SPAPR_TCE_64", "KVM_PPC_RTAS_DEFINE_TOKEN", "KVM_PPC_GET_PVINFO",
               "KVM_PPC_CONFIGURE_V3_MMU", "KVM_GET_REGS", "KVM_GET_SREGS", "KVM_SET_ONE_REG", "KVM_ENABLE_CAP",
               "KVM_SET_USER_MEMORY_REGION", "KVM_SET_CPUID2", "KVM_S390_SET_INITIAL_PSW", "KVM_CREATE_PIT2",
               "KVM_DIRTY_TLB"]  # fmt: skip
# (ioctl, arch) where the arch defines the ioctl and its declarations marshal the struct
MARSHALLED = [(ioctl, arch) for ioctl in STRUCT_ARGS for arch in ("x86_64", "ppc64le", "ppc-e500", "s390x")
              if arch in hvconf.abi.ioctl(ioctl).arches
              and hvconf.abi.ioctl(ioctl).struct in cdefs.structs(cdefs.column(arch))]


@pytest.mark.parametrize(("ioctl", "arch"), MARSHALLED)
def test_request_sizes_match_the_structs_marshalled(ioctl, arch):
    struct = hvconf.abi.ioctl(ioctl).struct
    size = ffi_for(arch).sizeof(f"struct {struct}")
    assert hvconf.abi.decode(hvconf.abi.ioc_layout(arch), hvconf.abi.request(ioctl, arch)).size == size


def test_the_marshalled_cases_cover_each_arch():
    arches = {arch for _, arch in MARSHALLED}
    assert arches == {"x86_64", "ppc64le", "ppc-e500", "s390x"} and len(MARSHALLED) == 35


def test_rtas_names_that_do_not_fit_are_refused_before_any_ioctl():
    tracer = Traced()
    with pytest.raises(ValueError, match="longer than 119"):
        dead_vm("ppc64le", tracer).ppc_rtas_define_token("x" * 120, 1)
    assert tracer.calls == []


def test_a_struct_an_arch_does_not_declare_is_named():
    with pytest.raises(TypeError, match="kvm_ppc_pvinfo is not declared for x86_64"):
        dead_vm("x86_64", Traced()).get_pvinfo()


def test_pvinfo_words_are_read_big_endian():
    info = PvInfo(1, bytes.fromhex("44000022 60000000 60000000 60000000"))
    assert info.hcall == (0x44000022, 0x60000000, 0x60000000, 0x60000000)


def test_one_reg_size_comes_from_the_id():
    assert (one_reg_size(LPCR), one_reg_size(0x6020000000000000), one_reg_size(0x6040000000000000)) == (8, 4, 16)


def test_a_closed_vcpu_refuses_to_decode():
    vcpu = dead_vcpu("x86_64", Traced())
    vcpu.fd = -1
    vcpu.close()
    assert vcpu.run_view is None and vcpu.kvm_run is None
    with pytest.raises(ValueError, match="closed"):
        vcpu.complete_hypercall(0)
    vcpu.request_immediate_exit()  # harmless once closed


# ---- the real thing (x86_64 /dev/kvm) ----

OUT_K_HLT = bytes.fromhex("baf803" "b04b" "ee" "f4")  # mov dx,0x3f8; mov al,'K'; out dx,al; hlt


@pytest.fixture
def kvm():
    with Kvm() as k:
        yield k


@pytest.mark.kvm
def test_system_fd_answers(kvm):
    assert kvm.api_version == 12
    assert kvm.vcpu_mmap_size >= hvconf.abi.struct_size("kvm_run", "x86_64")
    assert kvm.check_extension(hvconf.abi.cap("KVM_CAP_USER_MEMORY").number) == 1
    assert kvm.check_extension(hvconf.abi.cap("KVM_CAP_PPC_PAPR").number) == 0
    leaves = {e.function for e in kvm.supported_cpuid()}
    assert {0, 1, 0x40000000, 0x40000001} <= leaves


def _bounded_run(vcpu: Vcpu, seconds: float = 5.0) -> exits.Exit:
    # A real KVM_RUN may never return (vmcall on this host): a timer kicks it out with immediate_exit + a signal.
    main = threading.get_ident()

    def kick() -> None:
        vcpu.request_immediate_exit()
        signal.pthread_kill(main, signal.SIGUSR2)

    old = signal.signal(signal.SIGUSR2, lambda signum, frame: None)
    timer = threading.Timer(seconds, kick)
    timer.start()
    try:
        return vcpu.run()
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR2, old)


@pytest.mark.kvm
def test_a_vm_and_vcpu_run_a_real_mode_guest(kvm):
    memory = GuestMemory(1 << 20)
    try:
        memory.write(0x7C00, OUT_K_HLT)
        with kvm.create_vm() as vm:
            assert vm.check_extension(hvconf.abi.cap("KVM_CAP_USER_MEMORY").number) == 1
            assert vm.set_tss_addr(0xFFFBD000) == 0
            assert vm.set_user_memory_region(0, 0, memory.size, memory.address) == 0
            with vm.create_vcpu(0) as vcpu:
                assert vcpu.set_cpuid2(kvm.supported_cpuid()) == 0
                assert vcpu.enable_cap(hvconf.abi.cap("KVM_CAP_ENFORCE_PV_FEATURE_CPUID").number, [1]) == 0
                sregs = vcpu.sregs
                sregs.cs.base, sregs.cs.selector = 0, 0
                vcpu.set_sregs(sregs)
                regs = vcpu.regs
                regs.rip, regs.rflags = 0x7C00, 2
                vcpu.set_regs(regs)
                assert (vcpu.regs.rip, vcpu.sregs.cs.base) == (0x7C00, 0)
                assert _bounded_run(vcpu) == exits.Io("out", 1, 0x3F8, 1, b"K", 4096)
                assert _bounded_run(vcpu) == exits.Hlt()
                assert vcpu.regs.rip == 0x7C00 + len(OUT_K_HLT)
    finally:
        memory.close()


@pytest.mark.kvm
def test_x86_vm_irqchip_pit_and_errors_from_the_kernel(kvm):
    with kvm.create_vm() as vm:
        assert vm.create_irqchip() == 0
        assert vm.create_pit2(1) == 0
        with pytest.raises(KvmError) as caught:
            vm.create_irqchip()  # a second one: the kernel says EEXIST
        assert (caught.value.ioctl, caught.value.errno) == ("KVM_CREATE_IRQCHIP", errno.EEXIST)
        with pytest.raises(KvmError) as caught:
            vm.set_user_memory_region(0, 0, 4096, 0x1001)  # unaligned host address
        assert caught.value.errno == errno.EINVAL


def _mapped(address: int) -> bool:
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                return True
    return False


@pytest.mark.kvm
def test_vcpu_mmap_is_released_on_close(kvm):
    with kvm.create_vm() as vm:
        vcpu = vm.create_vcpu(0)
        assert vcpu.run_size == kvm.vcpu_mmap_size and vcpu.run_view is not None
        assert vcpu.run_view.size == vcpu.run_size
        address = int(ffi_for("x86_64").cast("uintptr_t", vcpu.kvm_run))
        assert _mapped(address)
        vcpu.close()
        assert vcpu.fd == -1 and vcpu.run_view is None and not _mapped(address)
