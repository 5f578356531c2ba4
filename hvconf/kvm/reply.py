"""What a userspace hypercall handler answers, whatever the arch: a Reply and the run's Outcome.

`Reply(ret, regs, outcome, note)`: the status for the guest's return
register, output registers by number, whether the run goes on, powers off or
resets, and one line for --trace. Each family's hypercalls.py answers with
Replies and stores them where its kernel reads them (`complete`: the register
conventions are the arch's). No handler logic here, and no enum or
dataclasses: a launch imports it. Tests: tests/kvm/test_buffers_*.py.
"""

from __future__ import annotations

from types import MappingProxyType

from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping


class Outcome:
    """What the exit loop does after completing the hypercall (a namespace of names, as status.Status)."""

    CONTINUE = "continue"
    POWER_OFF = "power-off"  # stop every vCPU; the guest asked to be switched off
    RESET = "reset"  # stop every vCPU; the guest asked for a reboot


class Reply(Record):
    """`ret` goes to the guest's return register (r3 on PowerPC, RAX on x86); `regs` maps output GPR numbers
    to values (registers not named keep what the guest passed); `note` is a one-line trace of what happened."""

    __slots__ = ("ret", "regs", "outcome", "note")
    _defaults = {"regs": MappingProxyType({}), "outcome": Outcome.CONTINUE, "note": ""}
    ret: int
    regs: Mapping[int, int]
    outcome: str  # an Outcome
    note: str
