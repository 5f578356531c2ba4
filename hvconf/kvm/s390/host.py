"""What s390 asks of a host: nothing beyond the generic checks, and no host facts of its own.
Tests: tests/test_host.py.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from hvconf.contract import Plan
    from hvconf.kvm.ioctls.system import Kvm


def check_host(kvm: Kvm, plan: Plan) -> None:
    """Raise run.HostMismatch when this host cannot run the plan for an s390 reason: there is none yet."""


def facts(kvm: Kvm, system: Mapping[str, int]) -> dict[str, Any]:
    """The s390 part of the host facts: none."""
    return {}
