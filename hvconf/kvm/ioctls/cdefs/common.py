"""C declarations every architecture shares: generic uapi structs, struct kvm_run, libc calls.

Text only, spelled after linux/kvm.h (6.1) with fixed-width types so one
declaration has the same layout under every ABI hvconf targets. The arch
modules (x86_64.py, powerpc64.py, s390x.py) add their asm/kvm.h structs and
pick the kvm_run header; build.py turns the result into pure-Python cffi
modules. Holds no state. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

LIBC = """
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
"""

GENERIC = """
struct kvm_userspace_memory_region {
    uint32_t slot; uint32_t flags;
    uint64_t guest_phys_addr; uint64_t memory_size; uint64_t userspace_addr;
};
struct kvm_enable_cap { uint32_t cap; uint32_t flags; uint64_t args[4]; uint8_t pad[64]; };
struct kvm_one_reg { uint64_t id; uint64_t addr; };
"""

# s390 only: the PSW sits between apic_base and the exit union (__KVM_S390),
# which moves every union member 16 bytes later.
S390_PSW_HEADER = "uint64_t psw_mask; uint64_t psw_addr;"

_KVM_RUN = """
struct kvm_run {
    uint8_t request_interrupt_window; uint8_t immediate_exit; uint8_t padding1[6];
    uint32_t exit_reason;
    uint8_t ready_for_interrupt_injection; uint8_t if_flag; uint16_t flags;
    uint64_t cr8; uint64_t apic_base;
    %(psw)s
    union {
        struct { uint64_t hardware_exit_reason; } hw;
        struct { uint64_t hardware_entry_failure_reason; uint32_t cpu; } fail_entry;
        struct { uint32_t exception; uint32_t error_code; } ex;
        struct { uint8_t direction; uint8_t size; uint16_t port; uint32_t count;
                 uint64_t data_offset; } io;
        struct { struct kvm_debug_exit_arch arch; } debug;
        struct { uint64_t phys_addr; uint8_t data[8]; uint32_t len; uint8_t is_write; } mmio;
        struct { uint64_t nr; uint64_t args[6]; uint64_t ret; uint32_t longmode; uint32_t pad; } hypercall;
        struct { uint64_t rip; uint32_t is_write; uint32_t pad; } tpr_access;
        struct { uint8_t icptcode; uint16_t ipa; uint32_t ipb; } s390_sieic;
        uint64_t s390_reset_flags;
        struct { uint64_t trans_exc_code; uint32_t pgm_code; } s390_ucontrol;
        struct { uint32_t dcrn; uint32_t data; uint8_t is_write; } dcr;
        struct { uint32_t suberror; uint32_t ndata; uint64_t data[16]; } internal;
        struct { uint32_t suberror; uint32_t ndata; uint64_t flags;
                 union { struct { uint8_t insn_size; uint8_t insn_bytes[15]; }; }; } emulation_failure;
        struct { uint64_t gprs[32]; } osi;
        struct { uint64_t nr; uint64_t ret; uint64_t args[9]; } papr_hcall;
        struct { uint16_t subchannel_id; uint16_t subchannel_nr; uint32_t io_int_parm;
                 uint32_t io_int_word; uint32_t ipb; uint8_t dequeued; } s390_tsch;
        struct { uint32_t epr; } epr;
        struct { uint32_t type; uint32_t ndata; union { uint64_t flags; uint64_t data[16]; }; } system_event;
        struct { uint64_t addr; uint8_t ar; uint8_t reserved; uint8_t fc; uint8_t sel1; uint16_t sel2; } s390_stsi;
        struct { uint8_t vector; } eoi;
        struct { uint8_t error; uint8_t pad[7]; uint32_t reason; uint32_t index; uint64_t data; } msr;
        struct { uint32_t flags; } notify;
        char padding[256];
    };
    uint64_t kvm_valid_regs; uint64_t kvm_dirty_regs;
    union { char padding[2048]; } s;
};
"""


def kvm_run(s390_psw: bool = False) -> str:
    """struct kvm_run; struct kvm_debug_exit_arch must be declared before it."""
    return _KVM_RUN % {"psw": S390_PSW_HEADER if s390_psw else ""}


# Structs declared by every arch module (sizes and offsets checked per arch).
STRUCTS = ("kvm_run", "kvm_userspace_memory_region", "kvm_enable_cap", "kvm_one_reg")
