"""What a userspace hypercall handler answers, and how that answer reaches the kernel.

`Reply(ret, regs, outcome, note)`: the status for r3 (RAX on x86), output
GPRs by register number, whether the run goes on, powers off or resets,
and one line for --trace. `complete(run, exit, reply)` stores it into the
kvm_run buffer where the kernel reads it (PAPR: ret -> r3, args[i] -> r4+i;
proposed ePAPR: args[i] <-> r3+i; x86: hypercall.ret -> RAX). No handler
logic here. Tests: tests/kvm/test_buffers_*.py.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from hvconf.kvm import exits


class Outcome(enum.Enum):
    """What the executor does after completing the hypercall."""

    CONTINUE = "continue"
    POWER_OFF = "power-off"  # stop every vCPU; the guest asked to be switched off
    RESET = "reset"  # stop every vCPU; the guest asked for a reboot


@dataclass(frozen=True)
class Reply:
    """`ret` goes to r3 (sPAPR, ePAPR) or RAX (x86); `regs` maps output GPR numbers to values
    (registers not named keep what the guest passed); `note` is a one-line trace of what happened."""

    ret: int
    regs: Mapping[int, int] = field(default_factory=dict)
    outcome: Outcome = Outcome.CONTINUE
    note: str = ""


PAPR_FIRST_ARG, PAPR_LAST_ARG = 4, 12  # papr_hcall.args[0..8] are r4..r12, copied back on entry
# The proposal (docs/kernel-facts.md#the-unmerged-epapr-proposal) fills args[0..7] from r3..r10
# and returns outputs in r4..r10;
# hvconf reads args[i] <-> r(3+i) both ways, as papr_hcall does, so untouched args keep their registers.
EPAPR_FIRST_ARG, EPAPR_FIRST_OUT, EPAPR_LAST_ARG = 3, 4, 10


def _indices(regs: Mapping[int, int], first_arg: int, first_out: int, last: int, abi: str) -> dict[int, int]:
    bad = sorted(r for r in regs if not first_out <= r <= last)
    if bad:
        raise ValueError(f"{abi} returns outputs in r{first_out}..r{last}, not r{', r'.join(map(str, bad))}")
    return {r - first_arg: value for r, value in regs.items()}


def complete(run: exits.KvmRun, ex: exits.PaprHcall | exits.EpaprHcall | exits.Hypercall, reply: Reply) -> None:
    """Write `reply` to `run` as the answer to `ex`."""
    if isinstance(ex, exits.PaprHcall):
        run.complete_papr_hcall(reply.ret, _indices(reply.regs, PAPR_FIRST_ARG, PAPR_FIRST_ARG, PAPR_LAST_ARG, "sPAPR"))
    elif isinstance(ex, exits.EpaprHcall):
        run.complete_epapr_hcall(reply.ret, _indices(reply.regs, EPAPR_FIRST_ARG, EPAPR_FIRST_OUT, EPAPR_LAST_ARG,
                                                     "ePAPR"))  # fmt: skip
    elif isinstance(ex, exits.Hypercall):
        if reply.regs:
            raise ValueError("x86 KVM_EXIT_HYPERCALL returns RAX only")
        run.complete_hypercall(reply.ret)
    else:
        raise TypeError(f"{type(ex).__name__} is not a hypercall exit")
