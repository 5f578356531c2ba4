"""C declarations of the x86_64 KVM uapi (linux/kvm.h, asm/kvm.h) that the runtime uses.

Registers (kvm_regs, kvm_sregs with kvm_segment/kvm_dtable), CPUID tables,
the PIT config, and struct kvm_run with the x86 debug exit. Text only:
build.py compiles it into _ffi_x86_64.py. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

from hvconf.kvm.ioctls.cdefs import common

ARCH_STRUCTS = """
struct kvm_debug_exit_arch { uint32_t exception; uint32_t pad; uint64_t pc; uint64_t dr6; uint64_t dr7; };
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
"""

CDEF = common.GENERIC + ARCH_STRUCTS + common.kvm_run() + common.LIBC

STRUCTS = (*common.STRUCTS, "kvm_debug_exit_arch", "kvm_pit_config", "kvm_regs", "kvm_segment", "kvm_dtable",
           "kvm_sregs", "kvm_cpuid_entry2", "kvm_cpuid2")  # fmt: skip
