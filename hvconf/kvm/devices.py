"""The devices a plan asks its arch family for, as the generic exit loop and vCPU threads use them.

`Devices` is what every thread of a run shares: `ports`, port writes that
may end the machine, answered before anything else (x86: power-off, reset,
the exception stubs); `console`, which answers the other port I/O exits (x86:
a 16550); `hcalls`, the family's userspace hypercall handlers (its
hypercalls.py, reached from its exits.py); `held`, vCPUs that wait outside
KVM_RUN until the guest releases them (e500: the ePAPR spin table); `close`,
what the run's end undoes (x86: the terminal input of a Linux console). Every
console writes to the run's output.Output (raw or safe, errors as OutputError).
`check(plan)` refuses, before anything is opened, a console kind plan.json
does not have (hvconf/contract.py) or one the plan's family has no
device for; `devices(plan, machine, out)` and `prepare_images` are the
family's (hvconf/kvm/<family>/devices.py). Tests: tests/kvm/test_runtime.py, tests/ppc/.
"""

from __future__ import annotations

from hvconf.contract import CONSOLE_KINDS, MappingProxyType, PlanError
from hvconf.kvm import families
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    from hvconf.contract import Plan
    from hvconf.kvm.ending import Ending
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.ioctls.kvm_run import Io
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.output import Output
    from hvconf.kvm.vcpu_loop import ExitLoop, Outcome

    class Console(Protocol):
        def handle(self, io: Io) -> bytes | None: ...

    class Sink(Protocol):
        """Where a console's bytes go: the run's output.Output, or any binary stream in tests."""

        def write(self, data: bytes | bytearray, /) -> int: ...

        def flush(self) -> None: ...

    class Held(Protocol):
        """vCPUs that wait outside KVM_RUN until the guest releases them."""

        vcpus: frozenset[int]
        what: str  # "the spin table": where a vCPU the run's end found waiting was held

        def hold(self, machine: Machine, vcpu_id: int, ending: Ending, note: Callable[[str], None]) -> bool: ...


class Devices(Record):
    __slots__ = ("ports", "console", "hcalls", "held", "close")
    _defaults = {"ports": MappingProxyType({}), "console": None, "hcalls": None, "held": None, "close": None}
    ports: Mapping[int, Callable[[ExitLoop, Io], Outcome]]  # port -> its write's handler (None: not an ending)
    console: Console | None  # answers port I/O exits
    hcalls: Any | None  # the family's hypercall handlers: .handle(exit) -> reply.Reply
    held: Held | None  # vCPUs held before their first KVM_RUN
    close: Callable[[], None] | None  # what the run's end undoes (x86: the terminal's raw mode)


def check(plan: Plan) -> None:
    """Raise PlanError for a console or launcher section the plan's family has no device for."""
    if plan.console is not None and plan.console.kind not in CONSOLE_KINDS:
        raise PlanError(f"plan console kind {plan.console.kind!r} is not one of {', '.join(CONSOLE_KINDS)}")
    families.part(plan.arch, "devices").check(plan)


def devices(plan: Plan, machine: Machine, out: Output) -> Devices:
    return families.part(plan.arch, "devices").devices(plan, machine, out)


def prepare_images(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    """The loaded images as the plan's board needs them (e500: the host's cpu clocks in the DTB)."""
    return families.part(plan.arch, "devices").prepare_images(plan, loaded, note)
