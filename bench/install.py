"""Installs what the suite compares against (Debian packages with apt, matplotlib with pip)
and the clean virtualenv hvconf is measured in.

`ensure(allow_install, log)` returns an `Availability`: which comparators are
usable and, for each missing one, a one-line reason (so the suites skip that
comparison with a note instead of faking it). It never installs when the caller
says not to or when not root. `ensure_venv(...)` returns bench/.venv's interpreter
with hvconf freshly installed into it from the checkout, as a user's
`pip install` would have it. Not part of the test run; `bench/run.py` calls them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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


# What must import in the virtualenv for every suite: the compiler, and the runtime launch.py loads.
VENV_PROBE = "import hvconf, hvconf.cli.main, hvconf.compiler, hvconf.kvm.launch, hvconf.kvm.run; print(hvconf.__file__)"


def clean_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without what would make the virtualenv's Python read anything but its own install."""
    return {k: v for k, v in environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE",
                                                          "PYTHONPYCACHEPREFIX", "PYTHONNOUSERSITE")}


def _pip(python: Path, args: list[str], log: Callable[[str], None]) -> str | None:
    """None on success, else pip's last line."""
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    log(f"venv: {' '.join(cmd[3:])}")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=clean_env(os.environ))
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"pip failed ({done.returncode}): {tail[0]}"
    return None


def _wheel(repo: Path, out: Path, log: Callable[[str], None]) -> Path | None:
    """hvconf's wheel, built offline with this interpreter's hatchling; None if it has none."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(repo)]
    log("venv: building hvconf's wheel")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wheels = sorted(out.glob("hvconf-*.whl"))
    return wheels[0] if done.returncode == 0 and wheels else None


def ensure_venv(folder: Path, repo: Path, allow_install: bool, log: Callable[[str], None]) -> tuple[Path | None, str]:
    """(the virtualenv's python, a note) with hvconf installed from `repo`, or (None, why not).

    The virtualenv has hvconf and its dependencies only, no editable checkout and no
    site-wide `.pth` hooks, and pip compiles its bytecode: start-up as a user's install
    has it. It is created once (its dependencies need the package index) and kept in
    `folder`; hvconf itself is reinstalled from the checkout every run."""
    python = folder / "bin" / "python"
    created = not python.exists()
    if created:
        log(f"venv: creating {folder}")
        done = subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            return None, f"cannot create a virtualenv: {(done.stderr or done.stdout).strip()[-200:]}"
    with tempfile.TemporaryDirectory(prefix="hvconf-wheel-") as tmp:
        wheel = _wheel(repo, Path(tmp), log)
        source = str(wheel) if wheel is not None else str(repo)
        failure = None
        if allow_install:  # dependencies from the index when missing; hvconf's own ones only
            failure = _pip(python, [source], log)
        if failure is None:  # the checkout as it is now, even at an unchanged version number
            failure = _pip(python, ["--no-deps", "--force-reinstall", *(["--no-index"] if wheel else []), source], log)
    if failure is not None:
        return None, f"cannot install hvconf into {folder}: {failure}"
    # From the virtualenv's own folder: `-c` puts the working directory first on sys.path,
    # and from the repository that would find the checkout's hvconf instead.
    done = subprocess.run([str(python), "-c", VENV_PROBE], capture_output=True, text=True, timeout=120,
                          env=clean_env(os.environ), cwd=folder)
    if done.returncode != 0 or not done.stdout.strip().startswith(str(folder.absolute())):
        why = (done.stderr.strip().splitlines() or [done.stdout.strip()])[-1]
        return None, f"hvconf does not import from {folder}" + (f": {why}" if why else "") + \
            ("" if allow_install else " (--no-install: its dependencies were never installed)")
    return python, f"a clean virtualenv ({folder.name}, {'created' if created else 'reused'}) with hvconf " \
                   f"installed from {'its wheel' if wheel else 'the checkout'}, not editable"
