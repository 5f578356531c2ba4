"""The registry of arch families: which folder serves an arch's exits, steps, devices and host.

Each hvconf arch's record (hvconf/contract.py) names its family;
FAMILIES maps a family to its package below hvconf/kvm/, whose modules have
the same names in every family (PARTS), as kvmtool's x86/ and powerpc/
define the same functions (kvm_cpu__handle_exit, ...) for its generic code
to call. `part(arch, name)` imports hvconf.kvm.<family>.<name> on first use,
so a launch loads its own family only. The generic layer reaches a family
through here and nowhere else (tests/test_layering.py); what each part
provides: docs/runtime.md. Tests: tests/test_layering.py, tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import sys

from hvconf.contract import ARCHES, PlanError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from types import ModuleType

FAMILIES: dict[str, str] = {"x86": "hvconf.kvm.x86", "powerpc": "hvconf.kvm.powerpc", "s390": "hvconf.kvm.s390"}
# exits: the exit hook; steps: the family's plan steps; devices: consoles, ports, hypercall handlers, held
# vCPUs; hypercalls: the handlers and their register conventions; host: host checks and probed facts.
PARTS = ("exits", "steps", "devices", "hypercalls", "host")


def family(arch: str) -> str:
    """The family serving hvconf arch `arch`; PlanError for an arch this runtime does not serve."""
    record = ARCHES.get(arch)
    if record is None or record.family not in FAMILIES:
        raise PlanError(f"this runtime serves no arch {arch!r} (it knows {', '.join(ARCHES)})")
    return record.family


def part(arch: str, name: str) -> ModuleType:
    """hvconf.kvm.<family of arch>.<name>, imported on first use (`name` one of PARTS). Always through
    __import__ (not importlib: it would import warnings and more at every launch), never by looking in
    sys.modules first: a module another thread is still importing is there, half made, and only the import
    system waits for it. run.py resolves a run's parts before its vCPU threads start all the same."""
    module = f"{FAMILIES[family(arch)]}.{name}"
    __import__(module)
    return sys.modules[module]
