"""What a launch imports: a named set, so that start-up cannot grow unnoticed.

A launch's CPU time is mostly the interpreter's start and the modules it
loads (bench/README.md, `launch.vs_qemu`, `launch.import`): every module costs
about 0.1 ms to find and load, and a stdlib package pulled in for a rare path
costs more (collections ~2 ms, threading with functools ~1 ms, re, enum,
typing, argparse, json several ms each). Here samples/x86-hello.hv's launch.py
runs for real under `python -S` (no site hooks, so the interpreter's own start
imports the same few modules everywhere), with -X importtime naming every
module it imports; whatever is not in LAUNCH_IMPORTS fails the test. A new
import must be added here, with a reason, or made lazy (a feature the plan
uses imports its module when it runs: hvconf/kvm/families.py, run.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import _cffi_backend
import pytest

from tests.kvm.conftest import REPO, BuiltVm

# The standard library a launch needs: os and its path module (site imports them when it runs), cffi's C
# backend, mmap (kvm_run and guest memory), struct (exit decoding), errno, _sha256 (the images' hashes),
# _collections (the 16550's deque), _collections_abc (Mapping checks), __future__ (annotations), select
# (only when the console is a pipe, a socket or a terminal: hvconf/kvm/output.py polls it).
STDLIB = {"__future__", "_cffi_backend", "_collections", "_collections_abc", "_sha256", "_stat", "_struct", "errno",
          "genericpath", "mmap", "os", "posixpath", "select", "stat", "struct"}  # fmt: skip
# The runtime's modules a one-vCPU x86 launch loads: no dry run, trace, ELF, argparse path, other family.
HVCONF = {
    "hvconf", "hvconf.contract", "hvconf.record", "hvconf.kvm", "hvconf.kvm.launch", "hvconf.kvm.options",
    "hvconf.kvm.status", "hvconf.kvm.run", "hvconf.kvm.devices", "hvconf.kvm.ending", "hvconf.kvm.families",
    "hvconf.kvm.images", "hvconf.kvm.machine", "hvconf.kvm.output", "hvconf.kvm.sequence", "hvconf.kvm.signals",
    "hvconf.kvm.steps", "hvconf.kvm.trace", "hvconf.kvm.vcpu_loop", "hvconf.kvm.vcpu_thread", "hvconf.kvm.watchdog",
    "hvconf.kvm.ioctls", "hvconf.kvm.ioctls.cdefs", "hvconf.kvm.ioctls.cdefs._ffi_x86_64",
    "hvconf.kvm.ioctls.cdefs.layout", "hvconf.kvm.ioctls.errors", "hvconf.kvm.ioctls.fd", "hvconf.kvm.ioctls.ffi",
    "hvconf.kvm.ioctls.kvm_run", "hvconf.kvm.ioctls.memory", "hvconf.kvm.ioctls.numbers",
    "hvconf.kvm.ioctls.system", "hvconf.kvm.ioctls.vcpu", "hvconf.kvm.ioctls.vm", "hvconf.kvm.x86",
    "hvconf.kvm.x86.devices", "hvconf.kvm.x86.exits", "hvconf.kvm.x86.host", "hvconf.kvm.x86.modes",
    "hvconf.kvm.x86.serial", "hvconf.kvm.x86.steps",
}  # fmt: skip
LAUNCH_IMPORTS = STDLIB | HVCONF
# Named apart for a readable failure: what launches once imported and must not again.
NEVER = {"threading", "collections", "functools", "types", "typing", "re", "enum", "argparse", "json", "hashlib",
         "pathlib", "dataclasses", "contextlib", "cffi", "pycparser", "hvconf.abi"}  # fmt: skip


def _imported(*args: str) -> set[str]:
    """Every module `python -S -X importtime ARGS` imports, with the tree and cffi's backend on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.path.dirname(_cffi_backend.__file__)])
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", *args], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rpartition("|")[2].strip() for line in lines[1:]}  # the first line is the header


@pytest.mark.kvm
def test_a_launch_imports_only_the_named_modules(build_vm: Callable[[Path], BuiltVm]) -> None:
    built = build_vm(REPO / "samples" / "x86-hello.hv")
    launched = _imported(str(built.folder / "launch.py")) - _imported("-c", "pass")
    assert "hvconf.kvm.x86.exits" in launched  # the guest ran: its family's exit hook was loaded
    assert launched & NEVER == set()
    assert launched <= LAUNCH_IMPORTS, f"new at start-up: {sorted(launched - LAUNCH_IMPORTS)}"
