"""The s390 exit hook: none served yet. A KVM_EXIT_S390_SIEIC (an intercept KVM leaves to userspace, such
as DIAG 0x500 for virtio) or any other exit the generic loop leaves here is the loop's `unknown`.
Tests: tests/test_layering.py (the family has every part).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.kvm.vcpu_loop import ExitLoop, Outcome


def handle_exit(loop: ExitLoop, ex: Any) -> Outcome:
    """An exit the generic loop does not answer itself: unhandled, on s390 as yet."""
    return loop.unknown(ex)


def before_run(loop: ExitLoop) -> Callable[[], None] | None:
    """What to do before every KVM_RUN of this vCPU: nothing."""
    return None


def stopped_at(loop: ExitLoop) -> str | None:
    """Where a stopped vCPU was: not told on s390 as yet (its PSW is in kvm_run, not kvm_regs)."""
    return None
