"""Target families: one module each, the same two functions in every one.

`ARCHES` maps a target's `arch_module` (targets/<name>/target.toml) to its
module; explicit imports, no plugin discovery. See base.py for the contract.
"""

from __future__ import annotations

from types import ModuleType


def arch_module(name: str) -> ModuleType:
    from hvconf.arch import ppc64_spapr, ppc_e500, s390x, x86_64

    arches: dict[str, ModuleType] = {
        "ppc64_spapr": ppc64_spapr,
        "ppc_e500": ppc_e500,
        "x86_64": x86_64,
        "s390x": s390x,
    }
    return arches[name]
