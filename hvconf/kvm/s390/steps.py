"""Plan steps only s390 VMs have: none the runtime issues yet (KVM_S390_SET_INITIAL_PSW and
KVM_SET_MP_STATE steps are refused as steps this runtime does not issue). Laid over the generic steps
(hvconf/kvm/steps.py). Tests: tests/test_layering.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.contract import Plan
    from hvconf.kvm.steps import StepKind

STEPS: dict[str, StepKind] = {}


def check_plan(plan: Plan) -> None:
    """Plan-wide checks beyond each step's: none."""


def reserved(plan: Plan) -> list[tuple[int, int, str]]:
    """Guest memory the runtime writes itself: none."""
    return []
