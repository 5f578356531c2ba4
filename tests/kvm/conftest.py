"""Plans built by hand for the runtime tests, and real guests built by the compiler.

`make_plan(guest, ...)` assembles guests/x86/<guest>.S, writes guest.bin
into a temporary directory and returns (plan dict, that directory). The
steps are the x86 sequence of the design's x86-hello plan, with request
numbers from hvconf.abi, for one vCPU or several. `build_vm(path)` runs
the compiler on a .hv file and writes its outputs (launch.py, plan.json,
guest.bin...) into a temporary folder, as `hvconf build` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import hvconf.abi
from hvconf import compiler
from hvconf.emit.guest import assemble
from hvconf.emit.output import write_tree

REPO = Path(__file__).resolve().parents[2]
GUESTS = REPO / "guests" / "x86"
DEFINITIONS = REPO / "tests" / "data" / "guests"
LOAD = 0x7C00
SRC = "test.hv:{}:5"
MODE_GUESTS = {"hello": "real", "vmcall": "real", "spin": "real", "smp": "prot32", "cpuid": "long64", "flood": "real",
               "escapes": "real"}
TABLES = 0x1000  # where hand-written prot32/long64 plans put the runtime's tables


def step(fd: str, ioctl: str, args: dict[str, Any], line: int) -> dict[str, Any]:
    return {"fd": fd, "ioctl": ioctl, "request": hvconf.abi.request(ioctl, "x86_64"), "args": args,
            "source": SRC.format(line)}  # fmt: skip


def vcpu_steps(index: int, mode: str, load: int) -> list[dict[str, Any]]:
    fd = f"vcpu:{index}"
    sregs: dict[str, Any] = {"mode": mode} if mode == "real" else {"mode": mode, "tables": TABLES}
    return [
        step("vm", "KVM_CREATE_VCPU", {"vcpu_id": index}, 7),
        step(fd, "KVM_SET_CPUID2", {"base": "supported", "signature": "KVMKVMKVM", "features": 128,
                                    "feature_names": ["PV_UNHALT"]}, 8),  # fmt: skip
        step(fd, "KVM_ENABLE_CAP", {"cap": "KVM_CAP_ENFORCE_PV_FEATURE_CPUID", "cap_nr": 190, "flags": 0,
                                    "args": [1, 0, 0, 0]}, 9),  # fmt: skip
        step(fd, "KVM_SET_SREGS", sregs, 10),
        step(fd, "KVM_SET_REGS", {"rip": load, "rflags": 2, "rdi": index}, 10),
    ]


def steps(irqchip: bool, vcpus: int = 1, mode: str = "real", load: int = LOAD) -> list[dict[str, Any]]:
    """The x86-hello sequence; `irqchip` adds the in-kernel PIC/IOAPIC/LAPIC and PIT."""
    chip = [step("vm", "KVM_CREATE_IRQCHIP", {}, 4), step("vm", "KVM_CREATE_PIT2", {"flags": 1}, 5)]
    return [
        step("system", "KVM_CREATE_VM", {"type": 0}, 2),
        step("vm", "KVM_SET_TSS_ADDR", {"addr": 0xFFFBD000}, 2),
        step("vm", "KVM_ENABLE_CAP", {"cap": "KVM_CAP_EXIT_HYPERCALL", "cap_nr": 201, "flags": 0,
                                      "args": [4096, 0, 0, 0]}, 3),  # fmt: skip
        *(chip if irqchip else []),
        step("vm", "KVM_SET_USER_MEMORY_REGION", {"slot": 0, "flags": 0, "guest_phys_addr": 0,
             "memory_size": 2 << 20, "userspace_addr": "memory:0"}, 6),  # fmt: skip
        *(s for i in range(vcpus) for s in vcpu_steps(i, mode, load)),
        *(step(f"vcpu:{i}", "KVM_RUN", {}, 11) for i in range(vcpus)),
    ]


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    return {g: assemble(GUESTS / f"{g}.S", code16=mode == "real") for g, mode in MODE_GUESTS.items()}


@pytest.fixture
def make_plan(tmp_path: Path, images: dict[str, bytes]) -> Callable[..., tuple[dict[str, Any], Path]]:
    def make(guest: str = "", *, irqchip: bool = False, caps: list[dict[str, Any]] | None = None,
             vcpus: int = 1, image: bytes | None = None, mode: str | None = None) -> tuple[dict[str, Any], Path]:
        """A plan for guests/x86/`guest`.S, or for `image` started in `mode`."""
        mode = mode or MODE_GUESTS[guest]
        load = LOAD if mode == "real" else 0x10_0000
        data = images[guest] if image is None else image
        (tmp_path / "guest.bin").write_bytes(data)
        plan = {
            "format": 1, "vm": f"x86-{guest or 'test'}", "target": "x86_64", "arch": "x86_64", "abi": "generic",
            "requires": {"host_arch": "x86_64",
                         "caps": caps if caps is not None else
                         [{"cap": "KVM_CAP_USER_MEMORY", "cap_nr": 3, "source": SRC.format(2)}]},
            "images": [{"name": "guest", "path": "guest.bin", "guest_phys_addr": load,
                        "sha256": hashlib.sha256(data).hexdigest()}],
            "console": {"kind": "serial", "port": 0x3F8},
            "launcher": {"x86": {"exit_hypercalls": ["KVM_HC_MAP_GPA_RANGE"]}},
            "steps": steps(irqchip, vcpus, mode, load),
        }  # fmt: skip
        return plan, tmp_path

    return make


@dataclass(frozen=True)
class Ran:
    """A generated launcher run as a subprocess."""

    status: int
    console: bytes
    stderr: str


@dataclass(frozen=True)
class BuiltVm:
    folder: Path
    plan: dict[str, Any]

    def launch(self, *argv: str, timeout: float = 30) -> Ran:
        # Without PYTHONUNBUFFERED, as a user's shell runs it: the launcher must flush what it
        # printed before it ends its process (launch.run_as_process).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        done = subprocess.run([sys.executable, str(self.folder / "launch.py"), *argv], capture_output=True,
                              timeout=timeout, cwd=REPO, env=env)  # fmt: skip
        return Ran(done.returncode, done.stdout, done.stderr.decode())


@pytest.fixture
def build_vm(tmp_path: Path) -> Callable[[Path], BuiltVm]:
    """Compile one .hv file (one VM) and write its outputs, as `hvconf build` does."""

    def build(path: Path) -> BuiltVm:
        result = compiler.build([path])
        assert not result.report.has_errors, [f"{d.code}: {d.message}" for d in result.report]
        [built] = result.built
        [folder] = write_tree(tmp_path / "out", {built.vm.name: built.files})
        return BuiltVm(folder, json.loads((folder / "plan.json").read_text()))

    return build
