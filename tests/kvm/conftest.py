"""Plans built by hand for the runtime tests (never by the compiler).

`make_plan(guest, ...)` assembles guests/x86/<guest>.S, writes guest.bin
into a temporary directory and returns (plan dict, that directory). The
steps are the x86 real-mode sequence of the design's x86-hello plan, with
request numbers from hvconf.abi.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hvconf.abi
from hvconf.emit.guest import assemble

GUESTS = Path(__file__).resolve().parents[2] / "guests" / "x86"
LOAD = 0x7C00
SRC = "test.hv:{}:5"


def step(fd: str, ioctl: str, args: dict[str, Any], line: int) -> dict[str, Any]:
    return {"fd": fd, "ioctl": ioctl, "request": hvconf.abi.request(ioctl, "x86_64"), "args": args,
            "source": SRC.format(line)}  # fmt: skip


def steps(irqchip: bool) -> list[dict[str, Any]]:
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
        step("vm", "KVM_CREATE_VCPU", {"vcpu_id": 0}, 7),
        step("vcpu:0", "KVM_SET_CPUID2", {"base": "supported", "signature": "KVMKVMKVM", "features": 128,
                                          "feature_names": ["PV_UNHALT"]}, 8),  # fmt: skip
        step("vcpu:0", "KVM_ENABLE_CAP", {"cap": "KVM_CAP_ENFORCE_PV_FEATURE_CPUID", "cap_nr": 190, "flags": 0,
                                          "args": [1, 0, 0, 0]}, 9),  # fmt: skip
        step("vcpu:0", "KVM_SET_SREGS", {"mode": "real"}, 10),
        step("vcpu:0", "KVM_SET_REGS", {"rip": LOAD, "rflags": 2}, 10),
        step("vcpu:0", "KVM_RUN", {}, 11),
    ]


@pytest.fixture(scope="session")
def images() -> dict[str, bytes]:
    return {g: assemble(GUESTS / f"{g}.S", code16=True) for g in ("hello", "vmcall", "spin")}


@pytest.fixture
def make_plan(tmp_path: Path, images: dict[str, bytes]) -> Callable[..., tuple[dict[str, Any], Path]]:
    def make(guest: str, *, irqchip: bool = False, caps: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], Path]:
        (tmp_path / "guest.bin").write_bytes(images[guest])
        plan = {
            "format": 1, "vm": f"x86-{guest}", "target": "x86_64", "arch": "x86_64", "abi": "generic",
            "requires": {"host_arch": "x86_64",
                         "caps": caps if caps is not None else
                         [{"cap": "KVM_CAP_USER_MEMORY", "cap_nr": 3, "source": SRC.format(2)}]},
            "images": [{"name": "guest", "path": "guest.bin", "guest_phys_addr": LOAD,
                        "sha256": hashlib.sha256(images[guest]).hexdigest()}],
            "console": {"kind": "serial", "port": 0x3F8},
            "steps": steps(irqchip),
        }  # fmt: skip
        return plan, tmp_path

    return make
