"""Installs what the suite compares against: Debian packages with apt, matplotlib with pip.

`ensure(allow_install, log)` returns an `Availability`: which comparators are
usable and, for each missing one, a one-line reason (so the suites skip that
comparison with a note instead of faking it). It never installs when the caller
says not to or when not root. Not part of the test run; `bench/run.py` calls it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

# tool -> (Debian package, executable that proves it is there)
APT_TOOLS: dict[str, tuple[str, str]] = {
    "dtc": ("device-tree-compiler", "dtc"),
    "qemu": ("qemu-system-x86", "qemu-system-x86_64"),
}
BUILD_TOOLS = ("gcc", "as", "objcopy")  # needed for the C floor and the guests; never installed here
PIP_MODULES = {"matplotlib": "matplotlib"}  # import name -> pip name


@dataclass
class Availability:
    """What can be compared in this run; `missing[name]` explains every absence."""

    present: set[str] = field(default_factory=set)
    missing: dict[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.present


def _apt_install(packages: list[str], log: Callable[[str], None]) -> str | None:
    """None on success, else the reason apt failed (one line)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        log(f"install: {' '.join(cmd)}")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"`{' '.join(cmd[:2])}` failed ({done.returncode}): {tail[0]}"
    return None


def _pip_install(names: list[str], log: Callable[[str], None]) -> str | None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", *names]
    log(f"install: {' '.join(cmd)}")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"pip failed ({done.returncode}): {tail[0]}"
    importlib.invalidate_caches()
    return None


def ensure(allow_install: bool, log: Callable[[str], None]) -> Availability:
    """Install missing comparators when allowed; report what is usable."""
    avail = Availability()
    is_root = os.geteuid() == 0
    why_not = None if allow_install and is_root else ("--no-install given" if not allow_install else "not root")

    absent_apt = [name for name, (_, exe) in APT_TOOLS.items() if shutil.which(exe) is None]
    if absent_apt and why_not is None:
        failure = _apt_install([APT_TOOLS[n][0] for n in absent_apt], log)
        if failure:
            why_not = failure
    for name, (package, exe) in APT_TOOLS.items():
        if shutil.which(exe):
            avail.present.add(name)
        else:
            avail.missing[name] = f"{exe} not found (Debian package {package}; not installed: {why_not})"

    absent_pip = [mod for mod in PIP_MODULES if importlib.util.find_spec(mod) is None]
    pip_why = "--no-install given" if not allow_install else None
    if absent_pip and pip_why is None:
        pip_why = _pip_install([PIP_MODULES[m] for m in absent_pip], log)
    for mod, package in PIP_MODULES.items():
        if importlib.util.find_spec(mod) is not None:
            avail.present.add(mod)
        else:
            avail.missing[mod] = f"python module {mod} missing (pip package {package}; not installed: {pip_why})"

    for tool in BUILD_TOOLS:
        if shutil.which(tool):
            avail.present.add(tool)
        else:
            avail.missing[tool] = f"{tool} not found (needed to build the C floor and the guests)"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        avail.present.add("kvm")
    else:
        avail.missing["kvm"] = "/dev/kvm is missing or not read-writable by this user"
    return avail
