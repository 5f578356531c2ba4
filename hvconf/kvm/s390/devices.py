"""The devices of an s390 machine: none yet (no console kind of plan.json is an s390 one; the plan's
`launcher.s390` section is for a launcher that serves its intercepts, which this one does not).
Tests: tests/test_layering.py.
"""

from __future__ import annotations

from hvconf.contract import PlanError
from hvconf.kvm.devices import Devices

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

    from hvconf.contract import Plan
    from hvconf.kvm.images import Loaded
    from hvconf.kvm.machine import Machine
    from hvconf.kvm.output import Output


def check(plan: Plan) -> None:
    """Raise PlanError for a console: this launcher has no s390 console."""
    if plan.console is not None:
        raise PlanError(f"plan console kind {plan.console.kind!r} is not an s390 console (there is none yet)")


def devices(plan: Plan, machine: Machine, out: Output) -> Devices:
    return Devices()


def prepare_images(plan: Plan, loaded: list[Loaded], note: Callable[[str], None]) -> list[Loaded]:
    """The images as this board needs them: as they are."""
    return loaded
