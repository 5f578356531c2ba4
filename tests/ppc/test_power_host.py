"""Tests of tests/ppc/host/power.py, the POWER9 host's names and CLI on top of the shared harness
(tests/hosts, tested in tests/hosts/test_emulated.py), and one real nested boot (skipped only when
qemu-system-ppc64 is missing and HVCONF_PPC_REQUIRED is unset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

try:  # tests/ppc is a package when it has an __init__.py, else pytest puts tests/ppc on sys.path
    from ppc.host import power
except ImportError:
    from host import power

from hosts import emulated, ppc


def test_power_keeps_its_names_on_the_shared_harness() -> None:
    assert power.PowerHostUnavailable is emulated.HostUnavailable
    assert power.BootError is emulated.BootError and power.Base is emulated.Base
    assert power.runtime_tree is emulated.runtime_tree
    assert power.prepare.__self__ is power.boot.__self__ is ppc.HOST  # type: ignore[attr-defined]
    assert list(power.MODES) == ["nested", "powernv", "powernv-hash"] and ppc.RECIPE.default_mode == "nested"
    assert power.cache_root() == Path(os.environ.get("HVCONF_PPC_CACHE") or
                                      Path.home() / ".cache" / "hvconf" / "ppc-host")


def test_power_py_still_runs_as_a_script() -> None:
    script = Path(power.__file__)
    done = subprocess.run([sys.executable, str(script), "check", "--mode", "powernv", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: power.py check") and "nested,powernv,powernv-hash" in done.stdout


# --- one real boot -------------------------------------------------------------------------------

PYTHON_CASE = """#!/usr/bin/python3
import hvconf.kvm.ioctls.system as system
kvm = system.Kvm()
vm = kvm.create_vm()
print(f"api={kvm.api_version} vm_fd={vm.fd}")
"""


def _case(payload: Path, name: str, script: str, timeout: int | None = None) -> None:
    folder = payload / "cases" / name
    folder.mkdir(parents=True)
    (folder / "run").write_text(script)
    (folder / "run").chmod(0o755)
    if timeout is not None:
        (folder / "timeout").write_text(f"{timeout}\n")


def test_real_nested_boot_runs_every_case(tmp_path: Path) -> None:
    reason = power.unavailable_reason("nested")
    if reason is not None and os.environ.get("HVCONF_PPC_REQUIRED"):
        pytest.fail(f"HVCONF_PPC_REQUIRED is set but the emulated POWER9 host is unavailable: {reason}")
    if reason is not None:
        pytest.skip(f"emulated POWER9 host unavailable ({reason}); HVCONF_PPC_REQUIRED=1 makes this a failure")
    base = power.prepare()
    payload = tmp_path / "payload"
    _case(payload, "a_shell", "#!/bin/sh\necho hi\nexit 3\n")
    _case(payload, "b_python", PYTHON_CASE)
    _case(payload, "c_sleep", "#!/bin/sh\nsleep 1000 &\necho sleeping\nsleep 1000\n", timeout=2)
    _case(payload, "d_after", "#!/bin/sh\nps | grep -c '[s]leep 1000'\nprintf %s \"$PYTHONPATH\"\n")
    power.runtime_tree(payload / "lib", base.magic)
    boot = power.boot(base, payload, "nested", timeout=180)
    assert [c.name for c in boot.cases] == ["a_shell", "b_python", "c_sleep", "d_after"]
    assert (boot.case("a_shell").rc, boot.case("a_shell").output) == (3, "hi\n")
    python = boot.case("b_python")
    assert python.rc == 0, python.output
    assert python.output.startswith("api=12 vm_fd=") and int(python.output.split("vm_fd=")[1]) >= 3
    sleep = boot.case("c_sleep")
    assert sleep.timed_out and sleep.rc == 137 and 2000 <= sleep.ms < 10000
    assert boot.case("d_after").output == "0\n/payload/lib"  # the orphan sleep was killed too
    assert boot.host["platform"] == "pSeries" and boot.host["MMU"] == "Radix"
    assert boot.qemu_rc == 0 and 0 < boot.seconds < 180
