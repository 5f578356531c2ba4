"""The PowerPC suite's shared boots: every case of tests/ppc/test_power_kvm.py is built here (on
x86, by the compiler), packed into one payload per host mode with hvconf's runtime, and run in ONE
boot of the emulated POWER9 host per mode (nested KVM-HV and powernv9, booted side by side).
Skipped only when the host cannot be had here and HVCONF_PPC_REQUIRED is unset; CI sets it."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import power  # noqa: E402

import linux_guest  # noqa: E402
from ppc_cases import CASES, Built, build_case  # noqa: E402


@pytest.fixture(scope="session")
def boots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """mode -> (power.Boot, {case name: Built}): the two boots, run once per test session."""
    reasons = [r for r in (power.unavailable_reason(m) for m in ("nested", "powernv")) if r is not None]
    try:
        base = power.prepare(log=lambda m: print(f"power: {m}", file=sys.stderr)) if not reasons else None
    except power.PowerHostUnavailable as err:
        reasons.append(str(err))
        base = None
    if base is None:
        why = "; ".join(reasons)
        if os.environ.get("HVCONF_PPC_REQUIRED"):
            pytest.fail(f"HVCONF_PPC_REQUIRED is set but the emulated POWER9 host is unavailable: {why}")
        pytest.skip(f"emulated POWER9 host unavailable ({why}); HVCONF_PPC_REQUIRED=1 makes this a failure")
    root = tmp_path_factory.mktemp("ppc-suite")
    built: dict[str, dict[str, Built]] = {}
    for mode in ("nested", "powernv"):
        payload = root / mode
        power.runtime_tree(payload / "lib", base.magic)
        if any(c.linux and mode in c.modes for c in CASES):  # one kernel and initramfs for its Linux cases
            (payload / "linux").mkdir()
            (payload / "linux" / "vmlinux").write_bytes(base.kernel.read_bytes())
            linux_guest.initramfs(base.initrd, payload / "linux" / "initrd.img",
                                  base.guest_file(linux_guest.RNG_MODULE))
        built[mode] = {c.name: build_case(c, payload / "cases" / c.name, root / "src")
                       for c in CASES if mode in c.modes}  # fmt: skip
    with ThreadPoolExecutor(2) as pool:  # QEMU TCG -smp 1 uses one core: the two boots go side by side
        futures = {m: pool.submit(power.boot, base, root / m, m, 1200, 180) for m in ("nested", "powernv")}
        results = {m: f.result() for m, f in futures.items()}
    linux = {c.name for c in CASES if c.linux}
    for mode, boot in results.items():  # the Linux cases' share: issue 14's CI budget is theirs
        share = [(c.name, c.ms / 1000) for c in boot.cases if c.name in linux]
        of_it = (f" (Linux cases {sum(s for _, s in share):.1f} s of it: "
                 + ", ".join(f"{n} {s:.1f} s" for n, s in share) + ")") if share else ""
        print(f"power: {mode} boot: {len(boot.cases)} cases in {boot.seconds:.1f} s{of_it}", file=sys.stderr)
    return {m: (results[m], built[m]) for m in results}
