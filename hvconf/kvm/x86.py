"""x86 vCPU set-up that plans ask for by name: CPUID tables and sregs modes.

Pure transformations on values: `with_kvm_leaves` rewrites a CPUID table
(leaf 0x40000000 signature, leaf 0x40000001 feature bits) and
`SREGS_MODES["real"](sregs)` edits a `struct kvm_sregs` in place (the
other start modes, which need tables in guest memory, are x86_modes.py).
No ioctls here; the callers fetch and store. Tests: tests/kvm/test_exits.py.
"""

from __future__ import annotations


from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from typing import Any

KVM_CPUID_SIGNATURE = 0x40000000
KVM_CPUID_FEATURES = 0x40000001
CR0_PE = 1 << 0


class CpuidEntry(Record):
    """One struct kvm_cpuid_entry2."""

    __slots__ = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
    _defaults = {"index": 0, "flags": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}
    function: int
    index: int
    flags: int
    eax: int
    ebx: int
    ecx: int
    edx: int


def signature_words(signature: str) -> tuple[int, int, int]:
    """ebx, ecx, edx of leaf 0x40000000 for an up-to-12-character ASCII signature."""
    raw = signature.encode("ascii")
    if len(raw) > 12:
        raise ValueError(f"CPUID signature {signature!r} is longer than 12 bytes")
    raw = raw.ljust(12, b"\0")
    ebx, ecx, edx = (int.from_bytes(raw[i : i + 4], "little") for i in (0, 4, 8))
    return ebx, ecx, edx


def with_kvm_leaves(entries: Iterable[CpuidEntry], signature: str, features: int) -> list[CpuidEntry]:
    """`entries` with the KVM signature leaf and exactly `features` in leaf 0x40000001 eax (hints 0)."""
    ebx, ecx, edx = signature_words(signature)
    wanted = {
        KVM_CPUID_SIGNATURE: CpuidEntry(KVM_CPUID_SIGNATURE, eax=KVM_CPUID_FEATURES, ebx=ebx, ecx=ecx, edx=edx),
        KVM_CPUID_FEATURES: CpuidEntry(KVM_CPUID_FEATURES, eax=features),
    }
    kept = [e for e in entries if e.function not in wanted]
    return kept + list(wanted.values())


def _flat_real_mode(sregs: Any) -> None:
    # Real mode with every segment at base 0, so guest addresses are physical
    # below 64K and a plan's rip is the load address itself.
    for seg in (sregs.cs, sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        seg.selector = 0
        seg.base = 0
        seg.limit = 0xFFFF
    sregs.cr0 &= ~CR0_PE


SREGS_MODES: dict[str, Callable[[Any], None]] = {"real": _flat_real_mode}
