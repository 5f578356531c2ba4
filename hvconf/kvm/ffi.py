"""The cffi declarations of the x86_64 KVM uapi structs and the libc calls used.

In-line ABI mode: no compiler at run time, so every struct is spelled out
here with its exact x86_64 layout (linux/kvm.h, asm/kvm.h), and checked at
import against hvconf.abi's sizes so a typo cannot pass silently. Holds no
state besides `ffi` and `lib`; issues no ioctl. Tests: tests/kvm/test_exits.py
(every field offset against hvconf.abi), tests/kvm/test_errors.py.
"""

from __future__ import annotations

from cffi import FFI

import hvconf.abi

ARCH = "x86_64"  # the arch these declarations describe

CDEF = """
struct kvm_userspace_memory_region {
    uint32_t slot; uint32_t flags;
    uint64_t guest_phys_addr; uint64_t memory_size; uint64_t userspace_addr;
};
struct kvm_enable_cap { uint32_t cap; uint32_t flags; uint64_t args[4]; uint8_t pad[64]; };
struct kvm_pit_config { uint32_t flags; uint32_t pad[15]; };

struct kvm_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};
struct kvm_segment {
    uint64_t base; uint32_t limit; uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable, padding;
};
struct kvm_dtable { uint64_t base; uint16_t limit; uint16_t padding[3]; };
struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct kvm_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    uint64_t interrupt_bitmap[4];
};

struct kvm_cpuid_entry2 {
    uint32_t function, index, flags, eax, ebx, ecx, edx; uint32_t padding[3];
};
struct kvm_cpuid2 { uint32_t nent; uint32_t padding; struct kvm_cpuid_entry2 entries[]; };

struct kvm_run {
    uint8_t request_interrupt_window; uint8_t immediate_exit; uint8_t padding1[6];
    uint32_t exit_reason;
    uint8_t ready_for_interrupt_injection; uint8_t if_flag; uint16_t flags;
    uint64_t cr8; uint64_t apic_base;
    union {
        struct { uint64_t hardware_exit_reason; } hw;
        struct { uint64_t hardware_entry_failure_reason; uint32_t cpu; } fail_entry;
        struct { uint32_t exception; uint32_t error_code; } ex;
        struct { uint8_t direction; uint8_t size; uint16_t port; uint32_t count;
                 uint64_t data_offset; } io;
        struct { uint64_t phys_addr; uint8_t data[8]; uint32_t len; uint8_t is_write; } mmio;
        struct { uint64_t nr; uint64_t args[6]; uint64_t ret; uint32_t longmode; uint32_t pad; } hypercall;
        struct { uint32_t suberror; uint32_t ndata; uint64_t data[16]; } internal;
        struct { uint32_t type; uint32_t ndata; uint64_t data[16]; } system_event;
        char padding[256];
    };
    uint64_t kvm_valid_regs; uint64_t kvm_dirty_regs;
    union { char padding[2048]; } s;
};

int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
"""

# Sizes and offsets the kernel's layout fixes (kvm-abi-facts.md §4), used
# when hvconf.abi has no row for a struct.
FACT_SIZES = {"kvm_run": 2352, "kvm_regs": 144, "kvm_sregs": 312}
EXIT_UNION_OFFSET = 32
STRUCTS = (
    "kvm_run", "kvm_regs", "kvm_sregs", "kvm_segment", "kvm_dtable",
    "kvm_userspace_memory_region", "kvm_enable_cap", "kvm_pit_config",
    "kvm_cpuid2", "kvm_cpuid_entry2",
)  # fmt: skip

ffi = FFI()
ffi.cdef(CDEF)
lib = ffi.dlopen(None)

MAP_FAILED = ffi.cast("void *", -1)


def _expected_size(struct: str) -> int | None:
    try:
        return hvconf.abi.struct_size(struct, ARCH)
    except hvconf.abi.AbiError:
        return FACT_SIZES.get(struct)


def _check_layout() -> None:
    # Raised, not `assert`ed, so `python -O` cannot skip it.
    for struct in STRUCTS:
        have, want = ffi.sizeof(f"struct {struct}"), _expected_size(struct)
        if want is not None and have != want:
            raise AssertionError(f"cdef of struct {struct} is {have} bytes, the {ARCH} ABI says {want}")
    have = ffi.offsetof("struct kvm_run", "io")
    if have != EXIT_UNION_OFFSET:
        raise AssertionError(f"kvm_run exit union at {have}, the {ARCH} ABI says {EXIT_UNION_OFFSET}")


_check_layout()
