"""The emulated POWER9 test host: Debian's ppc64el kernel running KVM-HV under qemu-system-ppc64 (TCG).

The harness is tests/hosts/emulated.py, shared with the emulated x86_64 host; the recipe is
tests/hosts/ppc.py. This module keeps the names tests/ppc has always used (prepare, boot,
runtime_tree, unavailable_reason, PowerHostUnavailable...) and the CLI:
python tests/ppc/host/power.py prepare | run DIR | check. Tests: tests/ppc/test_power_host.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:  # run as a script, or imported with only tests/ppc on the path
    sys.path.insert(0, str(TESTS))

from hosts import emulated  # noqa: E402
from hosts.emulated import (  # noqa: E402,F401 - the names tests/ppc uses
    PY311_MAGIC, REPO, RUNTIME, Base, Boot, BootError, Case, NoKvm, parse_console, payload_cases, runtime_tree,
    write_initrd,
)
from hosts.ppc import HOST, RECIPE  # noqa: E402

MODES = RECIPE.modes
QEMU = RECIPE.qemu
PowerHostUnavailable = emulated.HostUnavailable
prepare = HOST.prepare
boot = HOST.boot
unavailable_reason = HOST.unavailable_reason
qemu_command = HOST.qemu_command
cache_root = HOST.cache_root


def main(argv: list[str] | None = None) -> int:
    return HOST.main(argv, prog="power.py")


if __name__ == "__main__":
    sys.exit(main())
