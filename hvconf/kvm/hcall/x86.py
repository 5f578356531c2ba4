"""x86 hypercalls forwarded to the launcher as KVM_EXIT_HYPERCALL (KVM_CAP_EXIT_HYPERCALL).

KVM forwards only KVM_HC_MAP_GPA_RANGE, and only after checking its
arguments. The plan's `launcher.x86.exit_hypercalls` says which numbers the
definition routes here: those answer 0 (hvconf guests have no encrypted
memory, so there is nothing to convert) when their arguments are sane (-KVM_EINVAL
otherwise), everything else -KVM_ENOSYS.
Issues no ioctl. Tests: tests/kvm/test_buffers_x86.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import hvconf.abi
from hvconf.kvm import exits
from hvconf.kvm.hcall.reply import Reply
from hvconf.kvm.x86_hypercall import answer

IMPLEMENTED = ("KVM_HC_MAP_GPA_RANGE",)


class X86Handlers:
    """Attributes: `served` (hypercall number -> name routed here and implemented), `ranges`.

    The answers themselves come from hvconf.kvm.x86_hypercall (the executor's vCPU loop
    uses it directly), so the argument checks live in one place.
    """

    def __init__(self, section: Mapping[str, Any], ranges: Sequence[tuple[int, int]] | None = None) -> None:
        routed = tuple(section.get("exit_hypercalls", ()))
        missing = sorted(set(routed) - set(IMPLEMENTED))
        if missing:
            raise ValueError(f"the plan routes hypercalls this launcher does not serve: {', '.join(missing)}")
        self.served = {hvconf.abi.x86_hypercall(name).number: name for name in routed}
        # Without the memory map, any page-aligned range counts as guest memory.
        self.ranges = list(ranges) if ranges is not None else [(0, 1 << 64)]

    def handle(self, ex: exits.Hypercall) -> Reply:
        ret = answer(ex.nr, ex.args, frozenset(self.served), self.ranges)
        name = self.served.get(ex.nr)
        if name is None:
            return Reply(ret, note=f"hypercall {ex.nr} is not routed to the launcher: {ret}")
        return Reply(ret, note=f"{name} gpa {ex.args[0]:#x} pages {ex.args[1]} attrs {ex.args[2]:#x}: {ret}")
