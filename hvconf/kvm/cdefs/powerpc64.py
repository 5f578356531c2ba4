"""C declarations of the powerpc KVM uapi (linux/kvm.h, asm/kvm.h) for ppc64, ppc64le and e500.

Book3S and BookE in one kvm_sregs (pvr, then the `u` union of `s` with sdr1
and the SLB / BATs, and `e` with the BookE SPRs, spelled as the header does),
kvm_regs with gpr[32], ONE_REG, sPAPR TCE tables, RTAS tokens, PVINFO, the
e500 software TLB (kvm_config_tlb, its params and entries, kvm_dirty_tlb) and
the MMU v3 and HPT/radix info structs. Every field is fixed width, so the
same text fits the 32-bit e500 ABI. Text only: build.py compiles it into
_ffi_powerpc64.py. Tests: tests/kvm/test_layouts.py.
"""

from __future__ import annotations

from hvconf.kvm.cdefs import common

ARCH_STRUCTS = """
struct kvm_debug_exit_arch { uint64_t address; uint32_t status; uint32_t reserved; };

struct kvm_regs {
    uint64_t pc, cr, ctr, lr, xer, msr, srr0, srr1, pid;
    uint64_t sprg0, sprg1, sprg2, sprg3, sprg4, sprg5, sprg6, sprg7;
    uint64_t gpr[32];
};

struct kvm_sregs {
    uint32_t pvr;
    union {
        struct {
            uint64_t sdr1;
            struct { struct { uint64_t slbe; uint64_t slbv; } slb[64]; } ppc64;
            struct { uint32_t sr[16]; uint64_t ibat[8]; uint64_t dbat[8]; } ppc32;
        } s;
        struct {
            union {
                struct { uint32_t features; uint32_t svr; uint64_t mcar; uint32_t hid0;
                         uint32_t pid1, pid2; } fsl;
                uint8_t pad[256];
            } impl;
            uint32_t features; uint32_t impl_id; uint32_t update_special; uint32_t pir;
            uint64_t sprg8; uint64_t sprg9; uint64_t csrr0; uint64_t dsrr0; uint64_t mcsrr0;
            uint32_t csrr1; uint32_t dsrr1; uint32_t mcsrr1; uint32_t esr;
            uint64_t dear; uint64_t ivpr; uint64_t mcivpr; uint64_t mcsr;
            uint32_t tsr; uint32_t tcr; uint32_t decar; uint32_t dec;
            uint64_t tb;
            uint32_t dbsr; uint32_t dbcr[3]; uint32_t iac[4]; uint32_t dac[2]; uint32_t dvc[2];
            uint8_t num_iac; uint8_t num_dac; uint8_t num_dvc; uint8_t pad;
            uint32_t epr; uint32_t vrsave; uint32_t epcr;
            uint32_t mas0; uint32_t mas1; uint64_t mas2; uint64_t mas7_3; uint32_t mas4; uint32_t mas6;
            uint32_t ivor_low[16]; uint32_t ivor_high[18];
            uint32_t mmucfg; uint32_t eptcfg; uint32_t tlbcfg[4]; uint32_t tlbps[4];
            uint32_t eplc, epsc;
        } e;
        uint8_t pad[1020];
    } u;
};

struct kvm_create_spapr_tce { uint64_t liobn; uint32_t window_size; };
struct kvm_create_spapr_tce_64 {
    uint64_t liobn; uint32_t page_shift; uint32_t flags; uint64_t offset; uint64_t size;
};
struct kvm_rtas_token_args { char name[120]; uint64_t token; };
struct kvm_ppc_pvinfo { uint32_t flags; uint32_t hcall[4]; uint8_t pad[108]; };
struct kvm_config_tlb { uint64_t params; uint64_t array; uint32_t mmu_type; uint32_t array_len; };
struct kvm_dirty_tlb { uint64_t bitmap; uint32_t num_dirty; };
struct kvm_book3e_206_tlb_entry { uint32_t mas8; uint32_t mas1; uint64_t mas2; uint64_t mas7_3; };
struct kvm_book3e_206_tlb_params { uint32_t tlb_sizes[4]; uint32_t tlb_ways[4]; uint32_t reserved[8]; };
struct kvm_ppc_mmuv3_cfg { uint64_t flags; uint64_t process_table; };
struct kvm_ppc_cpu_char { uint64_t character; uint64_t behaviour; uint64_t character_mask; uint64_t behaviour_mask; };
struct kvm_get_htab_fd { uint64_t flags; uint64_t start_index; uint64_t reserved[2]; };
struct kvm_ppc_resize_hpt { uint64_t flags; uint32_t shift; uint32_t pad; };
struct kvm_ppc_one_page_size { uint32_t page_shift; uint32_t pte_enc; };
struct kvm_ppc_one_seg_page_size { uint32_t page_shift; uint32_t slb_enc; struct kvm_ppc_one_page_size enc[8]; };
struct kvm_ppc_smmu_info {
    uint64_t flags; uint32_t slb_size; uint16_t data_keys; uint16_t instr_keys;
    struct kvm_ppc_one_seg_page_size sps[8];
};
struct kvm_ppc_radix_geom { uint8_t page_shift; uint8_t level_bits[4]; uint8_t pad[3]; };
struct kvm_ppc_rmmu_info { struct kvm_ppc_radix_geom geometries[8]; uint32_t ap_encodings[8]; };
"""

CDEF = common.GENERIC + ARCH_STRUCTS + common.kvm_run() + common.LIBC

STRUCTS = (*common.STRUCTS, "kvm_debug_exit_arch", "kvm_regs", "kvm_sregs", "kvm_create_spapr_tce",
           "kvm_create_spapr_tce_64", "kvm_rtas_token_args", "kvm_ppc_pvinfo", "kvm_config_tlb", "kvm_dirty_tlb",
           "kvm_book3e_206_tlb_entry", "kvm_book3e_206_tlb_params",
           "kvm_ppc_mmuv3_cfg", "kvm_ppc_cpu_char", "kvm_get_htab_fd", "kvm_ppc_resize_hpt",
           "kvm_ppc_one_page_size", "kvm_ppc_one_seg_page_size", "kvm_ppc_smmu_info",
           "kvm_ppc_rmmu_info")  # fmt: skip
