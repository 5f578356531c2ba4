"""The PowerPC suite's cases: the definitions, how each becomes a payload case, what it checks.

Every case is an sPAPR definition compiled here (x86) into its launcher, run on the emulated POWER9
host as `python3 launch.py --trace`, the guest console and the trace kept apart. A case may edit
the compiled plan to bypass the checker (what the kernel says about a request hvconf refuses):
that edit is the test-only switch, and the launcher is rendered again from the edited plan.
Used by conftest.py and test_power_kvm.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvconf import compiler
from hvconf.emit import launcher
from hvconf.syntax.loader import Loader

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / "guests" / "ppc64" / "papr.S"
SAMPLE = REPO / "samples" / "pseries-hello.hv"
TRACE_MARK = "@@TRACE"

# A standalone sPAPR definition (no include: it is written to a temporary folder).
DEFINITION = """format 1
vm {name} {{
    arch    ppc64le
    kvm     book3s_hv
    console hvterm
    cap KVM_CAP_PPC_PAPR on vcpus
    memory  256M
    vcpus   {vcpus}
    {mmu}
    {hcalls}
    rtas {{ token "power-off" {token} {rtas} }}
    {tce}
    guest   "{guest}"
    cmdline "{cmdline}"
}}
"""
TCE = "tce pci0 { liobn 0x80000000  window 256M  page 4K }"
# A 64-bit DMA window (KVM_CREATE_SPAPR_TCE_64) of 16M pages at bus address 2^59, where QEMU puts a
# PHB's 64-bit window (hw/ppc/spapr_pci.c, dma64_win_addr), on a second PHB: papr.S `dma64` uses it
TCE64 = "tce ddw { liobn 0x80000100  window 4G  page 16M  offset 0x800000000000000 }"
MULTI_TCE = "hcalls { enable H_PUT_TCE_INDIRECT  enable H_STUFF_TCE }"  # not in KVM's default set (QEMU enables them)
REBOOT_TOKEN = 'token "system-reboot" 0x2004'


@dataclass(frozen=True)
class Case:
    name: str
    modes: tuple[str, ...]
    text: str | None = None  # a definition; None: samples/pseries-hello.hv itself
    edit: Callable[[dict[str, Any]], None] | None = None  # the checker bypass: edits the plan
    run: str = "python3 launch.py --trace --timeout 60 2> trace.txt"
    linux: bool = False  # boots the payload's one Debian vmlinux and busybox initramfs (LINUX_FILES)


# A Linux guest: Debian's vmlinux (the emulated host's own kernel) and linux_guest.py's initramfs, one
# copy of each per payload under /payload/linux/ (four kernel copies were too large for powernv9's
# initrd loader), given to every Linux case's launcher with --kernel and --initrd at run time.
LINUX_FILES = "/payload/linux"
LINUX_RUN = (f"python3 launch.py --trace --timeout 400 --kernel {LINUX_FILES}/vmlinux "
             f"--initrd {LINUX_FILES}/initrd.img 2> trace.txt")
LINUX_TOKENS = ("display-character", "get-time-of-day", "power-off", "system-reboot",
                "ibm,set-xive", "ibm,get-xive", "ibm,int-off", "ibm,int-on")
LINUX = """format 1
vm {name} {{
    arch    ppc64le
    kvm     book3s_hv
    memory  256M
    vcpus   {vcpus}
    {mmu}
    irqchip xics
    cap KVM_CAP_PPC_PAPR on vcpus
    console hvterm
    {hcalls}
    rtas {{
{tokens}
    }}
    kernel  "vmlinux"
    initrd  "initrd.img"
    cmdline "console=hvc0 quiet panic=-1"
}}
"""


def linux(name: str, *, vcpus: int = 1, mmu: str = "mmu radix", hcalls: str = "") -> str:
    tokens = "\n".join(f'        token "{t}" {0x2001 + i:#x}' for i, t in enumerate(LINUX_TOKENS))
    return LINUX.format(name=name, vcpus=vcpus, mmu=mmu, hcalls=hcalls, tokens=tokens)


def definition(name: str, *, vcpus: int = 1, mmu: str = "mmu radix", hcalls: str = "", token: str = "0x2003",
               tce: str = TCE, cmdline: str = "hcalls tce", rtas: str = "") -> str:
    return DEFINITION.format(name=name, vcpus=vcpus, mmu=mmu, hcalls=hcalls, token=token, tce=tce,
                             guest=GUEST.as_posix(), cmdline=cmdline, rtas=rtas)


def _enable_opcode(opcode: int) -> Callable[[dict[str, Any]], None]:
    """Turn the plan's H_SET_MODE enable step into one for `opcode`, keeping its source line."""

    def edit(plan: dict[str, Any]) -> None:
        step = next(s for s in plan["steps"] if s["args"].get("hcall") == "H_SET_MODE")
        step["args"]["args"][0] = opcode
        step["args"]["hcall"] = f"{opcode:#x}"

    return edit


CASES: tuple[Case, ...] = (
    Case("sample", ("nested", "powernv")),
    Case("hcall-in-launcher", ("nested",), definition("hcall-in-launcher")),  # H_SET_MODE left off
    Case("other-token", ("nested",), definition("other-token", hcalls="hcalls { enable H_SET_MODE }",
                                                token="0x2103", cmdline="")),
    Case("no-tce", ("nested",), definition("no-tce", tce="", cmdline="tce")),
    Case("smp", ("nested",), definition("smp", vcpus=2, cmdline="smp")),
    Case("little-endian", ("nested",), definition("little-endian", vcpus=2, cmdline="le smp")),
    Case("hash-on-nested", ("nested",), definition("hash-on-nested", mmu="mmu hash\n    htab order 19",
                                                   cmdline="")),
    Case("hash", ("powernv",), definition("hash", mmu="mmu hash\n    htab order 19",
                                          hcalls="hcalls { enable H_SET_MODE }")),
    # test-only checker bypass: what hcall-not-toggleable refuses, issued anyway
    Case("einval-rtas", ("nested",), definition("einval-rtas", hcalls="hcalls { enable H_SET_MODE }"),
         _enable_opcode(0xF000)),
    Case("einval-not-in-kernel", ("nested",),
         definition("einval-not-in-kernel", hcalls="hcalls { enable H_SET_MODE }"), _enable_opcode(0x58)),
    Case("einval-unaligned", ("nested",), definition("einval-unaligned", hcalls="hcalls { enable H_SET_MODE }"),
         _enable_opcode(0x31D)),
    Case("probe", ("nested", "powernv"), run="python3 -m hvconf.kvm.probe"),
    # the 64-bit window: filled by the guest's H_PUT_TCE(_INDIRECT)/H_STUFF_TCE in the kernel, read back
    # by H_GET_TCE and by the launcher through the table fd's mmap (its trace, after the run)
    Case("dma64", ("nested",), definition("dma64", hcalls=MULTI_TCE, tce=TCE64, cmdline="dma64")),
    # RTAS system-reboot: the run ends with status 9, or (--on-reboot restart) the guest boots again
    Case("reboot-exit", ("nested",), definition("reboot-exit", tce="", cmdline="reboot", rtas=REBOOT_TOKEN)),
    Case("reboot", ("nested",), definition("reboot", tce="", cmdline="reboot", rtas=REBOOT_TOKEN),
         run="python3 launch.py --trace --timeout 60 --on-reboot restart 2> trace.txt"),
    Case("reboot-loop", ("nested",), definition("reboot-loop", tce="", cmdline="reboot forever", rtas=REBOOT_TOKEN),
         run="python3 launch.py --timeout 60 --on-reboot restart 2> trace.txt"),  # a loop ends: 16 restarts
    # Linux: 1 vCPU radix, H_RANDOM in the launcher and H_CEDE disabled (which KVM's POWER9 radix entry
    # path serves anyway); 2 vCPUs; powernv9 hash with H_RANDOM in the kernel (the CPU's DARN,
    # KVM_CAP_PPC_HWRNG 1) and H_CEDE disabled
    Case("linux-radix", ("nested",), linux("linux-radix", hcalls="hcalls { disable H_CEDE }"), run=LINUX_RUN,
         linux=True),
    Case("linux-smp", ("nested",), linux("linux-smp", vcpus=2), run=LINUX_RUN, linux=True),
    # in-kernel H_RANDOM needs the host's RNG, which nested has not: refused before the VM exists
    Case("hwrng-refused", ("nested",), definition("hwrng-refused", hcalls="hcalls { enable H_RANDOM }")),
    Case("linux-hash", ("powernv",), linux("linux-hash", mmu="mmu hash",
                                           hcalls="hcalls { enable H_RANDOM  disable H_CEDE }"),
         run=LINUX_RUN, linux=True),
)


@dataclass
class Built:
    """A case as compiled: its definition file, plan and where the launcher went."""

    case: Case
    source: Path | None
    plan: dict[str, Any] = field(default_factory=dict)


def build_case(case: Case, into: Path, src: Path) -> Built:
    """Compile `case` into payload case folder `into` (outputs + an executable `run`)."""
    into.mkdir(parents=True)
    source = None
    if case.name != "probe":
        source = SAMPLE if case.text is None else src / f"{case.name}.hv"
        if case.text is not None:
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_text(case.text)
        # A case's definition sits in a temporary folder, its guest in the checkout: allowed, as
        # `--allow-path guests/ppc64` would (a definition reads only its project otherwise).
        result = compiler.build([source], loader=Loader(allow=[GUEST.parent]))
        errors = [d for d in result.report.diagnostics if d.severity.value == "error"]
        assert not errors, f"{case.name}: {[d.message for d in errors]}"
        (built,) = result.built
        for name, data in built.files.items():
            (into / name).write_bytes(data)
        plan = json.loads(built.files["plan.json"])
        if case.edit is not None:
            case.edit(plan)
            (into / "plan.json").write_text(json.dumps(plan, indent=2))
            (into / "launch.py").write_text(launcher.render(plan))
        built_case = Built(case, source, plan)
    else:
        built_case = Built(case, None)
    if case.linux:
        (into / "timeout").write_text("420\n")  # a whole Linux boot under TCG on a shared machine
    run = into / "run"
    run.write_text(f"#!/bin/sh\n{case.run}\nrc=$?\necho {TRACE_MARK}\ncat trace.txt 2> /dev/null\nexit $rc\n")
    run.chmod(0o755)
    return built_case


def split(output: str) -> tuple[str, str]:
    """A case's output as (guest console / stdout, launcher stderr and trace)."""
    console, _, trace = output.partition(f"{TRACE_MARK}\n")
    return console, trace
