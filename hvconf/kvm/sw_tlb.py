"""The e500 software TLB a vCPU shares with KVM: KVM_CAP_SW_TLB's structs and KVM_DIRTY_TLB.

`SharedTlb(ffi, config)` allocates, in the vCPU's arch layout, what
KVM_ENABLE_CAP(KVM_CAP_SW_TLB) points at (api.rst §6.3): struct
kvm_book3e_206_tlb_params from the plan's `config` (tlb_sizes, tlb_ways), the
array of struct kvm_book3e_206_tlb_entry (every TLB0 entry, then every TLB1
entry) and the struct kvm_config_tlb holding both addresses, `mmu_type` and
the array's length in bytes. The object keeps all three alive; the Machine
keeps it for the VM's life, because KVM pins the array's pages and reads and
writes guest TLB entries there from then on (e500_mmu.c
kvm_vcpu_ioctl_config_tlb). `write(entries)` stores entries the launcher sets
while the vCPU is outside KVM_RUN, and `dirty(vcpu, indexes)` tells KVM with
KVM_DIRTY_TLB before the next KVM_RUN (api.rst §4.60). `problems(config)`
applies the kernel's own checks to a plan's config before anything is opened.
Tests: tests/kvm/test_buffers_e500_tlb.py (crafted: no e500 host exists here).
"""

from __future__ import annotations

from hvconf.kvm.ffi import ffi as host_ffi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from hvconf.kvm.vcpu import Vcpu

TLBS = 4  # tlb_sizes[4], tlb_ways[4] in struct kvm_book3e_206_tlb_params
ENTRY_KEYS = ("tlb", "esel", "mas8", "mas1", "mas2", "mas7_3")
U32 = 1 << 32
U64 = 1 << 64
MAX_TLB1 = 64  # e500_mmu.c
# The most targets/ppc-e500/caps.toml lets `sets` x `ways` reach (QEMU uses 512): a bound on
# what a hand-made plan makes the launcher allocate, not a kernel rule.
MAX_TLB0 = 65536 * 64


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _u32s(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == TLBS
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < U32 for x in value))  # fmt: skip


# kvm_vcpu_ioctl_config_tlb (arch/powerpc/kvm/e500_mmu.c) refuses, with -EINVAL, what these find.
KERNEL_RULES: tuple[tuple[str, Any], ...] = (
    ("mmu_type is not KVM_MMU_FSL_BOOKE_NOHV (0), the only type e500_mmu.c accepts",
     lambda s, w, m: m != 0),
    (f"TLB1 has more than {MAX_TLB1} entries", lambda s, w, m: s[1] > MAX_TLB1),
    ("TLB1 is not fully associative (tlb_ways[1] != tlb_sizes[1])", lambda s, w, m: w[1] != s[1]),
    ("TLB2 and TLB3 are not empty", lambda s, w, m: any(s[2:]) or any(w[2:])),
    ("tlb_ways[0] is not a power of two", lambda s, w, m: not _power_of_two(w[0])),
    ("TLB0's set count (tlb_sizes[0] / tlb_ways[0]) is not a power of two",
     lambda s, w, m: _power_of_two(w[0]) and not _power_of_two(s[0] >> (w[0].bit_length() - 1))),
)  # fmt: skip


def problems(config: Any) -> list[str]:
    """What is wrong with a plan's KVM_CAP_SW_TLB `config` (empty when KVM would accept it)."""
    if not isinstance(config, dict) or not _u32s(config.get("tlb_sizes")) or not _u32s(config.get("tlb_ways")):
        return ["config should be {mmu_type, tlb_sizes: 4 u32, tlb_ways: 4 u32}"]
    mmu = config.get("mmu_type")
    if not isinstance(mmu, int) or isinstance(mmu, bool) or not 0 <= mmu < U32:
        return [f"config mmu_type {mmu!r} is not a u32"]
    sizes, ways = config["tlb_sizes"], config["tlb_ways"]
    if sizes[0] > MAX_TLB0:
        return [f"TLB0 has {sizes[0]} entries, more than the {MAX_TLB0} this runtime allocates"]
    return [message for message, broken in KERNEL_RULES if broken(sizes, ways, mmu)]


def entry_problem(entry: Any, sizes: tuple[int, ...] | list[int]) -> str | None:
    """What is wrong with one {tlb, esel, mas8, mas1, mas2, mas7_3} the launcher is to write."""
    if not isinstance(entry, dict) or sorted(entry) != sorted(ENTRY_KEYS):
        return f"a TLB entry is {{{', '.join(ENTRY_KEYS)}}}, got {entry!r}"
    if not all(isinstance(entry[k], int) and not isinstance(entry[k], bool) for k in ENTRY_KEYS):
        return f"TLB entry fields are integers, got {entry!r}"
    if not 0 <= entry["tlb"] < TLBS or not 0 <= entry["esel"] < sizes[entry["tlb"]]:
        return f"TLB{entry['tlb']} entry {entry['esel']} is not in the shared array (sizes {list(sizes)})"
    widths = {"mas8": U32, "mas1": U32, "mas2": U64, "mas7_3": U64}
    bad = [k for k, limit in widths.items() if not 0 <= entry[k] < limit]
    return f"TLB entry {', '.join(bad)} out of range in {entry!r}" if bad else None


def address(cdata: Any) -> int:
    """The user-space address of a cdata pointer or array (of any arch's declarations)."""
    return int(host_ffi.cast("uintptr_t", host_ffi.cast("void *", cdata)))


class SharedTlb:
    """One vCPU's shared TLB: `params`, `entries` and `config` (cdata), `count` entries in all."""

    def __init__(self, ffi: Any, config: Mapping[str, Any]) -> None:
        self.sizes = tuple(config["tlb_sizes"])
        self.count = sum(self.sizes)
        self.params = ffi.new("struct kvm_book3e_206_tlb_params *",
                              {"tlb_sizes": list(self.sizes), "tlb_ways": list(config["tlb_ways"])})  # fmt: skip
        self.entries = ffi.new("struct kvm_book3e_206_tlb_entry[]", self.count)
        self.config = ffi.new("struct kvm_config_tlb *", {
            "params": address(self.params), "array": address(self.entries),
            "mmu_type": config["mmu_type"], "array_len": ffi.sizeof(self.entries),
        })  # fmt: skip
        self._ffi = ffi

    @property
    def address(self) -> int:
        """args[0] of KVM_ENABLE_CAP(KVM_CAP_SW_TLB): the address of the struct kvm_config_tlb."""
        return address(self.config)

    def index(self, tlb: int, esel: int) -> int:
        """The array index of TLB `tlb` entry `esel`: TLBs follow each other (api.rst §6.3)."""
        return sum(self.sizes[:tlb]) + esel

    def write(self, entries: Iterable[Mapping[str, int]]) -> list[int]:
        """Store each {tlb, esel, mas8, mas1, mas2, mas7_3}; the array indexes written, in order."""
        written = []
        for entry in entries:
            slot = self.index(entry["tlb"], entry["esel"])
            target = self.entries[slot]
            for name in ("mas8", "mas1", "mas2", "mas7_3"):
                setattr(target, name, entry[name])
            written.append(slot)
        return written

    def bitmap(self, indexes: Iterable[int]) -> Any:
        """KVM_DIRTY_TLB's bitmap: one bit per entry, rounded up to 64 bits, bit n in byte n // 8
        (api.rst §4.60: little-endian bit order, whatever the host's byte order)."""
        bits = self._ffi.new("uint8_t[]", (self.count + 63) // 64 * 8)
        for index in indexes:
            bits[index // 8] |= 1 << index % 8
        return bits

    def dirty(self, vcpu: Vcpu, indexes: Iterable[int]) -> int:
        """KVM_DIRTY_TLB for the entries at `indexes`: num_dirty is the number of bits set."""
        unique = sorted(set(indexes))
        bits = self.bitmap(unique)
        return vcpu.dirty_tlb(address(bits), len(unique))  # `bits` lives until the ioctl has returned
