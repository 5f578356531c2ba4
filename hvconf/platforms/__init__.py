"""Platform families: one module each, the same two functions in every one.

`platform_module` maps a target's `platform_module` (targets/<name>/target.toml)
to its module; explicit imports, no plugin discovery. See base.py for the
contract. (`arch` is the language's keyword and a plan's field; the package of
families is named `platforms` so that each name means one thing.)
"""

from __future__ import annotations

from types import ModuleType


def platform_module(name: str) -> ModuleType:
    from hvconf.platforms import ppc64_spapr, ppc_e500, s390x, x86_64

    families: dict[str, ModuleType] = {
        "ppc64_spapr": ppc64_spapr,
        "ppc_e500": ppc_e500,
        "x86_64": x86_64,
        "s390x": s390x,
    }
    return families[name]
