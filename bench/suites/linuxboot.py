"""A Linux boot on pseries (issue 14): launcher start to power-off, the guest's uptime at /init, exits.

The Linux cases of tests/ppc (ppc_cases.py: nested 1 vCPU radix, nested 2 vCPUs, powernv9 hash) are
built and booted in the emulated POWER9, one boot per host mode, side by side, as the test suite
boots them; each case's launcher summary ("after S s, N exits") and the guest's own uptime at /init
(tests/ppc/linux_guest.py) become rows. Informational: the figures come from TCG on a shared
machine, so they say what a boot costs here, not what a POWER host would take. --full only
(the boots take minutes).
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.context import REPO, Context
from bench.measurements import Row, Side, not_measured

SUITE = "linuxboot"
SUMMARY = re.compile(r"launch: (\S+): guest powered off \(RTAS power-off\) after ([0-9.]+) s, (\d+) exits")


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(REPO / "tests" / "ppc"))
    import linux_guest
    from host import power
    from ppc_cases import CASES, build_case, split

    reason = power.unavailable_reason()
    if reason is not None:
        return [not_measured(f"{SUITE}.boot", SUITE, "Linux boot to /init", "s", None, reason)]
    base = power.prepare(log=ctx.log)
    modes = sorted({m for c in CASES if c.linux for m in c.modes})
    for mode in modes:
        payload = ctx.tmp / SUITE / mode
        power.runtime_tree(payload / "lib", base.magic)
        (payload / "linux").mkdir(parents=True)
        (payload / "linux" / "vmlinux").write_bytes(base.kernel.read_bytes())
        linux_guest.initramfs(base.initrd, payload / "linux" / "initrd.img", base.guest_file(linux_guest.RNG_MODULE))
        for case in CASES:
            if case.linux and mode in case.modes:
                build_case(case, payload / "cases" / case.name, ctx.tmp / SUITE / "src")
    ctx.log(f"{SUITE}: booting {', '.join(modes)}")
    with ThreadPoolExecutor(len(modes)) as pool:
        boots = dict(zip(modes, pool.map(lambda m: power.boot(base, ctx.tmp / SUITE / m, m, 1200, 420), modes)))
    rows = []
    for mode, boot in boots.items():
        for case in boot.cases:
            console, trace = split(case.output)
            found = SUMMARY.search(trace)
            uptime = linux_guest.facts(console).get("uptime")
            if found is None or uptime is None:
                rows.append(not_measured(f"{SUITE}.{case.name}", SUITE, f"{case.name} ({mode})", "s", None,
                                         f"the case did not power off (rc {case.rc})", verdict="fail"))
                continue
            seconds, exits = float(found.group(2)), int(found.group(3))
            rows.append(Row(f"{SUITE}.{case.name}", SUITE, f"{case.name} ({mode}): launcher start to RTAS power-off",
                            "s", Side("launcher", "python3 launch.py --kernel vmlinux --initrd initrd.img",
                                      [seconds]),
                            note=f"guest uptime at /init {uptime} s; {exits} exits",
                            extra={"init_uptime_s": float(uptime), "exits": exits}))
    return rows
