"""C declarations of the s390x KVM uapi (linux/kvm.h with __KVM_S390, asm/kvm.h).

struct kvm_run carries psw_mask/psw_addr before the exit union (so the union
is at 48, not 32); kvm_regs is gprs[16], kvm_sregs the access and control
registers; kvm_s390_psw is the KVM_S390_SET_INITIAL_PSW argument. Text only:
build.py compiles it into _ffi_s390x.py. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

from hvconf.kvm.ioctls.cdefs import common

ARCH_STRUCTS = """
struct kvm_debug_exit_arch { uint64_t addr; uint8_t type; uint8_t pad[7]; };
struct kvm_regs { uint64_t gprs[16]; };
struct kvm_sregs { uint32_t acrs[16]; uint64_t crs[16]; };
struct kvm_s390_psw { uint64_t mask; uint64_t addr; };
"""

CDEF = common.GENERIC + ARCH_STRUCTS + common.kvm_run(s390_psw=True) + common.LIBC

STRUCTS = (*common.STRUCTS, "kvm_debug_exit_arch", "kvm_regs", "kvm_sregs", "kvm_s390_psw")
