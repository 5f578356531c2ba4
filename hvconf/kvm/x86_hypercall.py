"""Answers to x86 KVM_EXIT_HYPERCALL: the hypercalls a plan forwards to the launcher.

KVM_CAP_EXIT_HYPERCALL forwards only KVM_HC_MAP_GPA_RANGE today. `answer(nr,
args, served, memory)` returns the value the guest finds in RAX: 0 for a
well-formed MAP_GPA_RANGE over guest memory (nothing is encrypted here, so
there is nothing to convert), -KVM_EINVAL for bad arguments, -KVM_ENOSYS for
any number the plan does not route here. Pure: it reads no memory and
issues no ioctl. Tests: tests/kvm/test_modes.py (real kvm_run buffers).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

# hvconf.abi loads its tables (TOML) on first use: imported here only when a hypercall is served,
# so a launch without KVM_CAP_EXIT_HYPERCALL never pays for it.

PAGE = 4096
# attrs (a2): bits 0-3 page size (KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0, _2M 1, _1G 2), bit 4 ENCRYPTED
PAGE_SIZE_MASK, PAGE_SIZES, ENCRYPTED = 0xF, (0, 1, 2), 1 << 4
ATTRS_KNOWN = PAGE_SIZE_MASK | ENCRYPTED


def _code(name: str) -> int:
    from hvconf.abi import hcalls

    return int(hcalls.x86_data()["return_codes"][name])


def served_numbers(names: Collection[str]) -> frozenset[int]:
    """The KVM_HC_* numbers of the plan's `launcher.x86.exit_hypercalls`."""
    if not names:
        return frozenset()
    import hvconf.abi

    return frozenset(hvconf.abi.x86_hypercall(name).number for name in names)


def map_gpa_range(args: Sequence[int], memory: Sequence[tuple[int, int]]) -> int:
    """KVM_HC_MAP_GPA_RANGE(gpa, npages, attrs): 0, or -KVM_EINVAL for a range the guest cannot mean."""
    gpa, npages, attrs = args[0], args[1], args[2]
    end = gpa + npages * PAGE
    bad = (
        gpa % PAGE
        or npages == 0
        or attrs & ~ATTRS_KNOWN
        or attrs & PAGE_SIZE_MASK not in PAGE_SIZES
        or not any(start <= gpa and end <= start + size for start, size in memory)
    )
    return -_code("KVM_EINVAL") if bad else 0


HANDLERS = {"KVM_HC_MAP_GPA_RANGE": map_gpa_range}


def answer(nr: int, args: Sequence[int], served: Collection[int], memory: Sequence[tuple[int, int]]) -> int:
    """RAX for hypercall `nr`: its handler's answer when the plan serves it, else -KVM_ENOSYS."""
    if nr in served:
        import hvconf.abi

        for name, handler in HANDLERS.items():
            if hvconf.abi.x86_hypercall(name).number == nr:
                return handler(args, memory)
    return -_code("KVM_ENOSYS")
