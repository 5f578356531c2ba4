"""The x86 exit hook: the exits the generic loop leaves to x86 (kvmtool's x86 kvm_cpu__handle_exit).

`handle_exit(loop, exit)` answers KVM_EXIT_HYPERCALL with the plan's
hypercall handlers (hypercalls.py, the one door: a plan that routes none
gets an empty table, whose answer is -KVM_ENOSYS); any other exit is the
loop's `unknown`. `stopped_at(loop)` says where a vCPU the run's end
stopped was: rip, and the instruction there when it is one worth naming
(read through the flat or identity map the start modes set up).
`before_run` is None: x86 needs nothing before each KVM_RUN. Port I/O is
the generic loop's, with x86's port writes from devices.py.
Tests: tests/kvm/test_runtime.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.kvm_run import Hypercall

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.kvm.vcpu_loop import ExitLoop, Outcome

# Instructions worth naming where a vCPU was stopped (its first bytes at rip).
INSTRUCTIONS = {b"\x0f\x01\xc1": "vmcall", b"\x0f\x01\xd9": "vmmcall", b"\xf4": "hlt", b"\xeb\xfe": "jmp to itself"}


def _hypercall(loop: ExitLoop, ex: Hypercall) -> Outcome:
    from hvconf.kvm.x86.hypercalls import X86Hypercalls, complete  # only plans with KVM_CAP_EXIT_HYPERCALL get here

    hcalls = loop.hcalls if loop.hcalls is not None else X86Hypercalls({})  # none routed: each answers ENOSYS
    reply = hcalls.handle(ex)
    loop.tracer.note(f"{loop.label}: hypercall {ex.nr} args {[hex(a) for a in ex.args[:4]]} -> {reply.ret}")
    complete(loop.vcpu._view(), ex, reply)
    return None


EXITS: dict[type, Callable[[ExitLoop, Any], Outcome]] = {Hypercall: _hypercall}


def handle_exit(loop: ExitLoop, ex: Any) -> Outcome:
    """An exit the generic loop does not answer itself."""
    return EXITS.get(type(ex), type(loop).unknown)(loop, ex)


def stopped_at(loop: ExitLoop) -> str | None:
    """The vCPU's rip and, when known, the instruction there; None when its registers cannot be read."""
    try:
        rip, cs_base = loop.vcpu.regs.rip, loop.vcpu.sregs.cs.base
    except KvmError:
        return None
    code = loop.machine.read(cs_base + rip, 3) or b""
    name = next((n for first, n in INSTRUCTIONS.items() if code.startswith(first)), None)
    return f"rip {rip:#x}" + (f", a {name}" if name else "")


def before_run(loop: ExitLoop) -> Callable[[], None] | None:
    """What to do before every KVM_RUN of this vCPU: nothing on x86."""
    return None
