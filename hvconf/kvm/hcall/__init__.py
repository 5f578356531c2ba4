"""Userspace hypercall handlers: sPAPR (papr.py, rtas.py), ePAPR (epapr.py), x86 (x86.py).

The executor's side of the interface, three calls per hypercall exit:

    handlers = handlers_for(plan["launcher"], console=hv_console(plan["console"], out),
                            memory=Slots([(gpa, region), ...]), proposed=proposed_abi)
    ex = vcpu.run()                                   # exits.PaprHcall / EpaprHcall / Hypercall
    reply = handlers.handle(ex)                       # never raises for anything the guest sent
    complete(vcpu.run_view, ex, reply)                # ret and output registers into kvm_run
    if reply.outcome is not Outcome.CONTINUE: ...     # POWER_OFF or RESET: stop every vCPU

`Reply.ret` is the status (r3, or RAX), `Reply.regs` the output GPRs by
number, `Reply.note` a line for --trace. Handlers keep what they record
(PaprHandlers.interrupts_little_endian after H_SET_MODE; Rtas.unserved lists
declared RTAS services not implemented here). Guest memory is only reached
through GuestPhys, which refuses any range outside one memory slot. Nothing
here issues an ioctl. Tests: tests/kvm/test_buffers_papr.py,
tests/kvm/test_buffers_epapr.py, tests/kvm/test_buffers_x86.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import hvconf.abi
from hvconf.kvm.console_hv import ByteChannel, HvTerm
from hvconf.kvm.hcall.epapr import EpaprHandlers
from hvconf.kvm.hcall.memory import FlatMemory, GuestAccessError, GuestPhys, Slots
from hvconf.kvm.hcall.papr import PaprHandlers
from hvconf.kvm.hcall.reply import Outcome, Reply, complete
from hvconf.kvm.hcall.x86 import X86Handlers


class Handlers(Protocol):
    def handle(self, ex: Any) -> Reply: ...


def handlers_for(
    launcher: Mapping[str, Any],
    *,
    console: HvTerm | ByteChannel | None = None,
    memory: GuestPhys | None = None,
    proposed: hvconf.abi.ProposedAbi | None = None,
) -> PaprHandlers | EpaprHandlers | X86Handlers:
    """The handler table a plan's `launcher` section asks for ({"papr": ...}, {"epapr": ...} or {"x86": ...})."""
    kinds = sorted(launcher)
    if len(kinds) != 1:
        raise ValueError(f"a plan's launcher section names one of papr, epapr, x86; got {kinds}")
    kind, section = kinds[0], launcher[kinds[0]]
    if kind == "papr":
        if console is not None and not isinstance(console, HvTerm):
            raise ValueError("sPAPR hcalls serve an hvterm console, not a byte channel")
        return PaprHandlers(section, console, memory)
    if kind == "epapr":
        if console is not None and not isinstance(console, ByteChannel):
            raise ValueError("ePAPR hcalls serve a byte channel console, not an hvterm")
        return EpaprHandlers(section, console, proposed)
    if kind == "x86":
        return X86Handlers(section)
    raise ValueError(f"unknown launcher section {kind!r} (papr, epapr, x86)")


__all__ = [
    "ByteChannel",
    "EpaprHandlers",
    "FlatMemory",
    "GuestAccessError",
    "GuestPhys",
    "Handlers",
    "HvTerm",
    "Outcome",
    "PaprHandlers",
    "Reply",
    "Slots",
    "X86Handlers",
    "complete",
    "handlers_for",
]
