"""What x86 asks of a host: no check beyond the generic ones, and KVM's PV features for the host facts.

`check_host(kvm, plan)` has nothing to add to the generic host checks
(hvconf/kvm/run.py). `facts(kvm, system)` gives the probe (hvconf/kvm/probe.py)
`pv_features`: CPUID 0x40000001 EAX/EDX as KVM_GET_SUPPORTED_CPUID reports
them (the facts model adds the names), None when KVM does not offer its
signature leaf. Tests: tests/test_host.py.
"""

from __future__ import annotations

from hvconf.kvm.x86.steps import KVM_CPUID_FEATURES, KVM_CPUID_SIGNATURE, signature_words

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from hvconf.contract import Plan
    from hvconf.kvm.ioctls.system import Kvm

KVM_SIGNATURE = signature_words("KVMKVMKVM")  # "KVMKVMKVM\0\0\0" in ebx, ecx, edx


def check_host(kvm: Kvm, plan: Plan) -> None:
    """Raise run.HostMismatch when this host cannot run the plan for an x86 reason: there is none yet."""


def facts(kvm: Kvm, system: Mapping[str, int]) -> dict[str, Any]:
    """The x86 part of the host facts."""
    return {"pv_features": _pv_features(kvm)}


def _pv_features(kvm: Kvm) -> dict[str, int] | None:
    leaves = {e.function: e for e in kvm.supported_cpuid() if e.index == 0}
    signature = leaves.get(KVM_CPUID_SIGNATURE)
    features = leaves.get(KVM_CPUID_FEATURES)
    if signature is None or features is None or (signature.ebx, signature.ecx, signature.edx) != KVM_SIGNATURE:
        return None
    return {"eax": features.eax, "edx": features.edx}
