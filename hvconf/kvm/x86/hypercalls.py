"""x86 hypercalls forwarded to the launcher as KVM_EXIT_HYPERCALL (KVM_CAP_EXIT_HYPERCALL): the one door.

KVM forwards only KVM_HC_MAP_GPA_RANGE, and only after checking its
arguments. The plan's `launcher.x86.exit_hypercalls` says which numbers the
definition routes here (a name this launcher has no handler for is refused
when the handlers are built); `X86Hypercalls.handle(exit)` answers with the
Reply the exit loop completes (`complete`: hypercall.ret, which KVM copies
into RAX): 0 for a well-formed MAP_GPA_RANGE over guest memory (nothing is
encrypted here, so there is nothing to convert), -KVM_EINVAL for bad
arguments, -KVM_ENOSYS for any number the plan does not route here. Reads no
memory, issues no ioctl. Tests: tests/kvm/test_buffers_x86.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

from hvconf.kvm.reply import Reply

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from hvconf.kvm.ioctls.kvm_run import Hypercall, KvmRun

# hvconf.abi loads its tables (TOML) on first use: imported here only when a hypercall is routed or
# answered, so a launch without KVM_CAP_EXIT_HYPERCALL never pays for it.

PAGE = 4096
# attrs (a2): bits 0-3 page size (KVM_MAP_GPA_RANGE_PAGE_SZ_4K 0, _2M 1, _1G 2), bit 4 ENCRYPTED
PAGE_SIZE_MASK, PAGE_SIZES, ENCRYPTED = 0xF, (0, 1, 2), 1 << 4
ATTRS_KNOWN = PAGE_SIZE_MASK | ENCRYPTED
ANY_MEMORY = ((0, 1 << 64),)  # without a memory map, any page-aligned range counts as guest memory


def _code(name: str) -> int:
    from hvconf.abi import hcalls

    return int(hcalls.x86_data()["return_codes"][name])


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


HANDLERS: dict[str, Callable[[Sequence[int], Sequence[tuple[int, int]]], int]] = {
    "KVM_HC_MAP_GPA_RANGE": map_gpa_range,
}


class X86Hypercalls:
    """The launcher's x86 hypercall table. Attributes: `served` (number -> name routed here),
    `memory` (a callable giving the guest's (start, size) ranges when a hypercall is answered)."""

    def __init__(
        self, section: Mapping[str, Any], memory: Callable[[], Sequence[tuple[int, int]]] = lambda: ANY_MEMORY
    ) -> None:
        routed = tuple(section.get("exit_hypercalls", ()))
        missing = sorted(set(routed) - set(HANDLERS))
        if missing:
            raise ValueError(f"the plan routes hypercalls this launcher does not serve: {', '.join(missing)}")
        self.served: dict[int, str] = {}
        if routed:
            import hvconf.abi

            self.served = {hvconf.abi.x86_hypercall(name).number: name for name in routed}
        self.memory = memory

    def handle(self, ex: Hypercall) -> Reply:
        name = self.served.get(ex.nr)
        if name is None:
            ret = -_code("KVM_ENOSYS")
            return Reply(ret, note=f"hypercall {ex.nr} is not routed to the launcher: {ret}")
        ret = HANDLERS[name](ex.args, self.memory())
        return Reply(ret, note=f"{name} gpa {ex.args[0]:#x} pages {ex.args[1]} attrs {ex.args[2]:#x}: {ret}")


def complete(run: KvmRun, ex: Hypercall, reply: Reply) -> None:
    """Write `reply` to `run` as the answer to `ex`: hypercall.ret, which KVM copies into RAX (truncated
    outside long mode)."""
    if reply.regs:
        raise ValueError("x86 KVM_EXIT_HYPERCALL returns RAX only")
    run.complete_hypercall(reply.ret)
